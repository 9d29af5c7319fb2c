//! interlog-core: the pure rules of interlog.
//!
//! No `worker` dependency, no I/O, no clock: time and randomness are passed in
//! by the adapters (`now_ms`, entropy byte arrays). Everything here builds and
//! tests natively.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod credential;
pub mod crockford;
pub mod cursor;
pub mod directory;
pub mod erasure;
pub mod error;
pub mod export;
pub mod field_errors;
pub mod hash;
pub mod ids;
pub mod interaction;
pub mod key;
pub mod keyring;
pub mod keys;
pub mod l1;
pub mod listing;
pub mod mcp;
pub mod moving;
pub mod netaddr;
pub mod operator;
pub mod org;
pub mod origin;
pub mod pepper_cache;
pub mod protocol;
pub mod ratelimit;
pub mod retention;
pub mod routes;
pub mod sanitize;
pub mod scope;
pub mod shard;
pub mod timefmt;
pub mod webhook;

pub use auth::{AuthFailure, AUTH_FLOOR_MS};
pub use error::ApiError;
pub use hash::{KeyDigest, Pepper};
pub use ids::{InteractionId, OrgId, RequestId};
pub use key::{ApiKey, KeyPrefix};
pub use scope::{Scope, Scopes};
