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
}

impl Endpoint {
    /// Body cap in bytes for endpoints that take a JSON body.
    pub fn body_limit(&self) -> Option<u64> {
        match self {
            Endpoint::CreateInteraction => Some(SINGLE_BODY_LIMIT),
            Endpoint::CreateInteractions => Some(BATCH_BODY_LIMIT),
            Endpoint::UpdateOrg | Endpoint::CreateKey | Endpoint::RotateKey(_) => Some(MANAGEMENT_BODY_LIMIT),
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
        Route::Api { endpoint, .. } => Some(endpoint.template()),
    }
}

/// A resolved route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/health`: no auth, no rate limit.
    Health,
    /// An authenticated call forwarded to the org's actor.
    Api { scope: Scope, endpoint: Endpoint },
}

fn api(scope: Scope, endpoint: Endpoint) -> Route {
    Route::Api { scope, endpoint }
}

/// Resolves a request line. `method` is upper case as sent.
pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
    let allowed: Vec<(&str, Route)> = match path {
        "/v1/health" => vec![("GET", Route::Health)],
        "/v1/org" => {
            vec![("GET", api(Scope::Admin, Endpoint::GetOrg)), ("PATCH", api(Scope::Admin, Endpoint::UpdateOrg))]
        }
        "/v1/keys" => {
            vec![("GET", api(Scope::Admin, Endpoint::ListKeys)), ("POST", api(Scope::Admin, Endpoint::CreateKey))]
        }
        "/v1/audit-log" => vec![("GET", api(Scope::Admin, Endpoint::ListAudit))],
        "/v1/alerts" => vec![("GET", api(Scope::Read, Endpoint::ListAlerts))],
        "/mcp" => vec![("POST", api(Scope::Read, Endpoint::Mcp))],
        "/v1/interactions" => vec![
            ("GET", api(Scope::Read, Endpoint::ListInteractions)),
            ("POST", api(Scope::Ingest, Endpoint::CreateInteraction)),
        ],
        "/v1/interactions/batch" => {
            vec![("POST", api(Scope::Ingest, Endpoint::CreateInteractions))]
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    // claim: owasp.api5
    #[test]
    fn known_routes() {
        assert_eq!(resolve("GET", "/v1/health"), Ok(Route::Health));
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
    fn templates_hide_path_parameters() {
        assert_eq!(template("/v1/health"), Some("/v1/health"));
        assert_eq!(template("/v1/org"), Some("/v1/org"));
        assert_eq!(template("/v1/interactions/batch"), Some("/v1/interactions/batch"));
        assert_eq!(template("/v1/interactions/int_1"), Some("/v1/interactions/{id}"));
        assert_eq!(template("/v1/keys/ABCDEFGH/revoke"), Some("/v1/keys/{prefix}/revoke"));
        assert_eq!(template("/v1/keys/ABCDEFGH/rotate"), Some("/v1/keys/{prefix}/rotate"));
        assert_eq!(template("/v1/audit-log"), Some("/v1/audit-log"));
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
        assert_eq!(
            resolve("GET", "/v1/interactions/batch"),
            Err(ApiError::MethodNotAllowed { allow: vec!["POST".into()] })
        );
        assert_eq!(
            resolve("PUT", "/v1/interactions"),
            Err(ApiError::MethodNotAllowed { allow: vec!["GET".into(), "POST".into()] })
        );
    }
}
