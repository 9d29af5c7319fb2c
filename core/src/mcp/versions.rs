//! The protocol revisions served, their negotiation and the era each belongs to.

use serde_json::Value;

/// `_meta` key of the per-request protocol version (2026-07-28).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the per-request client capabilities (2026-07-28).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key identifying the server in results (2026-07-28).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// A protocol revision this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// Streamable HTTP's first revision; assumed when a request has no header.
    V2025_03_26,
    /// Adds the `MCP-Protocol-Version` header, titles and structured tool output; drops batching.
    V2025_06_18,
    /// The newest handshake (legacy) revision.
    V2025_11_25,
    /// Stateless: per-request `_meta`, `server/discover`, no `initialize`.
    V2026_07_28,
}

impl Version {
    /// Every version served, newest first (as `supportedVersions` lists them).
    pub const SUPPORTED: [Version; 4] =
        [Version::V2026_07_28, Version::V2025_11_25, Version::V2025_06_18, Version::V2025_03_26];
    /// What `initialize` answers when the client asks for a version not served.
    pub const LATEST_HANDSHAKE: Version = Version::V2025_11_25;
    /// The version of a request without `MCP-Protocol-Version` (the transport spec's default).
    pub const WITHOUT_HEADER: Version = Version::V2025_03_26;

    /// Parses a version string exactly.
    pub fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2025_03_26 => "2025-03-26",
            Version::V2025_06_18 => "2025-06-18",
            Version::V2025_11_25 => "2025-11-25",
            Version::V2026_07_28 => "2026-07-28",
        }
    }

    /// Whether this is a stateless (per-request `_meta`) revision.
    pub fn is_modern(self) -> bool {
        self >= Version::V2026_07_28
    }

    /// Titles, `outputSchema` and `structuredContent` exist from 2025-06-18 on.
    pub(super) fn has_structured_output(self) -> bool {
        self >= Version::V2025_06_18
    }

    /// The version `initialize` answers for a requested one: the same when it
    /// is a handshake version served here, else the newest handshake version.
    pub fn negotiate(requested: &str) -> Version {
        match Version::parse(requested) {
            Some(v) if !v.is_modern() => v,
            _ => Version::LATEST_HANDSHAKE,
        }
    }
}

/// The supported versions as strings, newest first.
pub fn supported_versions() -> Vec<&'static str> {
    Version::SUPPORTED.iter().map(|v| v.as_str()).collect()
}

/// A header-less request that is plainly of the modern era (it carries the
/// per-request `_meta` version, or is `server/discover`); it is then refused
/// by the header checks rather than served as 2025-03-26.
pub(super) fn looks_modern(body: &Value) -> bool {
    let meta_version =
        body.get("params").and_then(|p| p.get("_meta")).and_then(|m| m.get(META_PROTOCOL_VERSION)).is_some();
    meta_version || body.get("method").and_then(Value::as_str) == Some("server/discover")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_negotiate() {
        assert_eq!(Version::parse("2025-11-25"), Some(Version::V2025_11_25));
        assert_eq!(Version::parse("2024-11-05"), None);
        assert_eq!(Version::negotiate("2025-06-18"), Version::V2025_06_18);
        assert_eq!(Version::negotiate("2025-03-26"), Version::V2025_03_26);
        assert_eq!(Version::negotiate("2024-11-05"), Version::V2025_11_25);
        assert_eq!(Version::negotiate("2026-07-28"), Version::V2025_11_25);
        assert_eq!(supported_versions(), vec!["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"]);
    }
}
