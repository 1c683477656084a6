//! Which redirection sessions may open, as firmware decides: the feature enabled (and the
//! redirection listener on), user consent satisfied, and one session of each type at a time.

use std::collections::HashSet;

use oobkit_redir::codec::{SessionKind, StartStatus};

use crate::Device;

/// The redirection sessions open on one simulated device.
#[derive(Debug, Default)]
pub struct SessionGate {
    open: HashSet<SessionKind>,
}

impl SessionGate {
    /// What the device answers to a request for a `kind` session (0x11): `Unsupported` when
    /// the feature is off or consent is missing, `Busy` when one is open, else `Success`.
    /// Nothing is reserved yet: a client that asks and never authenticates holds no slot.
    pub fn answer(&self, kind: SessionKind, device: &Device) -> StartStatus {
        let available = match kind {
            SessionKind::Sol => device.sol_enabled() && device.consent_satisfied(false),
            SessionKind::Ider => device.ider_enabled() && device.consent_satisfied(false),
            SessionKind::Kvm => device.kvm_session_allowed(),
        };
        if !available {
            StartStatus::Unsupported
        } else if self.open.contains(&kind) {
            StartStatus::Busy
        } else {
            StartStatus::Success
        }
    }

    /// The client authenticated: the `kind` session opens until [`SessionGate::release`].
    /// `false` when another client's session of the type opened while this one was
    /// authenticating (the connection is then closed: 0x11 already said success).
    pub fn claim(&mut self, kind: SessionKind) -> bool {
        self.open.insert(kind)
    }

    /// The `kind` session ended.
    pub fn release(&mut self, kind: SessionKind) {
        self.open.remove(&kind);
    }

    /// Whether a `kind` session is open.
    pub fn is_open(&self, kind: SessionKind) -> bool {
        self.open.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceConfig;

    #[test]
    fn asking_reserves_nothing_and_one_session_of_each_type_opens() {
        let device = Device::new(DeviceConfig::new("16.1.25", [1; 16]));
        let mut gate = SessionGate::default();
        // Any number of unauthenticated requests hold no slot.
        for _ in 0..100 {
            assert_eq!(gate.answer(SessionKind::Sol, &device), StartStatus::Success);
        }
        assert!(gate.claim(SessionKind::Sol));
        assert!(
            !gate.claim(SessionKind::Sol),
            "a second claim of the type fails"
        );
        assert_eq!(gate.answer(SessionKind::Sol, &device), StartStatus::Busy);
        assert!(gate.claim(SessionKind::Kvm), "other types are independent");
        gate.release(SessionKind::Sol);
        assert_eq!(gate.answer(SessionKind::Sol, &device), StartStatus::Success);
    }
}
