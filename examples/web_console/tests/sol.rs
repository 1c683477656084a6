//! The AMT serial console through the console's terminal protocol, over both of the AMT's
//! transports (the redirection port, and `/ws-redirection` on the web port behind HTTP
//! Digest), against the simulated AMT; and what the page is told when SOL is refused.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Console;
use oobkit_io::Endpoint;
use oobkit_io::redirection::RedirTarget;
use oobkit_redir::Transport;
use oobkit_term::CloseCode;
use web_console::AmtTarget;

const WAIT: Duration = Duration::from_secs(20);

async fn simulator(transport: Transport) -> (amt_sim::Simulator, AmtTarget) {
    let mut config = amt_sim::SimConfig::loopback("sol-test-pass");
    config.redir_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sim = amt_sim::Simulator::start(config).await.unwrap();
    let port = match transport {
        Transport::AmtWebSocket => sim.http_addr.port(),
        _ => sim.redir_addr.unwrap().port(),
    };
    let target = AmtTarget {
        name: "sim".into(),
        wsman: Endpoint::plain("127.0.0.1", sim.http_addr.port()),
        redirection: RedirTarget {
            endpoint: Endpoint::plain("127.0.0.1", port),
            transport,
            user: "admin".into(),
            password: "sol-test-pass".into(),
        },
    };
    (sim, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_over_either_transport_logs_in_and_runs_commands() {
    for transport in [Transport::Tcp, Transport::AmtWebSocket] {
        let (_sim, amt) = simulator(transport).await;
        let console = Console::start_with("", |c| c.amts = vec![amt]).await;
        let (status, answer) = console
            .create(&serde_json::json!({"target": "sim", "kind": "sol"}))
            .await;
        assert_eq!(status, 201, "{answer}");
        let mut term = console.open(&common::link_id(&answer), None).await.unwrap();
        term.start(80, 24).await;
        term.input("\r").await;
        term.until("login: ", WAIT).await;
        term.input("operator\r").await;
        term.until("Password: ", WAIT).await;
        term.input("secret\r").await;
        term.input("echo over-$TRANSPORT\r").await;
        term.until("over-$TRANSPORT", WAIT).await;
        term.input("whoami\r").await;
        term.until("operator", WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_serial_console_is_explained() {
    let (_sim, amt) = simulator(Transport::Tcp).await;
    let console = Console::start_with("", |c| c.amts = vec![amt]).await;
    let mut first = {
        let (_, answer) = console
            .create(&serde_json::json!({"target": "sim", "kind": "sol"}))
            .await;
        console.open(&common::link_id(&answer), None).await.unwrap()
    };
    first.start(80, 24).await;
    first.input("\r").await;
    first.until("login: ", WAIT).await;
    // The AMT has one serial console: a second one is refused, and the page says why.
    let (_, answer) = console
        .create(&serde_json::json!({"target": "sim", "kind": "sol"}))
        .await;
    let mut second = console.open(&common::link_id(&answer), None).await.unwrap();
    second.start(80, 24).await;
    let (code, reason) = second.until_closed(WAIT).await;
    assert_eq!(code, CloseCode::TargetFailed);
    assert!(
        reason.contains("busy") || reason.contains("in use"),
        "{reason}"
    );
    // A kind the console does not know, or a target it does not have: 400 before any link.
    let (status, _) = console
        .create(&serde_json::json!({"target": "sim", "kind": "ider"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = console
        .create(&serde_json::json!({"target": "other", "kind": "sol"}))
        .await;
    assert_eq!(status, 400);
}
