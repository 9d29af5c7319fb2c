//! interlog's Durable Objects, compiled into the same wasm module as the front
//! Worker: `OrgActor` (one per org, owns the org's live key state and every
//! read and write of its rows) and `Janitor` (singleton, retention of rows that
//! belong to no org). `platform` and `audit` are the thin adapters both sides
//! share.

pub mod alarm;
pub mod audit;
pub mod ctx;
pub mod dispatch;
pub mod due;
pub mod effects;
pub mod erasure;
pub mod export;
pub mod interactions;
pub mod janitor;
pub mod key_ops;
pub mod keys;
pub mod limits;
pub mod moving;
pub mod org_actor;
pub mod org_ops;
pub mod platform;
pub mod records;
pub mod retention;
pub mod webhooks;

pub use janitor::Janitor;
pub use org_actor::OrgActor;
