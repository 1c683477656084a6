//! The registry in a SQLite file: one server's, in its data directory. WAL mode, so a crash or
//! restart loses nothing that was answered. Operations are short and run on the caller's task
//! under a lock (a local file: no network wait to hide).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AdminSecrets, AuditRecord, AuditStart, ClusterEvent, Connected, HostRecord, Located, Presence,
    RegistryError, Renewal, ServerRecord, Store, StoreFuture, token_hash,
};

/// The schema's versions (see [`super::MIGRATIONS`]).
const MIGRATIONS: [&str; super::MIGRATIONS] = [
    "CREATE TABLE IF NOT EXISTS hosts (
        name TEXT PRIMARY KEY,
        host_id TEXT NOT NULL UNIQUE,
        token_sha256 BLOB NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked INTEGER,
        last_seen INTEGER,
        last_address TEXT,
        agent_name TEXT
    );
    CREATE TABLE IF NOT EXISTS admins (
        name TEXT PRIMARY KEY,
        ha1_md5 TEXT NOT NULL,
        ha1_sha256 TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        who TEXT NOT NULL,
        address TEXT NOT NULL,
        host TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        ended INTEGER,
        exit INTEGER,
        outcome TEXT
    );",
    "ALTER TABLE audit ADD COLUMN server TEXT;
    CREATE TABLE presence (
        host TEXT PRIMARY KEY,
        server TEXT NOT NULL,
        connection INTEGER NOT NULL,
        lease_until INTEGER NOT NULL
    );
    CREATE INDEX presence_server ON presence (server);
    CREATE INDEX audit_open ON audit (server) WHERE ended IS NULL;
    CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        admin_url TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        lease_until INTEGER NOT NULL
    );",
];

/// The registry in SQLite.
#[derive(Debug)]
pub struct SqliteStore {
    db: Mutex<Connection>,
}

const HOST_COLUMNS: &str =
    "name, host_id, created, created_by, revoked, last_seen, last_address, agent_name";

fn host_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HostRecord> {
    Ok(HostRecord {
        name: row.get(0)?,
        host_id: row.get(1)?,
        created: row.get(2)?,
        created_by: row.get(3)?,
        revoked: row.get(4)?,
        last_seen: row.get(5)?,
        last_address: row.get(6)?,
        agent_name: row.get(7)?,
    })
}

fn presence_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Presence> {
    Ok(Presence {
        host: row.get(0)?,
        server: row.get(1)?,
        connection: row.get(2)?,
    })
}

/// A result computed now, as the trait's future.
fn ready<'a, T: Send + 'a>(result: Result<T, RegistryError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

impl SqliteStore {
    /// Opens (creating or migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let mut db = Connection::open(path)?;
        // WAL: readers never wait for the writer, and a commit survives a crash.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut db)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // Every statement leaves the database consistent; keep serving after a panic.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn migrate(db: &mut Connection) -> Result<(), RegistryError> {
    let transaction = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )?;
    let current: i64 = transaction.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(RegistryError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(current as usize) {
        transaction.execute_batch(sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, crate::now_secs()],
        )?;
    }
    transaction.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_host<'a>(
        &'a self,
        name: &'a str,
        token: &'a [u8; 16],
        host_id: &'a str,
        created_by: &'a str,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        ready((|| {
            let inserted = self.db().execute(
                "INSERT OR IGNORE INTO hosts (name, host_id, token_sha256, created, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, host_id, token_hash(token), now, created_by],
            )?;
            if inserted == 0 {
                return Err(RegistryError::NameTaken(name.into()));
            }
            Ok(())
        })())
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<HostRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement =
                db.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))?;
            let rows = statement.query_map([], host_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })())
    }

    fn host<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<HostRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement =
                db.prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"))?;
            Ok(statement.query_row(params![name], host_row).optional()?)
        })())
    }

    fn host_by_token<'a>(&'a self, token: &'a [u8; 16]) -> StoreFuture<'a, Option<HostRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(&format!(
                "SELECT {HOST_COLUMNS} FROM hosts WHERE token_sha256 = ?1"
            ))?;
            Ok(statement
                .query_row(params![token_hash(token)], host_row)
                .optional()?)
        })())
    }

    fn revoke<'a>(&'a self, name: &'a str, now: i64) -> StoreFuture<'a, bool> {
        ready((|| {
            let db = self.db();
            let changed = db.execute(
                "UPDATE hosts SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                params![name, now],
            )?;
            if changed == 0 {
                let exists: Option<i64> = db
                    .query_row("SELECT 1 FROM hosts WHERE name = ?1", params![name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if exists.is_none() {
                    return Err(RegistryError::UnknownHost(name.into()));
                }
            }
            Ok(changed == 1)
        })())
    }

    fn audit_start<'a>(&'a self, entry: AuditStart<'a>) -> StoreFuture<'a, i64> {
        ready((|| {
            let db = self.db();
            db.execute(
                "INSERT INTO audit (at, who, address, host, action, detail, server)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    entry.at,
                    entry.who,
                    entry.address,
                    entry.host,
                    entry.action,
                    entry.detail,
                    entry.server
                ],
            )?;
            Ok(db.last_insert_rowid())
        })())
    }

    fn audit_end<'a>(
        &'a self,
        id: i64,
        now: i64,
        exit: Option<i32>,
        outcome: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        ready((|| {
            self.db().execute(
                "UPDATE audit SET ended = ?2, exit = ?3, outcome = ?4 WHERE id = ?1",
                params![id, now, exit, outcome],
            )?;
            Ok(())
        })())
    }

    fn close_interrupted<'a>(&'a self, server: &'a str, now: i64) -> StoreFuture<'a, u64> {
        ready((|| {
            // Entries of releases before servers were recorded have none: this file was
            // only ever one server's.
            Ok(self.db().execute(
                "UPDATE audit SET ended = ?1, outcome = 'server stopped'
                 WHERE ended IS NULL AND action IN ('exec', 'shell')
                   AND (server = ?2 OR server IS NULL)",
                params![now, server],
            )? as u64)
        })())
    }

    fn audit(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(
                "SELECT id, at, who, address, host, action, detail, ended, exit, outcome, server
                 FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )?;
            let rows = statement.query_map(params![limit], |row| {
                Ok(AuditRecord {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    who: row.get(2)?,
                    address: row.get(3)?,
                    host: row.get(4)?,
                    action: row.get(5)?,
                    detail: row.get(6)?,
                    ended: row.get(7)?,
                    exit: row.get(8)?,
                    outcome: row.get(9)?,
                    server: row.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })())
    }

    fn set_admin<'a>(&'a self, name: &'a str, secrets: &'a AdminSecrets) -> StoreFuture<'a, ()> {
        ready((|| {
            self.db().execute(
                "INSERT OR REPLACE INTO admins (name, ha1_md5, ha1_sha256) VALUES (?1, ?2, ?3)",
                params![name, secrets.ha1_md5, secrets.ha1_sha256],
            )?;
            Ok(())
        })())
    }

    fn admins(&self) -> StoreFuture<'_, Vec<(String, AdminSecrets)>> {
        ready((|| {
            let db = self.db();
            let mut statement =
                db.prepare_cached("SELECT name, ha1_md5, ha1_sha256 FROM admins")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get(0)?,
                    AdminSecrets {
                        ha1_md5: row.get(1)?,
                        ha1_sha256: row.get(2)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })())
    }

    fn agent_connected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, Option<Presence>> {
        ready((|| {
            let mut db = self.db();
            let transaction = db.transaction()?;
            let replaced = transaction
                .query_row(
                    "SELECT host, server, connection FROM presence WHERE host = ?1",
                    params![agent.host],
                    presence_row,
                )
                .optional()?;
            transaction.execute(
                "INSERT OR REPLACE INTO presence (host, server, connection, lease_until)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    agent.host,
                    agent.server,
                    agent.connection,
                    agent.lease_until
                ],
            )?;
            transaction.execute(
                "UPDATE hosts SET last_seen = ?2, last_address = ?3, agent_name = ?4 WHERE name = ?1",
                params![agent.host, agent.now, agent.address, agent.agent_name],
            )?;
            transaction.commit()?;
            Ok(replaced)
        })())
    }

    fn agent_disconnected<'a>(&'a self, agent: Connected<'a>) -> StoreFuture<'a, ()> {
        ready((|| {
            let mut db = self.db();
            let transaction = db.transaction()?;
            let released = transaction.execute(
                "DELETE FROM presence WHERE host = ?1 AND server = ?2 AND connection = ?3",
                params![agent.host, agent.server, agent.connection],
            )?;
            // A connection that was replaced leaves the host's record to its successor.
            if released == 1 {
                transaction.execute(
                "UPDATE hosts SET last_seen = ?2, last_address = ?3, agent_name = ?4 WHERE name = ?1",
                    params![agent.host, agent.now, agent.address, agent.agent_name],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })())
    }

    fn renew<'a>(&'a self, server: &'a ServerRecord, now: i64) -> StoreFuture<'a, Renewal> {
        ready((|| {
            let mut db = self.db();
            let transaction = db.transaction()?;
            transaction.execute(
                "INSERT OR REPLACE INTO servers (id, admin_url, fingerprint, lease_until)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    server.id,
                    server.admin_url,
                    server.fingerprint,
                    server.lease_until
                ],
            )?;
            transaction.execute(
                "UPDATE presence SET lease_until = ?2 WHERE server = ?1",
                params![server.id, server.lease_until],
            )?;
            transaction.execute("DELETE FROM presence WHERE lease_until < ?1", params![now])?;
            let closed = transaction.execute(
                "UPDATE audit SET ended = ?1, outcome = 'server ' || server || ' stopped'
                 WHERE ended IS NULL AND action IN ('exec', 'shell') AND server IN
                   (SELECT id FROM servers WHERE lease_until < ?1)",
                params![now],
            )?;
            let revoked = {
                let mut statement = transaction.prepare_cached(
                    "SELECT p.host FROM presence p JOIN hosts h ON h.name = p.host
                     WHERE p.server = ?1 AND h.revoked IS NOT NULL",
                )?;
                let rows = statement.query_map(params![server.id], |row| row.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            };
            transaction.commit()?;
            Ok(Renewal {
                closed_audits: closed as u64,
                revoked,
            })
        })())
    }

    fn presence(&self, now: i64) -> StoreFuture<'_, Vec<Presence>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(
                "SELECT host, server, connection FROM presence WHERE lease_until >= ?1 ORDER BY host",
            )?;
            let rows = statement.query_map(params![now], presence_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })())
    }

    fn locate<'a>(&'a self, host: &'a str, now: i64) -> StoreFuture<'a, Option<Located>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(
                "SELECT p.host, p.server, p.connection, s.admin_url, s.fingerprint, s.lease_until
                 FROM presence p LEFT JOIN servers s ON s.id = p.server AND s.lease_until >= ?2
                 WHERE p.host = ?1 AND p.lease_until >= ?2",
            )?;
            Ok(statement
                .query_row(params![host, now], |row| {
                    let presence = presence_row(row)?;
                    let admin_url: Option<String> = row.get(3)?;
                    let fingerprint: Option<String> = row.get(4)?;
                    let lease_until: Option<i64> = row.get(5)?;
                    let server = admin_url.zip(fingerprint).zip(lease_until).map(
                        |((admin_url, fingerprint), lease_until)| ServerRecord {
                            id: presence.server.clone(),
                            admin_url,
                            fingerprint,
                            lease_until,
                        },
                    );
                    Ok(Located { presence, server })
                })
                .optional()?)
        })())
    }

    fn server<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Option<ServerRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(
                "SELECT id, admin_url, fingerprint, lease_until FROM servers
                 WHERE id = ?1 AND lease_until >= ?2",
            )?;
            Ok(statement
                .query_row(params![id, now], |row| {
                    Ok(ServerRecord {
                        id: row.get(0)?,
                        admin_url: row.get(1)?,
                        fingerprint: row.get(2)?,
                        lease_until: row.get(3)?,
                    })
                })
                .optional()?)
        })())
    }

    fn servers(&self, now: i64) -> StoreFuture<'_, Vec<ServerRecord>> {
        ready((|| {
            let db = self.db();
            let mut statement = db.prepare_cached(
                "SELECT id, admin_url, fingerprint, lease_until FROM servers
                 WHERE lease_until >= ?1 ORDER BY id",
            )?;
            let rows = statement.query_map(params![now], |row| {
                Ok(ServerRecord {
                    id: row.get(0)?,
                    admin_url: row.get(1)?,
                    fingerprint: row.get(2)?,
                    lease_until: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })())
    }

    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<ClusterEvent>> {
        None
    }
}
