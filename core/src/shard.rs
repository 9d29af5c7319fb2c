//! Data shards: their names, the rule that places a new org on one, and what
//! moving an org between two shards copies and compares (tables, keys, the
//! per-table tally of rows and checksum). The directory database holds orgs,
//! keys, org-less audit rows and each org's shard; everything else of an org
//! lives on its shard (docs/scaling.md).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// Binding names of data shards start with this.
pub const BINDING_PREFIX: &str = "DATA_";
/// Longest shard name.
const MAX_LEN: usize = 40;

/// A data shard's name: the name of its D1 binding (`DATA_1`, `DATA_EU_2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShardId(String);

impl ShardId {
    /// `DATA_` then 1–35 of `A-Z 0-9 _`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(BINDING_PREFIX)?;
        let ok = !rest.is_empty()
            && s.len() <= MAX_LEN
            && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        ok.then(|| Self(s.to_string()))
    }

    /// The binding (and the name stored in the directory).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ShardId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("not a shard name (DATA_ then A-Z, 0-9, _): {s:?}"))
    }
}

impl From<ShardId> for String {
    fn from(s: ShardId) -> String {
        s.0
    }
}

/// A shard as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLoad {
    pub shard: ShardId,
    /// Closed shards take no new orgs (their orgs stay).
    pub open: bool,
    /// Orgs placed on it now.
    pub orgs: u64,
}

/// The placement rule: the open shard holding the fewest orgs, the first by
/// name on a tie. `None` when every shard is closed.
pub fn place(shards: &[ShardLoad]) -> Option<ShardId> {
    shards
        .iter()
        .filter(|s| s.open)
        .min_by(|a, b| a.orgs.cmp(&b.orgs).then(a.shard.cmp(&b.shard)))
        .map(|s| s.shard.clone())
}

/// One table of an org's data and how a move reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    /// The column naming the org.
    pub org_column: &'static str,
    /// The columns a page is ordered and resumed by (unique per org).
    pub key: &'static [&'static str],
    /// A column the database numbers itself (`AUTOINCREMENT`): not copied
    /// (the target numbers the rows again, in the same order) and not compared.
    pub renumbered: Option<&'static str>,
    /// SQL of a row's bulk bytes, for tables whose rows can be large (a page
    /// holds what fits in `moving::PAGE_BYTES`).
    pub size: Option<&'static str>,
}

/// Every table of an org's data, in copy order: `orgs` last, so while the
/// interactions are copied the target has no `orgs` row for the quota
/// triggers to count against (an org above a quota lowered since must move
/// too); its counters are then copied as they are and compared like the rest.
pub const TABLES: [Table; 9] = [
    Table {
        name: "interactions",
        org_column: "org_id",
        key: &["id"],
        renumbered: None,
        size: Some("COALESCE(LENGTH(CAST(content AS BLOB)), 0) + COALESCE(LENGTH(CAST(metadata AS BLOB)), 0)"),
    },
    Table { name: "rate_limits", org_column: "org_id", key: &["prefix", "window_start"], renumbered: None, size: None },
    Table { name: "audit_log", org_column: "org_id", key: &["id"], renumbered: Some("id"), size: None },
    Table { name: "alerts", org_column: "org_id", key: &["id"], renumbered: None, size: None },
    Table { name: "erasures", org_column: "org_id", key: &["id"], renumbered: None, size: None },
    Table { name: "webhooks", org_column: "org_id", key: &["id"], renumbered: None, size: None },
    Table {
        name: "webhook_outbox",
        org_column: "org_id",
        key: &["webhook_id", "message_id"],
        renumbered: None,
        size: None,
    },
    Table { name: "webhook_deliveries", org_column: "org_id", key: &["id"], renumbered: Some("id"), size: None },
    Table { name: "orgs", org_column: "id", key: &["id"], renumbered: None, size: None },
];

/// A row as it is written to the target: the renumbered column dropped.
pub fn row_for_copy(table: &Table, row: &Map<String, Value>) -> Map<String, Value> {
    let mut out = row.clone();
    if let Some(col) = table.renumbered {
        out.remove(col);
    }
    out
}

/// Count and order-independent checksum of a table's rows on one shard:
/// the wrapping sum of the first 8 bytes of SHA-256 over each row's
/// canonical JSON (columns sorted, the renumbered column left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub rows: u64,
    pub checksum: u64,
}

impl Tally {
    /// Adds one row as read from a shard.
    pub fn add(&mut self, table: &Table, row: &Map<String, Value>) {
        let mut canonical = row.clone();
        if let Some(col) = table.renumbered {
            canonical.remove(col);
        }
        let sorted: std::collections::BTreeMap<&String, &Value> = canonical.iter().collect();
        let text = serde_json::to_string(&sorted).unwrap_or_default();
        let digest = Sha256::digest(text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        self.rows += 1;
        self.checksum = self.checksum.wrapping_add(u64::from_be_bytes(first));
    }

    /// The checksum as 16 hex digits (JSON numbers lose precision past 2^53).
    pub fn hex(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

/// A column name as the database returned it, checked before it is spliced
/// into SQL (`a-z`, `0-9`, `_`).
pub fn column_name(s: &str) -> Option<&str> {
    let ok =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn load(name: &str, open: bool, orgs: u64) -> ShardLoad {
        ShardLoad { shard: ShardId::parse(name).unwrap(), open, orgs }
    }

    #[test]
    fn shard_names_are_data_bindings() {
        for ok in ["DATA_1", "DATA_EU_2", "DATA_A"] {
            assert_eq!(ShardId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "DATA_", "DB", "data_1", "DATA_1;", "DATA_ 1", "X_DATA_1", &format!("DATA_{}", "1".repeat(40))]
        {
            assert!(ShardId::parse(bad).is_none(), "{bad}");
        }
        assert!(serde_json::from_str::<ShardId>("\"DB\"").is_err());
    }

    #[test]
    fn placement_takes_the_least_loaded_open_shard() {
        assert_eq!(place(&[load("DATA_1", true, 5), load("DATA_2", true, 3)]).unwrap().as_str(), "DATA_2");
        assert_eq!(place(&[load("DATA_2", true, 3), load("DATA_1", true, 3)]).unwrap().as_str(), "DATA_1");
        assert_eq!(place(&[load("DATA_1", true, 9), load("DATA_2", false, 0)]).unwrap().as_str(), "DATA_1");
        assert_eq!(place(&[load("DATA_1", false, 0)]), None);
        assert_eq!(place(&[]), None);
    }

    proptest! {
        #[test]
        fn placement_never_picks_a_closed_shard_nor_a_fuller_one(loads in proptest::collection::vec((any::<bool>(), 0u64..50), 0..6)) {
            let shards: Vec<ShardLoad> =
                loads.iter().enumerate().map(|(i, (open, n))| load(&format!("DATA_{i}"), *open, *n)).collect();
            match place(&shards) {
                None => prop_assert!(shards.iter().all(|s| !s.open)),
                Some(chosen) => {
                    let c = shards.iter().find(|s| s.shard == chosen).unwrap();
                    prop_assert!(c.open);
                    prop_assert!(shards.iter().filter(|s| s.open).all(|s| s.orgs >= c.orgs));
                }
            }
        }

        #[test]
        fn the_checksum_ignores_order_and_renumbering_but_not_content(
            rows in proptest::collection::vec(("[a-z]{0,8}", 0i64..1000), 1..20),
            shift in 1i64..1000,
        ) {
            let table = &TABLES[2];
            let as_rows = |offset: i64| -> Vec<Map<String, Value>> {
                rows.iter().enumerate().map(|(i, (t, n))| {
                    json!({"id": i as i64 + offset, "org_id": "org_x", "action": t, "at": n}).as_object().unwrap().clone()
                }).collect()
            };
            let (mut a, mut b) = (Tally::default(), Tally::default());
            for r in as_rows(0) { a.add(table, &r); }
            for r in as_rows(shift).iter().rev() { b.add(table, r); }
            prop_assert_eq!(a, b);
            let mut changed = as_rows(0);
            changed[0].insert("at".into(), json!(5000));
            let mut c = Tally::default();
            for r in changed { c.add(table, &r); }
            prop_assert_ne!(a, c);
        }
    }

    #[test]
    fn copies_drop_renumbered_columns_only_and_orgs_come_last() {
        let org = json!({"id": "org_x", "used_rows": 7, "used_bytes": 90, "name": "n"});
        assert_eq!(TABLES[8].name, "orgs");
        assert_eq!(Value::Object(row_for_copy(&TABLES[8], org.as_object().unwrap())), org);
        let audit = json!({"id": 4, "org_id": "org_x"});
        assert_eq!(TABLES[2].name, "audit_log");
        assert_eq!(Value::Object(row_for_copy(&TABLES[2], audit.as_object().unwrap())), json!({"org_id": "org_x"}));
    }

    #[test]
    fn column_names_are_plain() {
        assert_eq!(column_name("used_rows"), Some("used_rows"));
        for bad in ["", "a b", "x;--", "Id", "\"x\""] {
            assert_eq!(column_name(bad), None, "{bad}");
        }
    }
}
