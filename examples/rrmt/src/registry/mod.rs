//! The server's registry: hosts and their agent tokens, administrators, the audit log of every
//! exec, shell and token change, and where each agent is connected (presence). One trait,
//! [`Store`], two back ends: SQLite in the data directory (one server, the default) and
//! PostgreSQL (`--database postgres://...`, shared by several servers). Both pass the same
//! tests and carry the same versioned schema ([`MIGRATIONS`]).
//!
//! Tokens are stored as their SHA-256 only: a copy of the database does not let anyone pose as
//! an agent. (Tokens are 128 random bits, so an unsalted hash is enough.)
//!
//! Presence is a lease: the server holding an agent renews the leases of all its agents in one
//! statement every few seconds; a server that dies stops renewing, and its agents count as gone
//! once their leases run out. Every server sweeps expired leases and closes the audit entries
//! a dead server left open, saying so.

mod postgres;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The SQLite database failed.
    #[error("registry database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or the connection to it).
    #[error("registry database (PostgreSQL): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The `--database` URL is unusable.
    #[error("database URL: {0}")]
    Url(String),
    /// The database's schema is newer than this program knows.
    #[error(
        "the database's schema is version {found}, newer than this program's {known}: upgrade the program"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this program knows.
        known: i64,
    },
    /// A host of that name exists.
    #[error("a host named {0:?} already exists")]
    NameTaken(String),
    /// No host of that name.
    #[error("no host named {0:?}")]
    UnknownHost(String),
}

/// One host: its token's record and what was last seen of its agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRecord {
    /// The name the administrator gave at `token create`.
    pub name: String,
    /// The host id sent in Provision (a UUID).
    pub host_id: String,
    /// UNIX time the token was created.
    pub created: i64,
    /// The administrator who created it.
    pub created_by: String,
    /// UNIX time the token was revoked.
    pub revoked: Option<i64>,
    /// UNIX time the agent was last connected.
    pub last_seen: Option<i64>,
    /// The agent's last address.
    pub last_address: Option<String>,
    /// The name the agent gave in Hello (usually its host name).
    pub agent_name: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// Entry number.
    pub id: i64,
    /// UNIX time it began.
    pub at: i64,
    /// The administrator.
    pub who: String,
    /// The administrator's address.
    pub address: String,
    /// The host concerned.
    pub host: String,
    /// `exec`, `shell`, `token-create`, `token-revoke`.
    pub action: String,
    /// The command line, or other detail.
    pub detail: String,
    /// UNIX time it ended (exec and shell).
    pub ended: Option<i64>,
    /// Exit status (exec and shell).
    pub exit: Option<i64>,
    /// How it ended when not by an exit status (timed out, disconnected, ...).
    pub outcome: Option<String>,
    /// The server that ran it (where the agent was connected).
    #[serde(default)]
    pub server: Option<String>,
}

/// What an audit entry starts with.
#[derive(Debug, Clone, Copy)]
pub struct AuditStart<'a> {
    /// UNIX time.
    pub at: i64,
    /// The administrator.
    pub who: &'a str,
    /// The administrator's address.
    pub address: &'a str,
    /// The host concerned.
    pub host: &'a str,
    /// `exec`, `shell`, `token-create`, `token-revoke`.
    pub action: &'a str,
    /// The command line, or other detail.
    pub detail: &'a str,
    /// The server writing it.
    pub server: &'a str,
}

/// An administrator's stored Digest secrets (HA1 for realm [`crate::REALM`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSecrets {
    /// HA1 with MD5.
    pub ha1_md5: String,
    /// HA1 with SHA-256.
    pub ha1_sha256: String,
}

/// An agent's connection as presence records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The host.
    pub host: String,
    /// The server it is connected to.
    pub server: String,
    /// That server's number for the connection (newest wins).
    pub connection: i64,
}

/// Where an agent is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Its presence.
    pub presence: Presence,
    /// The holding server's announcement (`None` once that server stopped renewing it).
    pub server: Option<ServerRecord>,
}

/// A server of the cluster as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    /// Its id (unique in the cluster).
    pub id: String,
    /// Where other servers reach its administrators' endpoint (`wss://...`).
    pub admin_url: String,
    /// SHA-256 of its certificate, which other servers pin when they link to it.
    pub fingerprint: String,
    /// UNIX time its lease runs out.
    pub lease_until: i64,
}

/// An agent connected: the lease it takes.
#[derive(Debug, Clone, Copy)]
pub struct Connected<'a> {
    /// The host.
    pub host: &'a str,
    /// The server holding it.
    pub server: &'a str,
    /// The server's number for the connection.
    pub connection: i64,
    /// The agent's address.
    pub address: &'a str,
    /// The name it gave in Hello.
    pub agent_name: &'a str,
    /// UNIX time.
    pub now: i64,
    /// UNIX time the lease runs out unless renewed.
    pub lease_until: i64,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Audit entries closed because the server that ran them stopped renewing.
    pub closed_audits: u64,
    /// Hosts this server holds whose tokens are revoked: a revocation whose notification was
    /// missed (the listening connection was down) is still enforced at the next renewal.
    pub revoked: Vec<String>,
}

/// What one server tells the others through the database (PostgreSQL `NOTIFY`; delivered at
/// commit, to every server, the sender included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A host's token was revoked: whoever holds its agent cuts it off.
    Revoked {
        /// The host.
        host: String,
    },
    /// A host's agent connected; the server holding the connection it replaced (if any)
    /// closes that one. Every server keeps where each agent is from these.
    Connected {
        /// The new connection.
        presence: Presence,
        /// The connection it replaced.
        replaced: Option<Presence>,
    },
    /// A host's agent disconnected (and was not replaced).
    Disconnected {
        /// The connection that ended.
        presence: Presence,
    },
}

/// The future of a [`Store`] operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RegistryError>> + Send + 'a>>;

/// The registry's operations, the same on every back end.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Registers host `name` with `token` (only its hash is kept).
    fn create_host<'a>(
        &'a self,
        name: &'a str,
        token: &'a [u8; 16],
        host_id: &'a str,
        created_by: &'a str,
        now: i64,
    ) -> StoreFuture<'a, ()>;
    /// Every host, by name.
    fn hosts(&self) -> StoreFuture<'_, Vec<HostRecord>>;
    /// Host `name`.
    fn host<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<HostRecord>>;
    /// The host whose token this is (revoked or not).
    fn host_by_token<'a>(&'a self, token: &'a [u8; 16]) -> StoreFuture<'a, Option<HostRecord>>;
    /// Marks host `name`'s token revoked and tells every server; false if it already was.
    fn revoke<'a>(&'a self, name: &'a str, now: i64) -> StoreFuture<'a, bool>;
    /// Starts an audit entry; returns its id for [`Store::audit_end`].
    fn audit_start<'a>(&'a self, entry: AuditStart<'a>) -> StoreFuture<'a, i64>;
    /// Completes audit entry `id`.
    fn audit_end<'a>(
        &'a self,
        id: i64,
        now: i64,
        exit: Option<i32>,
        outcome: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;
    /// Completes the exec and shell entries `server` left open in a previous run (it was
    /// killed while they ran): they say "server stopped". Returns how many.
    fn close_interrupted<'a>(&'a self, server: &'a str, now: i64) -> StoreFuture<'a, u64>;
    /// The last `limit` audit entries, oldest first.
    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>>;
    /// Adds or replaces administrator `name`.
    fn set_admin<'a>(&'a self, name: &'a str, secrets: &'a AdminSecrets) -> StoreFuture<'a, ()>;
    /// Every administrator.
    fn admins(&self) -> StoreFuture<'_, Vec<(String, AdminSecrets)>>;
    /// An agent connected: records it (last seen, address, name) and takes its lease, replacing
    /// any other connection's. Returns the connection replaced, if there was one (and tells
    /// every server about it).
    fn agent_connected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, Option<Presence>>;
    /// An agent disconnected: last seen now, and its lease dropped if it is still this
    /// connection's.
    fn agent_disconnected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, ()>;
    /// Renews `server`'s own lease and those of all its agents until `lease_until`; expired
    /// leases of any server are dropped, and the audit entries servers whose leases ran out
    /// left open are closed ("server ID stopped").
    fn renew<'a>(&'a self, server: &'a ServerRecord, now: i64) -> StoreFuture<'a, Renewal>;
    /// Live presence (leases not run out), by host.
    fn presence(&self, now: i64) -> StoreFuture<'_, Vec<Presence>>;
    /// Where host `name`'s agent is connected, if anywhere, with that server's announcement
    /// if its lease runs (one query: an exec through another server looks this up each time).
    fn locate<'a>(&'a self, host: &'a str, now: i64) -> StoreFuture<'a, Option<Located>>;
    /// Server `id`'s announcement, if its lease runs.
    fn server<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<ServerRecord>>;
    /// Every server whose lease runs.
    fn servers(&self, now: i64) -> StoreFuture<'_, Vec<ServerRecord>>;
    /// The events other servers publish, once (None for a back end only one server uses).
    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<ClusterEvent>>;
}

/// Where the registry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (one server).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://user@host:port/db`), shared by the servers of a cluster.
    Postgres(String),
}

/// Opens (creating or migrating the schema as needed) the registry.
pub async fn open(database: &Database) -> Result<Arc<dyn Store>, RegistryError> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        Database::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
    })
}

/// The schema's versions, in order; each is applied once, in a transaction, and recorded in
/// `schema_migrations`. Version 1 is the single-server schema of earlier releases (written with
/// `IF NOT EXISTS`, so that their databases adopt it); 2 adds the server to audit entries,
/// presence leases and the servers' announcements.
pub const MIGRATIONS: usize = 2;

pub(crate) fn token_hash(token: &[u8; 16]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token).to_vec()
}

/// A presence notification's payload: host, server and connection separated by tabs (host
/// names and server ids hold no tabs), then for a connection that replaced another, that
/// one's server and connection.
pub(crate) fn parse_presence(channel: &str, payload: &str) -> Option<ClusterEvent> {
    let mut parts = payload.split('\t');
    let host = parts.next()?;
    let presence = |server: &str, connection: &str| {
        Some(Presence {
            host: host.to_owned(),
            server: server.to_owned(),
            connection: connection.parse().ok()?,
        })
    };
    let current = presence(parts.next()?, parts.next()?)?;
    match channel {
        "rrmt_connected" => Some(ClusterEvent::Connected {
            presence: current,
            replaced: match (parts.next(), parts.next()) {
                (Some(server), Some(connection)) if !server.is_empty() => {
                    Some(presence(server, connection)?)
                }
                _ => None,
            },
        }),
        "rrmt_disconnected" => Some(ClusterEvent::Disconnected { presence: current }),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
