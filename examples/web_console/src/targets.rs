//! Which `host:port` the gateway may reach: an allow-list of patterns, so that the console is
//! not an open jump box into every network the gateway sees.

/// One `host:port` pattern: the host exact (case-insensitive), `*`, or `*.suffix`; the port a
/// number or `*`. IPv6 hosts in brackets: `[::1]:22`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    host: String,
    port: Option<u16>,
}

impl std::str::FromStr for TargetPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| {
            format!("{text:?}: want HOST:PORT (HOST may be *, *.domain; PORT may be *)")
        })?;
        let port = match port {
            "*" => None,
            p => Some(p.parse().map_err(|_| format!("{text:?}: bad port {p:?}"))?),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('*') && host != "*" && !host.starts_with("*.") {
            return Err(format!("{text:?}: a host wildcard is * or *.domain"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => write!(f, "{host}:*"),
        }
    }
}

impl TargetPattern {
    /// Whether `host:port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => host == self.host,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// The allow-list: a target passes when any pattern matches.
#[derive(Debug, Clone, Default)]
pub struct TargetList(pub Vec<TargetPattern>);

impl TargetList {
    /// Whether `host:port` may be reached.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.0.iter().any(|p| p.matches(host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let list = TargetList(
            ["127.0.0.1:22", "*.lab.example:*", "[::1]:2222"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect(),
        );
        assert!(list.allows("127.0.0.1", 22));
        assert!(!list.allows("127.0.0.1", 23));
        assert!(list.allows("vm1.LAB.example", 2200));
        assert!(!list.allows("lab.example", 22));
        assert!(!list.allows("evil-lab.example", 22));
        assert!(list.allows("::1", 2222));
        assert!("host".parse::<TargetPattern>().is_err());
        assert!("a*b:22".parse::<TargetPattern>().is_err());
        assert_eq!(
            "*.lab:*".parse::<TargetPattern>().unwrap().to_string(),
            "*.lab:*"
        );
    }
}
