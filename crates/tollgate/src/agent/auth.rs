//! Who may use the agent's API: the manager, with the bearer token `[agent] token`. The token
//! is checked from the request's headers by a layer in front of every `/agent/v1` route, before
//! any handler runs and before a byte of the body is read: a caller without the token costs
//! the agent one small answer, whatever body it announces or sends.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::api::Agent;

/// The agent's token, kept as its SHA-256 digest. A presented token is hashed and the digests
/// compared in constant time: the comparison takes as long whatever the token, its length or
/// how many of its leading bytes are right, so timing tells a caller nothing.
#[derive(Clone)]
pub struct AgentToken {
    digest: [u8; 32],
}

impl AgentToken {
    /// The token callers must present.
    pub fn new(token: &str) -> Self {
        AgentToken { digest: Sha256::digest(token.as_bytes()).into() }
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(presented) =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.digest))
    }
}

/// An answer sent before the request's body was read (refused or too large): the connection is
/// closed after it, so the client cannot go on streaming a body nobody reads.
pub fn closing(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, axum::Json(json!({ "error": message.into() }))).into_response();
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The layer in front of the agent's routes: `401` without the token, from the headers alone.
pub async fn require_token(State(agent): State<Arc<Agent>>, request: Request, next: Next) -> Response {
    if agent.token.admits(request.headers()) {
        next.run(request).await
    } else {
        closing(StatusCode::UNAUTHORIZED, "the agent's token is needed (Authorization: Bearer ...)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_is_admitted() {
        let token = AgentToken::new("agent-token-0123456789");
        assert!(token.admits(&headers("Bearer agent-token-0123456789")));
        for wrong in [
            "Bearer agent-token-012345678",
            "Bearer agent-token-01234567890",
            "Bearer AGENT-TOKEN-0123456789",
            "Bearer ",
            "bearer agent-token-0123456789",
            "Basic agent-token-0123456789",
            "agent-token-0123456789",
        ] {
            assert!(!token.admits(&headers(wrong)), "{wrong:?}");
        }
        assert!(!token.admits(&HeaderMap::new()));
    }
}
