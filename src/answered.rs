//! What an actor call answered, shaped for the client: the typed outcome
//! rendered (with the cursor and key the front adds) or the refusal's
//! error, plus what the response headers need (CORS, RateLimit).

use crate::auth::Verified;
use crate::ops::Built;
use crate::respond::{self, Additions, Reply};
use interlog_core::protocol::{DoResponse, RateStanding, Refusal};
use interlog_core::ApiError;

/// An answer the actor produced, with what the response headers need.
pub struct Answered {
    pub reply: Result<Reply, ApiError>,
    pub origin_allowed: bool,
    pub rate: Option<RateStanding>,
}

impl Answered {
    /// The answer to `response`, shaped by what the front added to the call
    /// (`built`: the cursor scope of a listing, a key it minted).
    pub fn from_response(response: DoResponse, who: &Verified, built: Option<&Built>) -> Self {
        let reply = match response.result {
            Ok(outcome) => {
                let next_cursor = match (outcome.next(), built.and_then(|b| b.cursor_scope.as_ref())) {
                    (Some(pos), Some(scope)) => Some(who.cursor_key().encode(scope, pos)),
                    _ => None,
                };
                let key = built.and_then(|b| b.minted.as_ref()).map(|k| k.expose_secret());
                Ok(respond::outcome(&outcome, &Additions { next_cursor, key }))
            }
            Err(refusal) => Err(refusal_error(refusal)),
        };
        Self { reply, origin_allowed: response.origin_allowed, rate: response.rate }
    }
}

/// The error a refusal is answered with.
pub fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Denied { .. } => ApiError::Unauthorized,
        Refusal::PrefixCollision => ApiError::Conflict { message: "key prefix collision; retry".into() },
        Refusal::Failed { error } => error,
    }
}
