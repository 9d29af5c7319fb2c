//! The route table: method + path → what to do and which scope it needs.
//! Unknown paths are 404, known paths with another method 405 (with `Allow`).

use crate::error::ApiError;
use crate::protocol::Op;
use crate::scope::Scope;

/// A resolved route.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `GET /v1/health`: no auth, no rate limit.
    Health,
    /// An authenticated call forwarded to the org's actor.
    Api { scope: Scope, op: Op },
}

/// Resolves a request line. `method` is upper case as sent.
pub fn resolve(method: &str, path: &str) -> Result<Route, ApiError> {
    let allowed: &[(&str, Route)] = match path {
        "/v1/health" => &[("GET", Route::Health)],
        "/v1/org" => &[(
            "GET",
            Route::Api {
                scope: Scope::Admin,
                op: Op::GetOrg,
            },
        )],
        _ => return Err(ApiError::NotFound),
    };
    allowed
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, r)| r.clone())
        .ok_or_else(|| ApiError::MethodNotAllowed {
            allow: allowed.iter().map(|(m, _)| (*m).to_string()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes() {
        assert_eq!(resolve("GET", "/v1/health"), Ok(Route::Health));
        assert_eq!(
            resolve("GET", "/v1/org"),
            Ok(Route::Api {
                scope: Scope::Admin,
                op: Op::GetOrg
            })
        );
    }

    #[test]
    fn unknown_path_404_wrong_method_405() {
        assert_eq!(resolve("GET", "/v1/org/"), Err(ApiError::NotFound));
        assert_eq!(resolve("GET", "/"), Err(ApiError::NotFound));
        assert_eq!(
            resolve("DELETE", "/v1/org"),
            Err(ApiError::MethodNotAllowed {
                allow: vec!["GET".into()]
            })
        );
    }
}
