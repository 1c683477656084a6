//! Shells on RRMT hosts from the page: an rrmt-server and an rrmt-agent (the programs'
//! libraries, in this process) on loopback; the home page lists the host online, its Shell
//! button opens a terminal that runs a command on it, and the server's audit log names the web
//! user the shell was opened for.

mod common;

use std::time::{Duration, Instant};

use common::page::{type_keys, until_screen, until_state};
use common::{Console, TOKEN, TempDir};
use fantoccini::Locator;
use oobkit_testkit::browser::{browser, chromedriver};
use rrmt::admin::{AdminClient, AdminReply, AdminRequest};
use web_console::RrmtConfig;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "rrmt-admin-pass";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rrmt_shell_runs_in_the_page_and_the_audit_names_the_web_user() {
    // The server, with administrator alice.
    let dir = TempDir::new("rrmt");
    let config = rrmt::server::ServerConfig::ephemeral(&dir.0);
    config.add_admin("alice", PASSWORD).await.unwrap();
    let server = rrmt::server::Server::start(config).await.unwrap();
    let (agents, admin) = server.endpoints();
    // A host and its agent.
    let mut client = AdminClient::connect(&admin, "alice", PASSWORD)
        .await
        .unwrap();
    let AdminReply::TokenCreated { token, .. } = client
        .call(&AdminRequest::TokenCreate {
            name: "web1".into(),
        })
        .await
        .unwrap()
    else {
        panic!("a token");
    };
    let mut agent =
        rrmt::agent::AgentConfig::new(agents, rrmt::Token::parse(&token).unwrap(), "web1");
    agent.shell = "/bin/sh".into();
    tokio::spawn(rrmt::agent::run(agent));

    let console = Console::start_with("", |c| {
        c.rrmt = Some(RrmtConfig {
            endpoint: admin.clone(),
            user: "alice".into(),
            password: PASSWORD.into(),
        });
    })
    .await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1000, 700).await;
    // The home page lists the host once its agent is online.
    let started = Instant::now();
    loop {
        page.goto(&format!("http://{}/#token={TOKEN}", console.addr))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let online = page
            .execute(
                "const h = document.querySelector('.rrmt-host[data-name=\"web1\"]'); return h ? h.dataset.online : ''",
                vec![],
            )
            .await
            .unwrap();
        if online == "true" {
            break;
        }
        assert!(started.elapsed() < WAIT, "web1 not listed online: {online}");
    }
    page.find(Locator::Css(".rrmt-host[data-name=\"web1\"] button.shell"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_state(&page, "open", WAIT).await;
    type_keys(&page, "echo rrmt-$((2*3))-$(id -un)\n").await;
    until_screen(&page, "\nrrmt-6-", 1, WAIT).await;
    type_keys(&page, "exit 4\n").await;
    let reason = until_state(&page, "closed", WAIT).await;
    assert_eq!(reason, "the shell exited with status 4");
    // The server's audit: alice (the console's administrator) opened it for web-alice.
    let started = Instant::now();
    loop {
        let AdminReply::Audit { entries } = client
            .call(&AdminRequest::Audit { limit: 20 })
            .await
            .unwrap()
        else {
            panic!("an audit reply");
        };
        let shell = entries.iter().find(|e| e.action == "shell");
        if let Some(entry) = shell.filter(|e| e.ended.is_some()) {
            assert_eq!(entry.who, "alice");
            assert_eq!(entry.host, "web1");
            assert!(entry.detail.ends_with("for web-alice"), "{entry:?}");
            assert_eq!(entry.exit, Some(4));
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "no finished shell entry: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    page.close().await.unwrap();
}
