//! The page itself: xterm.js served by web_console, in headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven with fantoccini), against Debian's sshd on loopback. Keys are typed
//! into the terminal through WebDriver; what the terminal shows is read from xterm.js's buffer
//! and, once, from a screenshot.

mod common;

use std::time::{Duration, Instant};

use common::page::{state, type_keys, until_screen, until_state};
use common::{Console, TOKEN};
use fantoccini::Client;
use fantoccini::key::Key;
use oobkit_testkit::browser::{Driver, browser, chromedriver};
use oobkit_testkit::sshd::{self, Sshd};
use web_console::HostKeyPolicy;

const WAIT: Duration = Duration::from_secs(20);

/// Text as an input method delivers it (CJK arrives through composition, not key events, and
/// chromedriver cannot type it): xterm.js's own input path, the one its textarea feeds.
async fn compose(page: &Client, text: &str) {
    page.execute("window.term.input(arguments[0], true)", vec![text.into()])
        .await
        .unwrap();
}

/// A page logged in as the test account, with a known prompt.
async fn logged_in(driver: &Driver, console: &Console, sshd: &Sshd) -> Client {
    let page = browser(driver, 1000, 700).await;
    let id = console.password_session(sshd).await;
    page.goto(&format!("http://{}/term#{id}", console.addr))
        .await
        .unwrap();
    until_state(&page, "open", WAIT).await;
    type_keys(&page, "PS1='READY> '\n").await;
    until_screen(&page, "READY> ", 1, WAIT).await;
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_types_and_reads_utf8_resizes_and_interrupts() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1000, 700).await;

    // The login page: the token rides in the fragment and leaves the address bar at once.
    page.goto(&format!("http://{}/#token={TOKEN}", console.addr))
        .await
        .unwrap();
    let url = page.current_url().await.unwrap();
    assert!(url.fragment().is_none(), "{url}");
    page.find(fantoccini::Locator::Id("port"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    for (field, value) in [
        ("port", sshd.port.to_string()),
        ("user", sshd::USER.to_owned()),
        ("password", sshd::password()),
    ] {
        page.find(fantoccini::Locator::Id(field))
            .await
            .unwrap()
            .send_keys(&value)
            .await
            .unwrap();
    }
    page.find(fantoccini::Locator::Id("open"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_state(&page, "open", WAIT).await;
    // The one-time id left the address bar too.
    let url = page.current_url().await.unwrap();
    assert_eq!((url.path(), url.fragment()), ("/term", None), "{url}");

    type_keys(&page, "PS1='READY> '\n").await;
    until_screen(&page, "READY> ", 1, WAIT).await;
    // Typed UTF-8 reaches the shell as UTF-8 (its bytes, in hex), and comes back as text.
    // (Composed text goes in as an input method delivers it: chromedriver cannot type CJK.)
    type_keys(&page, "echo ").await;
    compose(&page, "héllo wörld 你好").await;
    type_keys(&page, " | od -An -tx1 | tr -d ' \\n'; echo\n").await;
    until_screen(&page, "68c3a96c6c6f2077c3b6726c6420e4bda0e5a5bd0a", 1, WAIT).await;
    type_keys(&page, "echo ").await;
    compose(&page, "héllo wörld 你好").await;
    type_keys(&page, "\n").await;
    until_screen(&page, "\nhéllo wörld 你好", 1, WAIT).await;
    // A character split across two output frames (half of it, a pause, the rest).
    type_keys(
        &page,
        "printf 'split:\\xe4\\xbd'; sleep 0.5; printf '\\xa0:done\\n'\n",
    )
    .await;
    until_screen(&page, "split:你:done", 1, WAIT).await;

    // Resize: the window shrinks, xterm.js fits, the PTY follows.
    page.set_window_size(700, 500).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let size = page
        .execute("return [window.term.rows, window.term.cols]", vec![])
        .await
        .unwrap();
    let (rows, cols) = (size[0].as_u64().unwrap(), size[1].as_u64().unwrap());
    type_keys(&page, "clear; stty size\n").await;
    until_screen(&page, &format!("{rows} {cols}"), 1, WAIT).await;

    // yes, then Ctrl-C: stopped and answered within a second.
    type_keys(&page, "yes\n").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ctrl_c = format!("{}c{}", char::from(Key::Control), char::from(Key::Null));
    let pressed = Instant::now();
    type_keys(&page, &ctrl_c).await;
    until_screen(&page, "^C", 1, Duration::from_secs(5)).await;
    let took = pressed.elapsed();
    type_keys(&page, "clear; echo after-$((5*5))\n").await;
    until_screen(&page, "after-25", 1, WAIT).await;
    assert!(took < Duration::from_secs(1), "Ctrl-C shown after {took:?}");
    let rendered = page
        .execute("return window.consoleState.rendered", vec![])
        .await
        .unwrap();
    assert!(rendered.as_f64().unwrap() > 100_000.0, "{rendered}");

    // A screenshot shows what the shell drew: a red bar across the terminal.
    type_keys(&page, "clear; printf '\\033[41m%60s\\033[0m\\n' ''\n").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let shot = page.screenshot().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(shot));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let red = pixels
        .chunks(channels)
        .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 80)
        .count();
    // 60 cells of a ~9x17 px font: thousands of red pixels, none on a black screen.
    assert!(red > 3000, "{red} red pixels");

    // The shell's end is the session's end, shown with its status.
    type_keys(&page, "exit 7\n").await;
    let reason = until_state(&page, "closed", WAIT).await;
    assert_eq!(reason, "the shell exited with status 7");
    page.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_links_wrong_origins_and_bad_host_keys_are_refused_in_the_page() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let driver = chromedriver().await;
    let page = browser(&driver, 1000, 700).await;
    let id = console.password_session(&sshd).await;

    // A page of another origin (localhost is not 127.0.0.1) cannot open the terminal, and
    // trying does not use the link up.
    page.goto(&format!("http://{}/", console.addr))
        .await
        .unwrap();
    let other = format!("ws://localhost:{}/ws", console.addr.port());
    let outcome = page
        .execute_async(
            "const [url, id, done] = arguments;
             const ws = new WebSocket(url, ['oobkit.term.v1', 'oobkit.session.' + id]);
             ws.onopen = () => done('open');
             ws.onerror = () => done('refused');",
            vec![other.into(), id.clone().into()],
        )
        .await
        .unwrap();
    assert_eq!(outcome, "refused");

    // The link works once...
    page.goto(&format!("http://{}/term#{id}", console.addr))
        .await
        .unwrap();
    until_state(&page, "open", WAIT).await;
    // ...and a second page with it is refused, with the reason shown.
    let second = browser(&driver, 1000, 700).await;
    second
        .goto(&format!("http://{}/term#{id}", console.addr))
        .await
        .unwrap();
    let reason = until_state(&second, "closed", WAIT).await;
    assert!(reason.contains("used already"), "{reason}");

    // Unknown host key (an empty known_hosts) and a changed one: refused, said in the page.
    for (known_hosts, words) in [
        (String::new(), "unknown"),
        (sshd.other_known_hosts_line(), "CHANGED"),
    ] {
        let strict = Console::start(&known_hosts, HostKeyPolicy::Reject).await;
        let id = strict.password_session(&sshd).await;
        second
            .goto(&format!("http://{}/term#{id}", strict.addr))
            .await
            .unwrap();
        let reason = until_state(&second, "closed", WAIT).await;
        assert!(
            reason.contains(words) && reason.contains("SHA256:"),
            "{reason}"
        );
        until_screen(&second, words, 1, WAIT).await;
    }
    second.close().await.unwrap();
    page.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_alive_after_two_minutes() {
    let sshd = Sshd::start();
    let console = Console::start(&sshd.known_hosts_line(), HostKeyPolicy::Reject).await;
    let driver = chromedriver().await;
    let page = logged_in(&driver, &console, &sshd).await;
    tokio::time::sleep(Duration::from_secs(125)).await;
    assert_eq!(state(&page).await.0, "open");
    type_keys(&page, "echo still-$((8*8))\n").await;
    until_screen(&page, "still-64", 1, WAIT).await;
    page.close().await.unwrap();
}
