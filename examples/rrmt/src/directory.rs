//! Where every agent of the cluster is, kept in memory by each server from the registry's
//! notifications, so that an exec through this server to an agent on another needs no
//! database query.
//!
//! The registry stays the authority: a host the directory does not know, or one it places on a
//! server whose lease ran out, is looked up in the registry; an entry gone stale (a notification
//! missed while the listening connection was down) is dropped when the server it names answers
//! that it does not hold the agent, and the registry is asked instead.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::registry::{Presence, ServerRecord};

/// Hosts by the server holding their agents, and the servers whose leases run.
#[derive(Debug, Default)]
pub struct Directory {
    /// Server ids are shared by all their hosts' entries (a few servers, many agents).
    hosts: Mutex<HashMap<Box<str>, Arc<str>>>,
    servers: Mutex<HashMap<Arc<str>, ServerRecord>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Directory {
    /// Replaces what is known of the servers (at each lease renewal).
    pub fn set_servers(&self, servers: Vec<ServerRecord>) {
        let mut known = lock(&self.servers);
        known.clear();
        for server in servers {
            known.insert(Arc::from(server.id.as_str()), server);
        }
    }

    /// Loads every live presence (at start).
    pub fn load(&self, presence: Vec<Presence>) {
        let mut ids: HashSet<Arc<str>> = HashSet::new();
        let mut hosts = lock(&self.hosts);
        for p in presence {
            let id = match ids.get(p.server.as_str()) {
                Some(id) => Arc::clone(id),
                None => {
                    let id: Arc<str> = Arc::from(p.server.as_str());
                    ids.insert(Arc::clone(&id));
                    id
                }
            };
            hosts.insert(p.host.into_boxed_str(), id);
        }
    }

    /// `host`'s agent connected to `server`.
    pub fn connected(&self, host: &str, server: &str) {
        let id = {
            let servers = lock(&self.servers);
            servers
                .get_key_value(server)
                .map_or_else(|| Arc::from(server), |(id, _)| Arc::clone(id))
        };
        lock(&self.hosts).insert(host.into(), id);
    }

    /// `host`'s agent disconnected from `server` (an entry naming another server stays: the
    /// agent connected there since).
    pub fn disconnected(&self, host: &str, server: &str) {
        let mut hosts = lock(&self.hosts);
        if hosts.get(host).is_some_and(|s| &**s == server) {
            hosts.remove(host);
        }
    }

    /// Drops what is known of `host`.
    pub fn forget(&self, host: &str) {
        lock(&self.hosts).remove(host);
    }

    /// The server holding `host`'s agent, if known and its lease runs at `now`.
    pub fn lookup(&self, host: &str, now: i64) -> Option<ServerRecord> {
        let id = lock(&self.hosts).get(host).cloned()?;
        lock(&self.servers)
            .get(&id)
            .filter(|s| s.lease_until >= now)
            .cloned()
    }

    /// Hosts known.
    pub fn len(&self) -> usize {
        lock(&self.hosts).len()
    }

    /// Whether no host is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, lease_until: i64) -> ServerRecord {
        ServerRecord {
            id: id.into(),
            admin_url: format!("wss://{id}:7701"),
            fingerprint: "AB".into(),
            lease_until,
        }
    }

    #[test]
    fn entries_follow_connections_and_servers_leases() {
        let directory = Directory::default();
        directory.set_servers(vec![server("s1", 100), server("s2", 50)]);
        directory.load(vec![Presence {
            host: "a".into(),
            server: "s2".into(),
            connection: 1,
        }]);
        assert_eq!(directory.lookup("a", 10), Some(server("s2", 50)));
        // s2 stopped renewing: its entries lead nowhere until the registry is asked.
        assert_eq!(directory.lookup("a", 60), None);
        directory.connected("a", "s1");
        assert_eq!(directory.lookup("a", 60), Some(server("s1", 100)));
        // The old connection's end does not undo the new one.
        directory.disconnected("a", "s2");
        assert_eq!(directory.lookup("a", 60), Some(server("s1", 100)));
        directory.disconnected("a", "s1");
        assert_eq!((directory.lookup("a", 60), directory.len()), (None, 0));
        directory.connected("b", "s3");
        assert_eq!(directory.lookup("b", 0), None, "s3 is not a known server");
        directory.forget("b");
        assert!(directory.is_empty());
    }
}
