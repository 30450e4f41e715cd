//! The JSON API.
//!
//! | method | path | role | does |
//! |---|---|---|---|
//! | GET | `/healthz` | none | `ok` |
//! | GET | `/metrics` | none | Prometheus (OpenMetrics text) |
//! | GET | `/api/v1/auth` | any | who the caller is (clients check before uploading) |
//! | GET | `/api/v1/version` | none | the release this server runs, the newest policy schema it reads |
//! | GET | `/api/v1/policy` | viewer | the policy in force |
//! | POST | `/api/v1/policy` | operator | install (multipart: `policy`, `list:NAME` parts) |
//! | POST | `/api/v1/policy/check` | viewer | validate only; `422` with every diagnostic |
//! | DELETE | `/api/v1/policy` | operator | uninstall |
//! | GET | `/api/v1/policy/history`, `/api/v1/policy/versions` | viewer | history, versions |
//! | GET | `/api/v1/policy/diff?from=N&to=M` | viewer | unified diff of two versions |
//! | GET | `/api/v1/lookup?from=A&to=B` | viewer | decision, rules checked, NAPTR answer |
//! | POST | `/api/v1/ingest` | ingest | NDJSON records from a shipper |
//! | GET | `/api/v1/analytics?dataset&view&grouping&device&from&to[&format=csv]` | viewer | a view |
//! | GET | `/api/v1/export?dataset&from&to[&device][&protocol]` | viewer | raw records as CSV |
//! | GET | `/api/v1/devices?dataset=` | viewer | devices with records |
//! | GET | `/api/v1/alarms` | viewer | active alarms and history |
//! | GET | `/api/v1/tls` | viewer | the TLS certificate in force, its expiry, reload counts |
//! | GET, POST | `/api/v1/users`, `/api/v1/tokens` | admin | users (a role change keeps the password when none is given) and API tokens (optional `expires`) |
//! | DELETE | `/api/v1/users/{name}`, `/api/v1/tokens/{name}` | admin | remove a user (their sessions end), revoke a token |
//! | POST | `/api/v1/auth/password` | none (the current password) | `{"name","current","new"}`: change one's own password; throttled like a login |
//! | GET | `/api/v1/srp/show/{view}` | viewer | `show srp info`, `statistics`, `checkpoint-statistics`, ... (every `tollgate_api::srp::SrpView`); 404 `not_configured` without `[srp]` |
//! | POST | `/api/v1/srp/{command}` (`tollgate_api::srp::SrpCommand`) | operator | `initiate-switchover[?force=true]`, `initiate-audit`, `nack`, `forced-standby` `{"on"}`; viewer: `validate-switchover`, `validate-configuration` |
//! | GET | `/api/v1/probe/calls/{call_id}/messages` | viewer | a running probe's SIP messages of one call, open or recently finished (`tollgate_api::probe::CallMessages`); 404 `not_found` for a call it does not hold, `not_configured` without a probe or with `probe.ladder_calls = 0` |
//!
//! Every request and answer type is in `tollgate_api::web` (shared with the CLI, the shippers
//! and the tests); the SRP routes' are in `tollgate_api::srp`, the probe's in
//! `tollgate_api::probe`.
//!
//! A change (POST, DELETE) made with a login session instead of a bearer token needs the
//! session's CSRF token in `X-CSRF-Token`; cross-site changes are refused (see
//! [`crate::security`]).
//!
//! The role column is enforced by each handler's extractor ([`crate::session::Viewer`],
//! [`crate::session::Operator`], [`crate::session::Admin`], [`crate::session::Ingester`]):
//! `401 unauthenticated` without a valid credential, `403 forbidden` below the role, before the
//! handler runs. Every error is the one error body ([`crate::http::ApiError`]:
//! `{code, message, details}`); a rejected policy lists its problems in `details`. Each route's
//! body limit is in [`crate::limits::BODY_LIMITS`]. `tests/routes.rs` checks all of it, route by
//! route.

mod admin;
pub(crate) mod analytics;
mod ingest;
mod policy;
mod probe;
mod srp;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::AppState;
use crate::http::{ApiError, ApiResult};
use crate::limits::route;

pub use analytics::{AnalyticsParams, ExportParams, query_of as analytics_query};
pub(crate) use analytics::{csv_response as csv_download, export_response as export_csv};
pub(crate) use policy::version_diff as policy_diff;

/// The routes of the JSON API; who may call each is said by its handler's extractor
/// ([`crate::session::Viewer`] and the like), its body limit by [`crate::limits::BODY_LIMITS`].
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    r = route(r, "/healthz", get(|| async { "ok\n" }));
    r = route(r, "/metrics", get(metrics));
    r = route(r, "/api/v1/auth", get(admin::whoami));
    r = route(
        r,
        "/api/v1/version",
        get(|State(state): State<Arc<AppState>>| async move { Json(state.release.clone()) }),
    );
    r = route(r, "/api/v1/policy", get(policy::show).post(policy::install).delete(policy::uninstall));
    r = route(r, "/api/v1/policy/check", post(policy::check));
    r = route(r, "/api/v1/policy/history", get(policy::history));
    r = route(r, "/api/v1/policy/versions", get(policy::versions));
    r = route(r, "/api/v1/policy/diff", get(policy::diff));
    r = route(r, "/api/v1/lookup", get(policy::lookup));
    r = route(r, "/api/v1/ingest", post(ingest::ingest));
    r = route(r, "/api/v1/analytics", get(analytics::analytics));
    r = route(r, "/api/v1/export", get(analytics::export));
    r = route(r, "/api/v1/devices", get(analytics::devices));
    r = route(r, "/api/v1/alarms", get(admin::alarms));
    r = route(r, "/api/v1/tls", get(admin::tls));
    r = route(r, "/api/v1/users", get(admin::users).post(admin::set_user));
    r = route(r, "/api/v1/users/{name}", delete(admin::remove_user));
    r = route(r, "/api/v1/tokens", get(admin::tokens).post(admin::create_token));
    r = route(r, "/api/v1/tokens/{name}", delete(admin::revoke_token));
    r = route(r, "/api/v1/auth/password", post(admin::change_password));
    r = route(r, "/api/v1/srp/show/{what}", get(srp::show));
    r = route(r, "/api/v1/srp/{command}", post(srp::command));
    r = route(r, "/api/v1/probe/calls/{call_id}/messages", get(probe::call_messages));
    r
}

async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry)
        .map_err(|_| ApiError::internal("cannot encode metrics"))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

/// Runs blocking work (store, policy compile) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(e.to_string()))
}

/// The error of a service this server does not run: `404 not_configured`.
pub(crate) fn not_running(what: &str) -> ApiError {
    ApiError::not_configured(format!("this server runs no {what}"))
}
