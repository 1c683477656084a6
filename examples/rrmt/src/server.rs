//! The RRMT server: agents on one wss port ([`crate::admin::AGENT_PATH`]), administrators on
//! another ([`crate::admin::ADMIN_PATH`], HTTP Digest on the upgrade), a task per connection
//! around the sans-IO [`ServerSession`], and the registry in SQLite.
//!
//! Memory stays bounded per connection: websocket messages are capped, shell output is granted
//! back to the agent only once the administrator's socket took it (so a fast shell waits for
//! a slow administrator instead of filling the server), command output is capped per request,
//! and shell input waiting for the agent's window is capped.
//!
//! Limits: connections per endpoint, channels per agent, message size, handshake time, idle
//! administrators, and failed authorizations per address (agents' tokens and administrators'
//! passwords alike) within a window, after which that address is refused until it ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use oobkit_digest::{Algorithm, Request as DigestRequest, Secret, Server as DigestServer, Verdict};
use oobkit_rrmt::codec::result_flags;
use oobkit_rrmt::session::{CloseReason, ServerEvent, ServerSession, ServerSessionConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};

use crate::admin::{ADMIN_PATH, AGENT_PATH, AdminReply, AdminRequest, HostView};
use crate::registry::{
    AdminSecrets, AuditStart, ClusterEvent, Connected, Database, RegistryError, ServerRecord, Store,
};
use crate::{REALM, Token, now_secs};

/// Server settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Holds `registry.sqlite` (unless `database` is given), the server's id and, unless
    /// `identity` is given, the generated certificate.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL for a registry shared with other servers (a cluster); `None`: SQLite
    /// in `data_dir`.
    pub database: Option<String>,
    /// This server's id in the cluster; `None`: a random one made once and kept in
    /// `data_dir/server-id`.
    pub server_id: Option<String>,
    /// Where the other servers of the cluster reach this one's administrators' endpoint;
    /// `None`: `wss://` and the bound address.
    pub advertise: Option<String>,
    /// The secret servers of a cluster prove to each other when one links to another's
    /// administrators' endpoint (to run an exec or shell on an agent connected there);
    /// `None`: no links (a single server).
    pub cluster_secret: Option<String>,
    /// How long an agent's presence (and this server's announcement) lasts unless renewed;
    /// renewed every third of it. A killed server's agents count as gone after at most this.
    pub lease: Duration,
    /// Agents' endpoint.
    pub agent_listen: SocketAddr,
    /// Administrators' endpoint.
    pub admin_listen: SocketAddr,
    /// Certificate chain and key (PEM); generated once into `data_dir` when absent.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Names for a generated certificate.
    pub names: Vec<String>,
    /// Most agent connections at once.
    pub max_agents: usize,
    /// Most administrator connections at once.
    pub max_admins: usize,
    /// Most shells per agent.
    pub max_channels: u16,
    /// Largest websocket message accepted (at least [`crate::MAX_SEND`]).
    pub max_message: usize,
    /// Failed authorizations from one address before it is refused.
    pub max_failed_auths: u32,
    /// How long failures count (and a refused address stays refused).
    pub failure_window: Duration,
    /// Keepalive period for agents.
    pub heartbeat_secs: u16,
    /// TLS plus websocket handshake limit.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once from one address, on each port. Handshakes have their own
    /// budget: they never hold the slots of connected agents or administrators, and one address
    /// flooding handshakes cannot keep others from completing theirs.
    pub max_handshakes_per_address: u32,
    /// Handshakes in progress at once from all addresses, on each port (the same budget's
    /// overall cap).
    pub max_handshakes: u32,
    /// An administrator connection with no request for this long is closed (not during a
    /// shell or a running command).
    pub admin_idle_timeout: Duration,
    /// Exec timeout when the request gives none.
    pub default_timeout_ms: u32,
    /// Exec output cap when the request gives none, and the largest allowed.
    pub default_output_cap: u32,
    /// Largest output cap a request may ask for.
    pub max_output_cap: u32,
}

impl ServerConfig {
    /// SQLite in `data_dir`, leases of 30 s, loopback ports 7700 (agents) and 7701
    /// (administrators), 20 000 agents, 64
    /// administrators, 8 shells per agent, 1 MiB messages, 10 failures per 10 minutes, 30 s
    /// heartbeat, 10 s handshakes, 15 minutes idle, 60 s exec timeout, 16 MiB output cap.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_ports(data_dir, 7700, 7701)
    }

    /// As [`ServerConfig::new`], on loopback ports the system chooses (tests, benches, a
    /// server embedded in another program): see [`Server::endpoints`].
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_ports(data_dir, 0, 0)
    }

    /// The registry this configuration serves from: `database` when given, else
    /// `registry.sqlite` in the data directory.
    pub fn registry(&self) -> Database {
        match &self.database {
            Some(url) => Database::Postgres(url.clone()),
            None => Database::Sqlite(self.data_dir.join("registry.sqlite")),
        }
    }

    /// Saves administrator `name` with `password` in [`ServerConfig::registry`] (creating it,
    /// and the data directory, private, as needed); a running server sees it at once.
    pub async fn add_admin(&self, name: &str, password: &str) -> Result<(), ServerError> {
        crate::create_private_dir(&self.data_dir)?;
        let store = crate::registry::open(&self.registry()).await?;
        store
            .set_admin(name, &admin_secrets(name, password))
            .await?;
        crate::make_private(&self.data_dir)?;
        Ok(())
    }

    fn with_ports(data_dir: impl Into<PathBuf>, agent_port: u16, admin_port: u16) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: None,
            server_id: None,
            advertise: None,
            cluster_secret: None,
            lease: Duration::from_secs(30),
            agent_listen: SocketAddr::from(([127, 0, 0, 1], agent_port)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            identity: None,
            names: vec!["localhost".into(), "127.0.0.1".into()],
            max_agents: 20_000,
            max_admins: 64,
            max_channels: 8,
            max_message: 1 << 20,
            max_failed_auths: 10,
            failure_window: Duration::from_secs(600),
            heartbeat_secs: 30,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes_per_address: 16,
            max_handshakes: 512,
            admin_idle_timeout: Duration::from_secs(900),
            default_timeout_ms: 60_000,
            default_output_cap: 16 << 20,
            max_output_cap: 256 << 20,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding, the data directory, or the certificate files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The certificate or key is unusable.
    #[error("TLS identity: {0}")]
    Tls(String),
    /// The configuration does not hold together.
    #[error("{0}")]
    Config(String),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Bound agents' address.
    pub agent_addr: SocketAddr,
    /// Bound administrators' address.
    pub admin_addr: SocketAddr,
    /// SHA-256 of the certificate: what agents and the CLI pin.
    pub fingerprint: [u8; 32],
    shared: Arc<Shared>,
}

impl Server {
    /// Opens the registry, loads or creates the identity, binds both ports and starts serving
    /// on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        crate::create_private_dir(&config.data_dir)?;
        let store = crate::registry::open(&config.registry()).await?;
        let server_id = match &config.server_id {
            Some(id) => id.clone(),
            None => stored_server_id(&config.data_dir)?,
        };
        if server_id.is_empty()
            || server_id.len() > 64
            || !server_id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ServerError::Config(format!(
                "server id {server_id:?}: 1 to 64 printable characters without spaces"
            )));
        }
        let interrupted = store
            .close_interrupted(&server_id, crate::now_secs())
            .await?;
        if interrupted > 0 {
            tracing::warn!(
                "{interrupted} exec or shell audit entries were left open by this server's \
                 previous run; closed as \"server stopped\""
            );
        }
        let admins: HashMap<String, AdminSecrets> = store.admins().await?.into_iter().collect();
        if admins.is_empty() {
            tracing::warn!(
                "no administrators yet: add one with `rrmt-server --data-dir {} add-admin NAME`",
                config.data_dir.display()
            );
        }
        let (acceptor, fingerprint) = tls_acceptor(&config)?;
        // Last: SQLite's -wal and -shm files and a generated key and certificate exist now.
        crate::make_private(&config.data_dir)?;
        let agents_listener = TcpListener::bind(config.agent_listen).await?;
        let admin_listener = TcpListener::bind(config.admin_listen).await?;
        let agent_addr = agents_listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let admin_url = config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("wss://{admin_addr}"));
        let events = store.events();
        let peer_secrets = config
            .cluster_secret
            .as_deref()
            .map(|secret| admin_secrets(crate::peer::PEER_USER, secret));
        let shared = Arc::new(Shared {
            announcement: ServerRecord {
                id: server_id,
                admin_url,
                fingerprint: oobkit_io::format_fingerprint(&fingerprint),
                lease_until: 0,
            },
            peer_secrets,
            links: crate::peer::Links::default(),
            directory: crate::directory::Directory::default(),
            agent_port: agent_addr.port(),
            fingerprint: oobkit_io::format_fingerprint(&fingerprint),
            store,
            agents: Mutex::default(),
            admins,
            digest: Mutex::new(DigestServer::new(oobkit_digest::ServerConfig::new(
                REALM,
                oobkit_io::random_bytes(),
            ))),
            failures: Mutex::new(oobkit_io::AuthFailures::new(
                config.max_failed_auths,
                config.failure_window,
            )),
            agent_slots: Arc::new(Semaphore::new(config.max_agents)),
            admin_slots: Arc::new(Semaphore::new(config.max_admins)),
            next_connection: AtomicU64::new(1),
            config,
        });
        // The announcement and leases are in place before any agent or administrator is served.
        renew(&shared).await;
        tokio::spawn(renewals(Arc::clone(&shared)));
        if let Some(events) = events {
            // Listening already: nothing connecting from now on is missed.
            if let Some(presence) = shared.logged(shared.store.presence(now_secs()).await) {
                shared.directory.load(presence);
            }
            tokio::spawn(cluster_events(Arc::clone(&shared), events));
        }
        let server = Self {
            agent_addr,
            admin_addr,
            fingerprint,
            shared: Arc::clone(&shared),
        };
        tokio::spawn(accept_loop(
            agents_listener,
            acceptor.clone(),
            Arc::clone(&shared),
            Role::Agent,
        ));
        tokio::spawn(accept_loop(admin_listener, acceptor, shared, Role::Admin));
        Ok(server)
    }

    /// Agents connected and authorized now.
    pub fn online_agents(&self) -> usize {
        lock(&self.shared.agents).len()
    }

    /// This server's id in the cluster.
    pub fn id(&self) -> &str {
        &self.shared.announcement.id
    }

    /// Its agents' and administrators' endpoints as a client on this machine reaches them:
    /// `wss://` the bound addresses, pinned to its certificate.
    pub fn endpoints(&self) -> (oobkit_io::Endpoint, oobkit_io::Endpoint) {
        let pinned = oobkit_io::TlsPolicy::Pin(self.fingerprint);
        let endpoint = |addr: SocketAddr| {
            let mut endpoint = oobkit_io::Endpoint::plain(addr.ip().to_string(), addr.port());
            endpoint.tls = Some(pinned.clone());
            endpoint
        };
        (endpoint(self.agent_addr), endpoint(self.admin_addr))
    }
}

/// The id kept in `data_dir/server-id`, made at the first start.
fn stored_server_id(data_dir: &Path) -> Result<String, ServerError> {
    let path = data_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Token::random().to_string();
            crate::write_private_file(&path, id.as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(ServerError::Io(e)),
    }
}

/// Renews this server's announcement and its agents' leases; closes what dead servers left
/// open; cuts off agents whose revocation was missed.
async fn renew(shared: &Shared) {
    let now = now_secs();
    let lease = i64::try_from(shared.config.lease.as_secs())
        .unwrap_or(i64::MAX)
        .max(1);
    let announcement = ServerRecord {
        lease_until: now.saturating_add(lease),
        ..shared.announcement.clone()
    };
    let Some(renewal) = shared.logged(shared.store.renew(&announcement, now).await) else {
        return;
    };
    if let Some(servers) = shared.logged(shared.store.servers(now).await) {
        shared.directory.set_servers(servers);
    }
    if renewal.closed_audits > 0 {
        tracing::warn!(
            "closed {} audit entries left open by servers that stopped renewing their leases",
            renewal.closed_audits
        );
    }
    for host in renewal.revoked {
        if let Some(agent) = shared.agent(&host)
            && agent.try_send(Command::Revoke).is_ok()
        {
            tracing::warn!("host {host}'s token is revoked: its agent is cut off");
        }
    }
}

async fn renewals(shared: Arc<Shared>) {
    let period = (shared.config.lease / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        renew(&shared).await;
    }
}

/// What the other servers publish: revocations (cut the agent off if it is here) and moves
/// (close the replaced connection if it is this server's).
async fn cluster_events(shared: Arc<Shared>, mut events: mpsc::UnboundedReceiver<ClusterEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            ClusterEvent::Revoked { host } => {
                if let Some(agent) = shared.agent(&host)
                    && agent.try_send(Command::Revoke).is_ok()
                {
                    tracing::info!("host {host}'s token was revoked: its agent is cut off");
                }
            }
            ClusterEvent::Connected { presence, replaced } => {
                shared.directory.connected(&presence.host, &presence.server);
                let Some(replaced) = replaced.filter(|r| r.server == shared.announcement.id) else {
                    continue;
                };
                let host = presence.host;
                let stale = lock(&shared.agents)
                    .get(&host)
                    .filter(|a| a.connection as i64 == replaced.connection)
                    .map(|a| a.commands.clone());
                if let Some(agent) = stale {
                    tracing::warn!(
                        "host {host}: its agent connected to server {}; closing the connection \
                         here",
                        presence.server
                    );
                    let _ = agent.try_send(Command::Replaced);
                }
            }
            ClusterEvent::Disconnected { presence } => {
                shared
                    .directory
                    .disconnected(&presence.host, &presence.server);
            }
        }
    }
}

/// Hashes `password` for administrator `name` as the registry keeps it.
pub fn admin_secrets(name: &str, password: &str) -> AdminSecrets {
    AdminSecrets {
        ha1_md5: oobkit_digest::ha1(Algorithm::Md5, name, REALM, password).to_string(),
        ha1_sha256: oobkit_digest::ha1(Algorithm::Sha256, name, REALM, password).to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Shared {
    config: ServerConfig,
    store: Arc<dyn Store>,
    /// This server as the cluster knows it (the lease is filled in at each renewal).
    announcement: ServerRecord,
    /// The other servers' Digest secrets when they link to this one (`--cluster-secret`).
    peer_secrets: Option<AdminSecrets>,
    /// Idle links to other servers.
    links: crate::peer::Links,
    /// Where the cluster's agents are (from the registry's notifications).
    directory: crate::directory::Directory,
    /// Authorized agents by host name.
    agents: Mutex<HashMap<String, AgentHandle>>,
    admins: HashMap<String, AdminSecrets>,
    digest: Mutex<DigestServer>,
    failures: Mutex<oobkit_io::AuthFailures>,
    agent_slots: Arc<Semaphore>,
    admin_slots: Arc<Semaphore>,
    /// Handshakes in progress by address (both ports).
    next_connection: AtomicU64,
    /// The bound agents' port and the certificate fingerprint, told to administrators who
    /// create tokens so that they can paste the agent's command line as printed.
    agent_port: u16,
    fingerprint: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// A registry result, its failure logged (the registry is the server's memory: an error
    /// there is worth a line at 3 a.m., but must not take a connection down).
    fn logged<T>(&self, result: Result<T, RegistryError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        }
    }

    /// Starts an audit entry written by this server.
    async fn audit_start(
        &self,
        who: &str,
        address: &str,
        host: &str,
        action: &str,
        detail: &str,
    ) -> Option<i64> {
        let entry = AuditStart {
            at: now_secs(),
            who,
            address,
            host,
            action,
            detail,
            server: &self.announcement.id,
        };
        self.logged(self.store.audit_start(entry).await)
    }

    /// An agent connection of this server, as presence records it.
    fn presence<'a>(
        &'a self,
        host: &'a str,
        connection: u64,
        address: &'a str,
        agent_name: &'a str,
    ) -> Connected<'a> {
        let now = now_secs();
        let lease = i64::try_from(self.config.lease.as_secs()).unwrap_or(i64::MAX);
        Connected {
            host,
            server: &self.announcement.id,
            connection: connection as i64,
            address,
            agent_name,
            now,
            lease_until: now.saturating_add(lease.max(1)),
        }
    }

    fn agent(&self, host: &str) -> Option<AgentLink> {
        lock(&self.agents).get(host).map(|a| a.commands.clone())
    }
}

#[derive(Debug)]
struct AgentHandle {
    commands: AgentLink,
    connection: u64,
}

/// Counts a failed authorization of `ip`, saying so once when it reaches the limit.
fn record_failure(shared: &Shared, ip: IpAddr, now: Instant) {
    let mut failures = lock(&shared.failures);
    if failures.record(ip, now) {
        tracing::warn!(
            "{ip}: {} failed authorizations; refusing it for {:?}",
            shared.config.max_failed_auths,
            failures.window()
        );
    }
}

/// The way into an agent's task. Commands are boxed so that the queue's first block (32
/// slots, allocated with the channel) costs 256 bytes per agent rather than 32 commands.
#[derive(Debug, Clone)]
struct AgentLink(mpsc::Sender<Box<Command>>);

impl AgentLink {
    /// Queues a command, waiting for room; `Err` when the agent's task has ended.
    async fn send(&self, command: Command) -> Result<(), ()> {
        self.0.send(Box::new(command)).await.map_err(drop)
    }

    /// Queues a command if there is room.
    fn try_send(&self, command: Command) -> Result<(), ()> {
        self.0.try_send(Box::new(command)).map_err(drop)
    }
}

/// What an administrator's task asks of an agent's task.
#[derive(Debug)]
enum Command {
    Exec(Box<ExecRequest>),
    OpenShell(Box<ShellRequest>),
    ShellInput {
        channel: u32,
        data: Vec<u8>,
    },
    /// The administrator's socket took this much shell output: the agent may send more.
    ShellConsumed {
        channel: u32,
        bytes: u32,
    },
    Resize {
        channel: u32,
        cols: u16,
        rows: u16,
    },
    ShellClose {
        channel: u32,
    },
    Revoke,
    /// Another connection authorized with this host's token.
    Replaced,
}

#[derive(Debug)]
struct ExecRequest {
    argv: Vec<Vec<u8>>,
    timeout_ms: u32,
    output_cap: u32,
    updates: mpsc::UnboundedSender<ExecUpdate>,
}

#[derive(Debug)]
struct ShellRequest {
    cols: u16,
    rows: u16,
    term: String,
    updates: mpsc::UnboundedSender<ShellUpdate>,
}

#[derive(Debug)]
enum ExecUpdate {
    Output { stream: u8, data: Vec<u8> },
    Done { exit: i32, flags: u8 },
    Failed(String),
}

#[derive(Debug)]
enum ShellUpdate {
    Started { channel: u32 },
    Opened,
    Data(Vec<u8>),
    Closed { exit: i32 },
    Failed(String),
}

/// An exec in flight on an agent's task.
#[derive(Debug)]
struct PendingExec {
    updates: mpsc::UnboundedSender<ExecUpdate>,
    /// Output the cap still admits. The agent enforces the cap; the server does too, so that
    /// an agent sending without end cannot make it buffer without bound for a slow
    /// administrator.
    left: u64,
}

impl PendingExec {
    fn output(&mut self, stream: u8, mut data: Vec<u8>) {
        let keep = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(data.len());
        if keep < data.len() {
            tracing::warn!("an agent sent output beyond the cap; dropped");
            data.truncate(keep);
        }
        if keep > 0 {
            self.left -= keep as u64;
            let _ = self.updates.send(ExecUpdate::Output { stream, data });
        }
    }
}

/// Most shell input held for one channel while the agent's window is closed.
const MAX_PENDING_INPUT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent,
    Admin,
}

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

fn ws_config(config: &ServerConfig) -> WebSocketConfig {
    let mut ws = WebSocketConfig::default();
    // Never below what the programs send in one message.
    let max = config.max_message.max(crate::MAX_SEND);
    ws.max_message_size = Some(max);
    ws.max_frame_size = Some(max);
    // Small buffers: an idle agent costs little (they grow with traffic as needed). With
    // 1 KiB the server holds 10 000 idle agents at 15 KiB each (rustls keeps a 4 KiB record
    // buffer of its own); large outputs cost more reads, not more memory.
    ws.read_buffer_size = 1024;
    ws.write_buffer_size = 0;
    ws
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    role: Role,
) {
    let slots = match role {
        Role::Agent => Arc::clone(&shared.agent_slots),
        Role::Admin => Arc::clone(&shared.admin_slots),
    };
    // Handshakes (TLS, then the websocket upgrade) have a budget of their own, per port: they
    // never hold the slots of connected agents or administrators.
    let handshakes = oobkit_io::PreAuthBudget::new(
        shared.config.max_handshakes_per_address,
        shared.config.max_handshakes,
    );
    let mut refused_at_limit = 0u64;
    loop {
        let (tcp, peer) = oobkit_io::accept(&listener).await;
        if lock(&shared.failures).blocked(peer.ip(), Instant::now()) {
            tracing::debug!("{peer}: refused (too many failed authorizations)");
            continue;
        }
        let in_handshake = match handshakes.take(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                refused_at_limit += 1;
                if refused_at_limit.is_power_of_two() {
                    tracing::warn!(
                        "{role:?}: refused {peer}: {full} (refused {refused_at_limit} so far)"
                    );
                }
                continue;
            }
        };
        tcp.set_nodelay(true).ok();
        let (acceptor, shared, slots) = (acceptor.clone(), Arc::clone(&shared), Arc::clone(&slots));
        tokio::spawn(async move {
            // Boxed: a task's future is as large as its largest state, and the handshake's
            // (TLS and HTTP parsing) would otherwise stay reserved for the connection's life.
            let handshake = tokio::time::timeout(
                shared.config.handshake_timeout,
                Box::pin(handshake(acceptor, tcp, peer, &shared, role)),
            )
            .await;
            drop(in_handshake);
            match handshake {
                Ok(Ok((ws, user))) => {
                    // Only now does the connection count against the role's limit.
                    let Ok(_permit) = slots.try_acquire_owned() else {
                        tracing::warn!("{peer}: {role:?} connection limit reached, closing");
                        return;
                    };
                    match role {
                        Role::Agent => Box::pin(serve_agent(ws, peer, &shared)).await,
                        Role::Admin => {
                            if let Some(user) = user {
                                Box::pin(serve_admin(ws, peer, &shared, &user)).await;
                            }
                        }
                    }
                }
                Ok(Err(e)) => tracing::debug!("{peer}: handshake failed: {e}"),
                Err(_) => tracing::debug!("{peer}: handshake timed out"),
            }
        });
    }
}

fn plain_error(status: http::StatusCode, text: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(text.to_owned()));
    *response.status_mut() = status;
    response
}

/// TLS, then the websocket upgrade: for agents on [`AGENT_PATH`]; for administrators on
/// [`ADMIN_PATH`] with HTTP Digest (the user is returned).
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    role: Role,
) -> Result<(WebSocketStream<Tls>, Option<String>), String> {
    let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let mut user = None;
    let mut refused = None;
    // The error type is tungstenite's callback contract.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| match role {
        Role::Agent if request.uri().path() == AGENT_PATH => Ok(response),
        Role::Admin if request.uri().path() == ADMIN_PATH => {
            admin_authorization(shared, request, response, &mut user, &mut refused)
        }
        _ => Err(plain_error(http::StatusCode::NOT_FOUND, "not found")),
    };
    let result = tokio_tungstenite::accept_hdr_async_with_config(
        tls,
        callback,
        Some(ws_config(&shared.config)),
    )
    .await;
    if let Some(why) = refused {
        tracing::warn!("{peer}: administrator authentication failed, {why}");
        record_failure(shared, peer.ip(), Instant::now());
    }
    let ws = result.map_err(|e| e.to_string())?;
    Ok((ws, user))
}

/// Checks the upgrade request's Digest answer; a 401 with fresh challenges otherwise.
#[allow(clippy::result_large_err)] // tungstenite's callback contract
fn admin_authorization(
    shared: &Shared,
    request: &Request,
    response: Response,
    user: &mut Option<String>,
    refused: &mut Option<String>,
) -> Result<Response, ErrorResponse> {
    let now = oobkit_io::unix_now();
    let uri = request
        .uri()
        .path_and_query()
        .map_or(ADMIN_PATH, |p| p.as_str());
    let http = DigestRequest {
        method: "GET",
        uri,
        body: None,
    };
    let answer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let verdict = lock(&shared.digest).authenticate(
        answer,
        &http,
        now,
        oobkit_io::random_bytes(),
        |answer| {
            let (name, secrets) = if answer.username == crate::peer::PEER_USER {
                (crate::peer::PEER_USER, shared.peer_secrets.as_ref()?)
            } else {
                let (name, secrets) = shared.admins.get_key_value(&answer.username)?;
                (name.as_str(), secrets)
            };
            let ha1 = match answer.algorithm {
                Algorithm::Md5 | Algorithm::Md5Sess => &secrets.ha1_md5,
                Algorithm::Sha256 | Algorithm::Sha256Sess => &secrets.ha1_sha256,
                _ => return None,
            };
            Some((name, Secret::Ha1(ha1)))
        },
    );
    let challenges = match verdict {
        Ok(Verdict::Authorized(verified)) => {
            *user = Some(verified.username);
            return Ok(response);
        }
        Ok(Verdict::Challenge {
            www_authenticate,
            refused: why,
        }) => {
            if let Some(e) = why.filter(|e| !e.is_stale()) {
                // Who tried, as the answer names them (unverified, and length-limited, so
                // the log says what was claimed without letting a peer flood it).
                let claimed = answer
                    .and_then(|a| oobkit_digest::Authorization::parse(a).ok())
                    .map(|a| a.username.chars().take(64).collect::<String>())
                    .unwrap_or_default();
                *refused = Some(format!("user {claimed:?}: {e}"));
            }
            www_authenticate
        }
        Err(e) => {
            return Err(plain_error(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
            ));
        }
    };
    let mut refusal = plain_error(http::StatusCode::UNAUTHORIZED, "authentication required");
    for challenge in challenges {
        if let Ok(value) = http::HeaderValue::from_str(&challenge) {
            refusal
                .headers_mut()
                .append(http::header::WWW_AUTHENTICATE, value);
        }
    }
    drop(response);
    Err(refusal)
}

/// Where a shell stands in an agent's task.
#[derive(Debug)]
struct ShellState {
    updates: mpsc::UnboundedSender<ShellUpdate>,
    /// Input the agent's window does not admit yet.
    pending: Vec<u8>,
}

/// One agent connection: the session, its requests in flight, and the registry's view.
async fn serve_agent(mut ws: WebSocketStream<Tls>, peer: SocketAddr, shared: &Shared) {
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let mut session_config = ServerSessionConfig::new("rrmt-server");
    session_config.heartbeat_secs = shared.config.heartbeat_secs;
    session_config.max_channels = shared.config.max_channels;
    session_config.handshake_timeout = shared.config.handshake_timeout;
    let mut session = ServerSession::new(session_config, Instant::now());
    let (commands_tx, mut commands) = mpsc::channel::<Box<Command>>(16);
    let commands_tx = AgentLink(commands_tx);
    let mut host: Option<(String, String)> = None;
    let mut execs: HashMap<u32, PendingExec> = HashMap::new();
    let mut shells: HashMap<u32, ShellState> = HashMap::new();
    let mut replaced = false;
    let reason = loop {
        let now = Instant::now();
        let mut closed = None;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::AuthorizeRequested { token, name } => {
                    let record = shared
                        .logged(shared.store.host_by_token(&token).await)
                        .flatten();
                    match record {
                        Some(record) if record.revoked.is_none() => {
                            let previous = lock(&shared.agents).insert(
                                record.name.clone(),
                                AgentHandle {
                                    commands: commands_tx.clone(),
                                    connection,
                                },
                            );
                            if let Some(previous) = previous {
                                tracing::warn!(
                                    "host {}: a second agent authorized with its token from {peer}; closing the older connection",
                                    record.name
                                );
                                let _ = previous.commands.try_send(Command::Replaced);
                            }
                            let address = peer.to_string();
                            let replaced = shared
                                .logged(
                                    shared
                                        .store
                                        .agent_connected(shared.presence(
                                            &record.name,
                                            connection,
                                            &address,
                                            &name,
                                        ))
                                        .await,
                                )
                                .flatten();
                            if let Some(replaced) =
                                replaced.filter(|r| r.server != shared.announcement.id)
                            {
                                tracing::info!(
                                    "host {}: its agent was connected to server {}; this \
                                     connection replaces that one",
                                    record.name,
                                    replaced.server
                                );
                            }
                            let host_id =
                                Token::parse(&record.host_id).map_or([0; 16], |t| t.bytes());
                            session.accept(host_id);
                            tracing::info!(
                                "host {} (agent {name:?}) connected from {peer}",
                                record.name
                            );
                            host = Some((record.name, name));
                        }
                        other => {
                            let why = if other.is_some() {
                                "the token was revoked"
                            } else {
                                "unknown token"
                            };
                            tracing::warn!("agent {name:?} from {peer} refused: {why}");
                            record_failure(shared, peer.ip(), now);
                            session.reject(why);
                        }
                    }
                }
                ServerEvent::Output {
                    request,
                    stream,
                    data,
                } => {
                    if let Some(exec) = execs.get_mut(&request) {
                        exec.output(stream, data);
                    }
                }
                ServerEvent::Result {
                    request,
                    exit,
                    flags,
                } => {
                    if let Some(exec) = execs.remove(&request) {
                        let _ = exec.updates.send(ExecUpdate::Done { exit, flags });
                    }
                }
                ServerEvent::ShellOpened { channel } => {
                    if let Some(shell) = shells.get(&channel) {
                        let _ = shell.updates.send(ShellUpdate::Opened);
                    }
                }
                ServerEvent::ChannelData { channel, data } => {
                    let delivered = shells
                        .get(&channel)
                        .is_some_and(|s| s.updates.send(ShellUpdate::Data(data)).is_ok());
                    if !delivered {
                        shells.remove(&channel);
                        session.close_channel(channel);
                    }
                }
                ServerEvent::ChannelClosed { channel, exit } => {
                    if let Some(shell) = shells.remove(&channel) {
                        let _ = shell.updates.send(ShellUpdate::Closed { exit });
                    }
                }
                ServerEvent::TokenRotated => {
                    tracing::info!("{peer}: the agent stored its new token");
                }
                ServerEvent::Closed(reason) => closed = Some(reason),
                _ => {}
            }
        }
        // Input that waited for the agent's window.
        for (channel, shell) in &mut shells {
            if !shell.pending.is_empty() {
                let taken = session.send_channel_data(*channel, &shell.pending);
                shell.pending.drain(..taken);
            }
        }
        let send_failed = !crate::send_pending(&mut ws, || session.poll_transmit()).await;
        if let Some(reason) = closed {
            break reason;
        }
        if send_failed || replaced {
            break CloseReason::TransportClosed;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Binary(data))) => session.handle_input(Instant::now(), &data),
                Some(Ok(Message::Close(_)) | Err(_)) | None => session.handle_eof(),
                Some(Ok(_)) => {}
            },
            Some(command) = commands.recv() => {
                match *command {
                    Command::Replaced => replaced = true,
                    command => run_command(&mut session, command, &mut execs, &mut shells),
                }
            }
            () = oobkit_io::sleep_until(deadline) => session.handle_timeout(Instant::now()),
        }
    };
    let _ = ws.close(None).await;
    let why = if replaced {
        "replaced by a newer connection".to_owned()
    } else {
        reason.to_string()
    };
    for (_, exec) in execs.drain() {
        let _ = exec.updates.send(ExecUpdate::Failed(format!(
            "the agent disconnected ({why})"
        )));
    }
    for (_, shell) in shells.drain() {
        let _ = shell.updates.send(ShellUpdate::Failed(format!(
            "the agent disconnected ({why})"
        )));
    }
    match host {
        Some((name, agent_name)) => {
            {
                let mut agents = lock(&shared.agents);
                if agents
                    .get(&name)
                    .is_some_and(|a| a.connection == connection)
                {
                    agents.remove(&name);
                }
            }
            let address = peer.to_string();
            shared.logged(
                shared
                    .store
                    .agent_disconnected(shared.presence(&name, connection, &address, &agent_name))
                    .await,
            );
            tracing::info!("host {name} disconnected: {why}");
        }
        None => tracing::debug!("{peer}: agent connection ended before authorization: {why}"),
    }
}

fn run_command(
    session: &mut ServerSession,
    command: Command,
    execs: &mut HashMap<u32, PendingExec>,
    shells: &mut HashMap<u32, ShellState>,
) {
    match command {
        Command::Exec(request) => {
            let argv: Vec<&[u8]> = request.argv.iter().map(Vec::as_slice).collect();
            match session.execute(&argv, request.timeout_ms, request.output_cap) {
                Ok(id) => {
                    execs.insert(
                        id,
                        PendingExec {
                            updates: request.updates,
                            left: u64::from(request.output_cap),
                        },
                    );
                }
                Err(e) => {
                    let _ = request.updates.send(ExecUpdate::Failed(e.to_string()));
                }
            }
        }
        Command::OpenShell(request) => {
            match session.open_shell(request.cols, request.rows, &request.term) {
                Ok(channel) => {
                    let _ = request.updates.send(ShellUpdate::Started { channel });
                    shells.insert(
                        channel,
                        ShellState {
                            updates: request.updates,
                            pending: Vec::new(),
                        },
                    );
                }
                Err(e) => {
                    let _ = request.updates.send(ShellUpdate::Failed(e.to_string()));
                }
            }
        }
        Command::ShellInput { channel, data } => {
            if let Some(shell) = shells.get_mut(&channel) {
                shell.pending.extend_from_slice(&data);
                let taken = session.send_channel_data(channel, &shell.pending);
                shell.pending.drain(..taken);
                if shell.pending.len() > MAX_PENDING_INPUT {
                    let _ = shell.updates.send(ShellUpdate::Failed(
                        "more than 1 MiB of input is waiting for the shell; closed".into(),
                    ));
                    shells.remove(&channel);
                    session.close_channel(channel);
                }
            }
        }
        Command::ShellConsumed { channel, bytes } => session.grant(channel, bytes),
        Command::Resize {
            channel,
            cols,
            rows,
        } => session.resize(channel, cols, rows),
        Command::ShellClose { channel } => {
            shells.remove(&channel);
            session.close_channel(channel);
        }
        Command::Revoke => session.revoke(),
        Command::Replaced => {}
    }
}

/// Sends one reply; false when the administrator is gone.
async fn reply(ws: &mut WebSocketStream<Tls>, reply: &AdminReply) -> bool {
    ws.send(Message::Text(reply.to_json().into())).await.is_ok()
}

/// One administrator connection: requests one after another.
async fn serve_admin(mut ws: WebSocketStream<Tls>, peer: SocketAddr, shared: &Shared, user: &str) {
    tracing::info!("administrator {user} connected from {peer}");
    let address = peer.ip().to_string();
    loop {
        let message = match tokio::time::timeout(shared.config.admin_idle_timeout, ws.next()).await
        {
            Ok(Some(Ok(message))) => message,
            Ok(_) => break,
            Err(_) => {
                let _ = reply(&mut ws, &AdminReply::error("idle for too long; closing")).await;
                break;
            }
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break,
            Message::Binary(_) => {
                if !reply(&mut ws, &AdminReply::error("expected a JSON request")).await {
                    break;
                }
                continue;
            }
            _ => continue,
        };
        let request = match serde_json::from_str::<AdminRequest>(&text) {
            Ok(request) => request,
            Err(e) => {
                if !reply(&mut ws, &AdminReply::error(format!("bad request: {e}"))).await {
                    break;
                }
                continue;
            }
        };
        let is_peer = user == crate::peer::PEER_USER;
        let keep_going = match (request, is_peer) {
            (
                AdminRequest::Forward {
                    user,
                    address,
                    via,
                    request,
                },
                true,
            ) => {
                // The administrator's name and address as the other server authenticated them,
                // bounded: they go into the audit log.
                let user: String = user.chars().take(64).collect();
                let address: String = address.chars().take(64).collect();
                let via: String = via.chars().take(64).collect();
                let origin = Origin {
                    user: &user,
                    address: &address,
                    via: Some(&via),
                };
                run_request(&mut ws, shared, origin, *request).await
            }
            (_, true) => {
                reply(
                    &mut ws,
                    &AdminReply::error("a server link carries forwarded requests only"),
                )
                .await
            }
            (AdminRequest::Forward { .. }, false) => {
                reply(
                    &mut ws,
                    &AdminReply::error("only the servers of the cluster forward requests"),
                )
                .await
            }
            (request, false) => {
                let origin = Origin {
                    user,
                    address: &address,
                    via: None,
                };
                run_request(&mut ws, shared, origin, request).await
            }
        };
        if !keep_going {
            break;
        }
    }
    let _ = ws.close(None).await;
    tracing::info!("administrator {user} from {peer} disconnected");
}

/// Who a request is for: the administrator, their address, and the server they are connected
/// to when that is another one (a forwarded request).
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    user: &'a str,
    address: &'a str,
    via: Option<&'a str>,
}

impl Origin<'_> {
    /// An audit detail, naming the server the administrator came through.
    fn detail(&self, detail: String) -> String {
        match self.via {
            Some(server) => format!("{detail} (via server {server})"),
            None => detail,
        }
    }
}

/// One request; false when the connection is to end.
async fn run_request(
    ws: &mut WebSocketStream<Tls>,
    shared: &Shared,
    origin: Origin<'_>,
    request: AdminRequest,
) -> bool {
    match request {
        AdminRequest::Exec {
            host,
            argv,
            timeout_ms,
            output_cap,
        } => exec(ws, shared, origin, &host, argv, timeout_ms, output_cap).await,
        AdminRequest::Shell {
            host,
            cols,
            rows,
            term,
            for_user,
        } => {
            let size = (cols, rows);
            shell(ws, shared, origin, &host, size, &term, for_user.as_deref()).await;
            false
        }
        other if origin.via.is_some() => {
            let _ = other;
            reply(ws, &AdminReply::error("only exec and shell are forwarded")).await
        }
        other => {
            let answer = simple_request(shared, origin.user, origin.address, other).await;
            reply(ws, &answer).await
        }
    }
}

/// Requests answered from the registry.
async fn simple_request(
    shared: &Shared,
    user: &str,
    address: &str,
    request: AdminRequest,
) -> AdminReply {
    let failed = |e: RegistryError| AdminReply::error(e.to_string());
    let store = &shared.store;
    match request {
        AdminRequest::Hosts => {
            let now = now_secs();
            let (hosts, presence) = tokio::join!(store.hosts(), store.presence(now));
            match hosts.and_then(|hosts| Ok((hosts, presence?))) {
                Ok((hosts, presence)) => {
                    let elsewhere: HashMap<String, String> = presence
                        .into_iter()
                        .filter(|p| p.server != shared.announcement.id)
                        .map(|p| (p.host, p.server))
                        .collect();
                    let agents = lock(&shared.agents);
                    AdminReply::Hosts {
                        hosts: hosts
                            .into_iter()
                            .map(|record| {
                                // This server's own agents as it holds them now; the others'
                                // as their leases say.
                                let server = if agents.contains_key(&record.name) {
                                    Some(shared.announcement.id.clone())
                                } else {
                                    elsewhere.get(&record.name).cloned()
                                };
                                HostView {
                                    online: server.is_some(),
                                    server,
                                    record,
                                }
                            })
                            .collect(),
                    }
                }
                Err(e) => failed(e),
            }
        }
        AdminRequest::TokenCreate { name } => {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return AdminReply::error(
                    "a host name is 1 to 64 letters, digits, '-', '_' or '.'",
                );
            }
            let (token, host_id) = (Token::random(), Token::random());
            let created = store
                .create_host(
                    &name,
                    &token.bytes(),
                    &host_id.to_string(),
                    user,
                    now_secs(),
                )
                .await;
            match created {
                Ok(()) => {
                    shared
                        .audit_start(user, address, &name, "token-create", "")
                        .await;
                    tracing::info!("administrator {user} created a token for host {name}");
                    AdminReply::TokenCreated {
                        name,
                        token: token.to_string(),
                        host_id: host_id.to_string(),
                        agent_port: shared.agent_port,
                        fingerprint: shared.fingerprint.clone(),
                    }
                }
                Err(e) => failed(e),
            }
        }
        AdminRequest::TokenRevoke { name } => {
            // The other servers hear of it at commit and cut the agent off if they hold it.
            match store.revoke(&name, now_secs()).await {
                Ok(_) => {
                    shared
                        .audit_start(user, address, &name, "token-revoke", "")
                        .await;
                    let disconnected = shared
                        .agent(&name)
                        .is_some_and(|agent| agent.try_send(Command::Revoke).is_ok());
                    tracing::info!(
                        "administrator {user} revoked host {name}'s token{}",
                        if disconnected {
                            "; its agent is cut off"
                        } else {
                            ""
                        }
                    );
                    AdminReply::Revoked { name, disconnected }
                }
                Err(e) => failed(e),
            }
        }
        AdminRequest::Audit { limit } => match store.audit(limit.min(10_000)).await {
            Ok(entries) => AdminReply::Audit { entries },
            Err(e) => failed(e),
        },
        AdminRequest::Resize { .. } => AdminReply::error("resize outside a shell"),
        AdminRequest::Exec { .. } | AdminRequest::Shell { .. } | AdminRequest::Forward { .. } => {
            AdminReply::error("not a simple request")
        }
    }
}

/// Where host `host`'s agent is.
enum Whereabouts {
    /// Connected here.
    Here(AgentLink),
    /// Connected to another server of the cluster.
    There(ServerRecord),
    /// Not reachable: the reply that says why.
    Nowhere(AdminReply),
}

/// Where `host`'s agent is: here, or on the server the directory names (when `directory`),
/// or as the registry says.
async fn locate(shared: &Shared, host: &str, directory: bool) -> Whereabouts {
    if let Some(agent) = shared.agent(host) {
        return Whereabouts::Here(agent);
    }
    let now = now_secs();
    if directory
        && shared.config.cluster_secret.is_some()
        && let Some(server) = shared.directory.lookup(host, now)
        && server.id != shared.announcement.id
    {
        return Whereabouts::There(server);
    }
    let elsewhere = shared
        .logged(shared.store.locate(host, now).await)
        .flatten()
        .filter(|l| l.presence.server != shared.announcement.id);
    if let Some(located) = elsewhere {
        let presence = located.presence;
        if shared.config.cluster_secret.is_none() {
            return Whereabouts::Nowhere(AdminReply::error(format!(
                "host {host}'s agent is connected to server {}, and this server has no \
                 --cluster-secret to link to it",
                presence.server
            )));
        }
        match located.server {
            Some(server) => {
                shared.directory.connected(host, &server.id);
                return Whereabouts::There(server);
            }
            None => {
                return Whereabouts::Nowhere(AdminReply::error(format!(
                    "host {host}'s agent was connected to server {}, which stopped renewing its \
                     lease; the agent reconnects to another server within its backoff",
                    presence.server
                )));
            }
        }
    }
    let known = shared.logged(shared.store.host(host).await).flatten();
    Whereabouts::Nowhere(AdminReply::error(match known {
        None => format!("no host named {host:?} (see `rrmt hosts`)"),
        Some(h) if h.revoked.is_some() => format!("host {host}'s token is revoked"),
        Some(h) => match h.last_seen {
            Some(at) => format!(
                "host {host}'s agent is not connected (last seen {}s ago)",
                now_secs().saturating_sub(at)
            ),
            None => format!("host {host}'s agent has never connected"),
        },
    }))
}

/// What became of a request for an agent.
enum Routed {
    /// The agent is here: run it.
    Here(AgentLink),
    /// Answered: relayed to the server holding the agent, or refused (for an exec: whether
    /// the administrator is still there).
    Answered(bool),
}

/// Finds `host`'s agent for an exec or shell (`request` makes it, should it be forwarded):
/// here, or relayed to the server holding it. A forwarded request is never forwarded again
/// (the agent moved meanwhile: the forwarding server asks the registry and tries once more).
async fn route(
    ws: &mut WebSocketStream<Tls>,
    shared: &Shared,
    origin: Origin<'_>,
    host: &str,
    request: impl Fn() -> AdminRequest,
) -> Routed {
    let mut use_directory = true;
    loop {
        let server = match locate(shared, host, use_directory).await {
            Whereabouts::Here(agent) => return Routed::Here(agent),
            Whereabouts::There(server) if origin.via.is_none() => server,
            Whereabouts::There(_) | Whereabouts::Nowhere(_) if origin.via.is_some() => {
                let why = format!(
                    "server {} does not hold host {host}'s agent",
                    shared.announcement.id
                );
                return Routed::Answered(reply(ws, &AdminReply::NotHere { message: why }).await);
            }
            Whereabouts::There(_) => unreachable!("a request from an administrator is routed"),
            Whereabouts::Nowhere(answer) => return Routed::Answered(reply(ws, &answer).await),
        };
        let request = request();
        let shell = matches!(request, AdminRequest::Shell { .. });
        let request = forwarded(shared, origin, request);
        let secret = shared.config.cluster_secret.as_deref().unwrap_or_default();
        let relayed = if shell {
            crate::peer::shell(ws, &shared.links, &server, secret, &request).await
        } else {
            crate::peer::exec(ws, &shared.links, &server, secret, &request).await
        };
        match relayed {
            crate::peer::Relayed::Done(present) => return Routed::Answered(present),
            crate::peer::Relayed::NotHere if use_directory => {
                shared.directory.forget(host);
                use_directory = false;
            }
            crate::peer::Relayed::NotHere => {
                let why = format!("host {host}'s agent is moving between servers; try again");
                return Routed::Answered(reply(ws, &AdminReply::error(why)).await);
            }
        }
    }
}

/// The request that asks `server` to run `request` for `origin`.
fn forwarded(shared: &Shared, origin: Origin<'_>, request: AdminRequest) -> AdminRequest {
    AdminRequest::Forward {
        user: origin.user.to_owned(),
        address: origin.address.to_owned(),
        via: shared.announcement.id.clone(),
        request: Box::new(request),
    }
}

/// A command line for the audit log (arguments with spaces or quotes quoted).
fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn outcome(flags: u8) -> Option<String> {
    let mut words = Vec::new();
    if flags & result_flags::TIMED_OUT != 0 {
        words.push("timed out");
    }
    if flags & result_flags::TRUNCATED != 0 {
        words.push("output truncated");
    }
    if flags & result_flags::NOT_STARTED != 0 {
        words.push("did not start");
    }
    (!words.is_empty()).then(|| words.join(", "))
}

/// `exec`: output streamed as it comes, then the exit status. False when the administrator is
/// gone.
#[allow(clippy::too_many_arguments)]
async fn exec(
    ws: &mut WebSocketStream<Tls>,
    shared: &Shared,
    origin: Origin<'_>,
    host: &str,
    argv: Vec<String>,
    timeout_ms: u32,
    output_cap: u32,
) -> bool {
    if argv.is_empty() {
        return reply(ws, &AdminReply::error("no command given")).await;
    }
    let request = || AdminRequest::Exec {
        host: host.to_owned(),
        argv: argv.clone(),
        timeout_ms,
        output_cap,
    };
    let agent = match route(ws, shared, origin, host, request).await {
        Routed::Here(agent) => agent,
        Routed::Answered(present) => return present,
    };
    let user = origin.user;
    let line = command_line(&argv);
    let audit = shared
        .audit_start(
            user,
            origin.address,
            host,
            "exec",
            &origin.detail(line.clone()),
        )
        .await;
    tracing::info!("administrator {user} runs on {host}: {line}");
    let config = &shared.config;
    let (updates, mut updates_rx) = mpsc::unbounded_channel();
    let request = ExecRequest {
        argv: argv.into_iter().map(String::into_bytes).collect(),
        timeout_ms: if timeout_ms == 0 {
            config.default_timeout_ms
        } else {
            timeout_ms
        },
        output_cap: if output_cap == 0 {
            config.default_output_cap
        } else {
            output_cap.min(config.max_output_cap)
        },
        updates,
    };
    let _ = agent.send(Command::Exec(Box::new(request))).await;
    let mut admin_present = true;
    let (exit, note, answer) = loop {
        match updates_rx.recv().await {
            Some(ExecUpdate::Output { stream, data }) => {
                if admin_present {
                    let mut message = Vec::with_capacity(1 + data.len());
                    message.push(stream);
                    message.extend_from_slice(&data);
                    admin_present = ws.send(Message::Binary(message.into())).await.is_ok();
                }
            }
            Some(ExecUpdate::Done { exit, flags }) => {
                let answer = AdminReply::Exited {
                    exit,
                    timed_out: flags & result_flags::TIMED_OUT != 0,
                    truncated: flags & result_flags::TRUNCATED != 0,
                    not_started: flags & result_flags::NOT_STARTED != 0,
                };
                break (Some(exit), outcome(flags), answer);
            }
            Some(ExecUpdate::Failed(why)) => {
                break (None, Some(why.clone()), AdminReply::error(why));
            }
            None => {
                let why = "the agent disconnected";
                break (None, Some(why.to_owned()), AdminReply::error(why));
            }
        }
    };
    // The audit entry is complete before the administrator hears the end: whatever happens
    // to the server after that, the log has it.
    if let Some(id) = audit {
        shared.logged(
            shared
                .store
                .audit_end(id, now_secs(), exit, note.as_deref())
                .await,
        );
    }
    if admin_present {
        admin_present = reply(ws, &answer).await;
    }
    admin_present
}

/// `shell`: the connection carries the terminal until either side ends it.
#[allow(clippy::too_many_arguments)]
async fn shell(
    ws: &mut WebSocketStream<Tls>,
    shared: &Shared,
    origin: Origin<'_>,
    host: &str,
    (cols, rows): (u16, u16),
    term: &str,
    for_user: Option<&str>,
) {
    let request = || AdminRequest::Shell {
        host: host.to_owned(),
        cols,
        rows,
        term: term.to_owned(),
        for_user: for_user.map(str::to_owned),
    };
    let agent = match route(ws, shared, origin, host, request).await {
        Routed::Here(agent) => agent,
        Routed::Answered(_) => return,
    };
    let user = origin.user;
    let detail = match for_user {
        // Bounded: the name comes from the gateway, the log must stay readable.
        Some(person) => format!(
            "{term} {cols}x{rows} for {}",
            person.chars().take(128).collect::<String>()
        ),
        None => format!("{term} {cols}x{rows}"),
    };
    let audit = shared
        .audit_start(user, origin.address, host, "shell", &origin.detail(detail))
        .await;
    tracing::info!("administrator {user} opens a shell on {host}");
    let (updates, mut updates_rx) = mpsc::unbounded_channel();
    let request = ShellRequest {
        cols,
        rows,
        term: term.to_owned(),
        updates,
    };
    let _ = agent.send(Command::OpenShell(Box::new(request))).await;
    let mut channel = None;
    let (exit, note, last) = loop {
        tokio::select! {
            update = updates_rx.recv() => match update {
                Some(ShellUpdate::Started { channel: c }) => channel = Some(c),
                Some(ShellUpdate::Opened) => {
                    if !reply(ws, &AdminReply::ShellOpened).await {
                        break (None, Some("the administrator disconnected".to_owned()), None);
                    }
                }
                Some(ShellUpdate::Data(data)) => {
                    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    if ws.send(Message::Binary(data.into())).await.is_err() {
                        break (None, Some("the administrator disconnected".to_owned()), None);
                    }
                    if let Some(channel) = channel {
                        let _ = agent.send(Command::ShellConsumed { channel, bytes: len }).await;
                    }
                }
                Some(ShellUpdate::Closed { exit }) => {
                    break (Some(exit), None, Some(AdminReply::ShellClosed { exit }));
                }
                Some(ShellUpdate::Failed(why)) => {
                    break (None, Some(why.clone()), Some(AdminReply::error(why)));
                }
                None => {
                    let why = "the agent disconnected";
                    break (None, Some(why.to_owned()), Some(AdminReply::error(why)));
                }
            },
            message = ws.next() => match (message, channel) {
                (Some(Ok(Message::Binary(data))), Some(channel)) => {
                    let _ = agent.send(Command::ShellInput { channel, data: data.into() }).await;
                }
                (Some(Ok(Message::Text(text))), Some(channel)) => {
                    if let Ok(AdminRequest::Resize { cols, rows }) = serde_json::from_str(&text) {
                        let _ = agent.send(Command::Resize { channel, cols, rows }).await;
                    }
                }
                (Some(Ok(Message::Close(_)) | Err(_)) | None, _) => {
                    break (None, Some("the administrator disconnected".to_owned()), None);
                }
                _ => {}
            },
        }
    };
    if let (Some(channel), None) = (channel, exit) {
        let _ = agent.send(Command::ShellClose { channel }).await;
    }
    if let Some(id) = audit {
        shared.logged(
            shared
                .store
                .audit_end(id, now_secs(), exit, note.as_deref())
                .await,
        );
    }
    // After the audit entry is complete, as for exec.
    if let Some(last) = last {
        reply(ws, &last).await;
    }
}

/// The certificate and key: the configured files, or a self-signed pair generated once into
/// the data directory (so that pinned fingerprints stay valid across restarts).
fn tls_acceptor(
    config: &ServerConfig,
) -> Result<(tokio_rustls::TlsAcceptor, [u8; 32]), ServerError> {
    let (cert, key) = match &config.identity {
        Some((cert, key)) => (cert.clone(), key.clone()),
        None => {
            let cert = config.data_dir.join("server.crt");
            let key = config.data_dir.join("server.key");
            if !cert.exists() || !key.exists() {
                generate_identity(&config.names, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let identity = oobkit_io::ServerIdentity::from_pem_files(&cert, &key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let fingerprint = identity.fingerprint();
    let acceptor = identity
        .acceptor()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok((acceptor, fingerprint))
}

fn generate_identity(names: &[String], cert: &Path, key: &Path) -> Result<(), ServerError> {
    let (cert_pem, key_pem) = oobkit_io::ServerIdentity::generate_self_signed(names)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    crate::write_private_file(key, key_pem.as_bytes())?;
    std::fs::write(cert, cert_pem)?;
    tracing::info!("generated a self-signed certificate in {}", cert.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_holds_an_agent_to_the_output_cap() {
        let (updates, mut received) = mpsc::unbounded_channel();
        let mut exec = PendingExec { updates, left: 10 };
        exec.output(1, vec![b'a'; 6]);
        exec.output(2, vec![b'b'; 6]);
        exec.output(1, vec![b'c'; 6]);
        let mut total = Vec::new();
        while let Ok(ExecUpdate::Output { data, .. }) = received.try_recv() {
            total.extend(data);
        }
        assert_eq!(total, b"aaaaaabbbb");
    }

    #[test]
    fn audit_command_lines_quote_what_needs_it() {
        let argv = ["sh", "-c", "echo 'hi there'", ""].map(String::from);
        assert_eq!(command_line(&argv), r"sh -c 'echo '\''hi there'\''' ''");
    }
}
