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

/// The colours across the middle of the canvas under `selector` in a screenshot of the page:
/// `samples` pixels, evenly spaced from left to right (for checking what a VNC client drew).
pub async fn canvas_colours(page: &Client, selector: &str, samples: usize) -> Vec<[u8; 3]> {
    let rect = page
        .execute(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();
             return [r.left, r.top, r.width, r.height, window.devicePixelRatio]",
            vec![selector.into()],
        )
        .await
        .expect("the canvas is on the page");
    let n = |i: usize| rect[i].as_f64().expect("a number");
    let (left, top, width, height, ratio) = (n(0), n(1), n(2), n(3), n(4));
    let shot = page.screenshot().await.expect("a screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(shot));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    (0..samples)
        .map(|i| {
            let x = ((left + width * (i as f64 + 0.5) / samples as f64) * ratio) as usize;
            let y = ((top + height / 2.0) * ratio) as usize;
            let at = (y * frame.width as usize + x) * channels;
            [pixels[at], pixels[at + 1], pixels[at + 2]]
        })
        .collect()
}
