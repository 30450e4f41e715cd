//! The manager's HTTP API; its pages are the console ([`crate::console`]), merged into the same
//! router (the runtime is `tollgate-manager`; the wire types are `tollgate_api::manager`).
//!
//! Callers: operators authenticate with a bearer token of the manager's user database
//! (`cli-token` in its state directory, or `tollgate token create`; `X-Actor` names the person
//! using a shared token) or with the console's login session (changes with `X-CSRF-Token`),
//! and are checked by the
//! [`Viewer`], [`Operator`] and [`Admin`] extractors; the mate manager presents the agents'
//! token, checked in constant time by the [`Peer`] extractor; over TLS the [`Peer`] extractor
//! also demands the mate's client certificate of role `manager` (`GET /api/v1/manager/ha`
//! stays open to anyone: it is the pair's public status, read by the page, the CLI and the
//! agents, and changes nothing).
//!
//! | method | path | caller |
//! |---|---|---|
//! | GET | `/healthz`, `/api/v1/version`, `/api/v1/manager/ha` | anyone |
//! | GET, POST | the console's pages, `/login`, `/logout`, `/static/*` | see [`crate::console`] |
//! | GET | `/api/v1/manager/state` | peer |
//! | POST | `/api/v1/manager/take-over`, `/api/v1/manager/sync`, `/api/v1/manager/users` | peer |
//! | GET | `/api/v1/upgrade/{status,bundles,log,log/groups,audit}`, `/api/v1/alarms`, `/api/v1/alarms/all`, `/api/v1/analytics`, `/api/v1/health`, `/api/v1/backups` | viewer |
//! | GET | `/api/v1/policy/versions`, `/api/v1/policy/versions/{version}` | viewer |
//! | POST | `/api/v1/policy/preview` | viewer |
//! | POST | `/api/v1/upgrade/{procedure,action,next,zombie-repaired}`, `/api/v1/alarms/acknowledge`, `/api/v1/backup`, `/api/v1/policy/{push,rollback,uninstall}` | operator |
//! | POST | `/api/v1/restore` | admin |

pub mod analytics;
mod policy;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tollgate_api::ErrorBody;
use tollgate_api::manager::{
    ActionRequest, AuditEntry, BackupRequest, BundleInfo, HaStatus, LogEntry, LogQuery, ManagerAlarms, NextAnswer,
    NextRequest, ProcedureAnswer, ProcedureRequest, RestoreAnswer, ServerBackups, StartedAction, SyncAnswer,
    SystemHealth, SystemRestoreRequest, SystemStatus, TakeOver, VersionInfo, ZombieAnswer, ZombieRequest,
};
use tollgate_manager::{Manager, Snapshot, ops};

use crate::auth::{Auth, Principal, Role};
use crate::http::{ApiError, ApiResult, SecretToken, api_version, bearer};

#[cfg(test)]
mod tests;
mod users_sync;

pub use users_sync::{UsersAnswer, replicate_users};

/// The API's state.
pub struct ManagerApi {
    /// The manager.
    pub manager: Arc<Manager>,
    /// Users, sessions and tokens.
    pub auth: Arc<Auth>,
    /// The agents' token, which the mate manager presents.
    pub peer: SecretToken,
}

impl ManagerApi {
    /// The state of the router of `manager`: operators from `auth`, the mate with the
    /// configured agents' token.
    pub fn new(manager: Arc<Manager>, auth: Auth) -> ManagerApi {
        let peer = SecretToken::new(&manager.cfg.agent_token);
        ManagerApi { manager, auth: Arc::new(auth), peer }
    }
}

type ApiState = Arc<ManagerApi>;

fn refused(e: ErrorBody) -> ApiError {
    ApiError::new(e.code, e.message).with_details(e.details)
}

/// The operator behind a request, if their role allows `needed`: a bearer token of the
/// manager's user database, or a console login session (whose changes must carry the
/// session's `X-CSRF-Token`, see [`crate::session::ApiUser`]). With a token, the person named
/// in `X-Actor` is recorded as acting through it ("alice via cli-token"), so the audit names a
/// person even when a shared token is used.
async fn operator(s: &ApiState, parts: &mut Parts, needed: Role) -> ApiResult<Principal> {
    let crate::session::ApiUser(mut who) = crate::session::ApiUser::from_request_parts(parts, s).await?;
    if !who.role.allows(needed) {
        return Err(ApiError::forbidden(format!("{} may not do this (needs {})", who.name, needed.as_str())));
    }
    if bearer(&parts.headers).is_some() {
        who.name = actor_name(&who.name, parts.headers.get(ACTOR_HEADER).and_then(|v| v.to_str().ok()));
    }
    Ok(who)
}

pub use crate::http::{ACTOR_HEADER, actor_name};

impl crate::session::AuthState for ManagerApi {
    fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }
}

/// A caller whose token allows reading.
pub struct Viewer(pub Principal);
/// A caller whose token allows acting on upgrades, backups and policy.
pub struct Operator(pub Principal);
/// A caller whose token allows restoring backups.
pub struct Admin(pub Principal);
/// The mate manager (the agents' token).
pub struct Peer;

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> ApiResult<Self> {
        operator(s, parts, Role::Viewer).await.map(Viewer)
    }
}

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> ApiResult<Self> {
        operator(s, parts, Role::Operator).await.map(Operator)
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> ApiResult<Self> {
        operator(s, parts, Role::Admin).await.map(Admin)
    }
}

impl FromRequestParts<ApiState> for Peer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> ApiResult<Self> {
        // Over TLS, the mate's certificate must name the manager role, then its token is checked.
        crate::http::MachinePeer::<crate::http::Managers>::from_request_parts(parts, s).await?;
        match s.peer.admits(&parts.headers) {
            true => Ok(Peer),
            false => Err(ApiError::unauthenticated("the pair's token is needed")),
        }
    }
}

/// The manager's routes, each with its body limit from
/// [`crate::limits::MANAGER_BODY_LIMITS`].
pub fn router(state: Arc<ManagerApi>) -> Router {
    let route =
        |router, path, methods| crate::limits::route_in(crate::limits::MANAGER_BODY_LIMITS, router, path, methods);
    let router = Router::new();
    let router = route(router, "/healthz", get(|| async { "ok\n" }));
    // The console's pages, stylesheets, scripts, login and logout.
    let router = crate::console::routes(router);
    let router = route(router, "/api/v1/version", get(version));
    let router = route(router, "/api/v1/manager/ha", get(ha));
    let router = route(router, "/api/v1/manager/state", get(state_for_mate));
    let router = route(router, "/api/v1/manager/take-over", post(take_over));
    let router = route(router, "/api/v1/manager/sync", post(sync_from_mate));
    let router = route(router, "/api/v1/manager/users", post(users_sync::accept));
    let router = route(router, "/api/v1/upgrade/status", get(status));
    let router = route(router, "/api/v1/upgrade/bundles", get(bundles));
    let router = route(router, "/api/v1/upgrade/procedure", post(select_procedure));
    let router = route(router, "/api/v1/upgrade/action", post(start_action));
    let router = route(router, "/api/v1/upgrade/next", post(start_next));
    let router = route(router, "/api/v1/upgrade/log", get(log));
    let router = route(router, "/api/v1/upgrade/log/groups", get(log_groups));
    let router = route(router, "/api/v1/upgrade/audit", get(audit));
    let router = route(router, "/api/v1/upgrade/zombie-repaired", post(zombie_repaired));
    let router = route(router, "/api/v1/alarms", get(alarms));
    let router = route(router, "/api/v1/analytics", get(analytics::analytics));
    let router = route(router, "/api/v1/alarms/all", get(all_alarms));
    let router = route(router, "/api/v1/alarms/acknowledge", post(acknowledge_alarm));
    let router = route(router, "/api/v1/health", get(health));
    let router = route(router, "/api/v1/backup", post(system_backup));
    let router = route(router, "/api/v1/backups", get(system_backups));
    let router = route(router, "/api/v1/restore", post(restore));
    let router = route(router, "/api/v1/policy/push", post(policy::push));
    let router = route(router, "/api/v1/policy/preview", post(policy::preview));
    let router = route(router, "/api/v1/policy/rollback", post(policy::rollback));
    let router = route(router, "/api/v1/policy/uninstall", post(policy::uninstall));
    let router = route(router, "/api/v1/policy/versions", get(policy::versions));
    let router = route(router, "/api/v1/policy/versions/{version}", get(policy::version));
    router
        .fallback(crate::console::not_found)
        .layer(axum::middleware::from_fn(crate::security::guard))
        .layer(axum::middleware::from_fn(api_version))
        .with_state(state)
}

async fn version(State(s): State<ApiState>) -> Json<VersionInfo> {
    Json(ops::version(&s.manager))
}

async fn ha(State(s): State<ApiState>) -> Json<HaStatus> {
    Json(ops::ha(&s.manager))
}

async fn state_for_mate(State(s): State<ApiState>, _: Peer) -> ApiResult<Json<Snapshot>> {
    Ok(Json(ops::state_for_mate(&s.manager).map_err(refused)?))
}

/// The active mate pushes its state after a change.
async fn sync_from_mate(State(s): State<ApiState>, _: Peer, Json(snapshot): Json<Snapshot>) -> Json<SyncAnswer> {
    Json(ops::sync_from_mate(&s.manager, snapshot))
}

/// The active mate hands over (the manager cluster's failover step).
async fn take_over(State(s): State<ApiState>, _: Peer, Json(t): Json<TakeOver>) -> Json<HaStatus> {
    Json(ops::take_over(&s.manager, t))
}

async fn status(State(s): State<ApiState>, _: Viewer) -> Json<SystemStatus> {
    Json(ops::status(&s.manager))
}

async fn bundles(State(s): State<ApiState>, _: Viewer) -> Json<Vec<BundleInfo>> {
    Json(ops::list_bundles(&s.manager.cfg.bundles))
}

/// Selects the upgrade procedure (the seed's "Current ISO").
async fn select_procedure(
    State(s): State<ApiState>,
    Operator(who): Operator,
    Json(b): Json<ProcedureRequest>,
) -> ApiResult<Json<ProcedureAnswer>> {
    Ok(Json(ops::select_procedure(&s.manager, who.name, b).await.map_err(refused)?))
}

/// Starts an action on a cluster: the preferred one in a direction, or a named legal one.
async fn start_action(
    State(s): State<ApiState>,
    Operator(who): Operator,
    Json(b): Json<ActionRequest>,
) -> ApiResult<Json<StartedAction>> {
    Ok(Json(ops::start_action(&s.manager, who.name, b).map_err(refused)?))
}

/// Starts the next action of every cluster that may move now.
async fn start_next(
    State(s): State<ApiState>,
    Operator(who): Operator,
    Json(b): Json<NextRequest>,
) -> Json<NextAnswer> {
    Json(ops::start_next(&s.manager, who.name, b))
}

async fn log(State(s): State<ApiState>, _: Viewer, Query(q): Query<LogQuery>) -> Json<Vec<LogEntry>> {
    Json(ops::log(&s.manager, &q))
}

/// The upgrade log grouped per cluster and action, with real durations (the page's log).
async fn log_groups(
    State(s): State<ApiState>,
    _: Viewer,
    Query(q): Query<LogQuery>,
) -> Json<Vec<tollgate_api::log_groups::LogGroup>> {
    Json(tollgate_api::log_groups::group_log(ops::log(&s.manager, &q)))
}

async fn audit(State(s): State<ApiState>, _: Viewer) -> Json<Vec<AuditEntry>> {
    Json(ops::audit(&s.manager))
}

async fn zombie_repaired(
    State(s): State<ApiState>,
    Operator(who): Operator,
    Json(b): Json<ZombieRequest>,
) -> ApiResult<Json<ZombieAnswer>> {
    Ok(Json(ops::zombie_repaired(&s.manager, who.name, b).map_err(refused)?))
}

async fn alarms(State(s): State<ApiState>, _: Viewer) -> Json<ManagerAlarms> {
    Json(ops::alarms(&s.manager))
}

/// Every server's active alarms with their acknowledgement.
async fn all_alarms(State(s): State<ApiState>, _: Viewer) -> Json<Vec<tollgate_api::console::ConsoleAlarm>> {
    Json(tollgate_manager::alarm_acks::active(&s.manager))
}

/// Acknowledges an active alarm (recorded with who and when, audited).
async fn acknowledge_alarm(
    State(s): State<ApiState>,
    Operator(who): Operator,
    Json(b): Json<tollgate_api::console::AckRequest>,
) -> ApiResult<Json<tollgate_api::console::ConsoleAlarm>> {
    Ok(Json(tollgate_manager::alarm_acks::acknowledge(&s.manager, &who.name, &b.key).map_err(refused)?))
}

/// Every server's syscheck (`tollgate health` system-wide).
async fn health(State(s): State<ApiState>, _: Viewer) -> Json<SystemHealth> {
    Json(ops::health(&s.manager).await)
}

/// System backup: every server's backup and a copy of the manager's own state; 502 when a part
/// is missing (the answer says which).
async fn system_backup(State(s): State<ApiState>, _: Operator, body: Bytes) -> Response {
    // The body is optional (no `why`: "manual").
    let why = serde_json::from_slice::<BackupRequest>(&body).unwrap_or_default().why;
    let result = ops::take_system_backup(&s.manager, why.as_deref().unwrap_or("manual")).await;
    let status = if result.ok { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
    (status, Json(result)).into_response()
}

/// Restores one server's backup.
async fn restore(
    State(s): State<ApiState>,
    _: Admin,
    Json(b): Json<SystemRestoreRequest>,
) -> ApiResult<Json<RestoreAnswer>> {
    Ok(Json(ops::restore(&s.manager, b).await.map_err(refused)?))
}

async fn system_backups(State(s): State<ApiState>, _: Viewer) -> Json<Vec<ServerBackups>> {
    Json(ops::system_backups(&s.manager).await)
}
