//! Headless Chromium (Debian `chromium` and `chromium-driver`) driven through WebDriver with
//! fantoccini, for the tests of pages served from the binaries (noVNC, xterm.js).

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// chromedriver on a free loopback port, killed on drop.
pub struct Driver {
    _child: tokio::process::Child,
    /// Its port.
    pub port: u16,
}

/// Starts chromedriver and waits until it listens.
pub async fn chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (./test.sh installs chromium-driver)");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver {
        _child: child,
        port,
    }
}

/// A headless Chromium session of `width` x `height`.
pub async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}
