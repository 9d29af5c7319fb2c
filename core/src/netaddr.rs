//! Client addresses as rate-limit keys: IPv4 as is, IPv6 folded to its /64
//! (one subscriber usually holds a whole /64).

use std::net::IpAddr;

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

    #[test]
    fn ipv6_folded_to_64() {
        let a = l1_key("2001:db8:1:2:aaaa::1");
        assert_eq!(a.as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(l1_key("2001:0db8:0001:0002:ffff:ffff:ffff:ffff"), a);
        assert_ne!(l1_key("2001:db8:1:3::1"), a);
        assert_eq!(l1_key("::ffff:198.51.100.1").as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(l1_key("not-an-ip"), None);
        assert_eq!(l1_key(""), None);
    }
}
