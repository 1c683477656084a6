//! Debian's OpenSSH server, started by a test on a loopback port: a temporary host key,
//! configuration and authorized key, for the test account `./test.sh` creates (password and
//! keyboard-interactive through PAM, public key through the temporary authorized_keys). Needs
//! root, as sshd does for logins as another user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test account `./test.sh --setup-only` creates.
pub const USER: &str = "oobkit-ssh-test";

/// The account's password, which `./test.sh --setup-only` draws at random and keeps in
/// `target/ssh-test-password` (0600). Missing fails the test with the command that makes it.
pub fn password() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ssh-test-password");
    std::fs::read_to_string(&path)
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: `./test.sh --setup-only` creates the SSH test account {USER} and its password",
                path.display()
            )
        })
}

/// A running sshd; killed and its directory removed on drop.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "oobkit-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (./test.sh installs openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd on a free loopback port and waits until it accepts.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Starts sshd taking passwords only through keyboard-interactive (PAM's prompts), as
    /// many hardened servers do.
    pub fn start_keyboard_interactive_only() -> Self {
        Self::start_with(false)
    }

    fn start_with(password_authentication: bool) -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.is_file(),
            "/usr/sbin/sshd is missing: `./test.sh --setup-only` installs openssh-server"
        );
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("oobkit-sshd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        // sshd reads authorized_keys as the test account.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        keygen(&dir.join("host_ed25519"));
        keygen(&dir.join("client"));
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).expect("copy");
        std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
        let port = crate::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM yes\n\
             PasswordAuthentication {password}\nKbdInteractiveAuthentication yes\nPubkeyAuthentication yes\n\
             PermitRootLogin no\nAllowUsers {USER}\nLogLevel VERBOSE\nMaxStartups 100\n\
             ClientAliveInterval 0\n",
            d = dir.display(),
            password = if password_authentication { "yes" } else { "no" },
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("log file");
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let server = Self { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port}: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The listening sshd's process id (its sessions are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private key authorized for [`USER`] (OpenSSH format).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// The host's public key, `ssh-ed25519 AAAA...`.
    pub fn host_public_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("host_ed25519.pub")).expect("host key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key())
    }

    /// A known_hosts line for this server with some other key (a "changed" host key).
    pub fn other_known_hosts_line(&self) -> String {
        let other = self.dir.join("other_ed25519");
        if !other.exists() {
            keygen(&other);
        }
        let text = std::fs::read_to_string(other.with_extension("pub")).expect("other key");
        let key: Vec<&str> = text.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{} {}\n", self.port, key.join(" "))
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
