//! The manager's policy routes: versions, preview, push, roll-back, uninstall (the operations
//! are `tollgate_manager::policies`; the wire types `tollgate_api::manager::policy`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use tollgate_api::manager::{
    PolicyCandidate, PolicyPreview, PolicyVersion, PolicyVersionSummary, PushAnswer, PushQuery, RollbackRequest,
    UninstallAnswer, UninstallRequest,
};
use tollgate_manager::{ops, policies};

use super::{ApiState, Operator, Viewer, refused};
use crate::http::{ApiError, ApiResult, JsonBody, QueryParams};

/// Every version, newest first.
pub(super) async fn versions(State(s): State<ApiState>, _: Viewer) -> Json<Vec<PolicyVersionSummary>> {
    Json(policies::versions(&s.manager))
}

/// One version with its policy.
pub(super) async fn version(
    State(s): State<ApiState>,
    _: Viewer,
    axum::extract::Path(version): axum::extract::Path<String>,
) -> ApiResult<Json<PolicyVersion>> {
    let n: u64 = version
        .trim_start_matches('v')
        .parse()
        .map_err(|_| ApiError::bad_request(format!("version: {version:?} is not a version number")))?;
    Ok(Json(policies::version(&s.manager, n).map_err(refused)?))
}

/// What a candidate would change on each target cluster, and whether it would be refused.
pub(super) async fn preview(
    State(s): State<ApiState>,
    _: Viewer,
    JsonBody(c): JsonBody<PolicyCandidate>,
) -> ApiResult<Json<PolicyPreview>> {
    Ok(Json(policies::preview(&s.manager, c).await.map_err(refused)?))
}

/// Installs a policy on the engine clusters: a [`PolicyCandidate`] (JSON, with lists), or the
/// TOML text itself (`?cluster=&name=`).
pub(super) async fn push(
    State(s): State<ApiState>,
    Operator(who): Operator,
    headers: HeaderMap,
    QueryParams(q): QueryParams<PushQuery>,
    body: Bytes,
) -> ApiResult<Json<PushAnswer>> {
    let actor = who.name;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    let answer = if json {
        let c: PolicyCandidate =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the policy candidate: {e}")))?;
        policies::push(&s.manager, &actor, c).await
    } else {
        ops::push_policy(&s.manager, &actor, q, &body).await
    };
    Ok(Json(answer.map_err(refused)?))
}

/// Pushes an earlier version's policy again.
pub(super) async fn rollback(
    State(s): State<ApiState>,
    Operator(who): Operator,
    JsonBody(r): JsonBody<RollbackRequest>,
) -> ApiResult<Json<PushAnswer>> {
    let actor = who.name;
    Ok(Json(policies::rollback(&s.manager, &actor, r).await.map_err(refused)?))
}

/// Removes the policy from the clusters named; refused without the confirmation.
pub(super) async fn uninstall(
    State(s): State<ApiState>,
    Operator(who): Operator,
    JsonBody(r): JsonBody<UninstallRequest>,
) -> ApiResult<Json<UninstallAnswer>> {
    let actor = who.name;
    Ok(Json(policies::uninstall(&s.manager, &actor, r).await.map_err(refused)?))
}
