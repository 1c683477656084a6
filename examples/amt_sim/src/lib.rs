//! The simulated AMT's IO: the ports (HTTP, HTTPS, redirection raw and TLS) around the sans-IO
//! simulator in `oobkit-sim`, which decides everything a device decides: the web port's
//! replies (`WebPort`: `/wsman` behind Digest as firmware offers it, the `/ws-redirection`
//! upgrade), the device model, the redirection session gate and the serial console.
//!
//! Limits: concurrent connections, request head and body size (the readers' caps), and an idle
//! timeout per connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod redirection;
pub mod rfb;

use oobkit_http1::RequestReader;
use oobkit_io::Io;
use oobkit_sim::{Context, Device, DeviceConfig, DeviceEvent, WebPort, WebReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the simulator runs.
#[derive(Clone)]
pub struct SimConfig {
    /// Plain HTTP (AMT: 16992).
    pub listen: SocketAddr,
    /// HTTPS (AMT: 16993), if wanted.
    pub tls_listen: Option<SocketAddr>,
    /// Certificate and key (PEM files) for HTTPS; a self-signed one is generated if absent.
    pub tls_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The admin user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Firmware version reported.
    pub firmware: String,
    /// Most connections served at once on each port (the web and redirection ports have pools
    /// of their own, so filling one does not shut the others).
    pub max_connections: usize,
    /// Connections that have not authenticated yet, from one address, on each port. They have
    /// a budget of their own and take a place in the port's pool only once authenticated, so
    /// clients that connect and never log in cannot keep the owner out.
    pub max_unauthenticated_per_address: u32,
    /// Connections that have not authenticated yet, from all addresses, on each port.
    pub max_unauthenticated: u32,
    /// Failed logins (Digest on the web port, in-band on the redirection ports) an address
    /// may make within `failure_window` before its connections are refused until it passes.
    pub max_failed_logins: u32,
    /// See `max_failed_logins`.
    pub failure_window: Duration,
    /// A connection idle this long between requests is closed.
    pub idle_timeout: Duration,
    /// A request's head must arrive within this from its first byte (a client trickling one
    /// byte a second cannot hold a connection for longer).
    pub head_timeout: Duration,
    /// A request's body must arrive within this after its head.
    pub body_timeout: Duration,
    /// A client (or console program) that takes no bytes for this long is dropped: writes are
    /// bounded, so one that stops reading cannot hold a session slot.
    pub write_timeout: Duration,
    /// Raw redirection port (AMT: 16994), if wanted.
    pub redir_listen: Option<SocketAddr>,
    /// TLS redirection port (AMT: 16995), if wanted.
    pub redir_tls_listen: Option<SocketAddr>,
    /// Standard RFB with VNC Authentication (AMT: 5900), if wanted: it answers while
    /// `Is5900PortEnabled` is true and an `RFBPassword` is set over WS-Management, as on AMT.
    pub rfb_listen: Option<SocketAddr>,
    /// In-band authentication types offered on the redirection ports.
    pub redir_auth: Vec<oobkit_redir::codec::AuthType>,
    /// What answers on the serial console.
    pub sol: SolBackend,
    /// What is on the KVM screen.
    pub kvm: KvmBackend,
    /// How much the simulated BIOS reads when a console redirects its drives over IDE-R.
    pub ider_read: oobkit_sim::bios::ReadScope,
}

/// What a KVM session shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmBackend {
    /// The built-in RFB server with the colour-bar test pattern at this size.
    Pattern {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// Forward RFB to an existing VNC server (`host:port`).
    Forward(String),
}

/// What a SOL session talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolBackend {
    /// The simulated serial console of `oobkit_sim::console` (banner, login prompt, a few
    /// built-in commands): the default, since it hands nobody a real shell.
    Simulated,
    /// This command on a pseudo-terminal (a real program: only when asked for).
    Command(String),
    /// Echo every byte back.
    Echo,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("tls_listen", &self.tls_listen)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("firmware", &self.firmware)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// Loopback on any free port, user `admin`, firmware 16.1.25, 64 authenticated
    /// connections per port (and 32 more not yet authenticated, 8 per address), 120 s idle,
    /// 20 failed logins per address per minute.
    pub fn loopback(password: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_listen: None,
            tls_identity: None,
            user: "admin".into(),
            password: password.into(),
            firmware: "16.1.25".into(),
            max_connections: 64,
            max_unauthenticated_per_address: 8,
            max_unauthenticated: 32,
            max_failed_logins: 20,
            failure_window: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            redir_listen: None,
            redir_tls_listen: None,
            rfb_listen: None,
            // Real AMT offers digest only; user/password too, so that clients that speak
            // nothing else (Debian's amtterm 1.4) can be tested. `--redir-auth digest` is
            // strict.
            redir_auth: vec![
                oobkit_redir::codec::AuthType::Digest,
                oobkit_redir::codec::AuthType::UserPassword,
            ],
            sol: SolBackend::Simulated,
            kvm: KvmBackend::Pattern {
                width: 1024,
                height: 768,
            },
            ider_read: oobkit_sim::bios::ReadScope::Boot { samples: 8 },
        }
    }
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) device: Mutex<Device>,
    web: Mutex<WebPort>,
    /// Redirection session types open now (one of each at a time, as on AMT).
    pub(crate) sessions: Mutex<oobkit_sim::SessionGate>,
    /// Failed logins by address on every port (AMT slows down after failures too).
    failures: Mutex<oobkit_io::AuthFailures>,
    /// What the simulated BIOS booted over IDE-R, oldest first.
    pub(crate) boots: Mutex<Vec<oobkit_sim::bios::BootReport>>,
}

/// A running simulator. Dropping it does not stop it; it lives as long as the runtime.
pub struct Simulator {
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// Bound HTTPS address.
    pub https_addr: Option<SocketAddr>,
    /// SHA-256 of the HTTPS certificate (to pin it).
    pub tls_fingerprint: Option<[u8; 32]>,
    /// Bound raw redirection address.
    pub redir_addr: Option<SocketAddr>,
    /// Bound TLS redirection address.
    pub redir_tls_addr: Option<SocketAddr>,
    /// Bound standard RFB address (AMT's port 5900).
    pub rfb_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the device half-updated in a way that
    // matters more than stopping the simulator would; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Simulator {
    /// The simulator a console launcher starts when no AMT is named: loopback, a random
    /// password, the redirection port on; `configure` adjusts the rest (the SOL console, the
    /// screen). Returns the target to open sessions on for `transport`.
    pub async fn start_for_launcher(
        transport: oobkit_redir::Transport,
        configure: impl FnOnce(&mut SimConfig),
    ) -> Result<(oobkit_io::redirection::RedirTarget, Self), String> {
        let password = oobkit_io::random_hex16();
        let mut config = SimConfig::loopback(&password);
        config.redir_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        configure(&mut config);
        let sim = Self::start(config)
            .await
            .map_err(|e| format!("cannot start the simulated AMT: {e}"))?;
        let redir_port = sim.redir_addr.map_or(0, |a| a.port());
        let port = match transport {
            oobkit_redir::Transport::AmtWebSocket => sim.http_addr.port(),
            _ => redir_port,
        };
        oobkit_launch::say(&format!(
            "simulated AMT on 127.0.0.1 (web {}, redirection {redir_port})",
            sim.http_addr.port()
        ));
        let target = oobkit_io::redirection::RedirTarget {
            endpoint: oobkit_io::Endpoint::plain("127.0.0.1", port),
            transport,
            user: "admin".into(),
            password,
        };
        Ok((target, sim))
    }

    /// Binds the ports and starts serving on the current tokio runtime.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let device = Device::new(DeviceConfig::new(
            config.firmware.clone(),
            oobkit_io::random_bytes(),
        ));
        let web = WebPort::new(
            &device,
            &config.user,
            &config.password,
            oobkit_io::random_bytes(),
        );
        let shared = Arc::new(Shared {
            config: config.clone(),
            device: Mutex::new(device),
            web: Mutex::new(web),
            sessions: Mutex::default(),
            failures: Mutex::new(oobkit_io::AuthFailures::new(
                config.max_failed_logins,
                config.failure_window,
            )),
            boots: Mutex::default(),
        });
        // Binds a port and serves it: the bound address. `busy` is what a connection that
        // finds the port full is told (nothing readable can be said before a TLS handshake).
        let listen =
            |addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>, serve: Serve, busy| {
                let shared = Arc::clone(&shared);
                async move {
                    let listener = TcpListener::bind(addr).await?;
                    let bound = listener.local_addr()?;
                    tokio::spawn(accept_loop(listener, tls, shared, serve, busy));
                    Ok::<_, std::io::Error>(bound)
                }
            };
        let http_addr = listen(config.listen, None, serve_http, SERVICE_UNAVAILABLE).await?;
        // One identity for every TLS port, as on a real device.
        let tls = if config.tls_listen.is_some() || config.redir_tls_listen.is_some() {
            Some(tls_acceptor(&config)?)
        } else {
            None
        };
        let tls_fingerprint = tls.as_ref().map(|(_, fp)| *fp);
        let acceptor = tls.map(|(acceptor, _)| acceptor);
        let mut https_addr = None;
        if let (Some(addr), Some(acceptor)) = (config.tls_listen, &acceptor) {
            https_addr = Some(listen(addr, Some(acceptor.clone()), serve_http, b"").await?);
        }
        let mut redir_addr = None;
        if let Some(addr) = config.redir_listen {
            redir_addr = Some(listen(addr, None, redirection::serve_raw, b"").await?);
        }
        let mut redir_tls_addr = None;
        if let (Some(addr), Some(acceptor)) = (config.redir_tls_listen, &acceptor) {
            redir_tls_addr =
                Some(listen(addr, Some(acceptor.clone()), redirection::serve_raw, b"").await?);
        }
        let mut rfb_addr = None;
        if let Some(addr) = config.rfb_listen {
            rfb_addr = Some(listen(addr, None, rfb::serve_port, b"").await?);
        }
        Ok(Self {
            http_addr,
            https_addr,
            tls_fingerprint,
            redir_addr,
            redir_tls_addr,
            rfb_addr,
            shared,
        })
    }

    /// What the simulated BIOS read and booted over IDE-R so far, oldest first.
    pub fn ider_boots(&self) -> Vec<oobkit_sim::bios::BootReport> {
        lock(&self.shared.boots).clone()
    }

    /// The device, for tests and in-process drivers.
    pub fn device(&self) -> MutexGuard<'_, Device> {
        lock(&self.shared.device)
    }
}

pub(crate) fn tls_acceptor(
    config: &SimConfig,
) -> std::io::Result<(tokio_rustls::TlsAcceptor, [u8; 32])> {
    use oobkit_io::ServerIdentity;
    let identity = match &config.tls_identity {
        Some((cert, key)) => ServerIdentity::from_pem_files(cert, key),
        // AMT ships a self-signed certificate; so does the simulator (a new one each start).
        None => ServerIdentity::generate_self_signed(&["localhost".into(), "127.0.0.1".into()])
            .and_then(|(cert, key)| {
                ServerIdentity::from_pem(cert.as_bytes(), key.as_bytes(), "generated")
            }),
    }
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let fingerprint = identity.fingerprint();
    let acceptor = identity
        .acceptor()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok((acceptor, fingerprint))
}

/// What serves one accepted connection on a port.
pub(crate) type Serve = fn(
    Box<dyn Io>,
    Arc<Shared>,
    SocketAddr,
    Admission,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A connection's place on its port: until it authenticates, one in the port's budget for
/// unauthenticated connections; from then on, one in the port's pool.
pub(crate) enum Admission {
    /// Not authenticated yet: a place in the port's unauthenticated budget, and the pool to
    /// take a place from once authenticated.
    Unauthenticated {
        /// Held for its drop, which gives the place back.
        _slot: oobkit_io::PreAuthSlot,
        pool: Arc<Semaphore>,
    },
    /// Authenticated: a place in the port's pool.
    Authenticated {
        /// Held for its drop, which gives the place back.
        _place: tokio::sync::OwnedSemaphorePermit,
    },
}

impl Admission {
    /// The connection authenticated: it trades its unauthenticated place for one in the pool
    /// (once; later calls keep it). `false` when the pool is full (the connection is then
    /// closed).
    pub(crate) fn authenticated(&mut self) -> bool {
        if let Self::Unauthenticated { pool, .. } = self {
            match Arc::clone(pool).try_acquire_owned() {
                Ok(place) => *self = Self::Authenticated { _place: place },
                Err(_) => return false,
            }
        }
        true
    }
}

/// What a web connection that finds the pool full is told.
const SERVICE_UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Accepts connections for one port of the simulator: the failed-login refusal, the port's
/// own connection pool (`busy` is sent to a connection that finds it full: a 503 on the plain
/// web port), the TLS handshake (with its own 10 s limit) when the port has TLS, then `serve`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    serve: Serve,
    busy: &'static [u8],
) {
    let pool = Arc::new(Semaphore::new(shared.config.max_connections));
    let unauthenticated = oobkit_io::PreAuthBudget::new(
        shared.config.max_unauthenticated_per_address,
        shared.config.max_unauthenticated,
    );
    loop {
        let (tcp, peer) = oobkit_io::accept(&listener).await;
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let pool = Arc::clone(&pool);
        let unauthenticated = unauthenticated.clone();
        tokio::spawn(async move {
            if lock(&shared.failures).blocked(peer.ip(), std::time::Instant::now()) {
                tracing::info!("{peer}: refused after too many failed logins");
                return;
            }
            let slot = match unauthenticated.take(peer.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    tracing::warn!("{peer}: refused, {full}");
                    let mut tcp = tcp;
                    say_last(&mut tcp, busy).await;
                    return;
                }
            };
            if pool.available_permits() == 0 {
                tracing::warn!(
                    "{peer}: connection limit ({}) of the port reached, closing",
                    shared.config.max_connections
                );
                let mut tcp = tcp;
                say_last(&mut tcp, busy).await;
                return;
            };
            tcp.set_nodelay(true).ok();
            let stream: Box<dyn Io> = match tls {
                None => Box::new(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::info!("{peer}: TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::info!("{peer}: TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let admission = Admission::Unauthenticated { _slot: slot, pool };
            serve(stream, Arc::clone(&shared), peer, admission).await;
        });
    }
}

fn serve_http(
    stream: Box<dyn Io>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    admission: Admission,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        if let Err(e) = serve_connection(stream, &shared, peer.ip(), admission).await {
            tracing::debug!("{peer}: {e}");
        }
    })
}

async fn serve_connection(
    mut stream: Box<dyn Io>,
    shared: &Shared,
    peer: std::net::IpAddr,
    mut admission: Admission,
) -> std::io::Result<()> {
    let mut reader = RequestReader::new();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut head_started, mut body_started) = (None, None);
    loop {
        // A request already buffered (pipelined) first, then more bytes from the peer.
        let request = match reader.next(&[]) {
            Ok(Some(request)) => request,
            Ok(None) => {
                // Idle between requests; within one, the head and then the body each have a
                // deadline from when they started, which trickled bytes do not move.
                let now = tokio::time::Instant::now();
                let deadline = match (reader.has_partial(), reader.in_body()) {
                    (false, _) => {
                        head_started = None;
                        body_started = None;
                        now + shared.config.idle_timeout
                    }
                    (true, false) => *head_started.get_or_insert(now) + shared.config.head_timeout,
                    (true, true) => *body_started.get_or_insert(now) + shared.config.body_timeout,
                };
                let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Ok(n) => n?,
                    Err(_) if reader.has_partial() => {
                        tracing::info!("{peer}: request not complete in time, closing");
                        say_last(&mut *stream, b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                        return Ok(());
                    }
                    Err(_) => return Ok(()), // idle
                };
                if n == 0 {
                    return Ok(());
                }
                match reader.next(&buf[..n]) {
                    Ok(Some(request)) => request,
                    Ok(None) => continue,
                    Err(e) => return bad_request(&mut stream, &e.to_string()).await,
                }
            }
            Err(e) => return bad_request(&mut stream, &e.to_string()).await,
        };
        (head_started, body_started) = (None, None);
        let reply = {
            let ctx = Context {
                now_unix: oobkit_io::unix_now(),
                random: u32::from_le_bytes(oobkit_io::random_bytes()),
            };
            let mut device = lock(&shared.device);
            let reply =
                lock(&shared.web).handle(&mut device, &request, ctx, oobkit_io::random_bytes());
            while let Some(event) = device.poll_event() {
                report(&event);
            }
            reply
        };
        match reply {
            WebReply::Response {
                bytes,
                refused,
                authenticated,
            } => {
                if authenticated && !admission.authenticated() {
                    tracing::warn!(
                        "{peer}: connection limit ({}) of the port reached, closing",
                        shared.config.max_connections
                    );
                    say_last(&mut *stream, SERVICE_UNAVAILABLE).await;
                    return Ok(());
                }
                if let Some(e) = refused {
                    tracing::info!("{} {}: 401, {e}", request.method, request.target);
                    if !e.is_stale() {
                        record_failure(shared, peer);
                    }
                }
                // Bounded: a client that sends requests but never reads replies is dropped.
                tokio::time::timeout(shared.config.write_timeout, stream.write_all(&bytes))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                if request.closes() {
                    return Ok(());
                }
            }
            WebReply::WebSocket { bytes } => {
                if !admission.authenticated() {
                    say_last(&mut *stream, SERVICE_UNAVAILABLE).await;
                    return Ok(());
                }
                tokio::time::timeout(shared.config.write_timeout, stream.write_all(&bytes))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                return redirection::serve_websocket(stream, shared, peer, admission).await;
            }
            _ => return Ok(()),
        }
    }
}

/// The last words to a connection about to be closed (a 400, 408 or 503): told, not just
/// dropped, and never waited on for more than a second.
async fn say_last<W: tokio::io::AsyncWrite + Unpin + ?Sized>(stream: &mut W, bytes: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(bytes)).await;
}

async fn bad_request(stream: &mut Box<dyn Io>, why: &str) -> std::io::Result<()> {
    tracing::info!("bad request: {why}");
    say_last(
        &mut *stream,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    Ok(())
}

/// Counts a failed login of `ip`, saying so once when it reaches the limit.
pub(crate) fn record_failure(shared: &Shared, ip: std::net::IpAddr) {
    let mut failures = lock(&shared.failures);
    if failures.record(ip, std::time::Instant::now()) {
        tracing::warn!(
            "{ip}: {} failed logins; refusing it for {:?}",
            shared.config.max_failed_logins,
            failures.window()
        );
    }
}

/// What the managed machine would show: the consent code on its screen, power changes.
fn report(event: &DeviceEvent) {
    match event {
        DeviceEvent::ConsentCodeDisplayed(code) => {
            // A closed stdout must not take the simulator down (println! would panic).
            use std::io::Write;
            let _ = writeln!(
                std::io::stdout(),
                "user consent code on the managed screen: {code:06}"
            );
        }
        DeviceEvent::PowerChanged { from, to } => {
            tracing::info!(
                "power: {} -> {}",
                oobkit_wsman::ops::power_state_text(*from),
                oobkit_wsman::ops::power_state_text(*to)
            );
        }
        other => tracing::info!("{other:?}"),
    }
}
