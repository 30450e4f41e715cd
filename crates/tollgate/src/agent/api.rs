//! The agent's HTTP API, for the manager (bearer token `[agent] token`, checked from the
//! headers before any body is read, see [`super::auth`]; bodies have a limit per route, see
//! [`super::upload`]):
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/agent/v1/status` | server, application type, release in force and previous, staged bundles, the role process |
//! | POST | `/agent/v1/stage?name=FILE` | stage a bundle (body: the archive); verified before it is kept |
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tollgate_upgrade::bundle::TrustedKeys;
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::AppType;

use super::auth::AgentToken;
use super::releases::{Installed, Releases};
use super::supervisor::{Launch, Supervisor};
use super::{AgentConfig, backup, health, upload};
use crate::config::Config;

/// The agent's state.
pub struct Agent {
    /// Its configuration.
    pub config: AgentConfig,
    /// The role's configuration (for its API address and state directory).
    pub role: Config,
    /// Releases on this server.
    pub releases: Releases,
    /// Trusted bundle signers.
    pub trusted: TrustedKeys,
    /// The application type.
    pub app: AppType,
    /// The role process.
    pub supervisor: Supervisor,
    /// One operation (install, backout, restore) at a time.
    pub busy: Mutex<()>,
    /// The token the manager presents.
    pub token: AgentToken,
}

fn err(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl Agent {
    /// The role's API base URL.
    pub fn role_api(&self) -> String {
        self.role.api_url()
    }

    /// The role's admin token (its CLI token).
    pub fn role_token(&self) -> Option<String> {
        self.role.cli_token()
    }

    /// The file whose existence holds this server in forced standby; the role process watches
    /// it (see [`crate::forced_standby`]).
    pub fn forced_standby_file(&self) -> PathBuf {
        self.config.dir.join("forced-standby")
    }

    /// Whether the manager holds this server in forced standby.
    pub fn forced_standby(&self) -> bool {
        self.forced_standby_file().exists()
    }

    fn backups_dir(&self) -> PathBuf {
        self.config.dir.join("backups")
    }

    /// How to run `release`.
    pub fn launch(&self, release: &Installed) -> Launch {
        let mut env = vec![
            ("TOLLGATE_RELEASE".to_string(), release.version.clone()),
            (crate::forced_standby::ENV.to_string(), self.forced_standby_file().display().to_string()),
        ];
        if let Some(s) = release.max_policy_schema {
            env.push(("TOLLGATE_MAX_POLICY_SCHEMA".to_string(), s.to_string()));
        }
        Launch {
            binary: release.dir.join("tollgate"),
            args: vec![
                "--log".into(),
                "warn".into(),
                "--config".into(),
                self.config.role_config.display().to_string(),
                self.config.role.to_string(),
            ],
            env,
            log: self.config.dir.join("role.log"),
        }
    }

    /// Starts the release in force and waits until the role's API answers.
    pub async fn start_current(&self) -> anyhow::Result<()> {
        let Some(cur) = self.releases.current() else { return Ok(()) };
        self.supervisor.start(self.launch(&cur)).await?;
        self.wait_role_up(Duration::from_secs(60)).await
    }

    async fn wait_role_up(&self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let url = format!("{}/healthz", self.role_api());
        let deadline = Instant::now() + within;
        let restarts_before = self.supervisor.status().restarts;
        while Instant::now() < deadline {
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            let st = self.supervisor.status();
            if !st.running && st.restarts > restarts_before + 3 {
                anyhow::bail!("the role process keeps exiting (see {})", self.config.dir.join("role.log").display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the role did not answer at {url} within {within:?}")
    }

    fn status(&self) -> serde_json::Value {
        json!({
            "server": self.config.server,
            "application": self.app.as_str(),
            "role": self.config.role,
            "release": self.releases.current().map(|r| r.version),
            "previous_release": self.releases.previous().map(|r| r.version),
            "max_policy_schema": self.releases.current().and_then(|r| r.max_policy_schema),
            "staged": self.releases.staged(),
            "process": self.supervisor.status(),
            "role_api": self.role_api(),
            "forced_standby": self.forced_standby(),
            // An install, backout, restart or restore is under way.
            "busy": self.busy.try_lock().is_err(),
            "ha_role": std::fs::read_to_string(self.config.dir.join("ha-role")).ok().map(|r| r.trim().to_string()),
        })
    }
}

/// The agent's routes. Every `/agent/v1` route is behind the token check; JSON bodies are
/// limited to [`upload::MAX_JSON_BYTES`], a bundle to `[agent] max_bundle_mb` (streamed to
/// disk), a request for the role to `[agent] max_role_request_mb`.
pub fn router(agent: Arc<Agent>) -> Router {
    let api = Router::new()
        .route("/agent/v1/status", get(status))
        .route("/agent/v1/stage", post(stage))
        .route("/agent/v1/preflight", post(preflight))
        .route("/agent/v1/install", post(|s: State<Arc<Agent>>, b: Json<VersionBody>| detached(install(s, b))))
        .route("/agent/v1/backout", post(|s: State<Arc<Agent>>| detached(backout(s))))
        .route("/agent/v1/restart", post(|s: State<Arc<Agent>>| detached(restart(s))))
        .route("/agent/v1/backup", post(take_backup))
        .route("/agent/v1/backups", get(backups))
        .route("/agent/v1/restore", post(|s: State<Arc<Agent>>, b: Json<RestoreBody>| detached(restore(s, b))))
        .route("/agent/v1/health", get(health_check))
        .route("/agent/v1/unstage", post(unstage))
        .route("/agent/v1/forced-standby", post(set_forced_standby))
        .route("/agent/v1/ha-role", post(set_ha_role))
        .route("/agent/v1/role/{*path}", get(role_get).post(role_post))
        .layer(DefaultBodyLimit::max(upload::MAX_JSON_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(agent.clone(), super::auth::require_token));
    Router::new().route("/healthz", get(|| async { "ok\n" })).merge(api).with_state(agent)
}

/// Runs `work` in a task of its own: an install, backout, restart or restore finishes even if
/// the manager that asked disconnects (a dropped request would otherwise cancel it half-way,
/// e.g. with the role stopped and the new release not started).
async fn detached(work: impl std::future::Future<Output = Response> + Send + 'static) -> Response {
    match tokio::spawn(work).await {
        Ok(r) => r,
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn status(State(a): State<Arc<Agent>>) -> Response {
    Json(a.status()).into_response()
}

#[derive(Deserialize)]
struct StageParams {
    name: String,
}

async fn stage(State(a): State<Arc<Agent>>, Query(p): Query<StageParams>, headers: HeaderMap, body: Body) -> Response {
    let limit = a.config.max_bundle_mb << 20;
    let staging = a.releases.staging();
    let incoming =
        match upload::stream_to_file(&headers, body, &staging, limit, "the bundle", "agent.max_bundle_mb").await {
            Ok(path) => path,
            Err(refused) => return refused,
        };
    let releases = a.releases.clone();
    let (trusted, app) = (a.trusted.clone(), a.app);
    let result =
        tokio::task::spawn_blocking(move || releases.stage_file(&p.name, incoming, &trusted, app, limit)).await;
    match result {
        Ok(Ok(m)) => {
            Json(json!({ "staged": m.version.as_str(), "application": m.application.as_str() })).into_response()
        }
        Ok(Err(e)) => err(StatusCode::UNPROCESSABLE_ENTITY, format!("bundle refused, nothing staged: {e}")),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

async fn preflight(State(a): State<Arc<Agent>>, Json(b): Json<VersionBody>) -> Response {
    let Ok(target) = Release::new(&b.version) else { return err(StatusCode::BAD_REQUEST, "bad release name") };
    match a.releases.preflight(a.app, &target, &a.trusted) {
        Ok(bundle) => Json(json!({ "preflight": "ok", "version": bundle.manifest.version.as_str() })).into_response(),
        Err(e) => err(StatusCode::UNPROCESSABLE_ENTITY, format!("preflight failed: {e}")),
    }
}

async fn install(State(a): State<Arc<Agent>>, Json(b): Json<VersionBody>) -> Response {
    let _one = a.busy.lock().await;
    let Ok(target) = Release::new(&b.version) else { return err(StatusCode::BAD_REQUEST, "bad release name") };
    if a.releases.current().is_some_and(|c| c.version == target.as_str()) {
        return Json(a.status()).into_response();
    }
    let bundle = match a.releases.preflight(a.app, &target, &a.trusted) {
        Ok(b) => b,
        Err(e) => return err(StatusCode::UNPROCESSABLE_ENTITY, format!("preflight failed, nothing changed: {e}")),
    };
    if a.releases.current().is_some()
        && let Err(e) = backup::take(
            &a.backups_dir(),
            &a.config.role_config,
            &a.role.node.state_dir,
            &format!("pre-upgrade-{}", target.as_str()),
        )
    {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup before the upgrade failed, nothing changed: {e}"),
        );
    }
    a.supervisor.stop().await;
    if let Err(e) = a.releases.install(&bundle) {
        let _ = a.start_current().await;
        return err(StatusCode::INTERNAL_SERVER_ERROR, format!("install failed; the previous release runs again: {e}"));
    }
    match a.start_current().await {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, format!("installed, but the role did not come up: {e}")),
    }
}

async fn backout(State(a): State<Arc<Agent>>) -> Response {
    let _one = a.busy.lock().await;
    if a.releases.previous().is_none() {
        return err(StatusCode::CONFLICT, "no previous release to back out to");
    }
    if let Err(e) = backup::take(&a.backups_dir(), &a.config.role_config, &a.role.node.state_dir, "pre-backout") {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup before the backout failed, nothing changed: {e}"),
        );
    }
    a.supervisor.stop().await;
    if let Err(e) = a.releases.backout() {
        let _ = a.start_current().await;
        return err(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    match a.start_current().await {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, format!("backed out, but the role did not come up: {e}")),
    }
}

async fn restart(State(a): State<Arc<Agent>>) -> Response {
    let _one = a.busy.lock().await;
    match a.start_current().await {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn take_backup(State(a): State<Arc<Agent>>, body: Bytes) -> Response {
    // Optional body {"why": "pre-upgrade-system-2.0.0"}: goes into the backup's name.
    let why = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["why"].as_str().map(str::to_string))
        .unwrap_or_else(|| "manual".to_string());
    match backup::take(&a.backups_dir(), &a.config.role_config, &a.role.node.state_dir, &why) {
        Ok(b) => Json(b).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn backups(State(a): State<Arc<Agent>>) -> Response {
    Json(backup::list(&a.backups_dir())).into_response()
}

#[derive(Deserialize)]
struct RestoreBody {
    name: String,
}

async fn restore(State(a): State<Arc<Agent>>, Json(b): Json<RestoreBody>) -> Response {
    let _one = a.busy.lock().await;
    // Unpacked and checked while the role still runs: a bad name or a damaged backup changes
    // nothing.
    let unpacked = match backup::unpack(&a.backups_dir(), &b.name) {
        Ok(u) => u,
        Err(e) => return err(StatusCode::UNPROCESSABLE_ENTITY, format!("restore refused, nothing changed: {e}")),
    };
    a.supervisor.stop().await;
    let restored = backup::put_in_place(&unpacked, &a.config.role_config, &a.role.node.state_dir);
    let started = a.start_current().await;
    match (restored, started) {
        (Ok(()), Ok(())) => Json(json!({ "restored": b.name })).into_response(),
        (Err(e), _) => err(StatusCode::UNPROCESSABLE_ENTITY, format!("restore failed: {e}")),
        (Ok(()), Err(e)) => {
            err(StatusCode::INTERNAL_SERVER_ERROR, format!("restored, but the role did not come up: {e}"))
        }
    }
}

#[derive(Deserialize)]
struct UnstageBody {
    name: String,
}

/// Removes one staged bundle (the manager clears bundles of an abandoned procedure, so that
/// exactly one is staged again).
async fn unstage(State(a): State<Arc<Agent>>, Json(b): Json<UnstageBody>) -> Response {
    match a.releases.unstage(&b.name) {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

#[derive(Deserialize)]
struct ForcedStandbyBody {
    on: bool,
}

/// The manager places this server in forced standby (or releases it): kept in the agent's
/// directory, reported in `status`; the role process watches the file (an SRP chassis then takes
/// no service, a manager does not take over from its mate).
async fn set_forced_standby(State(a): State<Arc<Agent>>, Json(b): Json<ForcedStandbyBody>) -> Response {
    let path = a.forced_standby_file();
    let result = if b.on { std::fs::write(&path, "1\n") } else { std::fs::remove_file(&path).or_else(ignore_missing) };
    match result {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", path.display())),
    }
}

#[derive(Deserialize)]
struct HaRoleBody {
    role: tollgate_upgrade::topology::HaRole,
}

/// For a role that runs no SRP pair (a probe pair, a spare): the manager records which server
/// is Active after a failover; the agent keeps it and reports it.
async fn set_ha_role(State(a): State<Arc<Agent>>, Json(b): Json<HaRoleBody>) -> Response {
    let path = a.config.dir.join("ha-role");
    match std::fs::write(&path, format!("{}\n", b.role)) {
        Ok(()) => Json(a.status()).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", path.display())),
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }
}

async fn health_check(State(a): State<Arc<Agent>>) -> Response {
    let api = a.role_api();
    let token = a.role_token();
    let release = a.releases.current().map(|r| r.version).unwrap_or_else(|| "(none)".into());
    let h = health::check(health::Inputs {
        server: &a.config.server,
        dir: &a.config.dir,
        process_running: a.supervisor.status().running,
        role_api: Some(&api),
        role_token: token.as_deref(),
        release: (&release, None),
    })
    .await;
    Json(json!({ "ok": h.ok(), "text": h.text(), "health": h })).into_response()
}

async fn role_call(
    a: &Agent,
    method: reqwest::Method,
    path: &str,
    query: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(c) => c,
        Err(e) => return err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let mut req = client.request(method, format!("{}/{path}{query}", a.role_api()));
    if let Some(t) = a.role_token() {
        req = req.bearer_auth(t);
    }
    if !body.is_empty() {
        let content_type = content_type.unwrap_or_else(|| "application/json".to_string());
        req = req.header("content-type", content_type).body(body.to_vec());
    }
    match req.send().await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = resp.text().await.unwrap_or_default();
            (status, [("content-type", "application/json")], text).into_response()
        }
        Err(e) => err(StatusCode::BAD_GATEWAY, format!("the role's API does not answer: {e}")),
    }
}

async fn role_get(State(a): State<Arc<Agent>>, Path(path): Path<String>, RawQuery(query): RawQuery) -> Response {
    role_call(&a, reqwest::Method::GET, &path, query, None, Bytes::new()).await
}

async fn role_post(
    State(a): State<Arc<Agent>>,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let limit = a.config.max_role_request_mb << 20;
    let body = match upload::read_limited(
        &headers,
        body,
        limit,
        "the request for the role",
        Some("agent.max_role_request_mb"),
    )
    .await
    {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    role_call(&a, reqwest::Method::POST, &path, query, content_type, body).await
}
