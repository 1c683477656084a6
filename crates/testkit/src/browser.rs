//! Headless Chromium (Debian `chromium` and `chromium-driver`) driven through WebDriver with
//! fantoccini, for the tests of pages served from the binaries (noVNC, xterm.js).

use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

/// chromedriver on a loopback port it chose itself, killed on drop.
pub struct Driver {
    _child: tokio::process::Child,
    /// Its port.
    pub port: u16,
    /// Where its log goes (named in failures).
    pub log: std::path::PathBuf,
}

/// Starts chromedriver and waits until it says it listens.
///
/// It binds port 0 and announces the port it got: choosing a free port here and handing it over
/// would race with every other test doing the same.
pub async fn chromedriver() -> Driver {
    use tokio::io::AsyncBufReadExt;
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!(
        "oobkit-chromedriver-{}-{n}.log",
        std::process::id()
    ));
    let mut child = tokio::process::Command::new("chromedriver")
        .arg("--port=0")
        .arg(format!("--log-path={}", log.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (./test.sh installs chromium-driver)");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let announced = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("chromedriver's output") {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                return rest.trim_end_matches('.').parse::<u16>().ok();
            }
        }
        None
    })
    .await;
    let port = match announced {
        Ok(Some(port)) => port,
        other => panic!(
            "chromedriver did not say it listens ({other:?}); its log: {}",
            log.display()
        ),
    };
    // Keep reading its stdout so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Driver {
        _child: child,
        port,
        log,
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The log is kept only when a test failed with it.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A headless Chromium session of `width` x `height`.
///
/// A machine busy with other tests sometimes loses Chromium while it starts (chromedriver then
/// drops the request); that is retried twice. A refusal chromedriver explains is not.
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
    let mut attempt = 1;
    loop {
        let made = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        match made {
            Ok(client) => return client,
            Err(fantoccini::error::NewSessionError::FailedC(e)) if attempt < 3 => {
                eprintln!("Chromium session attempt {attempt} lost ({e}); trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!(
                "a Chromium session: {e:?} (chromedriver's log: {})",
                driver.log.display()
            ),
        }
    }
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
