//! Test support for the oobkit crates; a dev-dependency only, never shipped.
//!
//! ```no_run
//! oobkit_testkit::replay_seeds("digest_challenge", |data| {
//!     let _ = std::str::from_utf8(data);
//! });
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;

#[cfg(feature = "browser")]
pub mod browser;
pub mod postgres;
pub mod sshd;

/// A free TCP port on 127.0.0.1: bound, then released. Another process may take it before the
/// caller binds it; prefer letting a server bind port 0 and say its port where it can.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A directory of its own under the system's temporary directory (named after `tag`, this
/// process and a counter), removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates it (empty).
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("oobkit-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `check` on every file of `fuzz/seeds/<target>/` (valid inputs, hostile inputs and saved
/// crashes), so that the fuzz targets' checks run on stable in every `cargo test`. Panics if
/// the corpus is missing or holds fewer than five seeds, so a lost corpus cannot pass silently.
pub fn replay_seeds(target: &str, check: impl Fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let data = std::fs::read(&path).expect("readable seed");
        check(&data);
        count += 1;
    }
    assert!(
        count >= 5,
        "{target}: only {count} seeds in {}",
        dir.display()
    );
}

/// Starts a program and waits (20 s at most) for the line where it says
/// `listening on <scheme>://127.0.0.1:PORT`; returns the child and the port. Its stdout keeps
/// being drained afterwards, so the program never writes into a closed pipe.
pub async fn spawn_listening(
    command: &mut tokio::process::Command,
    scheme: &str,
) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let prefix = format!("listening on {scheme}://127.0.0.1:");
    let port = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("readable stdout") {
            if let Some(rest) = line.strip_prefix(&prefix) {
                return rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .expect("a port");
            }
        }
        panic!("the program ended without saying `{prefix}...`");
    })
    .await
    .expect("the program starts listening within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// Waits until something accepts TCP connections on loopback `port` (a peer program started
/// without a line that says so), panicking after `within` with `what` in the message.
pub async fn wait_listening(port: u16, within: std::time::Duration, what: &str) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < within,
            "{what} did not listen on {port} within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A stand-in for a device that accepts TCP connections and never answers; it keeps them open
/// until dropped.
pub struct SilentDevice {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentDevice {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream); // accepted, never answered
            }
        });
        Self { addr, task }
    }
}

impl Drop for SilentDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local client of a launcher on `port` connects and leaves after 300 ms; 300 ms later a
/// second one connects, sends `first_words`, and listens for 1.5 s: what it heard.
pub async fn leave_then_return(port: u16, first_words: &[u8]) -> String {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let first = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the launcher accepts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the launcher accepts again");
    let _ = second.write_all(first_words).await;
    let mut heard = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(1500), second.read_to_end(&mut heard)).await;
    String::from_utf8_lossy(&heard).into_owned()
}

/// The resident memory of process `pid` (this process when `None`) in KiB, from
/// `/proc/PID/status` (`VmRSS`): the figure hostile-client tests read before, during and after
/// an attack to show that memory stays bounded.
pub fn resident_kib(pid: Option<u32>) -> Result<u64, String> {
    let (rss, path) = status_field(pid, "VmRSS")?;
    rss.trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|_| format!("{path}: a VmRSS I cannot read: {rss:?}"))
}

/// The value of line `name` in `/proc/PID/status` (this process when `None`), trimmed, and the
/// file's path for messages.
fn status_field(pid: Option<u32>, name: &str) -> Result<(String, String), String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .ok_or_else(|| format!("no {name} in {path}"))?;
    Ok((value.trim().to_owned(), path))
}

/// The processors process `pid` may run on (`None`: this process), from the
/// `Cpus_allowed_list` of its `/proc` status (a container may allow, say, `2-3` only).
pub fn allowed_cpus(pid: Option<u32>) -> Result<Vec<usize>, String> {
    let (list, path) = status_field(pid, "Cpus_allowed_list")?;
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let bad = || format!("{path}: a CPU list I cannot read: {list:?}");
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (usize, usize) = (
            first.parse().map_err(|_| bad())?,
            last.parse().map_err(|_| bad())?,
        );
        cpus.extend(first..=last);
    }
    Ok(cpus)
}

/// Confines every thread of process `pid` to the processors in `cpus` (a `taskset` list such as
/// `"0"` or `"0,1"`), with util-linux's `taskset`: a benchmark keeps its load generator and
/// the program it measures on separate cores, so what it measures is the program and not how
/// the two shared a core.
pub fn pin_to_cpus(pid: u32, cpus: &str) -> Result<(), String> {
    let output = std::process::Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()])
        .output()
        .map_err(|e| format!("taskset (util-linux) cannot run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -a -c -p {cpus} {pid}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The processor time (user and system) process `pid` has used so far, from `/proc/PID/stat`
/// (in the kernel's fixed 100 Hz user ticks): what a benchmark reads around a transfer to
/// tell a relay's own cost from that of the endpoints sharing the machine with it.
pub fn cpu_time(pid: u32) -> Result<std::time::Duration, String> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of the line.
    Ok(std::time::Duration::from_millis(
        (fields[14] + fields[15]) * 10,
    ))
}

/// The numeric fields of `/proc/PID/stat`, indexed by their 1-based number in proc(5) (index 0,
/// the command name, field 2, and the state, field 3, read as 0).
fn stat_fields(pid: u32) -> Result<Vec<u64>, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    let (head, after_name) = stat
        .rsplit_once(')')
        .ok_or_else(|| format!("no command name in {path}"))?;
    let pid_field = head.split_whitespace().next().and_then(|p| p.parse().ok());
    let mut fields = vec![0, pid_field.unwrap_or(0), 0, 0];
    fields.extend(
        after_name
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse::<i64>().map_or(0, |n| n.max(0) as u64)),
    );
    if fields.len() < 18 {
        return Err(format!("{path}: too few fields"));
    }
    Ok(fields)
}

/// The parent of `pid`, if it runs.
pub fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid).ok().and_then(|f| u32::try_from(f[4]).ok())
}

/// The processes below `pid` (children, their children, ...), alive now.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u64, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // The parent is field 4.
        if let Ok(fields) = stat_fields(p) {
            children.entry(fields[4]).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for &child in children.get(&u64::from(p)).into_iter().flatten() {
            out.push(child);
            stack.push(child);
        }
    }
    out
}

/// Processor time of `pid` and everything it started: the processes alive below it and those
/// it already reaped (a server that forks per connection, as websockify and sshd do).
pub fn tree_cpu_time(pid: u32) -> Result<std::time::Duration, String> {
    // utime, stime, cutime, cstime: fields 14 to 17.
    let all = |fields: &[u64]| fields[14] + fields[15] + fields[16] + fields[17];
    let mut ticks = all(&stat_fields(pid)?);
    for child in descendants(pid) {
        // A child may end between the listing and the reading; its time is then its parent's.
        if let Ok(fields) = stat_fields(child) {
            ticks += all(&fields);
        }
    }
    Ok(std::time::Duration::from_millis(ticks * 10))
}

/// vncdotool's `vncdo` (PyPI, installed by `./test.sh` into `target/vncdotool-venv`), or
/// `$VNCDO`. Missing fails the test with the command that installs it: never a skip.
pub fn vncdo() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("VNCDO") {
        return path.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/vncdotool-venv/bin/vncdo");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "vncdotool is required for this interop test: `./test.sh --setup-only` installs it \
         (python3 -m venv target/vncdotool-venv && target/vncdotool-venv/bin/pip install \
         vncdotool==1.4.2), or set VNCDO"
    );
}

/// Python of the venv `./test.sh` makes with LabOrchestrator's token library
/// `lab-orchestrator-lib-auth` at `version` (`target/labauth-VERSION-venv`). Missing fails the
/// test with the command that installs it: never a skip.
pub fn labauth_python(version: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../target/labauth-{version}-venv/bin/python"));
    assert!(
        path.is_file(),
        "{} is missing: `./test.sh --setup-only` installs lab-orchestrator-lib-auth {version}",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_pinned_with_all_its_threads_and_a_bad_list_is_an_error() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let allowed = |pid: u32| status_field(Some(pid), "Cpus_allowed_list").unwrap().0;
        let mine = allowed_cpus(None).unwrap();
        assert!(!mine.is_empty());
        let first = mine[0].to_string();
        pin_to_cpus(child.id(), &first).unwrap();
        assert_eq!(allowed(child.id()), first);
        assert_eq!(allowed_cpus(Some(child.id())).unwrap(), [mine[0]]);
        assert!(pin_to_cpus(child.id(), "no-such-cpu").is_err());
        child.kill().unwrap();
        let _ = child.wait();
    }

    #[test]
    fn process_tree_and_processor_time_read_from_proc() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .unwrap();
        assert_eq!(parent(child.id()), Some(me));
        assert!(descendants(me).contains(&child.id()));
        // The child's busy loop shows in the tree's time, not in this process's own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cpu_time(child.id()).unwrap() < std::time::Duration::from_millis(50) {
            assert!(std::time::Instant::now() < deadline, "the child never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            tree_cpu_time(me).unwrap()
                >= cpu_time(me).unwrap() + cpu_time(child.id()).unwrap()
                    - std::time::Duration::from_millis(20)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!descendants(me).contains(&child.id()));
        let free = free_port();
        assert!(std::net::TcpListener::bind(("127.0.0.1", free)).is_ok());
    }
}
