//! Key scopes (`ingest`, `read`, `admin`) and sets of them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One permission a key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Write interactions.
    Ingest,
    /// Read interactions, alerts, MCP.
    Read,
    /// Keys, org settings, audit log, erasure.
    Admin,
}

impl Scope {
    /// All scopes, in canonical order.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope name (exact, lower case).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored in D1 as a comma-separated list in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// `ingest,read` — the storage form.
    pub fn to_db(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    /// Parses the storage form; unknown names make it `None`.
    pub fn from_db(s: &str) -> Option<Self> {
        if s.is_empty() {
            return Some(Self::default());
        }
        s.split(',').map(Scope::parse).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_roundtrip_is_canonical() {
        let s = Scopes::from_db("admin,ingest").unwrap();
        assert!(s.contains(Scope::Admin) && s.contains(Scope::Ingest) && !s.contains(Scope::Read));
        assert_eq!(s.to_db(), "ingest,admin");
        assert_eq!(Scopes::from_db("ingest,root"), None);
        assert_eq!(Scopes::from_db("").unwrap(), Scopes::default());
        assert_eq!(Scopes::all().to_db(), "ingest,read,admin");
    }

    #[test]
    fn json_form_is_a_list() {
        let s: Scopes = serde_json::from_str(r#"["read","admin"]"#).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["read","admin"]"#);
        assert!(serde_json::from_str::<Scopes>(r#"["owner"]"#).is_err());
    }
}
