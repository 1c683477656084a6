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
    /// the feature is off or consent is missing, `Busy` when one is open, else `Success`, in
    /// which case the session is now open until [`SessionGate::release`].
    pub fn start(&mut self, kind: SessionKind, device: &Device) -> StartStatus {
        let available = match kind {
            SessionKind::Sol => device.sol_enabled() && device.consent_satisfied(false),
            SessionKind::Ider => device.ider_enabled() && device.consent_satisfied(false),
            SessionKind::Kvm => device.kvm_session_allowed(),
        };
        if !available {
            StartStatus::Unsupported
        } else if !self.open.insert(kind) {
            StartStatus::Busy
        } else {
            StartStatus::Success
        }
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
    fn one_session_of_each_type() {
        let device = Device::new(DeviceConfig::new("16.1.25", [1; 16]));
        let mut gate = SessionGate::default();
        assert_eq!(gate.start(SessionKind::Sol, &device), StartStatus::Success);
        assert_eq!(gate.start(SessionKind::Sol, &device), StartStatus::Busy);
        assert!(gate.is_open(SessionKind::Sol));
        gate.release(SessionKind::Sol);
        assert_eq!(gate.start(SessionKind::Sol, &device), StartStatus::Success);
    }
}
