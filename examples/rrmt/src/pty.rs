//! Pseudo-terminals for shells, and raw mode for the administrator's terminal, through rustix
//! (no unsafe code here). The shell becomes a session leader with the terminal as its
//! controlling terminal through util-linux `setsid --ctty`, so job control and SIGWINCH work
//! as on a login.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

/// The controlling side of a pseudo-terminal, non-blocking, for tokio. (tokio's pipe types
/// take any non-blocking descriptor safely; a pty master reads and writes like a pipe.)
#[derive(Debug)]
pub struct Pty {
    reader: pipe::Receiver,
    writer: pipe::Sender,
    control: OwnedFd,
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    /// Runs `program` with `args` on a new pseudo-terminal of `cols` x `rows` with
    /// `TERM=term`, as the leader of a new session whose controlling terminal it is.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        program: &str,
        args: &[S],
        term: &str,
        cols: u16,
        rows: u16,
    ) -> io::Result<(Self, tokio::process::Child)> {
        // Close-on-exec, both sides: a shell that inherited the master would hold its own
        // terminal open, so an agent killed outright left its shells (and a `yes` in them)
        // running for good instead of hanging them up.
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        rustix::termios::tcsetwinsize(&master, winsize(cols.max(1), rows.max(1)))?;
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )?;
        let child = tokio::process::Command::new("setsid")
            .arg("--ctty")
            .arg(program)
            .args(args)
            .env("TERM", if term.is_empty() { "xterm" } else { term })
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            .kill_on_drop(true)
            .spawn()?;
        // The Command (and with it every copy of the terminal side) is gone now, so reading
        // the master ends when the shell and its children close it.
        rustix::io::ioctl_fionbio(&master, true)?;
        Ok((
            Self {
                reader: pipe::Receiver::from_owned_fd_unchecked(master.try_clone()?)?,
                writer: pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?,
                control: master,
            },
            child,
        ))
    }

    /// Reads output; 0 once every process has closed the terminal.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.read(buf).await {
            // Linux reports a closed terminal side as EIO.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => Ok(0),
            other => other,
        }
    }

    /// Writes all of `data` (input to the shell).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.writer.write_all(data).await
    }

    /// Changes the terminal size (the shell gets SIGWINCH).
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        rustix::termios::tcsetwinsize(&self.control, winsize(cols.max(1), rows.max(1)))?;
        Ok(())
    }
}

/// The size of the terminal on standard output, if it is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout().as_fd()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Standard input in raw mode until dropped (then restored as it was).
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on standard input, or `None` when it is not a terminal.
    pub fn enable() -> io::Result<Option<Self>> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(stdin.as_fd()) {
            return Ok(None);
        }
        let saved = rustix::termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shell_on_a_pty_sees_its_size_and_reports_its_exit_status() {
        let (mut pty, mut child) = Pty::spawn::<&str>("/bin/sh", &[], "dumb", 91, 33).unwrap();
        pty.write_all(b"stty size; exit 7\n").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let read_all = async {
            loop {
                let n = pty.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read_all)
            .await
            .expect("the shell ends");
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("33 91"), "{text}");
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
    }

    #[tokio::test]
    async fn the_shell_holds_only_its_own_side_and_hangs_up_when_the_agent_goes() {
        let (pty, mut child) =
            Pty::spawn::<&str>("/bin/sh", &["-c", "sleep 30"], "dumb", 80, 24).unwrap();
        let pid = child.id().unwrap();
        // setsid execs the shell in the same process: its descriptors are the shell's.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .map(|t| t.display().to_string())
            .collect();
        // Standard input, output and error: nothing else of the terminal.
        let terminal = targets
            .iter()
            .filter(|t| t.starts_with("/dev/pts/") || *t == "/dev/ptmx")
            .count();
        assert_eq!(
            terminal, 3,
            "the shell inherited more of its terminal: {targets:?}"
        );
        // The agent's side closes (as when the agent is killed): the shell's terminal hangs up.
        drop(pty);
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
            .await
            .expect("the shell ends when its terminal hangs up")
            .unwrap();
        assert!(!status.success());
    }

    #[tokio::test]
    async fn resize_reaches_the_shell() {
        let (mut pty, mut child) = Pty::spawn::<&str>("/bin/sh", &[], "dumb", 80, 24).unwrap();
        pty.resize(120, 40).unwrap();
        pty.write_all(b"stty size; exit\n").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let n = pty.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the shell ends");
        assert!(String::from_utf8_lossy(&seen).contains("40 120"));
        child.wait().await.unwrap();
    }
}
