//! Request body limits, route by route, for every router tollgate serves, in this one file:
//! [`BODY_LIMITS`] for the API ([`crate::api`]) and the UI ([`crate::ui`]),
//! [`MANAGER_BODY_LIMITS`] for the manager ([`crate::manager_api`]) and [`AGENT_BODY_LIMITS`]
//! for the agent ([`crate::agent_api`], whose two large limits are settings of `[agent]`). A
//! route is added with [`route`] / [`route_in`], which look its limit up in its table (a route
//! missing from the table is a bug, caught when the router is built, so by every test that
//! builds it).
//!
//! A request whose `Content-Length` is past its route's limit is refused with
//! `413 too_large` before anything reads it (and before its credential is checked: refusing
//! costs nothing); a body that streams past the limit without saying its length is cut off
//! by the extractor that reads it (axum's `DefaultBodyLimit`, set to the same limit), again
//! `413`.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
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
    ("/api/v1/tls", SMALL),
    ("/api/v1/users", SMALL),
    ("/api/v1/users/{name}", SMALL),
    ("/api/v1/tokens", SMALL),
    ("/api/v1/tokens/{name}", SMALL),
    ("/api/v1/auth/password", SMALL),
    ("/api/v1/srp/show/{what}", SMALL),
    ("/api/v1/srp/{command}", SMALL),
    ("/api/v1/probe/calls/{call_id}/messages", SMALL),
    // The web UI.
    ("/", SMALL),
    (crate::ui::STYLESHEET, SMALL),
    (crate::ui::SCRIPT, SMALL),
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

/// Largest body the manager takes: its mate's state (`/api/v1/manager/sync`,
/// `/api/v1/manager/take-over`) and a policy pushed to the engines or previewed
/// (`/api/v1/policy/push`, `/api/v1/policy/preview`).
pub const MANAGER_STATE: usize = 16 << 20;

/// Every route of the manager's router with its body limit.
pub const MANAGER_BODY_LIMITS: &[(&str, usize)] = &[
    ("/healthz", SMALL),
    // The console (`crate::console`).
    ("/", SMALL),
    (crate::ui::STYLESHEET, SMALL),
    (crate::console::CONSOLE_CSS, SMALL),
    ("/static/{script}", SMALL),
    ("/login", SMALL),
    ("/logout", SMALL),
    ("/upgrade", SMALL),
    ("/topology", SMALL),
    ("/audit", SMALL),
    ("/alarms", SMALL),
    ("/topology/{server}", SMALL),
    ("/users", SMALL),
    ("/analytics", SMALL),
    ("/api/v1/version", SMALL),
    ("/api/v1/manager/ha", SMALL),
    ("/api/v1/manager/state", SMALL),
    // The hand-over carries the whole state, as a sync does.
    ("/api/v1/manager/take-over", MANAGER_STATE),
    ("/api/v1/manager/sync", MANAGER_STATE),
    ("/api/v1/manager/users", MANAGER_STATE),
    ("/api/v1/upgrade/status", SMALL),
    ("/api/v1/upgrade/bundles", SMALL),
    ("/api/v1/upgrade/procedure", SMALL),
    ("/api/v1/upgrade/action", SMALL),
    ("/api/v1/upgrade/next", SMALL),
    ("/api/v1/upgrade/log", SMALL),
    ("/api/v1/upgrade/log/groups", SMALL),
    ("/api/v1/upgrade/audit", SMALL),
    ("/api/v1/upgrade/zombie-repaired", SMALL),
    ("/api/v1/alarms", SMALL),
    ("/api/v1/analytics", SMALL),
    ("/api/v1/alarms/all", SMALL),
    ("/api/v1/alarms/acknowledge", SMALL),
    ("/api/v1/health", SMALL),
    ("/api/v1/backup", SMALL),
    ("/api/v1/backups", SMALL),
    ("/api/v1/restore", SMALL),
    ("/api/v1/policy/push", MANAGER_STATE),
    ("/api/v1/policy/preview", MANAGER_STATE),
    ("/api/v1/policy/rollback", SMALL),
    ("/api/v1/policy/uninstall", SMALL),
    ("/api/v1/policy/versions", SMALL),
    ("/api/v1/policy/versions/{version}", SMALL),
    ("/policies", SMALL),
];

/// Every `/agent/v1` route (as the router matches it) with its body limit; the agent checks
/// them itself from its headers and while it streams (see [`crate::agent_api`]).
pub const AGENT_BODY_LIMITS: &[(&str, crate::agent_api::BodyLimit)] = {
    use crate::agent_api::BodyLimit::{Bundle, Json, RoleRequest};
    &[
        ("/agent/v1/status", Json),
        ("/agent/v1/stage", Bundle),
        ("/agent/v1/preflight", Json),
        ("/agent/v1/install", Json),
        ("/agent/v1/backout", Json),
        ("/agent/v1/restart", Json),
        ("/agent/v1/backup", Json),
        ("/agent/v1/backups", Json),
        ("/agent/v1/restore", Json),
        ("/agent/v1/health", Json),
        ("/agent/v1/unstage", Json),
        ("/agent/v1/forced-standby", Json),
        ("/agent/v1/ha-role", Json),
        ("/agent/v1/role/{*path}", RoleRequest),
    ]
};

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
    route_in(BODY_LIMITS, router, path, methods)
}

/// Adds `path` to `router`, served by `methods`, with its body limit from `table`.
///
/// # Panics
/// If `table` has no limit for `path`: every route declares one.
pub(crate) fn route_in<S: Clone + Send + Sync + 'static>(
    table: &[(&str, usize)],
    router: Router<S>,
    path: &'static str,
    methods: MethodRouter<S>,
) -> Router<S> {
    let Some(limit) = table.iter().find(|(p, _)| *p == path).map(|(_, limit)| *limit) else {
        panic!("route {path} has no body limit in its table in tollgate_web::limits");
    };
    router.route(path, methods.layer(DefaultBodyLimit::max(limit)).layer(from_fn_with_state(limit, refuse_declared)))
}

/// Refuses a request whose `Content-Length` is past `limit`, before anything reads it.
async fn refuse_declared(State(limit): State<usize>, request: Request, next: Next) -> Response {
    match crate::http::announced_length(request.headers()) {
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
        let tables: [Vec<&str>; 3] = [
            BODY_LIMITS.iter().map(|(p, _)| *p).collect(),
            MANAGER_BODY_LIMITS.iter().map(|(p, _)| *p).collect(),
            AGENT_BODY_LIMITS.iter().map(|(p, _)| *p).collect(),
        ];
        for table in tables {
            for (i, path) in table.iter().enumerate() {
                assert!(!table[..i].contains(path), "{path} is listed twice");
            }
        }
    }
}
