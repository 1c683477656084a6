//! A simulated serial console for SOL: what a managed machine's serial port would show, with
//! nothing real behind it. A firmware banner, a login prompt (any user name and password are
//! accepted: it guards nothing), and a few built-in commands. The default console of the
//! simulator, so that a local port bridged to it never hands anyone a real shell.
//!
//! ```
//! use oobkit_sim::SerialConsole;
//! let mut console = SerialConsole::new("oobkit-sim");
//! let banner = console.poll_output().unwrap();
//! assert!(String::from_utf8_lossy(&banner).ends_with("oobkit-sim login: "));
//! console.handle_input(b"admin\rsecret\r");
//! console.handle_input(b"echo hi\r");
//! let screen = String::from_utf8_lossy(&console.poll_output().unwrap()).into_owned();
//! assert!(screen.contains("Password: ") && !screen.contains("secret"));
//! assert!(screen.ends_with("hi\r\nadmin@oobkit-sim:~$ "));
//! ```

/// Longest input line kept; the rest of a longer line is dropped, as a small firmware buffer
/// would.
pub const MAX_LINE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Login,
    Password,
    Shell,
}

/// The console's state: a line editor and who is logged in.
#[derive(Debug)]
pub struct SerialConsole {
    hostname: String,
    stage: Stage,
    user: String,
    line: Vec<u8>,
    out: Vec<u8>,
    /// The previous byte was CR: a following LF or NUL belongs to the same Enter.
    after_cr: bool,
}

impl SerialConsole {
    /// A console for a machine called `hostname`; the banner and the login prompt are ready in
    /// [`SerialConsole::poll_output`].
    pub fn new(hostname: &str) -> Self {
        let mut console = Self {
            hostname: hostname.into(),
            stage: Stage::Login,
            user: String::new(),
            line: Vec::new(),
            out: Vec::new(),
            after_cr: false,
        };
        console.say("\r\nIntel(R) Active Management Technology: simulated serial console\r\n");
        console.say("(oobkit simulator; nothing on this console is real)\r\n\r\n");
        console.prompt();
        console
    }

    /// Bytes to show on the client's terminal, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Keystrokes from the client: echoed (but for the password), edited with backspace,
    /// Ctrl-C (cancel the line), Ctrl-D (log out on an empty line), run on CR or LF.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' | 0 if after_cr => {}
                b'\r' | b'\n' => {
                    self.say("\r\n");
                    let line =
                        String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                    self.enter(line.trim());
                }
                0x7F | 0x08 => {
                    let erased = self.line.pop().is_some();
                    // The password was never shown, so nothing is rubbed out on screen.
                    if erased && self.stage != Stage::Password {
                        self.say("\x08 \x08");
                    }
                }
                0x03 => {
                    self.line.clear();
                    self.say("^C\r\n");
                    self.prompt();
                }
                0x04 if self.line.is_empty() && self.stage == Stage::Shell => {
                    self.say("logout\r\n");
                    self.enter("exit");
                }
                0x20..=0x7E if self.line.len() < MAX_LINE => {
                    self.line.push(byte);
                    if self.stage != Stage::Password {
                        self.out.push(byte);
                    }
                }
                // Other control bytes, escape sequences and overlong lines are ignored.
                _ => {}
            }
        }
    }

    fn say(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn prompt(&mut self) {
        let prompt = match self.stage {
            Stage::Login => format!("{} login: ", self.hostname),
            Stage::Password => "Password: ".to_owned(),
            Stage::Shell => format!("{}@{}:~$ ", self.user, self.hostname),
        };
        self.say(&prompt);
    }

    fn enter(&mut self, line: &str) {
        match self.stage {
            Stage::Login if line.is_empty() => {}
            Stage::Login => {
                self.user = line
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(32)
                    .collect();
                if self.user.is_empty() {
                    self.user = "user".into();
                }
                self.stage = Stage::Password;
            }
            Stage::Password => {
                self.say("\r\nType `help` for the commands of this simulated console.\r\n");
                self.stage = Stage::Shell;
            }
            Stage::Shell => self.run(line),
        }
        self.prompt();
    }

    fn run(&mut self, line: &str) {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let reply = match command {
            "" => String::new(),
            "help" => "commands: help, echo TEXT, uname [-a], hostname, whoami, exit\r\n".into(),
            "echo" => format!("{rest}\r\n"),
            "uname" if rest.trim() == "-a" => format!(
                "SimulatedOS {} 1.0 oobkit-sim x86_64 (Intel(R) AMT simulator)\r\n",
                self.hostname
            ),
            "uname" => "SimulatedOS\r\n".into(),
            "hostname" => format!("{}\r\n", self.hostname),
            "whoami" => format!("{}\r\n", self.user),
            "exit" | "logout" => {
                self.stage = Stage::Login;
                self.user.clear();
                "\r\n".into()
            }
            other => format!("{other}: command not found (try `help`)\r\n"),
        };
        self.say(&reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(console: &mut SerialConsole) -> String {
        String::from_utf8_lossy(&console.poll_output().unwrap_or_default()).into_owned()
    }

    fn logged_in() -> SerialConsole {
        let mut console = SerialConsole::new("sim");
        console.handle_input(b"alice\r\nsecret\r\n");
        let _ = console.poll_output();
        console
    }

    #[test]
    fn login_hides_the_password_and_accepts_cr_lf_cr_nul_and_lf() {
        for enter in [&b"\r"[..], b"\r\n", b"\r\0", b"\n"] {
            let mut console = SerialConsole::new("sim");
            let _ = console.poll_output();
            console.handle_input(&[b"bob", enter, b"pw", enter, b"whoami", enter].concat());
            let text = screen(&mut console);
            assert!(text.contains("bob\r\nPassword: \r\n"), "{text:?}");
            assert!(!text.contains("pw"), "{text:?}");
            assert!(text.ends_with("whoami\r\nbob\r\nbob@sim:~$ "), "{text:?}");
            // One Enter is one line: no empty extra prompt.
            assert_eq!(text.matches("bob@sim:~$ ").count(), 2, "{text:?}");
        }
    }

    #[test]
    fn editing_and_control_keys() {
        let mut console = logged_in();
        console.handle_input(b"echo hellp\x7fo\r");
        assert!(screen(&mut console).ends_with("\x08 \x08o\r\nhello\r\nalice@sim:~$ "));
        console.handle_input(b"rm -rf /\x03");
        assert!(screen(&mut console).ends_with("^C\r\nalice@sim:~$ "));
        console.handle_input(b"frobnicate\r");
        assert!(screen(&mut console).contains("frobnicate: command not found"));
        console.handle_input(b"\x04");
        assert!(screen(&mut console).ends_with("logout\r\n\r\nsim login: "));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut console = logged_in();
        console.handle_input(&vec![b'x'; 100_000]);
        assert_eq!(
            screen(&mut console).len(),
            MAX_LINE,
            "the echo stops at the line limit"
        );
        console.handle_input(b"\r");
        assert!(screen(&mut console).contains("command not found"));
        // Every byte value, control bytes included: bounded output, still a working console.
        console.handle_input(&(0..=255u8).cycle().take(10_000).collect::<Vec<_>>());
        assert!(screen(&mut console).len() < 100_000);
        console.handle_input(b"\x03");
        let text = screen(&mut console);
        assert!(text.ends_with("login: ") || text.ends_with("Password: ") || text.ends_with("$ "));
    }
}
