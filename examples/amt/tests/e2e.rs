//! End to end: the `amt` binary against the simulated AMT (in-process, loopback), for every
//! subcommand, wrong credentials, faults, TLS policies, and state seen across calls.

use amt_sim::{SimConfig, Simulator};
use serde_json::Value as Json;

const PASSWORD: &str = "Sim-P@ss1";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn start() -> Simulator {
    let mut config = SimConfig::loopback(PASSWORD);
    config.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    Simulator::start(config).await.expect("simulator starts")
}

async fn amt_with(sim: &Simulator, password: &str, global: &[&str], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_amt"));
    command.args(["--host", "127.0.0.1"]);
    if !global.contains(&"--port") {
        command.args(["--port", &sim.http_addr.port().to_string()]);
    }
    let out = command
        .args(global)
        .args(args)
        .env("AMT_PASSWORD", password)
        .env_remove("AMT_HOST")
        .output()
        .await
        .expect("amt runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn amt(sim: &Simulator, args: &[&str]) -> Run {
    let run = amt_with(sim, PASSWORD, &[], args).await;
    assert_eq!(run.code, 0, "amt {args:?} failed: {}", run.stderr);
    run
}

async fn amt_json(sim: &Simulator, args: &[&str]) -> Json {
    let run = amt_with(sim, PASSWORD, &["--json"], args).await;
    assert_eq!(run.code, 0, "amt {args:?} failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[tokio::test]
async fn info_and_power_changes_seen_by_later_calls() {
    let sim = start().await;
    let info = amt(&sim, &["info"]).await;
    assert!(
        info.stdout.contains("firmware:      16.1.25"),
        "{}",
        info.stdout
    );
    assert!(info.stdout.contains("power:         on"), "{}", info.stdout);
    assert!(
        info.stdout.contains("provisioned, admin control mode"),
        "{}",
        info.stdout
    );

    for (action, state) in [
        ("off", 8),
        ("on", 2),
        ("reset", 2),
        ("cycle", 2),
        ("sleep", 4),
        ("on", 2),
        ("hibernate", 7),
        ("on", 2),
        ("soft-off", 8),
    ] {
        amt(&sim, &["power", action]).await;
        let status = amt_json(&sim, &["power", "status"]).await;
        assert_eq!(status["power_state"], state, "after power {action}");
        assert_eq!(sim.device().power_state(), state);
    }
    let info = amt_json(&sim, &["info"]).await;
    assert_eq!(info["power"], "off (hard)");
    // A soft action on a machine that is off: the device's ReturnValue is reported, exit 1.
    let refused = amt_with(&sim, PASSWORD, &[], &["power", "reset"]).await;
    assert_eq!(
        refused.code, 0,
        "reset powers on from off: {}",
        refused.stderr
    );
    amt(&sim, &["power", "off"]).await;
    let refused = amt_with(&sim, PASSWORD, &[], &["power", "soft-off"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("returned 2: unknown or unspecified error"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn boot_redirection_and_consent() {
    let sim = start().await;
    for (device, source) in [
        ("pxe", Some("Intel(r) AMT: Force PXE Boot")),
        ("disk", Some("Intel(r) AMT: Force Hard-drive Boot")),
        ("cd", Some("Intel(r) AMT: Force CD/DVD Boot")),
        ("bios", None),
    ] {
        amt(&sim, &["boot", device]).await;
        assert_eq!(sim.device().boot_source(), source, "boot {device}");
    }
    let settings = amt_json(&sim, &["get", "AMT_BootSettingData"]).await;
    assert_eq!(settings[0]["properties"]["BIOSSetup"], "true");

    amt(&sim, &["redirection", "disable", "sol"]).await;
    assert!(!sim.device().sol_enabled() && sim.device().ider_enabled());
    amt(&sim, &["redirection", "disable", "ider"]).await;
    assert!(!sim.device().ider_enabled());
    amt(&sim, &["redirection", "enable", "sol"]).await;
    assert!(sim.device().sol_enabled() && !sim.device().ider_enabled());
    amt(&sim, &["redirection", "disable", "kvm"]).await;
    assert!(!sim.device().kvm_enabled());
    amt(&sim, &["redirection", "enable", "kvm"]).await;
    amt(&sim, &["redirection", "enable", "ider"]).await;
    let info = amt_json(&sim, &["info"]).await;
    assert_eq!(
        (
            info["sol"].clone(),
            info["ider"].clone(),
            info["kvm"].clone()
        ),
        (Json::Bool(true), Json::Bool(true), Json::Bool(true))
    );

    // Consent: not required at first, then required for KVM.
    let not_needed = amt_with(&sim, PASSWORD, &[], &["consent", "start"]).await;
    assert_eq!(not_needed.code, 1);
    assert!(
        not_needed.stderr.contains("not required"),
        "{}",
        not_needed.stderr
    );
    let dir = tempdir();
    let file = dir.join("optin.txt");
    std::fs::write(&file, "# require consent for KVM\nOptInRequired=1\n").unwrap();
    amt(&sim, &["put", "IPS_OptInService", file.to_str().unwrap()]).await;
    assert!(!sim.device().kvm_session_allowed());
    let started = amt(&sim, &["consent", "start"]).await;
    assert!(
        started.stdout.contains("amt consent code"),
        "{}",
        started.stdout
    );
    let code = sim
        .device()
        .consent_code_on_screen()
        .expect("a code on screen");
    let wrong = amt_with(
        &sim,
        PASSWORD,
        &[],
        &["consent", "code", &((code + 1) % 1_000_000).to_string()],
    )
    .await;
    assert_eq!(wrong.code, 1);
    amt(&sim, &["consent", "code", &code.to_string()]).await;
    assert!(sim.device().kvm_session_allowed());
    amt(&sim, &["consent", "cancel"]).await;
    assert!(!sim.device().kvm_session_allowed());
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "amt-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn inventory_logs_time_and_raw_operations() {
    let sim = start().await;
    let inventory = amt_json(&sim, &["inventory"]).await;
    let classes: Vec<&str> = inventory
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["class"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains(&"CIM_Processor") && classes.contains(&"CIM_PhysicalMemory"),
        "{classes:?}"
    );

    amt(&sim, &["power", "cycle"]).await;
    let audit = amt_json(&sim, &["log", "audit"]).await;
    assert_eq!(audit[0]["initiator"], "admin");
    assert_eq!(audit[0]["description"], "remote power control");
    let events = amt_json(&sim, &["log", "event"]).await;
    assert_eq!(
        events.as_array().unwrap().len(),
        1,
        "one boot event after the cycle"
    );

    let sync = amt_json(&sim, &["time", "sync"]).await;
    assert!(sync["drift_seconds"].as_i64().unwrap().abs() <= 2);

    let ports = amt_json(&sim, &["enum", "AMT_EthernetPortSettings"]).await;
    assert_eq!(ports.as_array().unwrap().len(), 2);
    let wireless = amt_json(
        &sim,
        &[
            "get",
            "AMT_EthernetPortSettings",
            "-s",
            "InstanceID=Intel(r) AMT Ethernet Port Settings 1",
        ],
    )
    .await;
    assert_eq!(wireless[0]["properties"]["PhysicalConnectionType"], "3");
    assert_eq!(
        wireless[0]["properties"]["LinkPolicy"],
        serde_json::json!(["1", "14"])
    );
    let uuid = amt_json(
        &sim,
        &["invoke", "AMT_SetupAndConfigurationService", "GetUuid"],
    )
    .await;
    assert_eq!(uuid[0]["properties"]["ReturnValue"], "0");
    let text = amt(&sim, &["get", "AMT_GeneralSettings"]).await;
    assert!(
        text.stdout.contains("  DigestRealm: Digest:"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn failures_are_clear() {
    let sim = start().await;
    let wrong = amt_with(&sim, "not-the-password", &[], &["info"]).await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("refused the user name or password"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-the-password"));

    let fault = amt_with(&sim, PASSWORD, &[], &["get", "IPS_NoSuchClass"]).await;
    assert_eq!(fault.code, 1);
    assert!(
        fault.stderr.contains("DestinationUnreachable (HTTP 400)"),
        "{}",
        fault.stderr
    );
    assert!(
        fault.stderr.contains("does not have that class"),
        "{}",
        fault.stderr
    );
    let json = amt_with(
        &sim,
        PASSWORD,
        &["--json"],
        &["get", "AMT_EthernetPortSettings", "-s", "InstanceID=nope"],
    )
    .await;
    assert_eq!(json.code, 1);
    let parsed: Json = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        parsed["error"]
            .as_str()
            .unwrap()
            .contains("InvalidSelectors")
    );

    let usage = amt_with(&sim, PASSWORD, &[], &["power", "explode"]).await;
    assert_eq!(usage.code, 2);
}

#[tokio::test]
async fn tls_is_verified_unless_pinned_or_insecure() {
    let sim = start().await;
    let port = sim.https_addr.unwrap().port().to_string();
    let fingerprint = oobkit_io::format_fingerprint(&sim.tls_fingerprint.unwrap());
    let tls = |extra: &'static [&'static str]| {
        let mut v = vec!["--tls", "--port", port.as_str()];
        v.extend_from_slice(extra);
        v
    };
    // The simulator's self-signed certificate is not trusted by default; the error shows the
    // fingerprint to pin.
    let refused = amt_with(&sim, PASSWORD, &tls(&[]), &["power", "status"]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains(&fingerprint), "{}", refused.stderr);
    let pin = ["--fingerprint", fingerprint.as_str()];
    let mut pinned = tls(&[]);
    pinned.extend_from_slice(&pin);
    let ok = amt_with(&sim, PASSWORD, &pinned, &["power", "status"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let wrong_pin = amt_with(&sim, PASSWORD, &tls(&["--fingerprint", "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"]), &["power", "status"]).await;
    assert_eq!(wrong_pin.code, 1);
    assert!(
        wrong_pin.stderr.contains("does not match the pinned"),
        "{}",
        wrong_pin.stderr
    );
    let insecure = amt_with(&sim, PASSWORD, &tls(&["--insecure"]), &["info"]).await;
    assert_eq!(insecure.code, 0, "{}", insecure.stderr);
}
