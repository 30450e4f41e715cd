//! Policy routes: show, install, check, uninstall, history, versions, diff, lookup.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tollgate_policy::service::{InstallError, PolicyService};

use super::{blocking, error};
use crate::AppState;
use crate::auth::Role;
use crate::multipart::read_upload;
use crate::session::{ApiUser, require};

fn service(state: &AppState) -> Result<Arc<PolicyService>, Response> {
    state.policy.clone().ok_or_else(|| error(StatusCode::NOT_FOUND, "this server runs no engine, so it has no policy"))
}

/// The response for an invalid policy: 422 with every diagnostic.
pub(crate) fn invalid(e: &tollgate_policy::PolicyError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": "policy is invalid; nothing was changed", "diagnostics": e.diagnostics })),
    )
        .into_response()
}

pub(super) async fn show(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    let svc = match service(&state) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match blocking(move || svc.current()).await {
        Ok(Ok(current)) => Json(current).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

pub(super) async fn history(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    match service(&state).map(|s| s.history()) {
        Ok(Ok(h)) => Json(h).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

pub(super) async fn versions(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    match service(&state).map(|s| s.store().versions()) {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// Query of `/api/v1/policy/diff`.
#[derive(Deserialize)]
pub(crate) struct DiffParams {
    /// Older version (0: the empty policy).
    pub from: u64,
    /// Newer version.
    pub to: u64,
}

/// The unified diff between two stored versions' texts.
pub(crate) fn version_diff(svc: &PolicyService, from: u64, to: u64) -> Result<String, String> {
    let text = |v: u64| -> Result<String, String> {
        if v == 0 {
            Ok(String::new())
        } else {
            svc.store().version_source(v).map(|s| s.text).map_err(|e| format!("version {v}: {e}"))
        }
    };
    let (old, new) = (text(from)?, text(to)?);
    Ok(similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("version {from}"), &format!("version {to}"))
        .to_string())
}

pub(super) async fn diff(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Query(p): Query<DiffParams>,
) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    match service(&state).map(|s| version_diff(&s, p.from, p.to)) {
        Ok(Ok(d)) => d.into_response(),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e),
        Err(r) => r,
    }
}

/// Who a change is recorded as: the authenticated principal, and the person named in
/// `X-Actor` when a shared token (such as the CLI's) is used on their behalf.
fn actor(who: &crate::auth::Principal, headers: &axum::http::HeaderMap) -> String {
    match headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != who.name)
    {
        Some(person) => format!("{person} via {}", who.name),
        None => who.name.clone(),
    }
}

pub(super) async fn install(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    headers: axum::http::HeaderMap,
    multipart: Multipart,
) -> Response {
    if let Err(r) = require(&who, Role::Operator) {
        return r;
    }
    let svc = match service(&state) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let upload = match read_upload(multipart, None).await {
        Ok(u) => u,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let actor = actor(&who, &headers);
    match blocking(move || svc.install(&upload.source, &actor)).await {
        Ok(Ok(info)) => {
            tracing::info!(version = info.version, name = %info.name, actor = %info.actor, "policy installed");
            (StatusCode::CREATED, Json(info)).into_response()
        }
        Ok(Err(InstallError::Invalid(e))) => invalid(&e),
        Ok(Err(InstallError::Io(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

pub(super) async fn check(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser, multipart: Multipart) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    let svc = match service(&state) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let upload = match read_upload(multipart, None).await {
        Ok(u) => u,
        Err(e) => return error(e.status(), e.to_string()),
    };
    match blocking(move || svc.check(&upload.source).map(|p| p.meta().clone())).await {
        Ok(Ok(meta)) => Json(json!({ "valid": true, "meta": meta })).into_response(),
        Ok(Err(e)) => invalid(&e),
        Err(r) => r,
    }
}

pub(super) async fn uninstall(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(r) = require(&who, Role::Operator) {
        return r;
    }
    let actor = actor(&who, &headers);
    match service(&state).map(|s| s.uninstall(&actor)) {
        Ok(Ok(previous)) => {
            tracing::info!(?previous, actor = %who.name, "policy uninstalled");
            Json(json!({ "uninstalled": previous })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub(super) struct LookupParams {
    from: Option<String>,
    to: String,
}

pub(super) async fn lookup(
    State(state): State<Arc<AppState>>,
    ApiUser(who): ApiUser,
    Query(p): Query<LookupParams>,
) -> Response {
    if let Err(r) = require(&who, Role::Viewer) {
        return r;
    }
    let (Some(svc), Some(responder)) = (state.policy.clone(), state.responder.clone()) else {
        return error(StatusCode::NOT_FOUND, "this server runs no engine");
    };
    let plan = svc.plan();
    let to = match plan.normalize(&p.to) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let from = match p.from.as_deref().filter(|s| !s.is_empty()).map(|f| plan.normalize(f)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    Json(responder.lookup(from, to, chrono::Utc::now())).into_response()
}
