//! Policy routes: show, install, check, uninstall, history, versions, diff, lookup.

use std::sync::Arc;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use tollgate_api::web::{Checked, DiffParams, LookupParams, Uninstalled};
use tollgate_api::{Detail, ErrorCode};
use tollgate_enum::lookup::Lookup;
use tollgate_policy::service::{CurrentPolicy, InstallError, PolicyService};
use tollgate_policy::store::{HistoryEntry, VersionInfo};

use super::{blocking, not_running};
use crate::AppState;
use crate::http::{ApiError, ApiResult, QueryParams};
use crate::multipart::{UploadError, read_upload};
use crate::session::{Operator, Viewer};

fn service(state: &AppState) -> ApiResult<Arc<PolicyService>> {
    state.policy.clone().ok_or_else(|| ApiError::not_configured("this server runs no engine, so it has no policy"))
}

/// The answer to an invalid policy: `422 invalid` with every diagnostic as a detail (and as
/// `diagnostics`, which CLIs of earlier releases read).
pub(crate) fn invalid(e: &tollgate_policy::PolicyError) -> ApiError {
    let details = e
        .diagnostics
        .iter()
        .map(|d| Detail { file: d.file.clone(), line: d.line, field: d.field.clone(), message: d.message.clone() })
        .collect();
    ApiError::invalid("policy is invalid; nothing was changed", details).with_legacy_diagnostics()
}

/// An I/O error of the policy store: the server's fault.
fn io(e: std::io::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

pub(super) async fn show(State(state): State<Arc<AppState>>, _: Viewer) -> ApiResult<Json<CurrentPolicy>> {
    let svc = service(&state)?;
    Ok(Json(blocking(move || svc.current()).await?.map_err(io)?))
}

pub(super) async fn history(State(state): State<Arc<AppState>>, _: Viewer) -> ApiResult<Json<Vec<HistoryEntry>>> {
    Ok(Json(service(&state)?.history().map_err(io)?))
}

pub(super) async fn versions(State(state): State<Arc<AppState>>, _: Viewer) -> ApiResult<Json<Vec<VersionInfo>>> {
    Ok(Json(service(&state)?.store().versions().map_err(io)?))
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
    _: Viewer,
    QueryParams(p): QueryParams<DiffParams>,
) -> ApiResult<String> {
    version_diff(service(&state)?.as_ref(), p.from, p.to).map_err(ApiError::not_found)
}

/// Who a change is recorded as: the authenticated principal, and the person named in
/// `X-Actor` when a shared token (such as the CLI's) is used on their behalf.
fn actor(who: &crate::auth::Principal, headers: &HeaderMap) -> String {
    crate::http::actor_name(&who.name, headers.get(crate::http::ACTOR_HEADER).and_then(|v| v.to_str().ok()))
}

/// A policy upload that could not be read.
impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> ApiError {
        let status = e.status();
        let e = ApiError::new(ErrorCode::from_status(status.as_u16()), e.to_string());
        if status == StatusCode::PAYLOAD_TOO_LARGE { e.closing() } else { e }
    }
}

pub(super) async fn install(
    State(state): State<Arc<AppState>>,
    Operator(who): Operator,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<VersionInfo>)> {
    let svc = service(&state)?;
    let upload = read_upload(multipart?, None).await?;
    let actor = actor(&who, &headers);
    match blocking(move || svc.install(&upload.source, &actor)).await? {
        Ok(info) => {
            tracing::info!(version = info.version, name = %info.name, actor = %info.actor, "policy installed");
            Ok((StatusCode::CREATED, Json(info)))
        }
        Err(InstallError::Invalid(e)) => Err(invalid(&e)),
        Err(InstallError::Io(e)) => Err(io(e)),
    }
}

pub(super) async fn check(
    State(state): State<Arc<AppState>>,
    _: Viewer,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Checked>> {
    let svc = service(&state)?;
    let upload = read_upload(multipart?, None).await?;
    let meta = blocking(move || svc.check(&upload.source).map(|p| p.meta().clone())).await?.map_err(|e| invalid(&e))?;
    Ok(Json(Checked { valid: true, meta: Some(meta) }))
}

pub(super) async fn uninstall(
    State(state): State<Arc<AppState>>,
    Operator(who): Operator,
    headers: HeaderMap,
) -> ApiResult<Json<Uninstalled>> {
    let actor = actor(&who, &headers);
    let previous = service(&state)?.uninstall(&actor).map_err(io)?;
    tracing::info!(?previous, actor = %who.name, "policy uninstalled");
    Ok(Json(Uninstalled { uninstalled: previous }))
}

pub(super) async fn lookup(
    State(state): State<Arc<AppState>>,
    _: Viewer,
    QueryParams(p): QueryParams<LookupParams>,
) -> ApiResult<Json<Lookup>> {
    let (Some(svc), Some(responder)) = (state.policy.clone(), state.responder.clone()) else {
        return Err(not_running("engine"));
    };
    let plan = svc.plan();
    let to = plan.normalize(&p.to).map_err(|e| ApiError::bad_request(format!("to: {e}")))?;
    let from = match p.from.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(f) => Some(plan.normalize(f).map_err(|e| ApiError::bad_request(format!("from: {e}")))?),
    };
    Ok(Json(responder.lookup(from, to, chrono::Utc::now())))
}
