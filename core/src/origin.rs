//! Web origins (`scheme://host[:port]`) for CORS: parsed strictly in their
//! canonical serialization, so comparison is exact string equality.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A canonical origin: `https://host[:port]`, or `http://` for localhost,
/// 127.0.0.1 and [::1]. Lower-case host, no default port, no path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1" || host == "[::1]"
}

impl Origin {
    /// Parses an origin, explaining what is wrong otherwise.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s.split_once("://").ok_or("must look like https://host[:port]")?;
        if scheme != "https" && scheme != "http" {
            return Err("scheme must be https (or http for localhost)".into());
        }
        if rest.is_empty() {
            return Err("host is missing".into());
        }
        if rest.contains(['/', '?', '#', '@', '\\']) || rest.chars().any(char::is_whitespace) {
            return Err("must be an origin only: no path, query, trailing slash or credentials".into());
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            let (h, tail) = after.split_once(']').ok_or("IPv6 host must be in brackets")?;
            let canonical = h.parse::<std::net::Ipv6Addr>().map_err(|_| "bracketed host must be an IPv6 address")?;
            if canonical.to_string() != h {
                return Err("IPv6 host must be in its canonical (compressed, lower-case) form".into());
            }
            let port = match tail {
                "" => None,
                t => Some(t.strip_prefix(':').ok_or("only :port may follow an IPv6 host")?),
            };
            (format!("[{h}]"), port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && (host.starts_with('[')
                || host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
        if !host_ok {
            return Err("host must be lower-case letters, digits, '-' and '.' (punycode for IDNs)".into());
        }
        if let Some(p) = port {
            let n: u16 = p.parse().ok().filter(|n| *n > 0).ok_or("port must be a number from 1 to 65535")?;
            if p.starts_with('0') || (scheme == "https" && n == 443) || (scheme == "http" && n == 80) {
                return Err("remove the default or zero-padded port".into());
            }
        }
        if scheme == "http" && !is_loopback(&host) {
            return Err("http is only allowed for localhost; use https".into());
        }
        Ok(Self(s.to_string()))
    }

    /// The canonical text (what browsers send in `Origin`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated allowlist (the `CORS_PREFLIGHT_ORIGINS` var),
/// skipping empty and invalid entries.
pub fn parse_list(s: &str) -> Vec<Origin> {
    s.split(',').filter_map(|x| Origin::parse(x.trim()).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // claim: posture.transport
    #[test]
    fn canonical_origins_parse() {
        for ok in [
            "https://app.example.com",
            "https://a.b:8443",
            "http://localhost:3000",
            "http://127.0.0.1:9",
            "https://[2001:db8::1]",
        ] {
            assert_eq!(Origin::parse(ok).unwrap().as_str(), ok);
        }
    }

    // claim: posture.cors, posture.transport
    #[test]
    fn non_canonical_or_unsafe_rejected() {
        for bad in [
            "null",
            "*",
            "https://app.example.com/",
            "https://App.Example.com",
            "https://app.example.com/path",
            "https://app.example.com:443",
            "http://app.example.com",
            "ftp://x.com",
            "https://",
            "https://user@x.com",
            "https://x.com:0",
            "https://x.com:99999",
            "https://x.com:080",
            " https://x.com",
            "https://x.com?q",
            "https://[0]*",
            "https://[zz]x",
            "http://[::1]garbage",
            "https://[2001:DB8::1]",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_skips_junk() {
        let l = parse_list("https://a.com, ,null,http://localhost:1");
        assert_eq!(l.iter().map(Origin::as_str).collect::<Vec<_>>(), vec!["https://a.com", "http://localhost:1"]);
    }
}
