//! The route table: method + path → endpoint and the scope it needs.
//! Unknown paths are 404, known paths with another method 405 (with `Allow`).

use crate::error::ApiError;
use crate::interaction::{BATCH_BODY_LIMIT, SINGLE_BODY_LIMIT};
use crate::keys::MANAGEMENT_BODY_LIMIT;
use crate::scope::Scope;

/// An authenticated endpoint, before its body or query is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    GetOrg,
    CreateInteraction,
    CreateInteractions,
    ListInteractions,
    GetInteraction(String),
    DeleteInteraction(String),
    UpdateOrg,
    CreateKey,
    ListKeys,
    RevokeKey(String),
    RotateKey(String),
    ListAudit,
    ListAlerts,
    Mcp,
    /// `GET /v1/interactions/export` (NDJSON stream).
    ExportInteractions,
    /// `GET /v1/sessions/{session}`: the path segment as sent (percent-encoded).
    GetSession(String),
    /// `POST /v1/erasures`.
    StartErasure,
    /// `GET /v1/erasures/{id}`.
    GetErasure(String),
    /// `POST /v1/alerts/{id}/resolve`.
    ResolveAlert(String),
    /// `POST /v1/webhooks`.
    CreateWebhook,
    /// `GET /v1/webhooks`.
    ListWebhooks,
    /// `DELETE /v1/webhooks/{id}`.
    DeleteWebhook(String),
    /// `POST /v1/webhooks/{id}/rotate-secret`.
    RotateWebhookSecret(String),
    /// `GET /v1/webhooks/{id}/deliveries`.
    ListDeliveries(String),
}

impl Endpoint {
    /// Body cap in bytes for endpoints that take a JSON body.
    pub fn body_limit(&self) -> Option<u64> {
        match self {
            Endpoint::CreateInteraction => Some(SINGLE_BODY_LIMIT),
            Endpoint::CreateInteractions => Some(BATCH_BODY_LIMIT),
            Endpoint::UpdateOrg | Endpoint::CreateKey | Endpoint::RotateKey(_) => Some(MANAGEMENT_BODY_LIMIT),
            Endpoint::StartErasure => Some(MANAGEMENT_BODY_LIMIT),
            Endpoint::CreateWebhook => Some(crate::webhook::WEBHOOK_BODY_LIMIT),
            Endpoint::Mcp => Some(crate::mcp::MCP_BODY_LIMIT),
            _ => None,
        }
    }

    /// The route template, for logs: path parameters stay placeholders, so
    /// the value is bounded and carries no identifier.
    pub fn template(&self) -> &'static str {
        match self {
            Endpoint::GetOrg | Endpoint::UpdateOrg => "/v1/org",
            Endpoint::CreateInteraction | Endpoint::ListInteractions => "/v1/interactions",
            Endpoint::CreateInteractions => "/v1/interactions/batch",
            Endpoint::GetInteraction(_) | Endpoint::DeleteInteraction(_) => "/v1/interactions/{id}",
            Endpoint::CreateKey | Endpoint::ListKeys => "/v1/keys",
            Endpoint::RevokeKey(_) => "/v1/keys/{prefix}/revoke",
            Endpoint::RotateKey(_) => "/v1/keys/{prefix}/rotate",
            Endpoint::ListAudit => "/v1/audit-log",
            Endpoint::ListAlerts => "/v1/alerts",
            Endpoint::Mcp => "/mcp",
            Endpoint::ExportInteractions => "/v1/interactions/export",
            Endpoint::GetSession(_) => "/v1/sessions/{session}",
            Endpoint::StartErasure => "/v1/erasures",
            Endpoint::GetErasure(_) => "/v1/erasures/{id}",
            Endpoint::ResolveAlert(_) => "/v1/alerts/{id}/resolve",
            Endpoint::CreateWebhook | Endpoint::ListWebhooks => "/v1/webhooks",
            Endpoint::DeleteWebhook(_) => "/v1/webhooks/{id}",
            Endpoint::RotateWebhookSecret(_) => "/v1/webhooks/{id}/rotate-secret",
            Endpoint::ListDeliveries(_) => "/v1/webhooks/{id}/deliveries",
        }
    }
}

/// The route template of a path whatever the method (a 405 still names the
/// route it missed); `None` for a path that is no route.
pub fn template(path: &str) -> Option<&'static str> {
    let route = match resolve("GET", path) {
        Err(ApiError::MethodNotAllowed { allow }) => allow.first().and_then(|m| resolve(m, path).ok()),
        other => other.ok(),
    };
    match route? {
        Route::Health => Some("/v1/health"),
        Route::Spec => Some("/v1/openapi.json"),
        Route::Api { endpoint, .. } => Some(endpoint.template()),
        Route::Reconcile => Some(crate::operator::RECONCILE_PATH),
        Route::Move => Some(crate::operator::MOVE_PATH),
    }
}

/// A resolved route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/health`: no auth, no rate limit.
    Health,
    /// `GET /v1/openapi.json`: the API description; no auth, behind L1.
    Spec,
    /// An authenticated call forwarded to the org's actor.
    Api { scope: Scope, endpoint: Endpoint },
    /// `POST /v1/operator/reconcile`: the operator command's signed call (no
    /// API key; `core::operator` checks it), behind L1 and the floor.
    Reconcile,
    /// `POST /v1/operator/move`: one step of moving an org between data
    /// shards, signed like `Reconcile`.
    Move,
}

fn api(scope: Scope, endpoint: Endpoint) -> Route {
    Route::Api { scope, endpoint }
}

/// The one non-empty path segment after `prefix`, if that is all there is.
fn one_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// Resolves a request line. `method` is upper case as sent.
pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
    let allowed: Vec<(&str, Route)> = match path {
        "/v1/health" => vec![("GET", Route::Health)],
        "/v1/openapi.json" => vec![("GET", Route::Spec)],
        "/v1/org" => {
            vec![("GET", api(Scope::Admin, Endpoint::GetOrg)), ("PATCH", api(Scope::Admin, Endpoint::UpdateOrg))]
        }
        "/v1/keys" => {
            vec![("GET", api(Scope::Admin, Endpoint::ListKeys)), ("POST", api(Scope::Admin, Endpoint::CreateKey))]
        }
        "/v1/audit-log" => vec![("GET", api(Scope::Admin, Endpoint::ListAudit))],
        crate::operator::RECONCILE_PATH => vec![("POST", Route::Reconcile)],
        crate::operator::MOVE_PATH => vec![("POST", Route::Move)],
        "/v1/alerts" => vec![("GET", api(Scope::Read, Endpoint::ListAlerts))],
        "/mcp" => vec![("POST", api(Scope::Read, Endpoint::Mcp))],
        "/v1/interactions" => vec![
            ("GET", api(Scope::Read, Endpoint::ListInteractions)),
            ("POST", api(Scope::Ingest, Endpoint::CreateInteraction)),
        ],
        "/v1/interactions/batch" => {
            vec![("POST", api(Scope::Ingest, Endpoint::CreateInteractions))]
        }
        "/v1/interactions/export" => vec![("GET", api(Scope::Read, Endpoint::ExportInteractions))],
        "/v1/erasures" => vec![("POST", api(Scope::Admin, Endpoint::StartErasure))],
        _ if path.starts_with("/v1/sessions/") || path.starts_with("/v1/erasures/") => {
            match (one_segment(path, "/v1/sessions/"), one_segment(path, "/v1/erasures/")) {
                (Some(s), _) => vec![("GET", api(Scope::Read, Endpoint::GetSession(s.to_string())))],
                (_, Some(id)) => vec![("GET", api(Scope::Admin, Endpoint::GetErasure(id.to_string())))],
                _ => return Err(ApiError::NotFound),
            }
        }
        "/v1/webhooks" => vec![
            ("GET", api(Scope::Admin, Endpoint::ListWebhooks)),
            ("POST", api(Scope::Admin, Endpoint::CreateWebhook)),
        ],
        _ if path.starts_with("/v1/webhooks/") || path.starts_with("/v1/alerts/") => alert_delivery_routes(path)?,
        _ => match path.strip_prefix("/v1/interactions/") {
            Some(id) if !id.is_empty() && !id.contains('/') => vec![
                ("GET", api(Scope::Read, Endpoint::GetInteraction(id.to_string()))),
                ("DELETE", api(Scope::Admin, Endpoint::DeleteInteraction(id.to_string()))),
            ],
            _ => match path.strip_prefix("/v1/keys/").and_then(|rest| rest.split_once('/')) {
                Some((prefix, "revoke")) if !prefix.is_empty() && !prefix.contains('/') => {
                    vec![("POST", api(Scope::Admin, Endpoint::RevokeKey(prefix.to_string())))]
                }
                Some((prefix, "rotate")) if !prefix.is_empty() && !prefix.contains('/') => {
                    vec![("POST", api(Scope::Admin, Endpoint::RotateKey(prefix.to_string())))]
                }
                _ => return Err(ApiError::NotFound),
            },
        },
    };
    let allow: Vec<String> = allowed.iter().map(|(m, _)| (*m).to_string()).collect();
    allowed.into_iter().find(|(m, _)| *m == method).map(|(_, r)| r).ok_or(ApiError::MethodNotAllowed { allow })
}

/// `/v1/alerts/{id}/resolve` and the `/v1/webhooks/{id}…` routes.
fn alert_delivery_routes(path: &str) -> Result<Vec<(&'static str, Route)>, ApiError> {
    let admin = |e: Endpoint| api(Scope::Admin, e);
    if let Some(rest) = path.strip_prefix("/v1/alerts/") {
        return match rest.split_once('/') {
            Some((id, "resolve")) if !id.is_empty() => Ok(vec![("POST", admin(Endpoint::ResolveAlert(id.into())))]),
            _ => Err(ApiError::NotFound),
        };
    }
    let rest = path.strip_prefix("/v1/webhooks/").ok_or(ApiError::NotFound)?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Ok(vec![("DELETE", admin(Endpoint::DeleteWebhook(rest.into())))]),
        Some((id, "rotate-secret")) if !id.is_empty() => {
            Ok(vec![("POST", admin(Endpoint::RotateWebhookSecret(id.into())))])
        }
        Some((id, "deliveries")) if !id.is_empty() => Ok(vec![("GET", admin(Endpoint::ListDeliveries(id.into())))]),
        _ => Err(ApiError::NotFound),
    }
}

/// Where the web console lives: every path under it is static content served
/// from the asset binding, with the console's security headers, and never an
/// API route.
pub const CONSOLE_ROOT: &str = "/console";

/// A path under `/console`, mapped to the asset that answers it: the index for
/// the root, else the file of that name (`None` when the name cannot be one of
/// the built files, so it is answered 404 without asking the asset store).
/// `None` on the outside means the path is not the console's at all.
pub fn console_asset(path: &str) -> Option<Option<String>> {
    let rest = path.strip_prefix(CONSOLE_ROOT)?;
    if rest.is_empty() || rest == "/" {
        return Some(Some("/index.html".into()));
    }
    let name = rest.strip_prefix('/')?;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let ok = name.len() <= 128
        && name.split('/').all(|seg| !seg.is_empty() && !seg.starts_with('.') && seg.chars().all(plain));
    Some(ok.then(|| format!("/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // claim: owasp.api5
    #[test]
    fn known_routes() {
        assert_eq!(resolve("GET", "/v1/health"), Ok(Route::Health));
        assert_eq!(resolve("GET", "/v1/openapi.json"), Ok(Route::Spec));
        assert_eq!(resolve("POST", "/v1/openapi.json"), Err(ApiError::MethodNotAllowed { allow: vec!["GET".into()] }));
        assert_eq!(resolve("GET", "/v1/org"), Ok(api(Scope::Admin, Endpoint::GetOrg)));
        assert_eq!(resolve("POST", "/v1/interactions"), Ok(api(Scope::Ingest, Endpoint::CreateInteraction)));
        assert_eq!(resolve("POST", "/v1/interactions/batch"), Ok(api(Scope::Ingest, Endpoint::CreateInteractions)));
        assert_eq!(
            resolve("GET", "/v1/interactions/int_1"),
            Ok(api(Scope::Read, Endpoint::GetInteraction("int_1".into())))
        );
        assert_eq!(
            resolve("DELETE", "/v1/interactions/int_1"),
            Ok(api(Scope::Admin, Endpoint::DeleteInteraction("int_1".into())))
        );
    }

    #[test]
    fn session_erasure_and_export_routes() {
        assert_eq!(resolve("GET", "/v1/interactions/export"), Ok(api(Scope::Read, Endpoint::ExportInteractions)));
        assert_eq!(
            resolve("GET", "/v1/sessions/chat%201"),
            Ok(api(Scope::Read, Endpoint::GetSession("chat%201".into())))
        );
        assert_eq!(resolve("POST", "/v1/erasures"), Ok(api(Scope::Admin, Endpoint::StartErasure)));
        assert_eq!(resolve("GET", "/v1/erasures/era_1"), Ok(api(Scope::Admin, Endpoint::GetErasure("era_1".into()))));
        assert_eq!(resolve("GET", "/v1/sessions/"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/sessions/a/b"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/erasures/a/b"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/erasures"), Err(ApiError::MethodNotAllowed { allow: vec!["POST".into()] }));
        assert_eq!(
            resolve("DELETE", "/v1/interactions/export"),
            Err(ApiError::MethodNotAllowed { allow: vec!["GET".into()] })
        );
        assert_eq!(template("/v1/sessions/s1"), Some("/v1/sessions/{session}"));
        assert_eq!(template("/v1/erasures/era_1"), Some("/v1/erasures/{id}"));
        assert_eq!(template("/v1/interactions/export"), Some("/v1/interactions/export"));
        assert_eq!(Endpoint::StartErasure.body_limit(), Some(MANAGEMENT_BODY_LIMIT));
    }

    #[test]
    fn templates_hide_path_parameters() {
        assert_eq!(template("/v1/health"), Some("/v1/health"));
        assert_eq!(template("/v1/openapi.json"), Some("/v1/openapi.json"));
        assert_eq!(template("/v1/org"), Some("/v1/org"));
        assert_eq!(template("/v1/interactions/batch"), Some("/v1/interactions/batch"));
        assert_eq!(template("/v1/interactions/int_1"), Some("/v1/interactions/{id}"));
        assert_eq!(template("/v1/keys/ABCDEFGH/revoke"), Some("/v1/keys/{prefix}/revoke"));
        assert_eq!(template("/v1/keys/ABCDEFGH/rotate"), Some("/v1/keys/{prefix}/rotate"));
        assert_eq!(template("/v1/audit-log"), Some("/v1/audit-log"));
        assert_eq!(template("/v1/operator/reconcile"), Some("/v1/operator/reconcile"));
        assert_eq!(template("/mcp"), Some("/mcp"));
        assert_eq!(template("/v1/keys/ABCDEFGH/other"), None);
        assert_eq!(template("/"), None);
    }

    // claim: owasp.api9
    #[test]
    fn unknown_path_404_wrong_method_405() {
        assert_eq!(resolve("GET", "/v1/org/"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/interactions/"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/interactions/a/b"), Err(ApiError::NotFound));
        assert_eq!(
            resolve("DELETE", "/v1/org"),
            Err(ApiError::MethodNotAllowed { allow: vec!["GET".into(), "PATCH".into()] })
        );
        assert_eq!(
            resolve("POST", "/v1/keys/ABCDEFGH/revoke"),
            Ok(api(Scope::Admin, Endpoint::RevokeKey("ABCDEFGH".into())))
        );
        assert_eq!(resolve("POST", "/v1/keys/ABCDEFGH/other"), Err(ApiError::NotFound));
        assert_eq!(resolve("POST", "/v1/keys/A/B/rotate"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/v1/alerts"), Ok(api(Scope::Read, Endpoint::ListAlerts)));
        assert_eq!(resolve("POST", "/v1/operator/reconcile"), Ok(Route::Reconcile));
        assert_eq!(resolve("POST", "/v1/operator/move"), Ok(Route::Move));
        assert_eq!(template("/v1/operator/move"), Some("/v1/operator/move"));
        assert_eq!(
            resolve("GET", "/v1/operator/reconcile"),
            Err(ApiError::MethodNotAllowed { allow: vec!["POST".into()] })
        );
        assert_eq!(
            resolve("GET", "/v1/interactions/batch"),
            Err(ApiError::MethodNotAllowed { allow: vec!["POST".into()] })
        );
        assert_eq!(
            resolve("PUT", "/v1/interactions"),
            Err(ApiError::MethodNotAllowed { allow: vec!["GET".into(), "POST".into()] })
        );
    }

    #[test]
    fn alert_and_webhook_routes() {
        let admin = |e| Ok(api(Scope::Admin, e));
        assert_eq!(resolve("POST", "/v1/alerts/alr_1/resolve"), admin(Endpoint::ResolveAlert("alr_1".into())));
        assert_eq!(resolve("POST", "/v1/webhooks"), admin(Endpoint::CreateWebhook));
        assert_eq!(resolve("GET", "/v1/webhooks"), admin(Endpoint::ListWebhooks));
        assert_eq!(resolve("DELETE", "/v1/webhooks/whk_1"), admin(Endpoint::DeleteWebhook("whk_1".into())));
        assert_eq!(
            resolve("POST", "/v1/webhooks/whk_1/rotate-secret"),
            admin(Endpoint::RotateWebhookSecret("whk_1".into()))
        );
        assert_eq!(resolve("GET", "/v1/webhooks/whk_1/deliveries"), admin(Endpoint::ListDeliveries("whk_1".into())));
        for missing in
            ["/v1/alerts/alr_1", "/v1/alerts//resolve", "/v1/webhooks/", "/v1/webhooks/a/b/c", "/v1/webhooks/a/x"]
        {
            assert_eq!(resolve("GET", missing), Err(ApiError::NotFound), "{missing}");
        }
        assert_eq!(template("/v1/webhooks/whk_1/deliveries"), Some("/v1/webhooks/{id}/deliveries"));
        assert_eq!(template("/v1/alerts/alr_9/resolve"), Some("/v1/alerts/{id}/resolve"));
        assert_eq!(Endpoint::CreateWebhook.body_limit(), Some(crate::webhook::WEBHOOK_BODY_LIMIT));
        assert_eq!(Endpoint::RotateWebhookSecret("w".into()).body_limit(), None);
    }

    #[test]
    fn console_paths_map_to_assets_and_nothing_else() {
        assert_eq!(console_asset("/console"), Some(Some("/index.html".into())));
        assert_eq!(console_asset("/console/"), Some(Some("/index.html".into())));
        assert_eq!(console_asset("/console/app.js"), Some(Some("/app.js".into())));
        assert_eq!(console_asset("/console/nonexistent"), Some(Some("/nonexistent".into())));
        assert_eq!(console_asset("/console/a/b.css"), Some(Some("/a/b.css".into())));
        // Under the console but no possible file: still the console's (its
        // headers), answered 404.
        assert_eq!(console_asset("/console/.env"), Some(None));
        assert_eq!(console_asset("/console/a//b"), Some(None));
        assert_eq!(console_asset("/console/%2e%2e/x"), Some(None));
        assert_eq!(console_asset(&format!("/console/{}", "a".repeat(129))), Some(None));
        // Not the console.
        assert_eq!(console_asset("/consoles"), None);
        assert_eq!(console_asset("/v1/org"), None);
        assert_eq!(console_asset("/"), None);
        assert_eq!(template("/console/app.js"), None);
    }
}
