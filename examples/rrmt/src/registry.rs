//! The server's registry in SQLite: hosts and their agent tokens, administrators, and the audit
//! log of every exec, shell and token change. WAL mode, so a crash or restart loses nothing
//! that was answered.
//!
//! Tokens are stored as their SHA-256 only: a copy of the database does not let anyone pose as
//! an agent. (Tokens are 128 random bits, so an unsalted hash is enough.)

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// A registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The database failed.
    #[error("registry database: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}

/// An administrator's stored Digest secrets (HA1 for realm [`crate::REALM`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSecrets {
    /// HA1 with MD5.
    pub ha1_md5: String,
    /// HA1 with SHA-256.
    pub ha1_sha256: String,
}

/// The open registry.
#[derive(Debug)]
pub struct Registry {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hosts (
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
);
";

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

fn token_hash(token: &[u8; 16]) -> Vec<u8> {
    Sha256::digest(token).to_vec()
}

impl Registry {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let db = Connection::open(path)?;
        // WAL: readers never wait for the writer, and a commit survives a crash.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db })
    }

    /// Registers host `name` with `token` (only its hash is kept).
    pub fn create_host(
        &self,
        name: &str,
        token: &[u8; 16],
        host_id: &str,
        created_by: &str,
        now: i64,
    ) -> Result<(), RegistryError> {
        let inserted = self.db.execute(
            "INSERT OR IGNORE INTO hosts (name, host_id, token_sha256, created, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, host_id, token_hash(token), now, created_by],
        )?;
        if inserted == 0 {
            return Err(RegistryError::NameTaken(name.into()));
        }
        Ok(())
    }

    /// Every host, by name.
    pub fn hosts(&self) -> Result<Vec<HostRecord>, RegistryError> {
        let mut statement = self
            .db
            .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY name"))?;
        let rows = statement.query_map([], host_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Host `name`.
    pub fn host(&self, name: &str) -> Result<Option<HostRecord>, RegistryError> {
        let mut statement = self
            .db
            .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"))?;
        Ok(statement.query_row(params![name], host_row).optional()?)
    }

    /// The host whose token this is (revoked or not).
    pub fn host_by_token(&self, token: &[u8; 16]) -> Result<Option<HostRecord>, RegistryError> {
        let mut statement = self.db.prepare_cached(&format!(
            "SELECT {HOST_COLUMNS} FROM hosts WHERE token_sha256 = ?1"
        ))?;
        Ok(statement
            .query_row(params![token_hash(token)], host_row)
            .optional()?)
    }

    /// Marks host `name`'s token revoked; false if it already was.
    pub fn revoke(&self, name: &str, now: i64) -> Result<bool, RegistryError> {
        let changed = self.db.execute(
            "UPDATE hosts SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
            params![name, now],
        )?;
        if changed == 0 && self.host(name)?.is_none() {
            return Err(RegistryError::UnknownHost(name.into()));
        }
        Ok(changed == 1)
    }

    /// Records that host `name`'s agent is (or was, until `now`) connected from `address`.
    pub fn seen(
        &self,
        name: &str,
        now: i64,
        address: &str,
        agent_name: &str,
    ) -> Result<(), RegistryError> {
        self.db.execute(
            "UPDATE hosts SET last_seen = ?2, last_address = ?3, agent_name = ?4 WHERE name = ?1",
            params![name, now, address, agent_name],
        )?;
        Ok(())
    }

    /// Starts an audit entry; returns its id for [`Registry::audit_end`].
    pub fn audit_start(
        &self,
        now: i64,
        who: &str,
        address: &str,
        host: &str,
        action: &str,
        detail: &str,
    ) -> Result<i64, RegistryError> {
        self.db.execute(
            "INSERT INTO audit (at, who, address, host, action, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now, who, address, host, action, detail],
        )?;
        Ok(self.db.last_insert_rowid())
    }

    /// Completes audit entry `id`.
    pub fn audit_end(
        &self,
        id: i64,
        now: i64,
        exit: Option<i32>,
        outcome: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.db.execute(
            "UPDATE audit SET ended = ?2, exit = ?3, outcome = ?4 WHERE id = ?1",
            params![id, now, exit, outcome],
        )?;
        Ok(())
    }

    /// Completes every exec and shell entry a previous run left open (the server was killed
    /// while they ran): they say "server stopped" and when that was noticed. Returns how many.
    pub fn close_interrupted(&self, now: i64) -> Result<usize, RegistryError> {
        Ok(self.db.execute(
            "UPDATE audit SET ended = ?1, outcome = 'server stopped'
             WHERE ended IS NULL AND action IN ('exec', 'shell')",
            params![now],
        )?)
    }

    /// The last `limit` audit entries, oldest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<AuditRecord>, RegistryError> {
        let mut statement = self.db.prepare_cached(
            "SELECT id, at, who, address, host, action, detail, ended, exit, outcome FROM
             (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
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
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds or replaces administrator `name`.
    pub fn set_admin(&self, name: &str, secrets: &AdminSecrets) -> Result<(), RegistryError> {
        self.db.execute(
            "INSERT OR REPLACE INTO admins (name, ha1_md5, ha1_sha256) VALUES (?1, ?2, ?3)",
            params![name, secrets.ha1_md5, secrets.ha1_sha256],
        )?;
        Ok(())
    }

    /// Every administrator.
    pub fn admins(&self) -> Result<Vec<(String, AdminSecrets)>, RegistryError> {
        let mut statement = self
            .db
            .prepare_cached("SELECT name, ha1_md5, ha1_sha256 FROM admins")?;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_tokens_and_audit_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("rrmt-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let registry = Registry::open(&path).unwrap();
            registry
                .create_host("web1", &[7; 16], "id-1", "admin", 100)
                .unwrap();
            assert!(matches!(
                registry.create_host("web1", &[8; 16], "id-2", "admin", 101),
                Err(RegistryError::NameTaken(_))
            ));
            let id = registry
                .audit_start(102, "admin", "127.0.0.1", "web1", "exec", "uname -a")
                .unwrap();
            registry.audit_end(id, 103, Some(0), None).unwrap();
            registry.seen("web1", 104, "127.0.0.1:5000", "box").unwrap();
        }
        let registry = Registry::open(&path).unwrap();
        let host = registry.host_by_token(&[7; 16]).unwrap().unwrap();
        assert_eq!(registry.host("web1").unwrap().as_ref(), Some(&host));
        assert!(registry.host("web2").unwrap().is_none());
        assert_eq!(host.name, "web1");
        assert_eq!(host.last_seen, Some(104));
        assert_eq!(host.agent_name.as_deref(), Some("box"));
        assert!(registry.host_by_token(&[9; 16]).unwrap().is_none());
        assert!(registry.revoke("web1", 105).unwrap());
        assert!(!registry.revoke("web1", 106).unwrap());
        assert!(matches!(
            registry.revoke("nope", 106),
            Err(RegistryError::UnknownHost(_))
        ));
        // An exec still running when the server was killed is closed at the next start.
        registry
            .audit_start(107, "admin", "127.0.0.1", "web1", "exec", "sleep 99")
            .unwrap();
        assert_eq!(registry.close_interrupted(200).unwrap(), 1);
        assert_eq!(registry.close_interrupted(201).unwrap(), 0);
        let audit = registry.audit(10).unwrap();
        assert_eq!(audit.len(), 2);
        assert_eq!((audit[0].exit, audit[0].ended), (Some(0), Some(103)));
        let last = audit.last().unwrap();
        assert_eq!(
            (last.ended, last.outcome.as_deref()),
            (Some(200), Some("server stopped"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
