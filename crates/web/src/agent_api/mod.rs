//! The agent's HTTP API, for the manager and `tollgate agent ...`: thin handlers over
//! [`tollgate_agent::Agent`], with the wire types of [`tollgate_api::agent`].
//!
//! Every `/agent/v1` route is behind the agent's token (`[agent] token`, a [`SecretToken`]
//! checked from the headers before any body is read), then behind the body limit of its route,
//! declared once in [`crate::limits::AGENT_BODY_LIMITS`] (a body announced larger is refused from its headers; a body
//! that turns out larger while read is refused too, see [`upload`]). Errors are the one
//! [`ApiError`] body; every answer carries the API version.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/agent/v1/status` | server, application type, release in force and previous, staged bundles, the role process |
//! | POST | `/agent/v1/stage?name=FILE` | stage a bundle (body: the archive, streamed to disk); verified before it is kept |
//! | POST | `/agent/v1/preflight` `{"version"}` | the seed's preflight: exactly one good bundle staged |
//! | POST | `/agent/v1/install` `{"version"}` | backup, stop the role, switch release, start, wait until it answers |
//! | POST | `/agent/v1/backout` | backup, stop, back to the previous release, start, wait |
//! | POST | `/agent/v1/restart` | restart the role process |
//! | POST | `/agent/v1/backup`, GET `/agent/v1/backups`, POST `/agent/v1/restore` `{"name"}` | backups |
//! | GET | `/agent/v1/health` | syscheck classes |
//! | POST | `/agent/v1/unstage` `{"name"}` | remove one staged bundle |
//! | POST | `/agent/v1/forced-standby` `{"on"}` | hold the server in forced standby (the role watches the flag) or release it |
//! | POST | `/agent/v1/ha-role` `{"role"}` | record the Active of a role without SRP (a probe pair) |
//! | GET | `/agent/v1/role/{path}` | a GET on the role's API (e.g. `api/v1/srp/show/info`) |
//! | POST | `/agent/v1/role/{path}` | a POST on the role's API (e.g. `api/v1/srp/initiate-switchover`) |
//! | DELETE | `/agent/v1/role/{path}` | a DELETE on the role's API (`api/v1/policy`: uninstall) |

#[cfg(test)]
mod tests;
pub mod upload;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, MatchedPath, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tollgate_agent::{Agent, RoleMethod};
use tollgate_api::agent::{
    AgentStatus, Backup, BackupRequest, ForcedStandbyRequest, HaRoleRequest, HealthAnswer, PreflightAnswer,
    RestoreAnswer, RestoreRequest, StageAnswer, StageQuery, UnstageRequest, VersionRequest,
};

use crate::http::{ApiError, ApiResult, SecretToken};

/// The largest JSON body of the agent's own routes (`{"version": ...}`, `{"why": ...}`).
pub const MAX_JSON_BYTES: u64 = 64 << 10;

/// How large a route's body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// A small JSON body (or none): [`MAX_JSON_BYTES`].
    Json,
    /// A release bundle: `[agent] max_bundle_mb`.
    Bundle,
    /// A request passed to the role: `[agent] max_role_request_mb`.
    RoleRequest,
}

impl BodyLimit {
    /// The limit in bytes, and the setting that sets it.
    pub fn bytes(self, agent: &Agent) -> (u64, Option<&'static str>) {
        match self {
            BodyLimit::Json => (MAX_JSON_BYTES, None),
            BodyLimit::Bundle => (agent.max_bundle_bytes(), Some("agent.max_bundle_mb")),
            BodyLimit::RoleRequest => (agent.max_role_request_bytes(), Some("agent.max_role_request_mb")),
        }
    }
}

fn limit_of(route: &str) -> BodyLimit {
    crate::limits::AGENT_BODY_LIMITS.iter().find(|(r, _)| *r == route).map_or(BodyLimit::Json, |(_, l)| *l)
}

/// The agent router's state: the runtime and the token callers must present.
#[derive(Clone)]
pub struct AgentApi {
    /// The agent's runtime.
    pub agent: Arc<Agent>,
    /// `[agent] token`.
    pub token: SecretToken,
}

/// The agent's routes (see the module's table).
pub fn router(agent: Arc<Agent>, token: SecretToken) -> Router {
    let state = AgentApi { agent, token };
    let api = Router::new()
        .route("/agent/v1/status", get(status))
        .route("/agent/v1/stage", post(stage))
        .route("/agent/v1/preflight", post(preflight))
        .route("/agent/v1/install", post(install))
        .route("/agent/v1/backout", post(backout))
        .route("/agent/v1/restart", post(restart))
        .route("/agent/v1/backup", post(take_backup))
        .route("/agent/v1/backups", get(backups))
        .route("/agent/v1/restore", post(restore))
        .route("/agent/v1/health", get(health_check))
        .route("/agent/v1/unstage", post(unstage))
        .route("/agent/v1/forced-standby", post(set_forced_standby))
        .route("/agent/v1/ha-role", post(set_ha_role))
        .route("/agent/v1/role/{*path}", get(role_get).post(role_post).delete(role_delete))
        // The outer layer runs first: the token, then the route's body limit.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), announced_limit))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::http::api_version))
}

/// `401` without the token, from the headers alone, before a byte of the body is read: a
/// caller without the token costs the agent one small answer, whatever body it announces.
async fn require_token(State(s): State<AgentApi>, request: Request, next: Next) -> Response {
    if s.token.admits(request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthenticated("the agent's token is needed (Authorization: Bearer ...)").closing().into_response()
    }
}

/// `413` for a body announced (`Content-Length`) larger than its route's limit in [`crate::limits::AGENT_BODY_LIMITS`].
async fn announced_limit(State(s): State<AgentApi>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let (limit, setting) = limit_of(&route).bytes(&s.agent);
    if crate::http::announced_length(request.headers()).is_some_and(|n| n > limit) {
        return upload::too_large("the request's body", limit, setting).into_response();
    }
    next.run(request).await
}

/// A JSON body of at most [`MAX_JSON_BYTES`].
struct AgentJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AgentJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = upload::read_limited(&parts.headers, body, MAX_JSON_BYTES, "the request", None).await?;
        serde_json::from_slice(&bytes)
            .map(AgentJson)
            .map_err(|e| ApiError::bad_request(format!("the request's JSON: {e}")))
    }
}

fn agent_error(e: tollgate_agent::AgentError) -> ApiError {
    ApiError::new(e.code, e.message)
}

async fn status(State(s): State<AgentApi>) -> Json<AgentStatus> {
    Json(s.agent.status())
}

async fn stage(
    State(s): State<AgentApi>,
    Query(q): Query<StageQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<StageAnswer>> {
    let incoming = upload::stream_to_file(
        &headers,
        body,
        &s.agent.staging_dir(),
        s.agent.max_bundle_bytes(),
        "the bundle",
        "agent.max_bundle_mb",
    )
    .await?;
    Ok(Json(s.agent.stage(&q.name, incoming).await.map_err(agent_error)?))
}

async fn preflight(
    State(s): State<AgentApi>,
    AgentJson(b): AgentJson<VersionRequest>,
) -> ApiResult<Json<PreflightAnswer>> {
    Ok(Json(s.agent.preflight(&b.version).map_err(agent_error)?))
}

async fn install(State(s): State<AgentApi>, AgentJson(b): AgentJson<VersionRequest>) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.install(&b.version).await.map_err(agent_error)?))
}

async fn backout(State(s): State<AgentApi>) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.backout().await.map_err(agent_error)?))
}

async fn restart(State(s): State<AgentApi>) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.restart().await.map_err(agent_error)?))
}

/// The body is optional (`{"why": "pre-upgrade-system-2.0.0"}` goes into the backup's name);
/// anything else than that JSON takes a `manual` backup.
async fn take_backup(State(s): State<AgentApi>, headers: HeaderMap, body: Body) -> ApiResult<Json<Backup>> {
    let bytes = upload::read_limited(&headers, body, MAX_JSON_BYTES, "the request", None).await?;
    let why = serde_json::from_slice::<BackupRequest>(&bytes).ok().and_then(|b| b.why);
    Ok(Json(s.agent.backup(why.as_deref()).map_err(agent_error)?))
}

async fn backups(State(s): State<AgentApi>) -> Json<Vec<Backup>> {
    Json(s.agent.backups())
}

async fn restore(State(s): State<AgentApi>, AgentJson(b): AgentJson<RestoreRequest>) -> ApiResult<Json<RestoreAnswer>> {
    Ok(Json(s.agent.restore(&b.name).await.map_err(agent_error)?))
}

async fn unstage(State(s): State<AgentApi>, AgentJson(b): AgentJson<UnstageRequest>) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.unstage(&b.name).map_err(agent_error)?))
}

async fn set_forced_standby(
    State(s): State<AgentApi>,
    AgentJson(b): AgentJson<ForcedStandbyRequest>,
) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.set_forced_standby(b.on).map_err(agent_error)?))
}

async fn set_ha_role(
    State(s): State<AgentApi>,
    AgentJson(b): AgentJson<HaRoleRequest>,
) -> ApiResult<Json<AgentStatus>> {
    Ok(Json(s.agent.set_ha_role(b.role).map_err(agent_error)?))
}

async fn health_check(State(s): State<AgentApi>) -> Json<HealthAnswer> {
    Json(s.agent.health().await)
}

/// The role's answer as it is: its status, its (JSON) body.
fn role_answer(answer: tollgate_agent::RoleAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

async fn role_get(
    State(s): State<AgentApi>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let answer = s.agent.role_call(RoleMethod::Get, &path, query.as_deref(), None, Vec::new()).await;
    Ok(role_answer(answer.map_err(agent_error)?))
}

async fn role_post(
    State(s): State<AgentApi>,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let limit = s.agent.max_role_request_bytes();
    let body =
        upload::read_limited(&headers, body, limit, "the request for the role", Some("agent.max_role_request_mb"))
            .await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let actor = headers.get(crate::http::ACTOR_HEADER).and_then(|v| v.to_str().ok());
    let answer =
        s.agent.role_call_as(RoleMethod::Post, &path, query.as_deref(), content_type, body.to_vec(), actor).await;
    Ok(role_answer(answer.map_err(agent_error)?))
}

/// A DELETE for the role (a policy uninstall the manager makes), with the caller's `X-Actor`.
async fn role_delete(
    State(s): State<AgentApi>,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let actor = headers.get(crate::http::ACTOR_HEADER).and_then(|v| v.to_str().ok());
    let answer = s.agent.role_call_as(RoleMethod::Delete, &path, query.as_deref(), None, Vec::new(), actor).await;
    Ok(role_answer(answer.map_err(agent_error)?))
}
