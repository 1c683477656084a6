//! Failed authentications by address, bounded: after `limit` failures within `window`, an
//! address is refused until the window has passed (real AMT slows down after failures too).
//! Used by every server of the project (the simulator's ports, rrmt-server).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most addresses tracked; beyond it expired entries are dropped first, then the table is
/// cleared (failing open for brute-force counting is better than growing without bound).
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The table. The time is passed in.
#[derive(Debug)]
pub struct AuthFailures {
    limit: u32,
    window: Duration,
    by_address: HashMap<IpAddr, (u32, Instant)>,
}

impl AuthFailures {
    /// `limit` failures per `window` per address.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            by_address: HashMap::new(),
        }
    }

    /// Whether `ip` is refused now.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.by_address.get(&ip) {
            Some(&(count, since)) if now.duration_since(since) < self.window => count >= self.limit,
            Some(_) => {
                self.by_address.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failure of `ip`; returns whether this one reached the limit (log it once).
    pub fn record(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.by_address.len() >= MAX_TRACKED_ADDRESSES {
            let window = self.window;
            self.by_address
                .retain(|_, (_, since)| now.duration_since(*since) < window);
            if self.by_address.len() >= MAX_TRACKED_ADDRESSES {
                self.by_address.clear();
            }
        }
        let entry = self.by_address.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.0 == self.limit
    }

    /// The window a refused address waits out.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_an_address_for_the_window() {
        let mut failures = AuthFailures::new(3, Duration::from_secs(60));
        let (ip, other) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        assert!(!failures.record(ip, start));
        assert!(!failures.record(ip, start));
        assert!(!failures.blocked(ip, start));
        assert!(
            failures.record(ip, start),
            "the third failure reaches the limit"
        );
        assert!(failures.blocked(ip, start + Duration::from_secs(59)));
        assert!(!failures.blocked(other, start));
        assert!(!failures.blocked(ip, start + Duration::from_secs(61)));
    }
}
