//! The one HTTP layer every tollgate server uses: the error type handlers return
//! ([`ApiError`], so they use `?`), the bearer-token check ([`SecretToken`], constant time),
//! the layer that stamps every answer with the API version ([`api_version`]), and the
//! extractor of routes only other tollgate servers call ([`MachinePeer`]).
//!
//! Routers (web UI and API, agent, manager) build on these; none writes its own error
//! helper, token comparison or version header.

mod bearer;
mod error;
mod extract;
mod peer;

pub use bearer::{SecretToken, bearer};
pub use error::{ApiError, ApiResult};
pub use extract::{JsonBody, QueryParams};
pub use peer::{MachinePeer, Managers, PeerRoles, Shippers};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tollgate_api::{API_VERSION, VERSION_HEADER};

/// The header naming the person who acts through a shared token (the CLI's, the manager's).
pub const ACTOR_HEADER: &str = "x-actor";

/// Who a token's call is recorded as: `token` alone, or "`person` via `token`" when `X-Actor`
/// names someone (trimmed; at most 64 characters; control characters dropped). The engine's
/// policy routes and the manager's API both record callers this way.
pub fn actor_name(token: &str, actor: Option<&str>) -> String {
    let person: String = actor.unwrap_or("").trim().chars().filter(|c| !c.is_control()).take(64).collect();
    if person.is_empty() || person == token { token.to_string() } else { format!("{person} via {token}") }
}

/// The body length a request announces (`Content-Length`), if it says one: what every router
/// checks against its route's limit before reading a byte of the body.
pub fn announced_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Middleware (`axum::middleware::from_fn(api_version)`) that adds the
/// [`VERSION_HEADER`] with this build's [`API_VERSION`] to every answer, so a client knows
/// which contract the server speaks before it reads the body.
pub async fn api_version(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(VERSION_HEADER, HeaderValue::from(API_VERSION));
    response
}
