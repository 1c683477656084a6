//! What the tests read from and do to the console's pages in Chromium.

use std::time::{Duration, Instant};

use fantoccini::Client;

/// The terminal's whole buffer as text, lines joined with '\n'.
pub async fn screen(page: &Client) -> String {
    let text = page
        .execute(
            "const b = window.term.buffer.active; const out = [];
             for (let i = 0; i < b.length; i++) { out.push(b.getLine(i).translateToString(true)); }
             return out.join('\\n');",
            vec![],
        )
        .await
        .unwrap();
    text.as_str().unwrap_or_default().to_owned()
}

/// The page's session state and reason.
pub async fn state(page: &Client) -> (String, String) {
    let got = page
        .execute(
            "return [window.consoleState ? window.consoleState.state : '', window.consoleState ? window.consoleState.reason : '']",
            vec![],
        )
        .await
        .unwrap();
    (
        got[0].as_str().unwrap_or_default().to_owned(),
        got[1].as_str().unwrap_or_default().to_owned(),
    )
}

/// Waits until the screen contains `needle` (counted `times` times at least).
pub async fn until_screen(page: &Client, needle: &str, times: usize, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let text = screen(page).await;
        if text.matches(needle).count() >= times {
            return text;
        }
        assert!(
            started.elapsed() < within,
            "no {needle:?} x{times} on screen within {within:?}; state {:?}; screen:\n{text}",
            state(page).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn until_state(page: &Client, want: &str, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let (state, reason) = state(page).await;
        if state == want {
            return reason;
        }
        assert!(
            started.elapsed() < within,
            "state {state:?} ({reason}) instead of {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types into the terminal as a person would (WebDriver key events on xterm.js's textarea).
pub async fn type_keys(page: &Client, keys: &str) {
    let input = page
        .find(fantoccini::Locator::Css(".xterm-helper-textarea"))
        .await
        .unwrap();
    input.send_keys(keys).await.unwrap();
}
