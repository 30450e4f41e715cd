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
//! | GET | `/api/v1/export?dataset&from&to[&device]` | viewer | raw records as CSV |
//! | GET | `/api/v1/devices?dataset=` | viewer | devices with records |
//! | GET | `/api/v1/alarms` | viewer | active alarms and history |
//! | GET, POST | `/api/v1/users`, `/api/v1/tokens` | admin | users (a role change keeps the password when none is given) and API tokens (optional `expires`) |
//! | DELETE | `/api/v1/users/{name}`, `/api/v1/tokens/{name}` | admin | remove a user (their sessions end), revoke a token |
//! | POST | `/api/v1/auth/password` | none (the current password) | `{"name","current","new"}`: change one's own password; throttled like a login |
//! | GET | `/api/v1/srp/show/{view}` | viewer | `show srp info`, `statistics`, `checkpoint-statistics`, ... (every `tollgate_api::srp::SrpView`); 404 `not_configured` without `[srp]` |
//! | POST | `/api/v1/srp/{command}` (`tollgate_api::srp::SrpCommand`) | operator | `initiate-switchover[?force=true]`, `initiate-audit`, `nack`, `forced-standby` `{"on"}`; viewer: `validate-switchover`, `validate-configuration` |
//!
//! A change (POST, DELETE) made with a login session instead of a bearer token needs the
//! session's CSRF token in `X-CSRF-Token`; cross-site changes are refused (see
//! [`crate::security`]).

mod admin;
mod analytics;
mod ingest;
mod policy;
mod srp;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use crate::AppState;

pub use analytics::{AnalyticsParams, ExportParams};
pub(crate) use analytics::{csv_response as csv_download, export_response as export_csv};
pub(crate) use policy::version_diff as policy_diff;

use crate::multipart::MAX_UPLOAD;
/// Largest ingest batch.
const MAX_BATCH: usize = 64 << 20;

/// A JSON error response.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/auth", get(admin::whoami))
        .route("/api/v1/version", get(|State(state): State<Arc<AppState>>| async move { Json(state.release.clone()) }))
        .route("/api/v1/policy", get(policy::show).post(policy::install).delete(policy::uninstall))
        .route("/api/v1/policy/check", post(policy::check))
        .route("/api/v1/policy/history", get(policy::history))
        .route("/api/v1/policy/versions", get(policy::versions))
        .route("/api/v1/policy/diff", get(policy::diff))
        .route("/api/v1/lookup", get(policy::lookup))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .route("/api/v1/ingest", post(ingest::ingest).layer(DefaultBodyLimit::max(MAX_BATCH)))
        .route("/api/v1/analytics", get(analytics::analytics))
        .route("/api/v1/export", get(analytics::export))
        .route("/api/v1/devices", get(analytics::devices))
        .route("/api/v1/alarms", get(admin::alarms))
        .route("/api/v1/users", get(admin::users).post(admin::set_user))
        .route("/api/v1/users/{name}", delete(admin::remove_user))
        .route("/api/v1/tokens", get(admin::tokens).post(admin::create_token))
        .route("/api/v1/tokens/{name}", delete(admin::revoke_token))
        .route("/api/v1/auth/password", post(admin::change_password).layer(DefaultBodyLimit::max(64 << 10)))
        .route("/api/v1/srp/show/{what}", get(srp::show))
        .route("/api/v1/srp/{command}", post(srp::command))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"),
    }
}

/// Runs blocking work (store, policy compile) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
