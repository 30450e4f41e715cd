//! Route handlers.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tollgate_policy::service::InstallError;

use crate::ApiState;
use crate::multipart::read_upload;

/// Largest accepted upload (a policy with its lists).
const MAX_UPLOAD: usize = 2 << 30;

pub(crate) fn router(state: ApiState) -> Router {
    let changes = Router::new()
        .route("/api/v1/policy", axum::routing::post(install).delete(uninstall))
        .route("/api/v1/policy/check", axum::routing::post(check))
        .route("/api/v1/auth", get(|| async { Json(json!({ "authorized": true })) }))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/policy", get(show))
        .route("/api/v1/policy/history", get(history))
        .route("/api/v1/policy/versions", get(versions))
        .route("/api/v1/lookup", get(lookup))
        .merge(changes)
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "this change needs `Authorization: Bearer <token>`");
        }
    }
    next.run(req).await
}

fn actor(headers: &HeaderMap) -> String {
    headers.get("x-actor").and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty()).unwrap_or("api").to_string()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
            .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics"),
    }
}

async fn show(State(state): State<ApiState>) -> Response {
    let service = state.policy.clone();
    match tokio::task::spawn_blocking(move || service.current()).await {
        Ok(Ok(current)) => Json(current).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn history(State(state): State<ApiState>) -> Response {
    match state.policy.history() {
        Ok(h) => Json(h).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn versions(State(state): State<ApiState>) -> Response {
    match state.policy.store().versions() {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn invalid(e: &tollgate_policy::PolicyError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "error": "policy is invalid; nothing was changed", "diagnostics": e.diagnostics })),
    )
        .into_response()
}

async fn install(State(state): State<ApiState>, headers: HeaderMap, multipart: Multipart) -> Response {
    let upload = match read_upload(multipart).await {
        Ok(u) => u,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let who = actor(&headers);
    let service = state.policy.clone();
    let result = tokio::task::spawn_blocking(move || {
        let r = service.install(&upload.source, &who);
        drop(upload);
        r
    })
    .await;
    match result {
        Ok(Ok(info)) => {
            tracing::info!(version = info.version, name = %info.name, actor = %info.actor, "policy installed");
            (StatusCode::CREATED, Json(info)).into_response()
        }
        Ok(Err(InstallError::Invalid(e))) => invalid(&e),
        Ok(Err(InstallError::Io(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn check(State(state): State<ApiState>, multipart: Multipart) -> Response {
    let upload = match read_upload(multipart).await {
        Ok(u) => u,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let service = state.policy.clone();
    match tokio::task::spawn_blocking(move || service.check(&upload.source).map(|p| p.meta().clone())).await {
        Ok(Ok(meta)) => Json(json!({ "valid": true, "meta": meta })).into_response(),
        Ok(Err(e)) => invalid(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn uninstall(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let who = actor(&headers);
    match state.policy.uninstall(&who) {
        Ok(previous) => {
            tracing::info!(?previous, actor = %who, "policy uninstalled");
            Json(json!({ "uninstalled": previous })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct LookupParams {
    from: Option<String>,
    to: String,
}

async fn lookup(State(state): State<ApiState>, Query(p): Query<LookupParams>) -> Response {
    let plan = state.policy.plan();
    let to = match plan.normalize(&p.to) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("to: {e}")),
    };
    let from = match p.from.as_deref().filter(|s| !s.is_empty()).map(|f| plan.normalize(f)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    Json(state.responder.lookup(from, to, chrono::Utc::now())).into_response()
}
