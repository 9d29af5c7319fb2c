//! The org resource as the API shows it.

use crate::ids::OrgId;
use crate::timefmt::rfc3339;
use serde::{Deserialize, Serialize};

/// `GET /v1/org` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgView {
    pub id: OrgId,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl OrgView {
    /// Builds the view from stored columns (times in Unix ms).
    pub fn from_row(id: OrgId, name: String, allowed_origins_json: &str, created_at: i64, updated_at: i64) -> Self {
        Self {
            id,
            name,
            allowed_origins: serde_json::from_str(allowed_origins_json).unwrap_or_default(),
            created_at: rfc3339(created_at),
            updated_at: rfc3339(updated_at),
        }
    }
}
