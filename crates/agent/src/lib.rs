//! The agent's runtime: runs on every server, keeps the server's role process (engine, probe,
//! collector or manager) running from the release in force, and carries out what the
//! manager's Upgrade Director decides: stage a release bundle (verified before anything runs),
//! preflight, install (backup, stop, switch release, start, wait until healthy), back out to the
//! previous release, back up and restore, hold the server in forced standby. It reports status
//! and health.
//!
//! What this crate owns: those decisions, as typed methods of [`Agent`] that take and return
//! the wire types of [`tollgate_api::agent`] and fail with an [`AgentError`] carrying the
//! stable [`ErrorCode`] of the answer.
//!
//! What it must not do: HTTP serving. The agent's router (token check, body limits, streaming a
//! bundle to disk) lives in `tollgate-web` (`agent_api`); the binary wires both together
//! (`src/roles/agent.rs`).

#![warn(missing_docs)]

pub mod backup;
pub mod config_port;
pub mod health;
pub mod releases;
pub mod supervisor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tollgate_api::ErrorCode;
use tollgate_api::agent::{
    AgentStatus, Backup, HaRole, HealthAnswer, PreflightAnswer, RestoreAnswer, StageAnswer, StagedBundle,
};
use tollgate_config::Config;
use tollgate_upgrade::bundle::TrustedKeys;
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::AppType;

pub use tollgate_config::agent::AgentConfig;

use releases::{Installed, Releases};
use supervisor::{Launch, Supervisor};

/// Why an operation of the agent failed, with the stable code its answer carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// The code (`invalid`: refused, nothing changed; `conflict`; `internal`...).
    pub code: ErrorCode,
    /// What happened, for the operator.
    pub message: String,
}

impl AgentError {
    fn new(code: ErrorCode, message: impl Into<String>) -> AgentError {
        AgentError { code, message: message.into() }
    }

    fn refused(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorCode::Invalid, message)
    }

    fn internal(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorCode::Internal, message)
    }
}

/// The result of an agent operation.
pub type AgentResult<T> = Result<T, AgentError>;

/// A call on the role's API, passed through by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

/// The role's answer to a passed-through call, status and body as the role sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAnswer {
    /// The role's HTTP status.
    pub status: u16,
    /// The role's body (JSON).
    pub body: Vec<u8>,
}

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
    /// TLS for the role's API when the role serves HTTPS (set by the agent's wiring from
    /// `[tls]`; the role's certificate must be of the same CA).
    pub role_tls: Option<tollgate_api::TlsConfig>,
    /// One operation (install, backout, restore) at a time.
    busy: Mutex<()>,
}

impl Agent {
    /// The agent of `config` for the role configured by `role` (releases under `[agent] dir`).
    pub fn new(config: AgentConfig, role: Config) -> anyhow::Result<Agent> {
        let releases = Releases::open(&config.dir)?;
        let trusted =
            TrustedKeys::from_hex(&config.trusted_keys).map_err(|e| anyhow::anyhow!("agent.trusted_keys: {e}"))?;
        // Read once, as a type, with the configuration.
        let app: AppType = config.app_type;
        Ok(Agent {
            config,
            role,
            releases,
            trusted,
            app,
            supervisor: Supervisor::new(),
            role_tls: None,
            busy: Mutex::new(()),
        })
    }

    /// The role's API base URL.
    pub fn role_api(&self) -> String {
        self.role.api_url()
    }

    /// The role's admin token (its CLI token).
    pub fn role_token(&self) -> Option<String> {
        self.role.cli_token()
    }

    /// A client of the role's API with its admin token.
    fn role_client(&self, timeout: Duration) -> AgentResult<tollgate_api::Client> {
        tollgate_api::Client::with_tls(&self.role_api(), self.role_token(), timeout, self.role_tls.as_ref())
            .map_err(|e| AgentError::internal(e.to_string()))
    }

    /// The file whose existence holds this server in forced standby; the role process watches
    /// it (see [`tollgate_files::forced_standby`]).
    pub fn forced_standby_file(&self) -> PathBuf {
        self.config.dir.join("forced-standby")
    }

    /// Whether the manager holds this server in forced standby.
    pub fn forced_standby(&self) -> bool {
        self.forced_standby_file().exists()
    }

    fn ha_role_file(&self) -> PathBuf {
        self.config.dir.join("ha-role")
    }

    fn backups_dir(&self) -> PathBuf {
        self.config.dir.join("backups")
    }

    /// The largest bundle accepted (`[agent] max_bundle_mb`), in bytes.
    pub fn max_bundle_bytes(&self) -> u64 {
        self.config.max_bundle_mb << 20
    }

    /// The largest request passed to the role (`[agent] max_role_request_mb`), in bytes.
    pub fn max_role_request_bytes(&self) -> u64 {
        self.config.max_role_request_mb << 20
    }

    /// Where a bundle being received is written (hidden files there are transfers in progress).
    pub fn staging_dir(&self) -> PathBuf {
        self.releases.staging()
    }

    /// How to run `release`.
    pub fn launch(&self, release: &Installed) -> Launch {
        let mut env = vec![
            ("TOLLGATE_RELEASE".to_string(), release.version.clone()),
            (tollgate_files::forced_standby::ENV.to_string(), self.forced_standby_file().display().to_string()),
        ];
        if let Some(s) = release.max_policy_schema {
            env.push(("TOLLGATE_MAX_POLICY_SCHEMA".to_string(), s.to_string()));
        }
        // The role logs warnings and errors into role.log, unless its configuration's `[log]
        // level` says otherwise (`--log` would win over it).
        let mut args = Vec::new();
        if !role_config_sets_log_level(&self.config.role_config) {
            args.extend(["--log".to_string(), "warn".to_string()]);
        }
        args.extend([
            "--config".to_string(),
            self.config.role_config.display().to_string(),
            self.config.role.to_string(),
        ]);
        Launch { binary: release.dir.join("tollgate"), args, env, log: self.config.dir.join("role.log") }
    }

    /// Starts the release in force and waits until the role's API answers.
    pub async fn start_current(&self) -> anyhow::Result<()> {
        let Some(cur) = self.releases.current() else { return Ok(()) };
        self.supervisor.start(self.launch(&cur)).await?;
        self.wait_role_up(Duration::from_secs(60)).await
    }

    async fn wait_role_up(&self, within: Duration) -> anyhow::Result<()> {
        let client =
            tollgate_api::Client::with_tls(&self.role_api(), None, Duration::from_secs(2), self.role_tls.as_ref())?;
        let deadline = Instant::now() + within;
        let restarts_before = self.supervisor.status().restarts;
        while Instant::now() < deadline {
            if client.get_text("/healthz").await.is_ok() {
                return Ok(());
            }
            let st = self.supervisor.status();
            if !st.running && st.restarts > restarts_before + 3 {
                anyhow::bail!("the role process keeps exiting (see {})", self.config.dir.join("role.log").display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the role did not answer at {} within {within:?}", client.url("/healthz"))
    }

    /// Stops the role process (the agent is shutting down).
    pub async fn stop(&self) {
        self.supervisor.stop().await;
    }

    /// What the agent reports: the answer of `status` and of every call that changes the
    /// server.
    pub fn status(&self) -> AgentStatus {
        let current = self.releases.current();
        AgentStatus {
            server: self.config.server.clone(),
            application: self.app.as_str().to_string(),
            role: self.config.role.to_string(),
            release: current.as_ref().map(|r| r.version.clone()),
            previous_release: self.releases.previous().map(|r| r.version),
            max_policy_schema: current.and_then(|r| r.max_policy_schema),
            staged: self
                .releases
                .staged()
                .into_iter()
                .map(|b| StagedBundle {
                    file_name: b.file_name,
                    application: b.application.as_str().to_string(),
                    release: b.release.as_str().to_string(),
                })
                .collect(),
            process: self.supervisor.status(),
            role_api: self.role_api(),
            forced_standby: self.forced_standby(),
            // An install, backout, restart or restore is under way.
            busy: self.busy.try_lock().is_err(),
            // A file this release cannot read reports as a role it does not know.
            ha_role: std::fs::read_to_string(self.ha_role_file())
                .ok()
                .map(|r| HaRole::parse(&r).unwrap_or(HaRole::Unknown)),
        }
    }

    /// Stages the bundle received into `incoming` (a hidden file in [`Agent::staging_dir`]) as
    /// `name`, after verifying it; a refused bundle is not kept.
    pub async fn stage(&self, name: &str, incoming: tempfile::TempPath) -> AgentResult<StageAnswer> {
        let releases = self.releases.clone();
        let (trusted, app, limit, name) = (self.trusted.clone(), self.app, self.max_bundle_bytes(), name.to_string());
        let staged = tokio::task::spawn_blocking(move || releases.stage_file(&name, incoming, &trusted, app, limit))
            .await
            .map_err(|e| AgentError::internal(e.to_string()))?;
        match staged {
            Ok(m) => Ok(StageAnswer {
                staged: m.version.as_str().to_string(),
                application: m.application.as_str().to_string(),
            }),
            Err(e) => Err(AgentError::refused(format!("bundle refused, nothing staged: {e}"))),
        }
    }

    /// The seed's preflight for `version`: exactly one good bundle staged.
    pub fn preflight(&self, version: &str) -> AgentResult<PreflightAnswer> {
        let target = parse_release(version)?;
        match self.releases.preflight(self.app, &target, &self.trusted) {
            Ok(bundle) => {
                Ok(PreflightAnswer { preflight: "ok".into(), version: bundle.manifest.version.as_str().to_string() })
            }
            Err(e) => Err(AgentError::refused(format!("preflight failed: {e}"))),
        }
    }

    /// Installs `version`: backup, stop the role, switch release, start, wait until it answers.
    /// Runs to its end even when the caller goes away.
    pub async fn install(self: &Arc<Self>, version: &str) -> AgentResult<AgentStatus> {
        let (a, version) = (self.clone(), version.to_string());
        detached(async move { a.install_now(&version).await }).await
    }

    async fn install_now(&self, version: &str) -> AgentResult<AgentStatus> {
        let _one = self.busy.lock().await;
        let target = parse_release(version)?;
        if self.releases.current().is_some_and(|c| c.version == target.as_str()) {
            return Ok(self.status());
        }
        let bundle = self
            .releases
            .preflight(self.app, &target, &self.trusted)
            .map_err(|e| AgentError::refused(format!("preflight failed, nothing changed: {e}")))?;
        if self.releases.current().is_some() {
            self.backup_now(&format!("pre-upgrade-{}", target.as_str())).map_err(|e| {
                AgentError::internal(format!("backup before the upgrade failed, nothing changed: {}", e.message))
            })?;
        }
        let from = self.releases.current().map(|c| c.version);
        self.supervisor.stop().await;
        let installed = match self.releases.install(&bundle) {
            Ok(installed) => installed,
            Err(e) => {
                let _ = self.start_current().await;
                return Err(AgentError::internal(format!("install failed; the previous release runs again: {e}")));
            }
        };
        // The new release reads the role's configuration in its own format.
        match config_port::port(
            &installed.dir.join("tollgate"),
            &self.config.role_config,
            &self.config.dir,
            from.as_deref(),
            &installed.version,
        )
        .await
        {
            Ok(ported) => tracing::info!(
                from = from.as_deref().unwrap_or("none"),
                to = %installed.version,
                report = %ported.report,
                kept = %ported.report_file.display(),
                "role configuration ported"
            ),
            Err(e) => {
                // Nothing was changed; the previous release comes back with its own file.
                let _ = self.releases.backout();
                let _ = self.start_current().await;
                return Err(AgentError::internal(format!("{e:#}; the previous release runs again")));
            }
        }
        self.start_current()
            .await
            .map_err(|e| AgentError::internal(format!("installed, but the role did not come up: {e}")))?;
        Ok(self.status())
    }

    /// Backs out to the previous release: backup, stop, switch back, start, wait. Runs to its
    /// end even when the caller goes away.
    pub async fn backout(self: &Arc<Self>) -> AgentResult<AgentStatus> {
        let a = self.clone();
        detached(async move { a.backout_now().await }).await
    }

    async fn backout_now(&self) -> AgentResult<AgentStatus> {
        let _one = self.busy.lock().await;
        if self.releases.previous().is_none() {
            return Err(AgentError::new(ErrorCode::Conflict, "no previous release to back out to"));
        }
        self.backup_now("pre-backout").map_err(|e| {
            AgentError::internal(format!("backup before the backout failed, nothing changed: {}", e.message))
        })?;
        self.supervisor.stop().await;
        let previous = match self.releases.backout() {
            Ok(previous) => previous,
            Err(e) => {
                let _ = self.start_current().await;
                return Err(AgentError::internal(e));
            }
        };
        // The previous release gets back the configuration it read before the upgrade.
        match config_port::restore_for(&self.config.role_config, &self.config.dir, &previous.version) {
            Ok(true) => tracing::info!(release = %previous.version, "role configuration of the release put back"),
            Ok(false) => {}
            Err(e) => return Err(AgentError::internal(format!("backed out, but {e:#}"))),
        }
        self.start_current()
            .await
            .map_err(|e| AgentError::internal(format!("backed out, but the role did not come up: {e}")))?;
        Ok(self.status())
    }

    /// Restarts the role process. Runs to its end even when the caller goes away.
    pub async fn restart(self: &Arc<Self>) -> AgentResult<AgentStatus> {
        let a = self.clone();
        detached(async move {
            let _one = a.busy.lock().await;
            a.start_current().await.map_err(|e| AgentError::internal(e.to_string()))?;
            Ok(a.status())
        })
        .await
    }

    /// Takes a backup of the role's configuration and state; `why` goes into its name
    /// (`manual` when `None`).
    pub fn backup(&self, why: Option<&str>) -> AgentResult<Backup> {
        self.backup_now(why.unwrap_or("manual"))
    }

    fn backup_now(&self, why: &str) -> AgentResult<Backup> {
        backup::take(&self.backups_dir(), &self.config.role_config, &self.role.node.state_dir, why)
            .map_err(|e| AgentError::internal(e.to_string()))
    }

    /// The backups kept.
    pub fn backups(&self) -> Vec<Backup> {
        backup::list(&self.backups_dir())
    }

    /// Restores the backup `name`: unpacked and checked while the role still runs (a bad name
    /// or a damaged backup changes nothing), then the role is stopped, the files put in place,
    /// the role started. Runs to its end even when the caller goes away.
    pub async fn restore(self: &Arc<Self>, name: &str) -> AgentResult<RestoreAnswer> {
        let (a, name) = (self.clone(), name.to_string());
        detached(async move { a.restore_now(name).await }).await
    }

    async fn restore_now(&self, name: String) -> AgentResult<RestoreAnswer> {
        let _one = self.busy.lock().await;
        let unpacked = backup::unpack(&self.backups_dir(), &name)
            .map_err(|e| AgentError::refused(format!("restore refused, nothing changed: {e}")))?;
        self.supervisor.stop().await;
        let restored = backup::put_in_place(&unpacked, &self.config.role_config, &self.role.node.state_dir);
        let started = self.start_current().await;
        match (restored, started) {
            (Ok(()), Ok(())) => Ok(RestoreAnswer { restored: name }),
            (Err(e), _) => Err(AgentError::refused(format!("restore failed: {e}"))),
            (Ok(()), Err(e)) => Err(AgentError::internal(format!("restored, but the role did not come up: {e}"))),
        }
    }

    /// Removes one staged bundle (the manager clears bundles of an abandoned procedure, so
    /// that exactly one is staged again).
    pub fn unstage(&self, name: &str) -> AgentResult<AgentStatus> {
        self.releases.unstage(name).map_err(AgentError::refused)?;
        Ok(self.status())
    }

    /// The manager places this server in forced standby (`on`) or releases it: kept in the
    /// agent's directory, reported in `status`; the role process watches the file (an SRP
    /// chassis then takes no service, a manager does not take over from its mate).
    pub fn set_forced_standby(&self, on: bool) -> AgentResult<AgentStatus> {
        let path = self.forced_standby_file();
        let result =
            if on { std::fs::write(&path, "1\n") } else { std::fs::remove_file(&path).or_else(ignore_missing) };
        result.map_err(|e| AgentError::internal(format!("{}: {e}", path.display())))?;
        Ok(self.status())
    }

    /// For a role that runs no SRP pair (a probe pair, a spare): the manager records which
    /// server is Active after a failover; the agent keeps it and reports it.
    pub fn set_ha_role(&self, role: HaRole) -> AgentResult<AgentStatus> {
        if role == HaRole::Unknown {
            return Err(AgentError::new(ErrorCode::BadRequest, "the HA role is Active, Standby or Spare"));
        }
        let path = self.ha_role_file();
        std::fs::write(&path, format!("{role}\n"))
            .map_err(|e| AgentError::internal(format!("{}: {e}", path.display())))?;
        Ok(self.status())
    }

    /// The server's syscheck, class by class.
    pub async fn health(&self) -> HealthAnswer {
        let api = self.role_api();
        let token = self.role_token();
        let release = self.releases.current().map(|r| r.version).unwrap_or_else(|| "(none)".into());
        let h = health::check(health::Inputs {
            server: &self.config.server,
            dir: &self.config.dir,
            process_running: self.supervisor.status().running,
            role_api: Some(&api),
            role_token: token.as_deref(),
            role_tls: self.role_tls.as_ref(),
            release: (&release, None),
        })
        .await;
        HealthAnswer { ok: h.ok(), text: h.text(), health: h }
    }

    /// Passes a call to the role's own API (`path` like `api/v1/srp/show/info`, `query`
    /// without its `?`) with the role's admin token; the role's answer comes back as it is.
    /// `body` (POST) goes with `content_type` (JSON when `None`).
    pub async fn role_call(
        &self,
        method: RoleMethod,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> AgentResult<RoleAnswer> {
        self.role_call_as(method, path, query, content_type, body, None).await
    }

    /// [`Agent::role_call`] on behalf of `actor` (the caller's `X-Actor`, passed on so that
    /// the role records the person, e.g. a policy install the manager made for an operator).
    pub async fn role_call_as(
        &self,
        method: RoleMethod,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
        actor: Option<&str>,
    ) -> AgentResult<RoleAnswer> {
        let client = self.role_client(Duration::from_secs(30))?;
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let method = match method {
            RoleMethod::Get => reqwest::Method::GET,
            RoleMethod::Post => reqwest::Method::POST,
            RoleMethod::Delete => reqwest::Method::DELETE,
        };
        let mut req = client.request(method, &format!("/{}{query}", path.trim_start_matches('/')));
        if let Some(actor) = actor {
            req = req.header("x-actor", actor);
        }
        if !body.is_empty() {
            req = req.header("content-type", content_type.unwrap_or("application/json")).body(body);
        }
        let unreachable =
            |e: reqwest::Error| AgentError::new(ErrorCode::Unavailable, format!("the role's API does not answer: {e}"));
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(unreachable)?.to_vec();
        Ok(RoleAnswer { status, body })
    }
}

fn parse_release(version: &str) -> AgentResult<Release> {
    Release::new(version).map_err(|_| AgentError::new(ErrorCode::BadRequest, "bad release name"))
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }
}

/// Runs `work` in a task of its own: an install, backout, restart or restore finishes even if
/// the caller that asked goes away (a dropped request would otherwise cancel it half-way, e.g.
/// with the role stopped and the new release not started).
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = AgentResult<T>> + Send + 'static,
) -> AgentResult<T> {
    tokio::spawn(work).await.map_err(|e| AgentError::internal(e.to_string()))?
}

/// Whether the role's configuration file has `[log] level` (an unreadable file: no; the role
/// reports it when it starts).
fn role_config_sets_log_level(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|t| t.get("log").and_then(|l| l.get("level")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_upgrade::bundle::{BundleFile, BundleSpec, build, public_key_hex, signing_key_from_seed};
    use tollgate_upgrade::release::ReleasePattern;

    /// An engine agent in `dir` trusting key 1, whose role's API nothing answers.
    fn agent(dir: &std::path::Path) -> Arc<Agent> {
        agent_with_role_api(dir, "127.0.0.1:1")
    }

    fn agent_with_role_api(dir: &std::path::Path, role_api: &str) -> Arc<Agent> {
        let state = dir.join("role-state");
        std::fs::create_dir_all(&state).unwrap();
        let role_config = dir.join("role.toml");
        let role_text =
            format!("[node]\nname = \"east-a\"\nstate_dir = \"{}\"\n[api]\nlisten = \"{role_api}\"\n", state.display());
        std::fs::write(&role_config, &role_text).unwrap();
        let role = Config::parse("role.toml", &role_text).unwrap();
        let text = format!(
            "listen = \"127.0.0.1:7000\"\nserver = \"east-a\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"{}\"\ndir = \"{}\"\ntrusted_keys = [\"{}\"]\ntoken = \"agent-token-0123456789\"\n",
            role_config.display(),
            dir.join("agent").display(),
            public_key_hex(&signing_key_from_seed([1; 32]).verifying_key())
        );
        let config: AgentConfig = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        Arc::new(Agent::new(config, role).unwrap())
    }

    fn bundle(app: AppType, version: &str, signer: u8) -> Vec<u8> {
        bundle_running(app, version, signer, "exit 0")
    }

    /// A bundle whose `tollgate` is the shell script `script`; its `config migrate FILE --out
    /// OUT` copies FILE with a line `# ported for VERSION` added and prints that line.
    fn bundle_running(app: AppType, version: &str, signer: u8, script: &str) -> Vec<u8> {
        let spec = BundleSpec {
            application: app,
            version: Release::new(version).unwrap(),
            upgrades_from: vec![ReleasePattern::new("*").unwrap()],
            description: format!("tollgate {version}"),
            max_policy_schema: Some(2),
        };
        let migrate = format!(
            "if [ \"$1 $2\" = 'config migrate' ]; then {{ cat \"$3\"; echo '# ported for {version}'; }} > \"$5\"; \
             echo 'ported for {version}'; exit 0; fi"
        );
        let data = format!("#!/bin/sh\n{migrate}\n{script}\n").into_bytes();
        let payload = vec![BundleFile { path: "tollgate".into(), data, executable: true }];
        build(&spec, &payload, &signing_key_from_seed([signer; 32])).unwrap()
    }

    /// The bundle as the router would have received it: a hidden file in the staging directory.
    fn incoming(a: &Agent, bytes: &[u8]) -> tempfile::TempPath {
        let file = tempfile::Builder::new().prefix(".incoming-").tempfile_in(a.staging_dir()).unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file.into_temp_path()
    }

    #[tokio::test]
    async fn the_role_logs_warnings_unless_its_configuration_sets_a_level() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        let release = Installed { version: "1.0.0".into(), dir: dir.path().join("r"), max_policy_schema: None };
        let config = a.config.role_config.display().to_string();
        assert_eq!(a.launch(&release).args, ["--log", "warn", "--config", config.as_str(), "engine"]);
        let mut text = std::fs::read_to_string(&a.config.role_config).unwrap();
        text.push_str("[log]\nformat = \"json\"\nlevel = \"debug\"\n");
        std::fs::write(&a.config.role_config, text).unwrap();
        assert_eq!(a.launch(&release).args, ["--config", config.as_str(), "engine"], "[log] level applies");
    }

    #[tokio::test]
    async fn a_new_agent_reports_nothing_installed() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        let s = a.status();
        assert_eq!((s.server.as_str(), s.application.as_str(), s.role.as_str()), ("east-a", "engine", "engine"));
        assert_eq!((s.release, s.previous_release, s.ha_role), (None, None, None));
        assert!(s.staged.is_empty() && !s.forced_standby && !s.busy && !s.process.running);
        assert_eq!(s.role_api, "http://127.0.0.1:1");
    }

    #[tokio::test]
    async fn only_a_good_bundle_of_this_servers_type_is_staged() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        for (bytes, reason) in [
            (bundle(AppType::Probe, "2.0.0", 1), "a probe bundle cannot be staged on a engine server"),
            (bundle(AppType::Engine, "2.0.0", 9), "unknown key"),
            (b"not a bundle".to_vec(), "bundle refused"),
        ] {
            let e = a.stage("b.tgb", incoming(&a, &bytes)).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::Invalid, "{e}");
            assert!(e.message.to_lowercase().contains(reason), "{e}");
            assert!(a.status().staged.is_empty(), "nothing kept after: {e}");
            let left: Vec<_> = std::fs::read_dir(a.staging_dir()).unwrap().collect();
            assert!(left.is_empty(), "no partial file left: {left:?}");
        }
        let answer =
            a.stage("tollgate engine 2.tgb", incoming(&a, &bundle(AppType::Engine, "2.0.0", 1))).await.unwrap();
        assert_eq!((answer.staged.as_str(), answer.application.as_str()), ("2.0.0", "engine"));
        let staged = a.status().staged;
        assert_eq!(staged.len(), 1);
        // The name the manager sent is made safe for a file name.
        assert_eq!((staged[0].file_name.as_str(), staged[0].release.as_str()), ("tollgate_engine_2.tgb", "2.0.0"));
    }

    #[tokio::test]
    async fn preflight_wants_exactly_one_good_bundle_and_install_changes_nothing_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        assert_eq!(a.preflight("not a release!").unwrap_err().code, ErrorCode::BadRequest);
        assert_eq!(a.preflight("2.0.0").unwrap_err().code, ErrorCode::Invalid, "nothing staged");
        a.stage("a.tgb", incoming(&a, &bundle(AppType::Engine, "2.0.0", 1))).await.unwrap();
        assert_eq!(a.preflight("2.0.0").unwrap().version, "2.0.0");
        a.stage("b.tgb", incoming(&a, &bundle(AppType::Engine, "2.0.1", 1))).await.unwrap();
        let e = a.preflight("2.0.0").unwrap_err();
        assert!(e.code == ErrorCode::Invalid && e.message.contains("exactly one"), "{e}");
        let e = a.install("2.0.0").await.unwrap_err();
        assert!(e.code == ErrorCode::Invalid && e.message.contains("nothing changed"), "{e}");
        assert_eq!(a.status().release, None);
        assert!(!a.status().busy, "the operation's lock is released");
        // Unstaging the extra bundle makes the preflight pass again.
        let s = a.unstage("b.tgb").unwrap();
        assert_eq!(s.staged.len(), 1);
        assert_eq!(a.unstage("../role.toml").unwrap_err().code, ErrorCode::Invalid);
        assert_eq!(a.preflight("2.0.0").unwrap().preflight, "ok");
    }

    #[tokio::test]
    async fn backout_needs_a_previous_release_and_restore_a_good_backup() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        let e = a.backout().await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Conflict, "no previous release to back out to"));
        let e = a.restore("nothing.tar.gz").await.unwrap_err();
        assert!(e.code == ErrorCode::Invalid && e.message.contains("nothing changed"), "{e}");
        let b = a.backup(Some("before a test")).unwrap();
        assert!(b.name.contains("before_a_test") && b.bytes > 0, "{b:?}");
        assert!(a.backup(None).unwrap().name.contains("manual"));
        assert_eq!(a.backups().len(), 2);
    }

    #[tokio::test]
    async fn forced_standby_and_the_recorded_ha_role_are_kept_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        assert!(a.set_forced_standby(true).unwrap().forced_standby);
        assert!(a.forced_standby_file().exists(), "the file the role process watches");
        assert!(!a.set_forced_standby(false).unwrap().forced_standby);
        assert!(!a.set_forced_standby(false).unwrap().forced_standby, "releasing twice is fine");
        assert_eq!(a.set_ha_role(HaRole::Standby).unwrap().ha_role, Some(HaRole::Standby));
        assert_eq!(a.set_ha_role(HaRole::Active).unwrap().ha_role, Some(HaRole::Active));
        assert_eq!(a.set_ha_role(HaRole::Unknown).unwrap_err().code, ErrorCode::BadRequest);
        std::fs::write(a.ha_role_file(), "Zombie\n").unwrap();
        assert_eq!(a.status().ha_role, Some(HaRole::Unknown), "a file this release cannot read");
    }

    #[tokio::test]
    async fn a_role_that_does_not_answer_is_unavailable_and_its_health_fails() {
        let dir = tempfile::tempdir().unwrap();
        let a = agent(dir.path());
        let e = a.role_call(RoleMethod::Get, "api/v1/srp/show/info", None, None, Vec::new()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        let h = a.health().await;
        assert!(!h.ok, "{}", h.text);
        let class = |name: &str| h.health.classes.iter().find(|c| c.class == name).unwrap().verdict;
        assert_eq!(class("proc"), tollgate_api::agent::Verdict::Failure);
        assert_eq!(class("net"), tollgate_api::agent::Verdict::Failure);
        assert_eq!(class("upgrade"), tollgate_api::agent::Verdict::Ok);
    }

    fn agent_config(extra: &str) -> anyhow::Result<AgentConfig> {
        let text = format!(
            "listen = \"127.0.0.1:7000\"\nserver = \"east-a\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"r.toml\"\ndir = \"agent\"\ntrusted_keys = [\"k\"]\ntoken = \"agent-token-0123456789\"\n{extra}"
        );
        let c: AgentConfig = toml::from_str(&text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn body_limits_default_and_are_checked() {
        let c = agent_config("").unwrap();
        assert_eq!((c.max_bundle_mb, c.max_role_request_mb), (512, 16));
        let c = agent_config("max_bundle_mb = 2048\nmax_role_request_mb = 1\n").unwrap();
        assert_eq!((c.max_bundle_mb, c.max_role_request_mb), (2048, 1));
        for (extra, field) in [
            ("max_bundle_mb = 0\n", "agent.max_bundle_mb"),
            ("max_bundle_mb = 5000\n", "agent.max_bundle_mb"),
            ("max_role_request_mb = 0\n", "agent.max_role_request_mb"),
        ] {
            let e = agent_config(extra).unwrap_err().to_string();
            assert!(e.starts_with(field), "{extra}: {e}");
        }
    }

    /// The role's API, in-process: answers `/healthz` (and anything else) with `200 ok`.
    async fn role_api() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf).await;
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n").await;
                });
            }
        });
        addr
    }

    /// Install, upgrade, the same install again, backout: the release in force, the one kept
    /// for a backout, the backups taken before each change, and what the role is started with.
    #[tokio::test]
    async fn install_upgrade_and_backout_switch_releases_with_a_backup_first() {
        let dir = tempfile::tempdir().unwrap();
        let addr = role_api().await;
        let a = agent_with_role_api(dir.path(), &addr.to_string());
        let seen = dir.path().join("role-started");
        let script = format!(
            "echo \"$TOLLGATE_RELEASE $TOLLGATE_MAX_POLICY_SCHEMA $TOLLGATE_FORCED_STANDBY_FILE $*\" >> {}\nexec sleep 600",
            seen.display()
        );
        let stage = |version: &str| {
            let bytes = bundle_running(AppType::Engine, version, 1, &script);
            let a = a.clone();
            let name = format!("tollgate-engine-{version}.tgb");
            async move { a.stage(&name, incoming(&a, &bytes)).await.unwrap() }
        };

        stage("1.0.0").await;
        let s = a.install("1.0.0").await.unwrap();
        assert_eq!((s.release.as_deref(), s.previous_release.as_deref()), (Some("1.0.0"), None));
        assert!(s.process.running && s.staged.is_empty(), "{s:?}");
        assert!(!a.status().busy, "the operation is over");
        assert_eq!(s.max_policy_schema, Some(2));
        assert!(a.backups().is_empty(), "nothing ran before: nothing to back up");

        stage("2.0.0").await;
        let s = a.install("2.0.0").await.unwrap();
        assert_eq!((s.release.as_deref(), s.previous_release.as_deref()), (Some("2.0.0"), Some("1.0.0")));
        let backups: Vec<String> = a.backups().into_iter().map(|b| b.name).collect();
        assert!(backups.len() == 1 && backups[0].contains("pre-upgrade-2.0.0"), "{backups:?}");
        // The role's configuration was ported by 2.0.0's own migrate; 1.0.0's file and the
        // report are kept.
        let role_toml = dir.path().join("role.toml");
        let history = config_port::history_dir(&a.config.dir);
        let as_1 = std::fs::read_to_string(history.join("1.0.0.toml")).unwrap();
        assert!(as_1.ends_with("# ported for 1.0.0\n"), "{as_1}");
        assert_eq!(std::fs::read_to_string(&role_toml).unwrap(), format!("{as_1}# ported for 2.0.0\n"));
        let report = std::fs::read_to_string(history.join("1.0.0-to-2.0.0.report")).unwrap();
        assert_eq!(report, "ported for 2.0.0\n");
        // The release in force again: nothing to do, no backup.
        assert_eq!(a.install("2.0.0").await.unwrap().release.as_deref(), Some("2.0.0"));
        assert_eq!(a.backups().len(), 1);

        let s = a.backout().await.unwrap();
        assert_eq!((s.release.as_deref(), s.previous_release.as_deref()), (Some("1.0.0"), Some("2.0.0")));
        assert_eq!(std::fs::read_to_string(&role_toml).unwrap(), as_1, "1.0.0 gets back the file it read");
        assert!(s.process.running);
        assert!(a.backups().iter().any(|b| b.name.contains("pre-backout")));

        // Each start ran the release in force with its version, schema limit, the flag file it
        // watches, and the role's configuration.
        // (The fake role API answers before the process has written its line: wait for it.)
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut started = std::fs::read_to_string(&seen).unwrap();
        while started.lines().count() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            started = std::fs::read_to_string(&seen).unwrap();
        }
        let lines: Vec<&str> = started.lines().collect();
        assert_eq!(lines.len(), 3, "{started}");
        let flag = a.forced_standby_file();
        let role_config = dir.path().join("role.toml");
        for (line, version) in lines.iter().zip(["1.0.0", "2.0.0", "1.0.0"]) {
            assert_eq!(
                *line,
                format!("{version} 2 {} --log warn --config {} engine", flag.display(), role_config.display())
            );
        }
        a.stop().await;
        assert!(!a.status().process.running);
    }

    /// A caller that goes away (the manager's request dropped) does not cancel an install
    /// half-way: it runs to its end.
    #[tokio::test]
    async fn an_install_whose_caller_goes_away_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let addr = role_api().await;
        let a = agent_with_role_api(dir.path(), &addr.to_string());
        let bytes = bundle_running(AppType::Engine, "1.0.0", 1, "exec sleep 600");
        a.stage("e.tgb", incoming(&a, &bytes)).await.unwrap();
        let dropped = tokio::time::timeout(Duration::from_millis(1), a.install("1.0.0")).await;
        assert!(dropped.is_err(), "the caller gave up before the install was done");
        // Up to 120 s: the install unpacks, starts a process and waits for its API.
        for _ in 0..6000 {
            let s = a.status();
            if s.release.as_deref() == Some("1.0.0") && s.process.running && !s.busy {
                a.stop().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the install did not finish: {:?}", a.status());
    }
}
