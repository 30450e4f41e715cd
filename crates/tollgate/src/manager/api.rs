//! The manager's HTTP API and the Upgrade Manager page.
//!
//! Operators authenticate with a bearer token of the manager's user database (`cli-token` in
//! its state directory, or `tollgate token create`); the mate manager and the agents use the
//! agents' token.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_upgrade::bundle::{self, TrustedKeys};
use tollgate_upgrade::director::{Action, ActionId, Direction, Effect, Event, Mode, Procedure};
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::AppType;
use tollgate_web::auth::{Auth, Principal, Role};

use super::{Manager, Snapshot, pair, view};

/// The API's state.
pub struct ApiState {
    /// The manager.
    pub manager: Arc<Manager>,
    /// Users and tokens.
    pub auth: Auth,
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

/// The operator behind a request, if allowed `role`.
fn operator(s: &ApiState, headers: &HeaderMap, role: Role) -> Result<Principal, Box<Response>> {
    let Some(token) = bearer(headers) else {
        return Err(Box::new(err(StatusCode::UNAUTHORIZED, "a token is needed (Authorization: Bearer ...)")));
    };
    match s.auth.token(token) {
        Some(p) if p.role.allows(role) => Ok(p),
        Some(p) => {
            Err(Box::new(err(StatusCode::FORBIDDEN, format!("{} may not do this (needs {})", p.name, role.as_str()))))
        }
        None => Err(Box::new(err(StatusCode::UNAUTHORIZED, "unknown token"))),
    }
}

/// The mate manager (agents' token).
fn peer(s: &ApiState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    match bearer(headers) {
        Some(t) if t == s.manager.cfg.agent_token => Ok(()),
        _ => Err(Box::new(err(StatusCode::UNAUTHORIZED, "the pair's token is needed"))),
    }
}

macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// The manager's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(|| async { axum::response::Redirect::to("/upgrade") }))
        .route("/upgrade", get(|| async { Html(include_str!("upgrade.html")) }))
        .route("/api/v1/version", get(version))
        .route("/api/v1/manager/ha", get(ha))
        .route("/api/v1/manager/state", get(state_for_mate))
        .route("/api/v1/manager/take-over", post(take_over))
        .route("/api/v1/manager/sync", post(sync_from_mate))
        .route("/api/v1/upgrade/status", get(status))
        .route("/api/v1/upgrade/bundles", get(bundles))
        .route("/api/v1/upgrade/procedure", post(select_procedure))
        .route("/api/v1/upgrade/action", post(start_action))
        .route("/api/v1/upgrade/next", post(start_next))
        .route("/api/v1/upgrade/log", get(log))
        .route("/api/v1/upgrade/audit", get(audit))
        .route("/api/v1/upgrade/zombie-repaired", post(zombie_repaired))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/health", get(health))
        .route("/api/v1/backup", post(system_backup))
        .route("/api/v1/backups", get(system_backups))
        .route("/api/v1/restore", post(restore))
        .route("/api/v1/policy/push", post(push_policy))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .with_state(state)
}

async fn version(State(s): State<Arc<ApiState>>) -> Response {
    Json(json!({ "release": s.manager.release, "role": "manager" })).into_response()
}

async fn ha(State(s): State<Arc<ApiState>>) -> Response {
    Json(pair::ha_view(&s.manager)).into_response()
}

async fn state_for_mate(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(peer(&s, &headers));
    if !s.manager.is_active() {
        return err(StatusCode::CONFLICT, "this manager is the standby");
    }
    Json(s.manager.core().shared.clone()).into_response()
}

/// The active mate pushes its state after a change.
async fn sync_from_mate(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(snapshot): Json<Snapshot>,
) -> Response {
    check!(peer(&s, &headers));
    Json(json!({ "accepted": pair::accept_sync(&s.manager, snapshot) })).into_response()
}

#[derive(Deserialize)]
struct TakeOver {
    snapshot: Snapshot,
    action: u64,
}

/// The active mate hands over (the manager cluster's failover step): this manager takes its
/// state, becomes active and reports the failover action's success.
async fn take_over(State(s): State<Arc<ApiState>>, headers: HeaderMap, Json(t): Json<TakeOver>) -> Response {
    check!(peer(&s, &headers));
    let m = &s.manager;
    {
        let mut core = m.core();
        core.shared = t.snapshot;
        core.last_sync = Some(Utc::now());
    }
    // The hand-over's own action is reported here; any other running action has no executor
    // in this process and is learnt from the servers' reports (become_active orphans it).
    m.launched.lock().unwrap_or_else(|e| e.into_inner()).insert(t.action);
    m.become_active(false);
    m.feed(Event::ActionSucceeded { id: ActionId(t.action), at: Utc::now() });
    Json(pair::ha_view(m)).into_response()
}

async fn status(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    let mut v = view::status(&s.manager);
    v["bundles"] = json!(list_bundles(&s.manager.cfg.bundles));
    Json(v).into_response()
}

/// A bundle in the manager's repository.
#[derive(serde::Serialize)]
struct BundleInfo {
    file: String,
    application: AppType,
    release: String,
    upgrades_from: Vec<String>,
    max_policy_schema: Option<i64>,
}

fn list_bundles(dir: &FsPath) -> Vec<BundleInfo> {
    let mut out: Vec<BundleInfo> = bundle::bundles_in(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(p, m)| {
            Some(BundleInfo {
                file: p.file_name()?.to_string_lossy().into_owned(),
                application: m.application,
                release: m.version.as_str().to_string(),
                upgrades_from: m.upgrades_from.iter().map(|u| u.as_str().to_string()).collect(),
                max_policy_schema: m.max_policy_schema,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.release, a.application).cmp(&(&b.release, b.application)));
    out
}

async fn bundles(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    Json(list_bundles(&s.manager.cfg.bundles)).into_response()
}

#[derive(Deserialize)]
struct ProcedureBody {
    /// The release to roll out; none deselects.
    release: Option<String>,
}

/// Selects the upgrade procedure (the seed's "Current ISO"): the bundles of that release are
/// verified, then staged on every server that does not run it.
async fn select_procedure(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(b): Json<ProcedureBody>,
) -> Response {
    let who = check!(operator(&s, &headers, Role::Operator));
    let m = s.manager.clone();
    if !m.is_active() {
        return err(StatusCode::CONFLICT, "this manager is the standby of its pair: use the active one");
    }
    let procedure = match &b.release {
        None => None,
        Some(r) => {
            let Ok(release) = Release::new(r) else {
                return err(StatusCode::BAD_REQUEST, format!("bad release {r:?}"));
            };
            let dir = m.cfg.bundles.clone();
            let keys = m.cfg.trusted_keys.clone();
            let verified = tokio::task::spawn_blocking(move || verify_release(&dir, &keys, &release)).await;
            match verified {
                // The poll stages it on the servers (staging::ensure); a system backup is
                // taken first thing.
                Ok(Ok(procedure)) => {
                    let (m, why) = (m.clone(), format!("pre-upgrade-system-{}", procedure.release));
                    tokio::spawn(async move {
                        let r = take_system_backup(&m, &why).await;
                        if r["ok"] != true {
                            tracing::warn!(result = %r, "the system backup before the upgrade is incomplete");
                        }
                    });
                    Some(procedure)
                }
                Ok(Err(e)) => return err(StatusCode::UNPROCESSABLE_ENTITY, e),
                Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    };
    let effects = m.feed(Event::ProcedureSelected { procedure, user: who.name, at: Utc::now() });
    match refusal(&effects) {
        Some(r) => err(StatusCode::CONFLICT, r),
        None => Json(json!({ "procedure": m.core().shared.director.procedure() })).into_response(),
    }
}

/// Verifies every bundle of `release` in `dir`; the procedure.
fn verify_release(dir: &FsPath, keys: &[String], release: &Release) -> Result<Procedure, String> {
    let trusted = TrustedKeys::from_hex(keys).map_err(|e| format!("manager.trusted_keys: {e}"))?;
    let mut upgrades_from = None;
    let bundles = bundle::bundles_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (path, _) in bundles.into_iter().filter(|(_, m)| m.version == *release) {
        let v = bundle::verify_file(&path, &trusted, &Default::default())
            .map_err(|e| format!("{}: refused: {e}", path.display()))?;
        upgrades_from = Some(v.manifest.upgrades_from);
    }
    let Some(upgrades_from) = upgrades_from else {
        return Err(format!("no bundle of release {release} in {}", dir.display()));
    };
    Ok(Procedure { release: release.clone(), upgrades_from, label: format!("tollgate-{release}") })
}

fn refusal(effects: &[Effect]) -> Option<String> {
    effects.iter().find_map(|e| match e {
        Effect::Refused { refusal, .. } => Some(refusal.reason.clone()),
        Effect::Ignored { reason } => Some(reason.clone()),
        _ => None,
    })
}

fn started(effects: &[Effect]) -> Option<(ActionId, String)> {
    effects.iter().find_map(|e| match e {
        Effect::Execute { id, action } => Some((*id, action.to_string())),
        _ => None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum DirectionWord {
    Upgrade,
    Backout,
    Rollback,
}

impl From<DirectionWord> for Direction {
    fn from(d: DirectionWord) -> Self {
        match d {
            DirectionWord::Upgrade => Direction::Upgrade,
            DirectionWord::Backout | DirectionWord::Rollback => Direction::Backout,
        }
    }
}

#[derive(Deserialize)]
struct ActionBody {
    cluster: String,
    /// The next preferred action in this direction...
    direction: Option<DirectionWord>,
    /// ... or this one (from the "Advanced" menu).
    action: Option<Action>,
}

/// Starts an action on a cluster: the preferred one in a direction, or a named legal one.
async fn start_action(State(s): State<Arc<ApiState>>, headers: HeaderMap, Json(b): Json<ActionBody>) -> Response {
    let who = check!(operator(&s, &headers, Role::Operator));
    let m = &s.manager;
    let action = match (b.action, b.direction) {
        (Some(a), _) => a,
        (None, Some(d)) => {
            let advice = m.core().shared.director.advise(&b.cluster, d.into());
            match advice {
                Ok(a) => match (a.preferred, a.waiting, a.done) {
                    (Some(p), _, _) => p.action,
                    (None, _, true) => {
                        return err(StatusCode::CONFLICT, format!("{} is done in that direction", b.cluster));
                    }
                    (None, Some(w), _) => return err(StatusCode::CONFLICT, w.reason),
                    (None, None, _) => return err(StatusCode::CONFLICT, "no action to take"),
                },
                Err(r) => return err(StatusCode::CONFLICT, r.reason),
            }
        }
        (None, None) => return err(StatusCode::BAD_REQUEST, "give a direction or an action"),
    };
    let effects = m.feed(Event::ActionStarted { action, mode: Mode::Manual { user: who.name }, at: Utc::now() });
    match (started(&effects), refusal(&effects)) {
        (Some((id, label)), _) => Json(json!({ "id": id.0, "action": label })).into_response(),
        (None, Some(r)) => err(StatusCode::CONFLICT, r),
        (None, None) => err(StatusCode::CONFLICT, "not started"),
    }
}

#[derive(Deserialize)]
struct NextBody {
    direction: DirectionWord,
}

/// Starts the next action of every cluster that may move now (in the system order, within the
/// parallel limit).
async fn start_next(State(s): State<Arc<ApiState>>, headers: HeaderMap, Json(b): Json<NextBody>) -> Response {
    let who = check!(operator(&s, &headers, Role::Operator));
    let m = &s.manager;
    let direction: Direction = b.direction.into();
    let proposals = m.core().shared.director.next_actions(direction);
    let mut started_list = Vec::new();
    let mut refused = Vec::new();
    for p in proposals {
        let effects = m.feed(Event::ActionStarted {
            action: p.action.clone(),
            mode: Mode::Manual { user: who.name.clone() },
            at: Utc::now(),
        });
        match (started(&effects), refusal(&effects)) {
            (Some((id, label)), _) => started_list.push(json!({ "id": id.0, "action": label })),
            (None, r) => refused.push(json!({ "action": p.label, "reason": r })),
        }
    }
    let director = &m.core().shared.director;
    let done = director.topology().clusters.iter().all(|c| director.is_done(&c.name, direction));
    Json(json!({ "started": started_list, "refused": refused, "done": done })).into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    cluster: Option<String>,
}

async fn log(State(s): State<Arc<ApiState>>, headers: HeaderMap, Query(q): Query<LogQuery>) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    let core = s.manager.core();
    let entries: Vec<Value> = core
        .shared
        .log
        .values()
        .filter(|e| q.cluster.as_ref().is_none_or(|c| *c == e.cluster))
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["duration"] = json!(e.duration_text());
            v
        })
        .collect();
    Json(entries).into_response()
}

async fn audit(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    Json(s.manager.core().shared.audit.clone()).into_response()
}

#[derive(Deserialize)]
struct ZombieBody {
    hostname: String,
}

async fn zombie_repaired(State(s): State<Arc<ApiState>>, headers: HeaderMap, Json(b): Json<ZombieBody>) -> Response {
    let who = check!(operator(&s, &headers, Role::Operator));
    let effects =
        s.manager.feed(Event::ZombieRepaired { hostname: b.hostname.clone(), user: who.name, at: Utc::now() });
    match refusal(&effects) {
        Some(r) => err(StatusCode::CONFLICT, r),
        None => Json(json!({ "repaired": b.hostname })).into_response(),
    }
}

async fn alarms(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    let remote = s.manager.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Json(json!({
        "active": s.manager.alarms.active(),
        "history": s.manager.alarms.history(),
        "servers": remote,
    }))
    .into_response()
}

/// Every server's syscheck (`tollgate health` system-wide).
async fn health(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    let m = &s.manager;
    let mut checks = tokio::task::JoinSet::new();
    for (c, server) in m.cfg.servers() {
        let (agents, cluster, server) = (m.agents.clone(), c.name.clone(), server.clone());
        checks.spawn(async move {
            let result = agents.get(&server.agent, "/agent/v1/health").await;
            (cluster, server.hostname, result)
        });
    }
    let mut servers: Vec<Value> = checks
        .join_all()
        .await
        .into_iter()
        .map(|(cluster, hostname, r)| match r {
            Ok(h) => json!({ "cluster": cluster, "hostname": hostname, "ok": h["ok"], "text": h["text"], "health": h["health"] }),
            Err(e) => json!({
                "cluster": cluster, "hostname": hostname, "ok": false,
                "text": format!("{hostname}: the agent does not answer: {e}\n"),
            }),
        })
        .collect();
    servers.sort_by(|a, b| a["hostname"].as_str().cmp(&b["hostname"].as_str()));
    let ok = servers.iter().all(|s| s["ok"] == true);
    Json(json!({ "ok": ok, "servers": servers })).into_response()
}

#[derive(Deserialize, Default)]
struct BackupBody {
    why: Option<String>,
}

/// System backup: every server's backup (configuration, policies, users, the record store's
/// snapshot), and a copy of the manager's own state.
async fn system_backup(State(s): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    check!(operator(&s, &headers, Role::Operator));
    let why = serde_json::from_slice::<BackupBody>(&body).unwrap_or_default().why;
    let result = take_system_backup(&s.manager, why.as_deref().unwrap_or("manual")).await;
    let status = if result["ok"] == true { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
    (status, Json(result)).into_response()
}

/// Takes a system backup named after `why`.
pub async fn take_system_backup(m: &Manager, why: &str) -> Value {
    let mut results = Vec::new();
    for (_, server) in m.cfg.servers() {
        let r = m.agents.post(&server.agent, "/agent/v1/backup", json!({ "why": why })).await;
        results.push(match r {
            Ok(b) => json!({ "hostname": server.hostname, "backup": b }),
            Err(e) => json!({ "hostname": server.hostname, "error": e }),
        });
    }
    let own = m.backup_state(why);
    if let Err(e) = &own {
        results.push(json!({ "hostname": m.cfg.hostname, "error": format!("manager state: {e}") }));
    }
    let ok = results.iter().all(|r| r.get("error").is_none());
    json!({ "ok": ok, "why": why, "manager_state": own.ok(), "servers": results })
}

#[derive(Deserialize)]
struct RestoreBody {
    hostname: String,
    name: String,
}

/// Restores one server's backup (its role stops, the backup's configuration and state come
/// back, the role starts).
async fn restore(State(s): State<Arc<ApiState>>, headers: HeaderMap, Json(b): Json<RestoreBody>) -> Response {
    check!(operator(&s, &headers, Role::Admin));
    let Some((_, server)) = s.manager.cfg.server(&b.hostname) else {
        return err(StatusCode::NOT_FOUND, format!("{} is not in the topology", b.hostname));
    };
    match s.manager.agents.post(&server.agent, "/agent/v1/restore", json!({ "name": b.name })).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => err(StatusCode::BAD_GATEWAY, format!("{}: {e}", b.hostname)),
    }
}

async fn system_backups(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    check!(operator(&s, &headers, Role::Viewer));
    let m = &s.manager;
    let mut out = Vec::new();
    for (_, server) in m.cfg.servers() {
        let list = m.agents.get(&server.agent, "/agent/v1/backups").await.unwrap_or(Value::Null);
        out.push(json!({ "hostname": server.hostname, "backups": list }));
    }
    Json(out).into_response()
}

#[derive(Deserialize)]
struct PushQuery {
    cluster: Option<String>,
    name: Option<String>,
}

/// The schema a policy file declares (1 when it says nothing).
fn declared_schema(text: &str) -> Result<i64, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("the policy is not valid TOML: {e}"))?;
    match table.get("schema") {
        None => Ok(1),
        Some(v) => v.as_integer().ok_or_else(|| "schema: must be an integer".to_string()),
    }
}

/// Installs a policy (the request body, TOML) on every server of the engine clusters (or of
/// one). A policy of a schema that some engine's release cannot read is refused before any
/// server is touched, naming the servers (seed 001: mixed-version operation).
async fn push_policy(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<PushQuery>,
    body: Bytes,
) -> Response {
    check!(operator(&s, &headers, Role::Operator));
    let m = &s.manager;
    let Ok(text) = std::str::from_utf8(&body) else { return err(StatusCode::BAD_REQUEST, "the policy is not UTF-8") };
    let schema = match declared_schema(text) {
        Ok(s) => s,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    let clusters: Vec<_> = m
        .cfg
        .clusters
        .iter()
        .filter(|c| c.application == AppType::Engine && q.cluster.as_ref().is_none_or(|n| *n == c.name))
        .cloned()
        .collect();
    if clusters.is_empty() {
        return err(StatusCode::NOT_FOUND, "no such engine cluster");
    }
    let mut behind = Vec::new();
    for c in &clusters {
        for server in &c.servers {
            match m.agents.get(&server.agent, "/agent/v1/status").await {
                Ok(st) => {
                    let max = st["max_policy_schema"].as_i64().unwrap_or(i64::MAX);
                    if max < schema {
                        behind.push(format!(
                            "{} ({}) runs {} which reads policy schema {max} at most",
                            server.hostname,
                            c.name,
                            st["release"].as_str().unwrap_or("?")
                        ));
                    }
                }
                Err(e) => behind.push(format!("{} ({}) cannot be reached: {e}", server.hostname, c.name)),
            }
        }
    }
    if !behind.is_empty() {
        return err(
            StatusCode::CONFLICT,
            format!(
                "policy refused, nothing installed: it uses schema {schema}, but {}; finish the upgrade first",
                behind.join("; ")
            ),
        );
    }
    let name = q.name.unwrap_or_else(|| "policy.toml".into());
    let mut installed = Vec::new();
    for c in &clusters {
        for server in &c.servers {
            match m.agents.install_policy(&server.agent, &name, text).await {
                Ok(v) => installed.push(json!({ "hostname": server.hostname, "version": v["version"] })),
                Err(e) => {
                    return err(
                        StatusCode::BAD_GATEWAY,
                        format!("{}: policy not installed: {e} (installed on: {installed:?})", server.hostname),
                    );
                }
            }
        }
    }
    Json(json!({ "schema": schema, "installed": installed })).into_response()
}
