//! Request body limits, route by route: [`BODY_LIMITS`] is the one table every route of the
//! API ([`crate::api`]) and the UI ([`crate::ui`]) takes its limit from; a route is added with
//! [`route`], which looks its limit up there (a route missing from the table is a bug, caught
//! when the router is built, so by every test that builds it).
//!
//! A request whose `Content-Length` is past its route's limit is refused with
//! `413 too_large` before anything reads it (and before its credential is checked: refusing
//! costs nothing); a body that streams past the limit without saying its length is cut off
//! by the extractor that reads it (axum's `DefaultBodyLimit`, set to the same limit), again
//! `413`.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::http::ApiError;

/// Largest policy upload (a policy with its lists), API and web form alike.
pub const MAX_UPLOAD: usize = 2 << 30;
/// Limit of a route that reads a small form or JSON body, or none at all.
pub const SMALL: usize = 64 << 10;
/// Largest record batch a shipper sends to `/api/v1/ingest`.
pub const MAX_BATCH: usize = 64 << 20;

/// Every route's body limit in bytes: `(route as declared, limit)`.
pub const BODY_LIMITS: &[(&str, usize)] = &[
    // The JSON API.
    ("/healthz", SMALL),
    ("/metrics", SMALL),
    ("/api/v1/auth", SMALL),
    ("/api/v1/version", SMALL),
    // A policy with its lists (lists are streamed to disk; the policy text has its own
    // limit, `multipart::MAX_POLICY`).
    ("/api/v1/policy", MAX_UPLOAD),
    ("/api/v1/policy/check", MAX_UPLOAD),
    ("/api/v1/policy/history", SMALL),
    ("/api/v1/policy/versions", SMALL),
    ("/api/v1/policy/diff", SMALL),
    ("/api/v1/lookup", SMALL),
    ("/api/v1/ingest", MAX_BATCH),
    ("/api/v1/analytics", SMALL),
    ("/api/v1/export", SMALL),
    ("/api/v1/devices", SMALL),
    ("/api/v1/alarms", SMALL),
    ("/api/v1/users", SMALL),
    ("/api/v1/users/{name}", SMALL),
    ("/api/v1/tokens", SMALL),
    ("/api/v1/tokens/{name}", SMALL),
    ("/api/v1/auth/password", SMALL),
    ("/api/v1/srp/show/{what}", SMALL),
    ("/api/v1/srp/{command}", SMALL),
    // The web UI.
    ("/", SMALL),
    (crate::ui::STYLESHEET, SMALL),
    ("/login", SMALL),
    ("/logout", SMALL),
    ("/account", SMALL),
    ("/analytics", SMALL),
    ("/analytics.csv", SMALL),
    ("/export.csv", SMALL),
    // The policy upload form takes what the API takes.
    ("/policies", MAX_UPLOAD),
    ("/policies/uninstall", SMALL),
    ("/policies/diff", SMALL),
    ("/alarms", SMALL),
    ("/users", SMALL),
];

/// The body limit of `path` (a route as declared, e.g. `/api/v1/users/{name}`), if the table
/// has it.
pub fn body_limit(path: &str) -> Option<usize> {
    BODY_LIMITS.iter().find(|(p, _)| *p == path).map(|(_, limit)| *limit)
}

/// Adds `path` to `router`, served by `methods`, with its body limit from [`BODY_LIMITS`].
///
/// # Panics
/// If the table has no limit for `path`: every route declares one.
pub(crate) fn route<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &'static str,
    methods: MethodRouter<S>,
) -> Router<S> {
    let Some(limit) = body_limit(path) else {
        panic!("route {path} has no body limit in tollgate_web::limits::BODY_LIMITS");
    };
    router.route(path, methods.layer(DefaultBodyLimit::max(limit)).layer(from_fn_with_state(limit, refuse_declared)))
}

/// Refuses a request whose `Content-Length` is past `limit`, before anything reads it.
async fn refuse_declared(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::too_large(format!(
            "the request body has {length} bytes; {} takes at most {limit}",
            request.uri().path()
        ))
        .closing()
        .into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        for (i, (path, _)) in BODY_LIMITS.iter().enumerate() {
            assert!(!BODY_LIMITS[..i].iter().any(|(p, _)| p == path), "{path} is listed twice");
        }
    }
}
