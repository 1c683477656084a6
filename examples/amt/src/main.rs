//! `amt`: manage an Intel AMT device over WS-Management.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use oobkit_io::{CallError, Endpoint, IoError, TlsPolicy, WsmanClient};
use oobkit_wsman::ops::{self, BootDevice, PowerAction};
use oobkit_wsman::pager::{AuditLog, EventLog, PagerError};
use oobkit_wsman::{Error as WsmanError, Instance, Property, Request, ResponseBody, Value};
use serde_json::{Map, Value as Json, json};

/// Manage an Intel AMT device over WS-Management (HTTP Digest; TLS verified by default).
///
/// The password comes from AMT_PASSWORD or, on a terminal, a prompt; never from the command
/// line, so it stays out of shell history and `ps`.
#[derive(Parser)]
#[command(
    version,
    after_help = "Exit status: 0 on success, 1 on any failure (the device's fault or return code is printed), 2 on bad usage."
)]
struct Cli {
    /// Device host name or address.
    #[arg(long, short = 'H', env = "AMT_HOST")]
    host: String,
    /// Port (default 16992, or 16993 with --tls).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// Use TLS (AMT 16 and later often serve only TLS).
    #[arg(long)]
    tls: bool,
    /// Trust exactly the certificate with this SHA-256 fingerprint (hex, colons optional).
    #[arg(long, requires = "tls", conflicts_with = "insecure")]
    fingerprint: Option<String>,
    /// Also trust the CAs in this PEM file.
    #[arg(long, requires = "tls", conflicts_with_all = ["insecure", "fingerprint"])]
    ca: Option<PathBuf>,
    /// Accept any certificate (never the default; prefer --fingerprint).
    #[arg(long, requires = "tls")]
    insecure: bool,
    /// User name.
    #[arg(long, short = 'u', default_value = "admin")]
    user: String,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Firmware, provisioning, power and redirection state at a glance.
    Info,
    /// Show or change the power state.
    Power {
        #[arg(value_enum)]
        action: PowerCmd,
    },
    /// Set the device to boot from somewhere once, at its next boot.
    Boot {
        #[arg(value_enum)]
        device: BootCmd,
    },
    /// Enable or disable a redirection feature.
    Redirection {
        #[arg(value_enum)]
        action: OnOff,
        #[arg(value_enum)]
        feature: Feature,
    },
    /// User consent (opt-in): ask for a code on the managed screen, send it, or cancel.
    Consent {
        #[command(subcommand)]
        action: ConsentCmd,
    },
    /// Hardware inventory (chassis, board, BIOS, CPU, memory, disks).
    Inventory,
    /// Read the audit log or the event log.
    Log {
        #[arg(value_enum)]
        which: LogCmd,
    },
    /// Time operations.
    Time {
        #[arg(value_enum)]
        action: TimeCmd,
    },
    /// Get one instance of a class (AMT_, CIM_, IPS_ name, or a resource URI).
    Get {
        class: String,
        /// Key selector NAME=VALUE (repeatable).
        #[arg(long = "selector", short = 's', value_parser = parse_pair)]
        selectors: Vec<(String, String)>,
    },
    /// Enumerate every instance of a class.
    Enum { class: String },
    /// Change properties: Get the instance, apply the FILE's `Name=value` lines, Put it back.
    Put {
        class: String,
        file: PathBuf,
        #[arg(long = "selector", short = 's', value_parser = parse_pair)]
        selectors: Vec<(String, String)>,
    },
    /// Invoke a method with text arguments NAME=VALUE.
    Invoke {
        class: String,
        method: String,
        #[arg(value_parser = parse_pair)]
        args: Vec<(String, String)>,
        #[arg(long = "selector", short = 's', value_parser = parse_pair)]
        selectors: Vec<(String, String)>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PowerCmd {
    Status,
    On,
    Off,
    SoftOff,
    Reset,
    Cycle,
    Sleep,
    Hibernate,
}

#[derive(Clone, Copy, ValueEnum)]
enum BootCmd {
    Pxe,
    Disk,
    Cd,
    Bios,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OnOff {
    Enable,
    Disable,
}

#[derive(Clone, Copy, ValueEnum)]
enum Feature {
    Sol,
    Ider,
    Kvm,
}

#[derive(Subcommand)]
enum ConsentCmd {
    /// Show a code on the managed machine's screen.
    Start,
    /// Send the code the user there read out.
    Code { code: u32 },
    /// Cancel the request or the consent.
    Cancel,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogCmd {
    Audit,
    Event,
}

#[derive(Clone, Copy, ValueEnum)]
enum TimeCmd {
    /// Set the device clock from this machine's.
    Sync,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// What a command produced: text for a person, JSON for a script.
struct Report {
    text: String,
    json: Json,
}

/// A failure, with what to do about it.
struct Failure(String);

impl From<IoError> for Failure {
    fn from(e: IoError) -> Self {
        let hint = match &e {
            IoError::AuthRejected => " (check --user and AMT_PASSWORD)",
            IoError::Connect { .. } => {
                " (is the device on and reachable? AMT 16+ may serve only TLS: try --tls)"
            }
            IoError::Tls {
                fingerprint: Some(_),
                ..
            } => " (if you have checked that certificate out of band, pin it with --fingerprint)",
            _ => "",
        };
        match e.fault() {
            Some(f) => {
                let extra = if f.name() == "DestinationUnreachable" {
                    " (this device does not have that class)"
                } else {
                    ""
                };
                Self(format!("the device answered with a fault: {f}{extra}"))
            }
            None => Self(format!("{e}{hint}")),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Io(e) => e.into(),
            other => Self(other.to_string()),
        }
    }
}

impl From<PagerError> for Failure {
    fn from(e: PagerError) -> Self {
        Self(e.to_string())
    }
}

impl From<WsmanError> for Failure {
    fn from(e: WsmanError) -> Self {
        Self(e.to_string())
    }
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Text(s) | Value::Datetime(s) => Json::String(s.clone()),
        Value::Nil => Json::Null,
        Value::Epr(epr) => {
            let selectors: Map<String, Json> = epr
                .selectors
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        Json::String(s.text().unwrap_or("<reference>").to_owned()),
                    )
                })
                .collect();
            json!({ "resource_uri": epr.resource_uri, "selectors": selectors })
        }
        Value::Instance(i) => instance_json(i),
        _ => Json::Null,
    }
}

/// An instance as JSON: properties by name, arrays as lists.
fn instance_json(instance: &Instance) -> Json {
    let mut props = Map::new();
    for p in &instance.properties {
        let v = value_json(&p.value);
        match props.get_mut(&p.name) {
            Some(Json::Array(list)) if instance.all(&p.name).count() > 1 => list.push(v),
            Some(existing) => *existing = Json::Array(vec![existing.clone(), v]),
            None => {
                props.insert(p.name.clone(), v);
            }
        }
    }
    json!({ "class": instance.class, "properties": props })
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Text(s) | Value::Datetime(s) => s.clone(),
        Value::Nil => "(nil)".into(),
        Value::Epr(epr) => format!(
            "-> {}{}",
            oobkit_wsman::class_name(&epr.resource_uri),
            epr.selectors
                .iter()
                .map(|s| format!(" {}={}", s.name, s.text().unwrap_or("<reference>")))
                .collect::<String>()
        ),
        Value::Instance(i) => format!("<{}>", i.class),
        _ => String::new(),
    }
}

fn instance_text(instance: &Instance) -> String {
    let mut out = format!("{}\n", instance.class);
    for p in &instance.properties {
        let _ = writeln!(out, "  {}: {}", p.name, value_text(&p.value));
    }
    out
}

fn instances_report(instances: &[Instance]) -> Report {
    Report {
        text: instances
            .iter()
            .map(instance_text)
            .collect::<Vec<_>>()
            .join("\n"),
        json: Json::Array(instances.iter().map(instance_json).collect()),
    }
}

fn with_selectors(mut request: Request, selectors: &[(String, String)]) -> Request {
    for (k, v) in selectors {
        request = request.selector(k, v);
    }
    request
}

fn done(text: String, json: Json) -> Report {
    Report { text, json }
}

async fn run(cli: &Cli, client: &mut WsmanClient) -> Result<Report, Failure> {
    match &cli.command {
        Command::Info => info(client).await,
        Command::Power { action } => power(client, *action).await,
        Command::Boot { device } => boot(client, *device).await,
        Command::Redirection { action, feature } => redirection(client, *action, *feature).await,
        Command::Consent { action } => consent(client, action).await,
        Command::Inventory => inventory(client).await,
        Command::Log { which } => log(client, *which).await,
        Command::Time {
            action: TimeCmd::Sync,
        } => time_sync(client).await,
        Command::Get { class, selectors } => {
            let instance = client
                .get(with_selectors(Request::get(class), selectors))
                .await?;
            Ok(instances_report(&[instance]))
        }
        Command::Enum { class } => Ok(instances_report(&client.enumerate(class).await?)),
        Command::Put {
            class,
            file,
            selectors,
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure(format!("cannot read {}: {e}", file.display())))?;
            let mut instance = client
                .get(with_selectors(Request::get(class), selectors))
                .await?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (k, v) = parse_pair(line)
                    .map_err(|e| Failure(format!("{}:{}: {e}", file.display(), n + 1)))?;
                if instance.get(&k).is_none() {
                    return Err(Failure(format!(
                        "{}:{}: {class} has no property {k}",
                        file.display(),
                        n + 1
                    )));
                }
                instance.set(&k, v.as_str());
            }
            let updated = client
                .get(with_selectors(Request::put(instance), selectors))
                .await?;
            Ok(instances_report(&[updated]))
        }
        Command::Invoke {
            class,
            method,
            args,
            selectors,
        } => {
            let arguments = args
                .iter()
                .map(|(k, v)| Property {
                    name: k.clone(),
                    value: Value::from(v.as_str()),
                })
                .collect();
            let out = client
                .invoke(with_selectors(
                    Request::invoke(class, method, arguments),
                    selectors,
                ))
                .await?;
            Ok(instances_report(&[out.outputs]))
        }
    }
}

async fn info(client: &mut WsmanClient) -> Result<Report, Failure> {
    let status = client.status().await?;
    let firmware = status.firmware.as_deref().unwrap_or("unknown");
    let onoff = |b: bool| if b { "enabled" } else { "disabled" };
    let text = format!(
        "firmware:      {firmware}\nprovisioning:  {}, {}\npower:         {}\nSOL:           {}\nIDE-R:         {}\nKVM:           {}\nlistener:      {}\nuser consent:  {}\n",
        status.provisioning_state,
        status.provisioning_mode,
        ops::power_state_text(status.power_state),
        onoff(status.sol),
        onoff(status.ider),
        onoff(status.kvm),
        onoff(status.listener),
        status.consent.text(),
    );
    Ok(done(
        text,
        json!({
            "firmware": firmware,
            "provisioning_state": status.provisioning_state,
            "provisioning_mode": status.provisioning_mode,
            "power_state": status.power_state,
            "power": ops::power_state_text(status.power_state),
            "sol": status.sol, "ider": status.ider, "kvm": status.kvm, "listener": status.listener,
            "user_consent": status.consent.text(),
        }),
    ))
}

async fn power(client: &mut WsmanClient, action: PowerCmd) -> Result<Report, Failure> {
    let action = match action {
        PowerCmd::Status => {
            let state = client.get(ops::get_power_state()).await?;
            let code: u32 = state
                .text("PowerState")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let text = ops::power_state_text(code);
            return Ok(done(
                format!("{text}\n"),
                json!({ "power_state": code, "power": text }),
            ));
        }
        PowerCmd::On => PowerAction::On,
        PowerCmd::Off => PowerAction::Off,
        PowerCmd::SoftOff => PowerAction::SoftOff,
        PowerCmd::Reset => PowerAction::Reset,
        PowerCmd::Cycle => PowerAction::Cycle,
        PowerCmd::Sleep => PowerAction::Sleep,
        PowerCmd::Hibernate => PowerAction::Hibernate,
    };
    client
        .invoke(ops::request_power_state_change(action))
        .await?;
    Ok(done(
        format!("power state change {} requested\n", action.code()),
        json!({ "requested_power_state": action.code(), "ok": true }),
    ))
}

async fn boot(client: &mut WsmanClient, device: BootCmd) -> Result<Report, Failure> {
    let (device, name) = match device {
        BootCmd::Pxe => (BootDevice::Pxe, "network (PXE)"),
        BootCmd::Disk => (BootDevice::Disk, "hard disk"),
        BootCmd::Cd => (BootDevice::Cd, "CD/DVD"),
        BootCmd::Bios => (BootDevice::BiosSetup, "BIOS setup"),
    };
    // The sequence MeshCommander and os-autoinst use: boot settings, then the boot
    // configuration role, then the order.
    let mut settings = client.get(ops::get_boot_setting_data()).await?;
    settings.set(
        "BIOSSetup",
        if device == BootDevice::BiosSetup {
            "true"
        } else {
            "false"
        },
    );
    settings.set("BIOSPause", "false");
    settings.set("UseSOL", "false");
    settings.set("UseIDER", "false");
    client.get(Request::put(settings)).await?;
    client.invoke(ops::set_boot_config_role()).await?;
    client.invoke(ops::change_boot_order(Some(device))).await?;
    Ok(done(
        format!("next boot: {name} (once; power on or reset to use it)\n"),
        json!({ "next_boot": name, "ok": true }),
    ))
}

async fn redirection(
    client: &mut WsmanClient,
    action: OnOff,
    feature: Feature,
) -> Result<Report, Failure> {
    let enable = action == OnOff::Enable;
    let what = match feature {
        Feature::Kvm => {
            client.invoke(ops::kvm_request_state_change(enable)).await?;
            "KVM"
        }
        Feature::Sol | Feature::Ider => {
            let mut service = client.get(ops::get_redirection_service()).await?;
            let state: u32 = service
                .text("EnabledState")
                .and_then(|v| v.parse().ok())
                .unwrap_or(32768);
            let bit = if matches!(feature, Feature::Sol) {
                2
            } else {
                1
            };
            let bits = state.saturating_sub(32768) & 3;
            let bits = if enable { bits | bit } else { bits & !bit };
            client
                .invoke(ops::redirection_request_state_change(32768 + bits))
                .await?;
            if enable && service.text("ListenerEnabled") != Some("true") {
                service.set("ListenerEnabled", "true");
                client.get(Request::put(service)).await?;
            }
            if bit == 2 { "SOL" } else { "IDE-R" }
        }
    };
    let verb = if enable { "enabled" } else { "disabled" };
    Ok(done(
        format!("{what} {verb}\n"),
        json!({ "feature": what, "enabled": enable, "ok": true }),
    ))
}

async fn consent(client: &mut WsmanClient, action: &ConsentCmd) -> Result<Report, Failure> {
    match action {
        ConsentCmd::Start => {
            let optin = client.get(ops::get_opt_in_service()).await?;
            if optin.text("OptInRequired") == Some("0") {
                return Err(Failure(
                    "user consent is not required on this device; redirection can start without it"
                        .into(),
                ));
            }
            client.invoke(ops::start_opt_in()).await?;
            Ok(done(
                "a 6-digit code is now shown on the managed machine's screen; send it with: amt consent code NNNNNN\n".into(),
                json!({ "ok": true }),
            ))
        }
        ConsentCmd::Code { code } => {
            client.invoke(ops::send_opt_in_code(*code)).await?;
            Ok(done(
                "consent given; redirection sessions may start\n".into(),
                json!({ "ok": true }),
            ))
        }
        ConsentCmd::Cancel => {
            client.invoke(ops::cancel_opt_in()).await?;
            Ok(done("consent cancelled\n".into(), json!({ "ok": true })))
        }
    }
}

async fn inventory(client: &mut WsmanClient) -> Result<Report, Failure> {
    let mut found = Vec::new();
    for class in ops::HARDWARE_INVENTORY {
        match client.enumerate(class).await {
            Ok(list) => found.extend(list),
            // A SKU without a class answers DestinationUnreachable: skip it, as MeshCommander.
            Err(CallError::Io(e))
                if e.fault()
                    .is_some_and(|f| f.name() == "DestinationUnreachable") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(instances_report(&found))
}

async fn log(client: &mut WsmanClient, which: LogCmd) -> Result<Report, Failure> {
    let mut text = String::new();
    let mut rows = Vec::new();
    match which {
        LogCmd::Audit => {
            let mut pager = AuditLog::new();
            while let Some(request) = pager.next_request() {
                let out = client.invoke(request).await?;
                for r in pager.handle(ResponseBody::Output(out))? {
                    let _ = writeln!(
                        text,
                        "{}  {:<10} {} (app {}, event {})",
                        r.time,
                        r.initiator,
                        r.describe(),
                        r.app_id,
                        r.event_id
                    );
                    rows.push(json!({ "time": r.time, "initiator": r.initiator, "app_id": r.app_id, "event_id": r.event_id, "description": r.describe() }));
                }
            }
        }
        LogCmd::Event => {
            let mut pager = EventLog::new();
            while let Some(request) = pager.next_request() {
                let out = client.invoke(request).await?;
                for r in pager.handle(ResponseBody::Output(out))? {
                    let _ = writeln!(
                        text,
                        "{}  sensor type {:#04x} event {:#04x} offset {} entity {:#04x} severity {}",
                        r.time, r.sensor_type, r.event_type, r.offset, r.entity, r.severity
                    );
                    rows.push(json!({ "time": r.time, "sensor_type": r.sensor_type, "event_type": r.event_type, "offset": r.offset, "entity": r.entity, "severity": r.severity }));
                }
            }
        }
    }
    if rows.is_empty() {
        text.push_str("(no records)\n");
    }
    Ok(done(text, Json::Array(rows)))
}

async fn time_sync(client: &mut WsmanClient) -> Result<Report, Failure> {
    let out = client.invoke(ops::get_low_accuracy_time()).await?;
    let ta0: u64 = out
        .outputs
        .text("Ta0")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Failure("the device did not report its time".into()))?;
    let now = oobkit_io::unix_now();
    client.invoke(ops::set_high_accuracy_time(ta0, now)).await?;
    let drift = now as i64 - ta0 as i64;
    Ok(done(
        format!("device clock set (it was {drift:+} s off)\n"),
        json!({ "device_time_before": ta0, "set_to": now, "drift_seconds": drift }),
    ))
}

fn password() -> Result<String, Failure> {
    if let Ok(p) = std::env::var("AMT_PASSWORD") {
        return Ok(p);
    }
    rpassword::prompt_password("AMT password: ").map_err(|e| {
        Failure(format!(
            "no password: set AMT_PASSWORD or run on a terminal ({e})"
        ))
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    oobkit_io::init_logging("warn");
    let cli = Cli::parse();
    let result = async {
        let tls = if cli.tls {
            Some(
                TlsPolicy::from_flags(cli.fingerprint.as_deref(), cli.ca.as_deref(), cli.insecure)
                    .map_err(Failure)?,
            )
        } else {
            None
        };
        let mut endpoint = Endpoint::plain(
            cli.host.clone(),
            cli.port.unwrap_or(if cli.tls { 16993 } else { 16992 }),
        );
        endpoint.tls = tls;
        let password = password()?;
        let mut client = WsmanClient::new(endpoint, &cli.user, &password);
        run(&cli, &mut client).await
    }
    .await;
    match result {
        Ok(report) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.json).unwrap_or_default()
                );
            } else {
                print!("{}", report.text);
                if !report.text.ends_with('\n') {
                    println!();
                }
            }
            ExitCode::SUCCESS
        }
        Err(Failure(message)) => {
            if cli.json {
                println!("{}", json!({ "error": message }));
            }
            eprintln!("amt: {message}");
            ExitCode::FAILURE
        }
    }
}
