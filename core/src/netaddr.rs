//! Client addresses as rate-limit keys: IPv4 as is, IPv6 folded to its /64
//! (one subscriber usually holds a whole /64), and for IPv6 a second key, its
//! /48 (one routed site: 65,536 /64s that would each get the per-IP budget).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A client address in its one canonical form (`IpAddr`'s text: IPv4 dotted,
/// IPv6 compressed lower case, IPv4-mapped IPv6 as IPv4). This is the form
/// stored in audit rows and logs, whatever the path that saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ClientIp(IpAddr);

impl ClientIp {
    /// Parses a `CF-Connecting-IP` value; `None` if it is not an IP address.
    pub fn parse(raw: &str) -> Option<Self> {
        let ip = raw.trim().parse::<IpAddr>().ok()?;
        Some(Self(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        }))
    }

    /// The L1 key of this address (IPv6 folded to its /64).
    pub fn l1_key(self) -> String {
        l1_key(&self.0.to_string()).unwrap_or_default()
    }

    /// The key of the second L1 tier: an IPv6 address folded to its /48;
    /// `None` for IPv4 (it has the per-IP tier only).
    pub fn l1_key_48(self) -> Option<String> {
        match self.0 {
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        }
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ClientIp> for String {
    fn from(ip: ClientIp) -> String {
        ip.to_string()
    }
}

impl TryFrom<String> for ClientIp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("not an IP address: {s}"))
    }
}

/// The L1 key for a client address; `None` if it is not an IP address.
pub fn l1_key(raw: &str) -> Option<String> {
    match raw.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_as_is() {
        assert_eq!(l1_key("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(l1_key(" 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
    }

    // claim: posture.l1
    #[test]
    fn ipv6_folded_to_64() {
        let a = l1_key("2001:db8:1:2:aaaa::1");
        assert_eq!(a.as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(l1_key("2001:0db8:0001:0002:ffff:ffff:ffff:ffff"), a);
        assert_ne!(l1_key("2001:db8:1:3::1"), a);
        assert_eq!(l1_key("::ffff:198.51.100.1").as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn client_ip_has_one_canonical_form() {
        let a = ClientIp::parse(" 2001:0DB8::0001 ").unwrap();
        assert_eq!(a.to_string(), "2001:db8::1");
        assert_eq!(ClientIp::parse("::ffff:198.51.100.1").unwrap().to_string(), "198.51.100.1");
        assert_eq!(ClientIp::parse("198.51.100.1").unwrap().l1_key(), "198.51.100.1");
        assert_eq!(a.l1_key(), "2001:db8:0:0::/64");
        assert!(ClientIp::parse("x").is_none());
        let back: ClientIp = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }

    // claim: threat.failed-login-writes
    #[test]
    fn ipv6_has_a_48_key_and_ipv4_none() {
        let a = ClientIp::parse("2001:db8:1:2:aaaa::1").unwrap();
        assert_eq!(a.l1_key_48().as_deref(), Some("2001:db8:1::/48"));
        let same_48 = ClientIp::parse("2001:0db8:0001:ffff:ffff:ffff:ffff:ffff").unwrap();
        assert_eq!(same_48.l1_key_48(), a.l1_key_48());
        assert_ne!(same_48.l1_key(), a.l1_key(), "different /64s");
        assert_ne!(ClientIp::parse("2001:db8:2::1").unwrap().l1_key_48(), a.l1_key_48());
        assert_eq!(ClientIp::parse("::1").unwrap().l1_key_48().as_deref(), Some("0:0:0::/48"));
        assert_eq!(ClientIp::parse("198.51.100.1").unwrap().l1_key_48(), None);
        assert_eq!(ClientIp::parse("::ffff:198.51.100.1").unwrap().l1_key_48(), None, "mapped IPv4 is IPv4");
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(l1_key("not-an-ip"), None);
        assert_eq!(l1_key(""), None);
    }
}
