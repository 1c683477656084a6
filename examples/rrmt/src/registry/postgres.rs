//! The registry in PostgreSQL, shared by the servers of a cluster (tokio-postgres).
//!
//! One connection carries the queries (tokio-postgres pipelines the requests of concurrent
//! tasks on it, and every statement is prepared once at start); a second one only listens
//! for the cluster's notifications (`rrmt_revoke`, `rrmt_moved`), which PostgreSQL delivers at
//! commit to every listener. Notifications are signals, not a queue: one missed while the
//! listening connection is down is caught up by the next lease renewal (revocations) or by the
//! agent's next reconnection (moves).
//!
//! TLS to the database is not built in: the URL must name a loopback address or a Unix socket,
//! or say `sslmode=disable` to send the registry's traffic in the clear on purpose.

use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row, Statement};

use super::{
    AdminSecrets, AuditRecord, AuditStart, ClusterEvent, Connected, HostRecord, Located, Presence,
    RegistryError, Renewal, ServerRecord, Store, StoreFuture, token_hash,
};

/// The schema's versions (see [`super::MIGRATIONS`]).
const MIGRATIONS: [&str; super::MIGRATIONS] = [
    "CREATE TABLE IF NOT EXISTS hosts (
        name TEXT PRIMARY KEY,
        host_id TEXT NOT NULL UNIQUE,
        token_sha256 BYTEA NOT NULL UNIQUE,
        created BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        revoked BIGINT,
        last_seen BIGINT,
        last_address TEXT,
        agent_name TEXT
    );
    CREATE TABLE IF NOT EXISTS admins (
        name TEXT PRIMARY KEY,
        ha1_md5 TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS audit (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        who TEXT NOT NULL,
        address TEXT NOT NULL,
        host TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        ended BIGINT,
        exit BIGINT,
        outcome TEXT
    );",
    // previous_*: the connection an upsert replaced, returned by the same statement (the row
    // lock of ON CONFLICT orders two servers claiming one host at once).
    "ALTER TABLE audit ADD COLUMN server TEXT;
    CREATE TABLE presence (
        host TEXT PRIMARY KEY,
        server TEXT NOT NULL,
        connection BIGINT NOT NULL,
        lease_until BIGINT NOT NULL,
        previous_server TEXT,
        previous_connection BIGINT
    );
    CREATE INDEX presence_server ON presence (server);
    CREATE INDEX audit_open ON audit (server) WHERE ended IS NULL;
    CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        admin_url TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        lease_until BIGINT NOT NULL
    );",
];

/// Serializes schema changes between servers starting at once (any constant will do; this is
/// "rrmt" in ASCII).
const MIGRATION_LOCK: i64 = 0x7272_6d74;

const HOST_COLUMNS: &str =
    "name, host_id, created, created_by, revoked, last_seen, last_address, agent_name";

/// The statements, prepared once.
#[derive(Debug)]
struct Statements {
    create_host: Statement,
    hosts: Statement,
    host: Statement,
    host_by_token: Statement,
    revoke: Statement,
    host_exists: Statement,
    audit_start: Statement,
    audit_end: Statement,
    close_interrupted: Statement,
    audit: Statement,
    set_admin: Statement,
    admins: Statement,
    connected: Statement,
    disconnected: Statement,
    announce: Statement,
    renew_leases: Statement,
    expire_leases: Statement,
    close_abandoned: Statement,
    revoked_here: Statement,
    presence: Statement,
    locate: Statement,
    server: Statement,
    servers: Statement,
}

/// The registry in PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    client: Client,
    statements: Statements,
    /// Keeps the listening connection open.
    _listener: Client,
    events: Mutex<Option<mpsc::UnboundedReceiver<ClusterEvent>>>,
}

fn loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// Parses `url`, refusing an address off this machine unless the clear text is asked for.
/// Bounds on every exchange with the database: a server waiting on a stuck registry would hold
/// its agents' and administrators' requests (and their slots) without end.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest statement (PostgreSQL cancels it and answers an error).
const STATEMENT_TIMEOUT_MS: u32 = 10_000;
/// TCP keepalive: a database gone silent (a partition, a dead host) is noticed in about a
/// minute instead of the system's two hours.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

fn config(url: &str) -> Result<tokio_postgres::Config, RegistryError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| RegistryError::Url(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(RegistryError::Url(
            "name the server: postgres://USER@HOST:PORT/DATABASE".into(),
        ));
    }
    if !config.get_hosts().iter().all(loopback) && config.get_ssl_mode() != SslMode::Disable {
        return Err(RegistryError::Url(
            "TLS to PostgreSQL is not built in: use a loopback address or a Unix socket, or add \
             ?sslmode=disable to send the registry's traffic in the clear on purpose"
                .into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_options().is_none() {
        config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(std::time::Duration::from_secs(10))
        .keepalives_retries(3);
    Ok(config)
}

impl PostgresStore {
    /// Connects to `url`, brings the schema up to date, prepares the statements and starts
    /// listening for the cluster's notifications.
    pub async fn connect(url: &str) -> Result<Self, RegistryError> {
        let config = config(url)?;
        let (mut client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!("the registry's PostgreSQL connection failed: {e}");
            }
        });
        migrate(&mut client).await?;
        let statements = prepare(&client).await?;
        let (listener, mut listening) = config.connect(NoTls).await?;
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| listening.poll_message(cx)).await;
                match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        let event = match n.channel() {
                            "rrmt_revoke" => Some(ClusterEvent::Revoked {
                                host: n.payload().to_owned(),
                            }),
                            channel => super::parse_presence(channel, n.payload()),
                        };
                        if let Some(event) = event
                            && events_tx.send(event).is_err()
                        {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::error!(
                            "the registry's listening connection to PostgreSQL failed: {e}; \
                             revocations are enforced at lease renewals from now on"
                        );
                        break;
                    }
                    None => break,
                }
            }
        });
        listener
            .batch_execute("LISTEN rrmt_revoke; LISTEN rrmt_connected; LISTEN rrmt_disconnected")
            .await?;
        Ok(Self {
            client,
            statements,
            _listener: listener,
            events: Mutex::new(Some(events)),
        })
    }
}

async fn migrate(client: &mut Client) -> Result<(), RegistryError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
        )
        .await?;
    let current: i64 = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(RegistryError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in (1i64..).zip(MIGRATIONS).skip(current as usize) {
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                &[&version, &crate::now_secs()],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

async fn prepare(client: &Client) -> Result<Statements, RegistryError> {
    Ok(Statements {
        create_host: client
            .prepare(
                "INSERT INTO hosts (name, host_id, token_sha256, created, created_by)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .await?,
        hosts: client
            .prepare(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))
            .await?,
        host: client
            .prepare(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = $1"))
            .await?,
        host_by_token: client
            .prepare(&format!(
                "SELECT {HOST_COLUMNS} FROM hosts WHERE token_sha256 = $1"
            ))
            .await?,
        // The notification goes out at commit, with the change.
        revoke: client
            .prepare(
                "UPDATE hosts SET revoked = $2 WHERE name = $1 AND revoked IS NULL
                 RETURNING pg_notify('rrmt_revoke', name)",
            )
            .await?,
        host_exists: client
            .prepare("SELECT 1 FROM hosts WHERE name = $1")
            .await?,
        audit_start: client
            .prepare(
                "INSERT INTO audit (at, who, address, host, action, detail, server)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .await?,
        audit_end: client
            .prepare("UPDATE audit SET ended = $2, exit = $3, outcome = $4 WHERE id = $1")
            .await?,
        close_interrupted: client
            .prepare(
                "UPDATE audit SET ended = $1, outcome = 'server stopped'
                 WHERE ended IS NULL AND action IN ('exec', 'shell') AND server = $2",
            )
            .await?,
        audit: client
            .prepare(
                "SELECT id, at, who, address, host, action, detail, ended, exit, outcome, server
                 FROM (SELECT * FROM audit ORDER BY id DESC LIMIT $1) AS last ORDER BY id",
            )
            .await?,
        set_admin: client
            .prepare(
                "INSERT INTO admins (name, ha1_md5, ha1_sha256) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET ha1_md5 = EXCLUDED.ha1_md5,
                   ha1_sha256 = EXCLUDED.ha1_sha256",
            )
            .await?,
        admins: client
            .prepare("SELECT name, ha1_md5, ha1_sha256 FROM admins")
            .await?,
        // One round trip per connecting agent: the lease, the replaced connection (from the
        // row ON CONFLICT locked, so two servers claiming one host are ordered), the host's
        // record, and the notification to the server that held it.
        connected: client
            .prepare(
                "WITH claimed AS (
                   INSERT INTO presence (host, server, connection, lease_until)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (host) DO UPDATE SET
                     previous_server = presence.server,
                     previous_connection = presence.connection,
                     server = EXCLUDED.server, connection = EXCLUDED.connection,
                     lease_until = EXCLUDED.lease_until
                   RETURNING host, previous_server, previous_connection),
                 seen AS (
                   UPDATE hosts SET last_seen = $5, last_address = $6, agent_name = $7
                   WHERE name = $1)
                 SELECT previous_server, previous_connection,
                   pg_notify('rrmt_connected', host || E'\\t' || $2 || E'\\t' || $3::TEXT
                     || COALESCE(E'\\t' || previous_server || E'\\t' || previous_connection, ''))
                 FROM claimed",
            )
            .await?,
        // A connection that was replaced leaves the host's record to its successor.
        disconnected: client
            .prepare(
                "WITH released AS (
                   DELETE FROM presence WHERE host = $1 AND server = $2 AND connection = $3
                   RETURNING host),
                 seen AS (
                   UPDATE hosts SET last_seen = $4, last_address = $5, agent_name = $6
                   WHERE name IN (SELECT host FROM released))
                 SELECT pg_notify('rrmt_disconnected', host || E'\\t' || $2 || E'\\t' || $3::TEXT)
                 FROM released",
            )
            .await?,
        announce: client
            .prepare(
                "INSERT INTO servers (id, admin_url, fingerprint, lease_until)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET admin_url = EXCLUDED.admin_url,
                   fingerprint = EXCLUDED.fingerprint, lease_until = EXCLUDED.lease_until",
            )
            .await?,
        renew_leases: client
            .prepare("UPDATE presence SET lease_until = $2 WHERE server = $1")
            .await?,
        expire_leases: client
            .prepare("DELETE FROM presence WHERE lease_until < $1")
            .await?,
        close_abandoned: client
            .prepare(
                "UPDATE audit SET ended = $1, outcome = 'server ' || server || ' stopped'
                 WHERE ended IS NULL AND action IN ('exec', 'shell') AND server IN
                   (SELECT id FROM servers WHERE lease_until < $1)",
            )
            .await?,
        revoked_here: client
            .prepare(
                "SELECT p.host FROM presence p JOIN hosts h ON h.name = p.host
                 WHERE p.server = $1 AND h.revoked IS NOT NULL",
            )
            .await?,
        presence: client
            .prepare(
                "SELECT host, server, connection FROM presence WHERE lease_until >= $1
                 ORDER BY host",
            )
            .await?,
        locate: client
            .prepare(
                "SELECT p.host, p.server, p.connection, s.admin_url, s.fingerprint, s.lease_until
                 FROM presence p LEFT JOIN servers s ON s.id = p.server AND s.lease_until >= $2
                 WHERE p.host = $1 AND p.lease_until >= $2",
            )
            .await?,
        server: client
            .prepare(
                "SELECT id, admin_url, fingerprint, lease_until FROM servers
                 WHERE id = $1 AND lease_until >= $2",
            )
            .await?,
        servers: client
            .prepare(
                "SELECT id, admin_url, fingerprint, lease_until FROM servers
                 WHERE lease_until >= $1 ORDER BY id",
            )
            .await?,
    })
}

fn host_row(row: &Row) -> HostRecord {
    HostRecord {
        name: row.get(0),
        host_id: row.get(1),
        created: row.get(2),
        created_by: row.get(3),
        revoked: row.get(4),
        last_seen: row.get(5),
        last_address: row.get(6),
        agent_name: row.get(7),
    }
}

fn server_row(row: &Row) -> ServerRecord {
    ServerRecord {
        id: row.get(0),
        admin_url: row.get(1),
        fingerprint: row.get(2),
        lease_until: row.get(3),
    }
}

fn presence_row(row: &Row) -> Presence {
    Presence {
        host: row.get(0),
        server: row.get(1),
        connection: row.get(2),
    }
}

impl Store for PostgresStore {
    fn create_host<'a>(
        &'a self,
        name: &'a str,
        token: &'a [u8; 16],
        host_id: &'a str,
        created_by: &'a str,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let hash = token_hash(token);
            let inserted = self
                .client
                .execute(
                    &self.statements.create_host,
                    &[&name, &host_id, &hash, &now, &created_by],
                )
                .await?;
            if inserted == 0 {
                return Err(RegistryError::NameTaken(name.into()));
            }
            Ok(())
        })
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<HostRecord>> {
        Box::pin(async move {
            let rows = self.client.query(&self.statements.hosts, &[]).await?;
            Ok(rows.iter().map(host_row).collect())
        })
    }

    fn host<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<HostRecord>> {
        Box::pin(async move {
            let row = self
                .client
                .query_opt(&self.statements.host, &[&name])
                .await?;
            Ok(row.as_ref().map(host_row))
        })
    }

    fn host_by_token<'a>(&'a self, token: &'a [u8; 16]) -> StoreFuture<'a, Option<HostRecord>> {
        Box::pin(async move {
            let hash = token_hash(token);
            let row = self
                .client
                .query_opt(&self.statements.host_by_token, &[&hash])
                .await?;
            Ok(row.as_ref().map(host_row))
        })
    }

    fn revoke<'a>(&'a self, name: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let changed = self
                .client
                .query(&self.statements.revoke, &[&name, &now])
                .await?
                .len();
            if changed == 0
                && self
                    .client
                    .query_opt(&self.statements.host_exists, &[&name])
                    .await?
                    .is_none()
            {
                return Err(RegistryError::UnknownHost(name.into()));
            }
            Ok(changed == 1)
        })
    }

    fn audit_start<'a>(&'a self, entry: AuditStart<'a>) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let row = self
                .client
                .query_one(
                    &self.statements.audit_start,
                    &[
                        &entry.at,
                        &entry.who,
                        &entry.address,
                        &entry.host,
                        &entry.action,
                        &entry.detail,
                        &entry.server,
                    ],
                )
                .await?;
            Ok(row.get(0))
        })
    }

    fn audit_end<'a>(
        &'a self,
        id: i64,
        now: i64,
        exit: Option<i32>,
        outcome: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let exit = exit.map(i64::from);
            self.client
                .execute(&self.statements.audit_end, &[&id, &now, &exit, &outcome])
                .await?;
            Ok(())
        })
    }

    fn close_interrupted<'a>(&'a self, server: &'a str, now: i64) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            Ok(self
                .client
                .execute(&self.statements.close_interrupted, &[&now, &server])
                .await?)
        })
    }

    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        Box::pin(async move {
            let rows = self
                .client
                .query(&self.statements.audit, &[&i64::from(limit)])
                .await?;
            Ok(rows
                .iter()
                .map(|row| AuditRecord {
                    id: row.get(0),
                    at: row.get(1),
                    who: row.get(2),
                    address: row.get(3),
                    host: row.get(4),
                    action: row.get(5),
                    detail: row.get(6),
                    ended: row.get(7),
                    exit: row.get(8),
                    outcome: row.get(9),
                    server: row.get(10),
                })
                .collect())
        })
    }

    fn set_admin<'a>(&'a self, name: &'a str, secrets: &'a AdminSecrets) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .execute(
                    &self.statements.set_admin,
                    &[&name, &secrets.ha1_md5, &secrets.ha1_sha256],
                )
                .await?;
            Ok(())
        })
    }

    fn admins(&self) -> StoreFuture<'_, Vec<(String, AdminSecrets)>> {
        Box::pin(async move {
            let rows = self.client.query(&self.statements.admins, &[]).await?;
            Ok(rows
                .iter()
                .map(|row| {
                    (
                        row.get(0),
                        AdminSecrets {
                            ha1_md5: row.get(1),
                            ha1_sha256: row.get(2),
                        },
                    )
                })
                .collect())
        })
    }

    fn agent_connected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, Option<Presence>> {
        Box::pin(async move {
            let row = self
                .client
                .query_opt(
                    &self.statements.connected,
                    &[
                        &agent.host,
                        &agent.server,
                        &agent.connection,
                        &agent.lease_until,
                        &agent.now,
                        &agent.address,
                        &agent.agent_name,
                    ],
                )
                .await?;
            Ok(row.and_then(|row| {
                let server: Option<String> = row.get(0);
                let connection: Option<i64> = row.get(1);
                Some(Presence {
                    host: agent.host.to_owned(),
                    server: server?,
                    connection: connection?,
                })
            }))
        })
    }

    fn agent_disconnected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .query(
                    &self.statements.disconnected,
                    &[
                        &agent.host,
                        &agent.server,
                        &agent.connection,
                        &agent.now,
                        &agent.address,
                        &agent.agent_name,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn renew<'a>(&'a self, server: &'a ServerRecord, now: i64) -> StoreFuture<'a, Renewal> {
        Box::pin(async move {
            let s = &self.statements;
            self.client
                .execute(
                    &s.announce,
                    &[
                        &server.id,
                        &server.admin_url,
                        &server.fingerprint,
                        &server.lease_until,
                    ],
                )
                .await?;
            self.client
                .execute(&s.renew_leases, &[&server.id, &server.lease_until])
                .await?;
            self.client.execute(&s.expire_leases, &[&now]).await?;
            let closed_audits = self.client.execute(&s.close_abandoned, &[&now]).await?;
            let revoked = self
                .client
                .query(&s.revoked_here, &[&server.id])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Ok(Renewal {
                closed_audits,
                revoked,
            })
        })
    }

    fn presence(&self, now: i64) -> StoreFuture<'_, Vec<Presence>> {
        Box::pin(async move {
            let rows = self
                .client
                .query(&self.statements.presence, &[&now])
                .await?;
            Ok(rows.iter().map(presence_row).collect())
        })
    }

    fn locate<'a>(&'a self, host: &'a str, now: i64) -> StoreFuture<'a, Option<Located>> {
        Box::pin(async move {
            let row = self
                .client
                .query_opt(&self.statements.locate, &[&host, &now])
                .await?;
            Ok(row.map(|row| {
                let presence = presence_row(&row);
                let admin_url: Option<String> = row.get(3);
                let fingerprint: Option<String> = row.get(4);
                let lease_until: Option<i64> = row.get(5);
                let server = admin_url.zip(fingerprint).zip(lease_until).map(
                    |((admin_url, fingerprint), lease_until)| ServerRecord {
                        id: presence.server.clone(),
                        admin_url,
                        fingerprint,
                        lease_until,
                    },
                );
                Located { presence, server }
            }))
        })
    }

    fn server<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<ServerRecord>> {
        Box::pin(async move {
            let row = self
                .client
                .query_opt(&self.statements.server, &[&id, &now])
                .await?;
            Ok(row.as_ref().map(server_row))
        })
    }

    fn servers(&self, now: i64) -> StoreFuture<'_, Vec<ServerRecord>> {
        Box::pin(async move {
            let rows = self.client.query(&self.statements.servers, &[&now]).await?;
            Ok(rows.iter().map(server_row).collect())
        })
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<ClusterEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_off_this_machine_need_tls_or_an_explicit_clear_text() {
        assert!(config("postgres://rrmt@127.0.0.1:5432/rrmt").is_ok());
        assert!(config("postgres://rrmt@localhost/rrmt").is_ok());
        assert!(config("postgresql://rrmt@[::1]:5432/rrmt").is_ok());
        assert!(matches!(
            config("postgres://rrmt@db.example.net/rrmt"),
            Err(RegistryError::Url(_))
        ));
        assert!(config("postgres://rrmt@db.example.net/rrmt?sslmode=disable").is_ok());
        // Bounded by default; what the URL says is kept.
        let bounded = config("postgres://rrmt@127.0.0.1/rrmt").unwrap();
        assert_eq!(bounded.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(bounded.get_options(), Some("-c statement_timeout=10000"));
        let own =
            config("postgres://rrmt@127.0.0.1/rrmt?connect_timeout=3&options=-c%20x%3D1").unwrap();
        assert_eq!(
            own.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(own.get_options(), Some("-c x=1"));
        assert!(matches!(config("nonsense"), Err(RegistryError::Url(_))));
    }
}
