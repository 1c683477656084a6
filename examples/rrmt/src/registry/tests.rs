//! The same tests on both back ends: SQLite in a temporary file, PostgreSQL in a throwaway
//! cluster (`initdb` and `pg_ctl` on a loopback port).

use super::*;

use oobkit_testkit::TempDir;

fn audit_start<'a>(host: &'a str, action: &'a str, detail: &'a str, at: i64) -> AuditStart<'a> {
    AuditStart {
        at,
        who: "admin",
        address: "127.0.0.1",
        host,
        action,
        detail,
        server: "s1",
    }
}

fn connected<'a>(host: &'a str, server: &'a str, connection: i64, now: i64) -> Connected<'a> {
    Connected {
        host,
        server,
        connection,
        address: "127.0.0.1:5000",
        agent_name: "box",
        now,
        lease_until: now + 60,
    }
}

fn announcement(id: &str, lease_until: i64) -> ServerRecord {
    ServerRecord {
        id: id.into(),
        admin_url: format!("wss://{id}.example:7701"),
        fingerprint: "AB:CD".into(),
        lease_until,
    }
}

/// Hosts, tokens and audit entries, as a database that was closed and opened again sees them.
async fn hosts_tokens_and_audit(store: &dyn Store, reopen: impl AsyncFnOnce() -> Arc<dyn Store>) {
    store
        .create_host("web1", &[7; 16], "id-1", "admin", 100)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_host("web1", &[8; 16], "id-2", "admin", 101)
            .await,
        Err(RegistryError::NameTaken(_))
    ));
    let id = store
        .audit_start(audit_start("web1", "exec", "uname -a", 102))
        .await
        .unwrap();
    store.audit_end(id, 103, Some(0), None).await.unwrap();
    store
        .agent_connected(connected("web1", "s1", 1, 104))
        .await
        .unwrap();
    store
        .set_admin(
            "alice",
            &AdminSecrets {
                ha1_md5: "m".into(),
                ha1_sha256: "s".into(),
            },
        )
        .await
        .unwrap();
    let store = reopen().await;
    assert_eq!(store.admins().await.unwrap()[0].0, "alice");
    let host = store.host_by_token(&[7; 16]).await.unwrap().unwrap();
    assert_eq!(store.host("web1").await.unwrap().as_ref(), Some(&host));
    assert!(store.host("web2").await.unwrap().is_none());
    assert_eq!(store.hosts().await.unwrap(), vec![host.clone()]);
    assert_eq!(host.name, "web1");
    assert_eq!(host.last_seen, Some(104));
    assert_eq!(host.agent_name.as_deref(), Some("box"));
    assert!(store.host_by_token(&[9; 16]).await.unwrap().is_none());
    assert!(store.revoke("web1", 105).await.unwrap());
    assert!(!store.revoke("web1", 106).await.unwrap());
    assert!(matches!(
        store.revoke("nope", 106).await,
        Err(RegistryError::UnknownHost(_))
    ));
    // An exec still running when the server was killed is closed at its next start; another
    // server's open entry is left alone.
    store
        .audit_start(audit_start("web1", "exec", "sleep 99", 107))
        .await
        .unwrap();
    store
        .audit_start(AuditStart {
            server: "s2",
            ..audit_start("web1", "exec", "sleep 98", 108)
        })
        .await
        .unwrap();
    assert_eq!(store.close_interrupted("s1", 200).await.unwrap(), 1);
    assert_eq!(store.close_interrupted("s1", 201).await.unwrap(), 0);
    let audit = store.audit(10).await.unwrap();
    assert_eq!(audit.len(), 3);
    assert_eq!((audit[0].exit, audit[0].ended), (Some(0), Some(103)));
    assert_eq!(audit[0].server.as_deref(), Some("s1"));
    assert_eq!(
        (audit[1].ended, audit[1].outcome.as_deref()),
        (Some(200), Some("server stopped"))
    );
    assert_eq!(audit[2].ended, None);
    assert_eq!(store.audit(1).await.unwrap()[0].id, audit[2].id);
}

/// Leases: the newest connection wins, a replaced connection's disconnection changes nothing,
/// renewals keep leases, a server that stops renewing loses its agents and its open entries
/// are closed by whoever renews next, and revoked hosts are reported to their holder.
async fn presence_and_leases(store: &dyn Store) {
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        store
            .create_host(name, &[i as u8; 16], &format!("id-{name}"), "admin", 1000)
            .await
            .unwrap();
    }
    let now = 1000;
    store
        .renew(&announcement("s1", now + 60), now)
        .await
        .unwrap();
    store
        .renew(&announcement("s2", now + 60), now)
        .await
        .unwrap();
    assert_eq!(
        store
            .agent_connected(connected("a", "s1", 1, now))
            .await
            .unwrap(),
        None
    );
    store
        .agent_connected(connected("b", "s2", 1, now))
        .await
        .unwrap();
    // "a" connects again, to s2: the s1 connection is the one replaced.
    let replaced = store
        .agent_connected(Connected {
            address: "127.0.0.2:6000",
            ..connected("a", "s2", 2, now + 1)
        })
        .await
        .unwrap();
    assert_eq!(
        replaced,
        Some(Presence {
            host: "a".into(),
            server: "s1".into(),
            connection: 1
        })
    );
    // s1 then sees its old connection end: the new one's record and lease stay.
    store
        .agent_disconnected(connected("a", "s1", 1, now + 2))
        .await
        .unwrap();
    let a = store.locate("a", now + 2).await.unwrap().unwrap();
    assert_eq!(
        (a.presence.server.as_str(), a.presence.connection),
        ("s2", 2)
    );
    assert_eq!(a.server.unwrap().admin_url, "wss://s2.example:7701");
    let record = store.host("a").await.unwrap().unwrap();
    assert_eq!(record.last_address.as_deref(), Some("127.0.0.2:6000"));
    assert_eq!(store.presence(now + 2).await.unwrap().len(), 2);
    // s2 runs an exec on "b", then stops renewing; s1 renews past s2's lease.
    store
        .audit_start(AuditStart {
            server: "s2",
            ..audit_start("b", "exec", "sleep 99", now + 3)
        })
        .await
        .unwrap();
    let later = now + 62;
    let renewal = store
        .renew(&announcement("s1", later + 60), later)
        .await
        .unwrap();
    assert_eq!(renewal.closed_audits, 1);
    assert!(store.locate("a", later).await.unwrap().is_none());
    assert!(store.presence(later).await.unwrap().is_empty());
    assert!(store.server("s2", later).await.unwrap().is_none());
    assert_eq!(
        store.server("s1", later).await.unwrap().unwrap().admin_url,
        "wss://s1.example:7701"
    );
    let entry = store.audit(1).await.unwrap().remove(0);
    assert_eq!(
        (entry.ended, entry.outcome.as_deref()),
        (Some(later), Some("server s2 stopped"))
    );
    // A revoked host s1 holds is reported at its renewal; the disconnection drops the lease.
    store
        .agent_connected(connected("c", "s1", 7, later))
        .await
        .unwrap();
    store.revoke("c", later).await.unwrap();
    let renewal = store
        .renew(&announcement("s1", later + 61), later + 1)
        .await
        .unwrap();
    assert_eq!(renewal.revoked, vec!["c".to_owned()]);
    store
        .agent_disconnected(connected("c", "s1", 7, later + 2))
        .await
        .unwrap();
    assert!(store.locate("c", later + 2).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_keeps_hosts_tokens_and_audit() {
    let dir = TempDir::new("sqlite-a");
    let path = dir.0.join("registry.sqlite");
    let store = open(&Database::Sqlite(path.clone())).await.unwrap();
    hosts_tokens_and_audit(&*store, async || {
        open(&Database::Sqlite(path)).await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn sqlite_presence_and_leases() {
    let dir = TempDir::new("sqlite-b");
    let store = open(&Database::Sqlite(dir.0.join("registry.sqlite")))
        .await
        .unwrap();
    presence_and_leases(&*store).await;
}

#[tokio::test]
async fn sqlite_databases_of_earlier_releases_are_migrated() {
    let dir = TempDir::new("sqlite-c");
    let path = dir.0.join("registry.sqlite");
    {
        // The single-server schema as earlier releases wrote it, without a version table.
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE hosts (name TEXT PRIMARY KEY, host_id TEXT NOT NULL UNIQUE,
               token_sha256 BLOB NOT NULL UNIQUE, created INTEGER NOT NULL,
               created_by TEXT NOT NULL, revoked INTEGER, last_seen INTEGER,
               last_address TEXT, agent_name TEXT);
             CREATE TABLE admins (name TEXT PRIMARY KEY, ha1_md5 TEXT NOT NULL,
               ha1_sha256 TEXT NOT NULL);
             CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
               who TEXT NOT NULL, address TEXT NOT NULL, host TEXT NOT NULL,
               action TEXT NOT NULL, detail TEXT NOT NULL, ended INTEGER, exit INTEGER,
               outcome TEXT);
             INSERT INTO audit (at, who, address, host, action, detail)
               VALUES (1, 'admin', '127.0.0.1', 'web1', 'exec', 'sleep 99');",
        )
        .unwrap();
    }
    let store = open(&Database::Sqlite(path.clone())).await.unwrap();
    // Its open entry had no server: it was this one's.
    assert_eq!(store.close_interrupted("me", 5).await.unwrap(), 1);
    presence_and_leases(&*store).await;
    drop(store);
    // A schema newer than the program is refused, not guessed at.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_migrations VALUES (99, 0)", [])
        .unwrap();
    assert!(matches!(
        open(&Database::Sqlite(path)).await,
        Err(RegistryError::SchemaTooNew { found: 99, .. })
    ));
}

#[tokio::test]
async fn postgres_keeps_hosts_tokens_and_audit_and_leases() {
    let cluster = oobkit_testkit::postgres::Postgres::start();
    let url = cluster.database("registry_a");
    let store = open(&Database::Postgres(url.clone())).await.unwrap();
    hosts_tokens_and_audit(&*store, async || {
        open(&Database::Postgres(url)).await.unwrap()
    })
    .await;
    let url = cluster.database("registry_b");
    // Two servers migrating one fresh database at once: one applies, the other finds it done.
    let database = Database::Postgres(url);
    let (first, second) = tokio::join!(open(&database), open(&database));
    let (store, _other) = (first.unwrap(), second.unwrap());
    presence_and_leases(&*store).await;
}

#[tokio::test]
async fn postgres_tells_every_server_of_revocations_and_moves() {
    let cluster = oobkit_testkit::postgres::Postgres::start();
    let url = cluster.database("registry_events");
    let one = open(&Database::Postgres(url.clone())).await.unwrap();
    let two = open(&Database::Postgres(url)).await.unwrap();
    let mut events = two.events().expect("PostgreSQL publishes events");
    assert!(two.events().is_none(), "the events are taken once");
    one.create_host("web1", &[1; 16], "id", "admin", 1)
        .await
        .unwrap();
    one.agent_connected(connected("web1", "s1", 1, 1))
        .await
        .unwrap();
    two.agent_connected(connected("web1", "s2", 4, 2))
        .await
        .unwrap();
    one.revoke("web1", 3).await.unwrap();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .expect("a notification within 5 s")
            .expect("the listener runs")
    };
    let presence = |server: &str, connection| Presence {
        host: "web1".into(),
        server: server.into(),
        connection,
    };
    assert_eq!(
        next().await,
        ClusterEvent::Connected {
            presence: presence("s1", 1),
            replaced: None
        }
    );
    assert_eq!(
        next().await,
        ClusterEvent::Connected {
            presence: presence("s2", 4),
            replaced: Some(presence("s1", 1))
        }
    );
    assert_eq!(
        next().await,
        ClusterEvent::Revoked {
            host: "web1".into()
        }
    );
    // The replaced connection's end is not news; the current one's is.
    one.agent_disconnected(connected("web1", "s1", 1, 4))
        .await
        .unwrap();
    two.agent_disconnected(connected("web1", "s2", 4, 5))
        .await
        .unwrap();
    assert_eq!(
        next().await,
        ClusterEvent::Disconnected {
            presence: presence("s2", 4)
        }
    );
    assert_eq!(one.servers(0).await.unwrap(), Vec::new());
    one.renew(&announcement("s1", 100), 5).await.unwrap();
    assert_eq!(one.servers(5).await.unwrap(), vec![announcement("s1", 100)]);
    assert!(matches!(
        open(&Database::Postgres("postgres://x@db.example.net/x".into())).await,
        Err(RegistryError::Url(_))
    ));
}
