//! The budget of connections that have not authenticated yet, kept apart from the places of
//! those that have: a cap per address and one in total. A client that opens connections and
//! never logs in (half-open sessions, handshake floods) runs into these caps, while an
//! authenticated user's connection has left the budget and counts against the server's own
//! connection limit instead. Used by every server of the project (the simulator's ports,
//! rrmt-server), so the rule is the same everywhere.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The shared budget; clones share it.
#[derive(Debug, Clone)]
pub struct PreAuthBudget {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug)]
struct Counts {
    per_address: u32,
    total: u32,
    in_use: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetExceeded {
    /// The address has as many unauthenticated connections as it may.
    #[error("{limit} unauthenticated connections from this address at once")]
    PerAddress {
        /// The cap.
        limit: u32,
    },
    /// The server has as many unauthenticated connections as it takes.
    #[error("{limit} unauthenticated connections in total at once")]
    Total {
        /// The cap.
        limit: u32,
    },
}

impl PreAuthBudget {
    /// At most `per_address` unauthenticated connections from one address and `total` from all.
    /// The table holds only addresses with such connections open, so its size is bounded by
    /// `total`.
    pub fn new(per_address: u32, total: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Counts {
                per_address,
                total,
                in_use: 0,
                by_address: HashMap::new(),
            })),
        }
    }

    /// A place for a new connection from `ip`, held until the slot is dropped (when the
    /// connection authenticated or ended).
    pub fn take(&self, ip: IpAddr) -> Result<PreAuthSlot, BudgetExceeded> {
        let mut counts = self.lock();
        if counts.in_use >= counts.total {
            return Err(BudgetExceeded::Total {
                limit: counts.total,
            });
        }
        let limit = counts.per_address;
        let count = counts.by_address.entry(ip).or_insert(0);
        if *count >= limit {
            return Err(BudgetExceeded::PerAddress { limit });
        }
        *count += 1;
        counts.in_use += 1;
        Ok(PreAuthSlot {
            budget: self.clone(),
            ip,
        })
    }

    /// Unauthenticated connections counted now.
    pub fn in_use(&self) -> u32 {
        self.lock().in_use
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counting stays right even if a holder panicked: the guard's data is plain numbers.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One unauthenticated connection's place in a [`PreAuthBudget`]; dropping it gives the place
/// back (drop it once the connection authenticated).
#[derive(Debug)]
#[must_use = "the place is given back when the slot is dropped"]
pub struct PreAuthSlot {
    budget: PreAuthBudget,
    ip: IpAddr,
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut counts = self.budget.lock();
        counts.in_use -= 1;
        if let Some(count) = counts.by_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.by_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total_and_gives_places_back() {
        let budget = PreAuthBudget::new(2, 3);
        let (a, b, c) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        let a1 = budget.take(a).unwrap();
        let _a2 = budget.take(a).unwrap();
        assert_eq!(
            budget.take(a).unwrap_err(),
            BudgetExceeded::PerAddress { limit: 2 }
        );
        let _b1 = budget.take(b).unwrap();
        assert_eq!(
            budget.take(c).unwrap_err(),
            BudgetExceeded::Total { limit: 3 }
        );
        assert_eq!(budget.in_use(), 3);
        drop(a1);
        assert_eq!(budget.in_use(), 2);
        let _c1 = budget.take(c).unwrap();
        assert_eq!(budget.lock().by_address.len(), 3);
    }

    #[test]
    fn the_table_forgets_addresses_with_nothing_open() {
        let budget = PreAuthBudget::new(1, 10);
        for i in 0..100u8 {
            drop(budget.take(IpAddr::from([192, 0, 2, i])).unwrap());
        }
        assert!(budget.lock().by_address.is_empty());
        assert_eq!(budget.in_use(), 0);
    }
}
