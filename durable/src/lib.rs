//! interlog's Durable Objects, compiled into the same wasm module as the front
//! Worker: `OrgActor` (one per org, owns the org's live key state and every
//! read and write of its rows) and `Janitor` (singleton, retention of rows that
//! belong to no org). `platform` holds the thin adapters both sides share.
#![forbid(unsafe_code)]

pub mod interactions;
pub mod janitor;
pub mod keys;
pub mod limits;
pub mod org_actor;
pub mod platform;
pub mod records;
pub mod retention;

pub use janitor::Janitor;
pub use org_actor::OrgActor;
