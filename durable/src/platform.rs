//! Thin adapters over the Workers runtime shared by the front Worker and the
//! Durable Objects: clock, randomness, configuration, D1 queries and errors.

use interlog_core::config::{binding, Config, ConfigSource};
use interlog_core::shard::ShardId;
use interlog_core::ApiError;
use std::rc::Rc;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, D1Database, Env};

/// Wall-clock Unix milliseconds (advances only across I/O in production).
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// `N` bytes from the platform CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| ApiError::internal(format!("getrandom: {e}")))?;
    Ok(buf)
}

/// Maps a storage failure to a retryable 503, logging the detail.
pub fn storage_error(context: &str, err: worker::Error) -> ApiError {
    console_error!("storage error in {context}: {err}");
    ApiError::Unavailable { retry_after_s: 1, detail: format!("{context}: {err}") }
}

/// The vars of an `Env` as a configuration source. Strings come as they are,
/// numbers (`[vars] X = 5`) as digits; anything else as its debug form (which
/// then fails to parse and is reported).
struct EnvVars<'a>(&'a Env);

impl ConfigSource for EnvVars<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let v = worker::js_sys::Reflect::get(self.0, &JsValue::from_str(name)).ok()?;
        if v.is_undefined() || v.is_null() {
            None
        } else if let Some(s) = v.as_string() {
            Some(s)
        } else if let Some(n) = v.as_f64() {
            Some(if n.fract() == 0.0 && n.abs() < 9.0e15 { format!("{}", n as i64) } else { n.to_string() })
        } else {
            Some(format!("{v:?}"))
        }
    }
}

thread_local! {
    static CONFIG: std::cell::RefCell<Option<Rc<Config>>> = const { std::cell::RefCell::new(None) };
}

/// The configuration, built and checked once per isolate (vars do not change
/// while an isolate lives). Warnings (a tuning var out of bounds, defaulted)
/// are logged once; a configuration that cannot work is a 503 with every
/// problem in the log.
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    if let Some(c) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let built = Config::from_source(&EnvVars(env)).map_err(|e| {
        console_error!("configuration invalid: {e}");
        ApiError::Unavailable { retry_after_s: 5, detail: format!("configuration: {e}") }
    })?;
    for w in &built.warnings {
        console_error!("configuration: {w}");
    }
    let built = Rc::new(built);
    CONFIG.with(|c| *c.borrow_mut() = Some(built.clone()));
    Ok(built)
}

/// The directory database: orgs and their shards, keys, org-less audit rows.
pub fn directory(env: &Env) -> Result<D1Database, ApiError> {
    env.d1(binding::DB).map_err(|e| storage_error("d1 binding", e))
}

/// A data shard: its orgs' interactions, audit rows, alerts, webhooks.
pub fn shard(env: &Env, shard: &ShardId) -> Result<D1Database, ApiError> {
    env.d1(shard.as_str()).map_err(|e| storage_error(&format!("d1 binding {shard}"), e))
}

/// Binds an optional string as TEXT or NULL.
pub fn opt_str(v: Option<&str>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_str)
}

/// Binds milliseconds (exact up to 2^53) as a JS number.
pub fn ms(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

/// Runs a query and decodes every row; D1 failures become retryable 503s
/// named by `context` (logged, never sent).
pub async fn all<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    sql: impl Into<String>,
    binds: &[JsValue],
    context: &str,
) -> Result<Vec<T>, ApiError> {
    db.prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .all()
        .await
        .map_err(|e| storage_error(context, e))?
        .results()
        .map_err(|e| storage_error(context, e))
}

/// Runs a query and decodes its first row, if any.
pub async fn first<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    sql: impl Into<String>,
    binds: &[JsValue],
    context: &str,
) -> Result<Option<T>, ApiError> {
    db.prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .first(None)
        .await
        .map_err(|e| storage_error(context, e))
}

/// Runs a write; returns how many rows it changed.
pub async fn run(db: &D1Database, sql: impl Into<String>, binds: &[JsValue], context: &str) -> Result<usize, ApiError> {
    let result = db
        .prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .run()
        .await
        .map_err(|e| storage_error(context, e))?;
    Ok(result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0))
}
