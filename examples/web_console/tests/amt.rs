//! The console's AMT side, in headless Chromium against the simulated AMT: the home page lists
//! it with its state; the serial console runs a command in the simulator's console; the screen
//! shows its colour bars in noVNC (after user consent: a wrong code refused, the right one
//! taken); power off, cycle and on are seen in the list.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::page::{type_keys, until_screen};
use common::{Console, TOKEN};
use fantoccini::{Client, Locator};
use oobkit_io::Endpoint;
use oobkit_io::redirection::RedirTarget;
use oobkit_testkit::browser::{browser, canvas_colours, chromedriver};
use web_console::AmtTarget;

const WAIT: Duration = Duration::from_secs(20);

async fn simulator() -> (amt_sim::Simulator, AmtTarget) {
    let mut config = amt_sim::SimConfig::loopback("sim-password-1");
    config.redir_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let target = AmtTarget {
        name: "lab-amt".into(),
        wsman: Endpoint::plain("127.0.0.1", sim.http_addr.port()),
        redirection: RedirTarget {
            endpoint: Endpoint::plain("127.0.0.1", sim.redir_addr.unwrap().port()),
            transport: oobkit_redir::Transport::Tcp,
            user: "admin".into(),
            password: "sim-password-1".into(),
        },
    };
    (sim, target)
}

async fn js(page: &Client, script: &str) -> serde_json::Value {
    page.execute(script, vec![]).await.unwrap()
}

async fn until(page: &Client, script: &str, within: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let value = js(page, script).await;
        if !value.is_null() && value != false && value != "" {
            return value;
        }
        assert!(
            started.elapsed() < within,
            "not true within {within:?}: {script}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The home page, logged in with the token, once the AMT is listed.
async fn home(page: &Client, console: &Console) {
    page.goto(&format!("http://{}/#token={TOKEN}", console.addr))
        .await
        .unwrap();
    until(
        page,
        "return document.querySelector('.amt[data-name=\"lab-amt\"] .facts')",
        WAIT,
    )
    .await;
}

/// The noVNC canvas shows the simulator's colour bars (sampled on a screenshot).
async fn assert_colour_bars(page: &Client) {
    let seen = canvas_colours(page, "#screen canvas", 8).await;
    for (i, (got, want)) in seen.iter().zip(oobkit_rfb::BARS).enumerate() {
        let close = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) < 40);
        assert!(
            close,
            "bar {i}: screenshot {got:?}, pattern {want:?} (all: {seen:?})"
        );
    }
}

async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serial_console_runs_a_command_in_the_simulator() {
    let (_sim, amt) = simulator().await;
    let console = Console::start_with("", |c| c.amts = vec![amt]).await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1000, 700).await;
    home(&page, &console).await;
    let facts = js(
        &page,
        "return document.querySelector('.amt .facts').textContent",
    )
    .await;
    assert!(
        facts.as_str().unwrap().contains("serial console enabled"),
        "{facts}"
    );
    click(&page, ".amt[data-name=\"lab-amt\"] button.sol").await;
    until(
        &page,
        "return window.consoleState && window.consoleState.state === 'open'",
        WAIT,
    )
    .await;
    type_keys(&page, "\n").await;
    until_screen(&page, "login: ", 1, WAIT).await;
    type_keys(&page, "operator\n").await;
    until_screen(&page, "Password: ", 1, WAIT).await;
    type_keys(&page, "anything\n").await;
    type_keys(&page, "echo sol-through-the-page\n").await;
    until_screen(&page, "\nsol-through-the-page", 1, WAIT).await;
    type_keys(&page, "uname\n").await;
    until_screen(&page, "SimulatedOS", 1, WAIT).await;
    page.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_needs_consent_then_shows_the_colour_bars() {
    let (sim, amt) = simulator().await;
    // Consent for KVM, as many AMTs in client control mode want.
    let mut client = oobkit_io::WsmanClient::new(amt.wsman.clone(), "admin", "sim-password-1");
    let mut opt_in = client
        .get(oobkit_wsman::ops::get_opt_in_service())
        .await
        .unwrap();
    opt_in.set("OptInRequired", "1");
    client
        .get(oobkit_wsman::Request::put(opt_in))
        .await
        .unwrap();
    let console = Console::start_with("", |c| c.amts = vec![amt]).await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1100, 900).await;
    home(&page, &console).await;
    click(&page, ".amt[data-name=\"lab-amt\"] button.kvm").await;
    // The page asks for the code the AMT shows on the managed screen.
    until(
        &page,
        "return !document.querySelector('.amt .consent').hidden",
        WAIT,
    )
    .await;
    let code = sim
        .device()
        .consent_code_on_screen()
        .expect("a code on the screen");
    let wrong = (code + 1) % 1_000_000;
    let field = page.find(Locator::Css(".amt input.code")).await.unwrap();
    field.send_keys(&format!("{wrong:06}")).await.unwrap();
    click(&page, ".amt button.send-code").await;
    let message = until(
        &page,
        "const m = document.querySelector('.amt .message').textContent; return m.includes('refused') ? m : ''",
        WAIT,
    )
    .await;
    assert!(message.as_str().unwrap().contains("refused"), "{message}");
    // The right one opens the screen.
    let code = sim
        .device()
        .consent_code_on_screen()
        .expect("still a code on the screen");
    field.clear().await.unwrap();
    field.send_keys(&format!("{code:06}")).await.unwrap();
    click(&page, ".amt button.send-code").await;
    until(
        &page,
        "return location.pathname === '/display' && document.body.dataset.state === 'connected'",
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_colour_bars(&page).await;
    page.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_cycle_and_on_are_seen_in_the_list() {
    let (sim, amt) = simulator().await;
    let console = Console::start_with("", |c| c.amts = vec![amt]).await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1000, 700).await;
    home(&page, &console).await;
    let power = |state: &str| {
        format!(
            "const f = document.querySelector('.amt .facts'); return f && f.dataset.power.startsWith('{state}')"
        )
    };
    assert_eq!(js(&page, &power("on")).await, true);
    click(&page, ".amt button.power-off").await;
    until(&page, &power("off"), WAIT).await;
    assert_eq!(sim.device().power_state(), 8);
    // A cycle from off boots it: seen on again.
    click(&page, ".amt button.power-cycle").await;
    until(&page, &power("on"), WAIT).await;
    assert_eq!(sim.device().power_state(), 2);
    click(&page, ".amt button.power-off").await;
    until(&page, &power("off"), WAIT).await;
    click(&page, ".amt button.power-on").await;
    until(&page, &power("on"), WAIT).await;
    page.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_screen_is_refused_with_the_reason_in_the_page() {
    let (_sim, amt) = simulator().await;
    let console = Console::start_with("", |c| c.amts = vec![amt]).await;
    let driver = chromedriver().await;
    let first = browser(&driver, 1000, 700).await;
    home(&first, &console).await;
    click(&first, ".amt[data-name=\"lab-amt\"] button.kvm").await;
    until(
        &first,
        "return document.body.dataset.state === 'connected'",
        WAIT,
    )
    .await;
    let second = browser(&driver, 1000, 700).await;
    home(&second, &console).await;
    click(&second, ".amt[data-name=\"lab-amt\"] button.kvm").await;
    until(
        &second,
        "return document.body.dataset.state === 'refused'",
        WAIT,
    )
    .await;
    let text = js(
        &second,
        "return document.getElementById('status').textContent",
    )
    .await;
    assert!(text.as_str().unwrap().contains("busy"), "{text}");
    // The first is still connected.
    assert_eq!(
        js(&first, "return document.body.dataset.state").await,
        "connected"
    );
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_vnc_server_shows_in_novnc() {
    // A VNC server: the simulator's colour-bar RFB screen on a plain TCP port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let limits = amt_sim::rfb::Limits {
                    write: Duration::from_secs(10),
                    idle: Duration::from_secs(60),
                };
                let _ = amt_sim::rfb::serve(&mut stream, 800, 600, limits).await;
            });
        }
    });
    let console = Console::start_with("", |c| {
        c.vnc = vec![web_console::VncTarget {
            name: "lab-vnc".into(),
            addr: addr.to_string(),
        }];
    })
    .await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1100, 900).await;
    page.goto(&format!("http://{}/#token={TOKEN}", console.addr))
        .await
        .unwrap();
    until(
        &page,
        "return document.querySelector('.vnc-server[data-name=\"lab-vnc\"] button.screen')",
        WAIT,
    )
    .await;
    click(&page, ".vnc-server[data-name=\"lab-vnc\"] button.screen").await;
    until(
        &page,
        "return location.pathname === '/display' && document.body.dataset.state === 'connected'",
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_colour_bars(&page).await;
    page.close().await.unwrap();
}
