//! noVNC from npm, served by vnc_proxy, in headless Chromium (Debian `chromium` and
//! `chromium-driver`) driven through WebDriver with fantoccini: the page connects through the
//! proxy and the KubeVirt stand-in to the simulator's colour bars (checked on a screenshot),
//! is cut when its token expires, and shows why a token is refused.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::Client;
use oobkit_gate::testing::mint_hs256;
use oobkit_gate::{Gate, GateConfig, VerifyingKey};
use oobkit_io::Endpoint;
use oobkit_testkit::browser::{browser, chromedriver};
use tokio::net::TcpListener;
use vnc_proxy::standin::{Console, StandInConfig};
use vnc_proxy::{Limits, ProxyConfig, Upstream};

const SECRET: &[u8] = b"browser-test-secret";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn proxy() -> std::net::SocketAddr {
    let api = vnc_proxy::standin::start(StandInConfig {
        vmis: vec![(
            "lab".into(),
            "bars".into(),
            Console::Pattern {
                width: 800,
                height: 600,
            },
        )],
        bearer: None,
        tls: None,
        coalesce: false,
    })
    .await
    .unwrap();
    let mut gate = GateConfig::new(vec![VerifyingKey::hs256(SECRET).unwrap()]);
    gate.leeway = Duration::ZERO;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vnc_proxy::serve(
        listener,
        ProxyConfig {
            gate: Gate::new(gate),
            upstream: Upstream {
                api: Endpoint::plain("127.0.0.1", api.port()),
                version: "v1".into(),
                token: None,
            },
            allowed_origins: vec![],
            limits: Limits::default(),
        },
    ));
    addr
}

/// The page's state (`data-state` on the body) and status text, once the state is `want` or
/// `within` passed.
async fn state(page: &Client, want: &str, within: Duration) -> (String, String) {
    let started = Instant::now();
    loop {
        let got = page
            .execute("return [document.body.dataset.state, document.getElementById('status').textContent]", vec![])
            .await
            .unwrap();
        let state = got[0].as_str().unwrap_or_default().to_owned();
        let text = got[1].as_str().unwrap_or_default().to_owned();
        if state == want || started.elapsed() > within {
            return (state, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn novnc_shows_the_colour_bars_then_is_cut_at_expiry() {
    let driver = chromedriver().await;
    let proxy = proxy().await;
    let page = browser(&driver, 1000, 700).await;
    // Long enough for a loaded machine; the expiry is checked with a short token below.
    let token = mint_hs256(SECRET, unix_now() + 600.0, "lab", &["bars"]);
    page.goto(&format!("http://{proxy}/vnc.html?path={token}/bars"))
        .await
        .unwrap();
    let (state_now, text) = state(&page, "connected", Duration::from_secs(15)).await;
    assert_eq!(state_now, "connected", "{text}");
    // The desktop name came through RFB's ServerInit.
    let started = Instant::now();
    loop {
        let title = page.title().await.unwrap();
        if title.contains("oobkit simulator") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "title {title:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The screenshot shows the bars: sample across the canvas, expect the pattern's colours.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = oobkit_testkit::browser::canvas_colours(&page, "#screen canvas", 8).await;
    for (i, (got, want)) in seen.iter().zip(oobkit_rfb::BARS).enumerate() {
        let close = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) < 40);
        assert!(
            close,
            "bar {i}: screenshot {got:?}, pattern {want:?} (all: {seen:?})"
        );
    }
    // A token that runs out: the session is cut at its expiry, and the page says why.
    let token = mint_hs256(SECRET, unix_now() + 8.0, "lab", &["bars"]);
    page.goto(&format!("http://{proxy}/vnc.html?path={token}/bars"))
        .await
        .unwrap();
    let (state_now, text) = state(&page, "connected", Duration::from_secs(8)).await;
    assert_eq!(state_now, "connected", "{text}");
    let (state_now, text) = state(&page, "disconnected", Duration::from_secs(15)).await;
    assert_eq!(state_now, "disconnected", "{text}");
    assert!(text.contains("expired"), "{text}");
    page.close().await.unwrap();
    drop(driver);
}

#[tokio::test]
async fn a_refused_token_is_explained_in_the_page() {
    let driver = chromedriver().await;
    let proxy = proxy().await;
    let page = browser(&driver, 1000, 700).await;
    let token = mint_hs256(SECRET, unix_now() + 600.0, "lab", &["another-vm"]);
    page.goto(&format!("http://{proxy}/vnc.html?path={token}/bars"))
        .await
        .unwrap();
    let (state_now, text) = state(&page, "refused", Duration::from_secs(15)).await;
    assert_eq!(state_now, "refused", "{text}");
    assert!(text.contains("does not allow VMI"), "{text}");
    page.close().await.unwrap();
    drop(driver);
}
