//! `tollgate agent`: runs on every server. It keeps the server's role process (engine, probe,
//! collector or manager) running from the release in force, and carries out what the manager's
//! Upgrade Director decides: stage a release bundle (verified before anything runs), preflight,
//! install (stop, switch release, start, wait until healthy), back out to the previous release,
//! back up and restore, and switch an SRP pair over. It reports version, role, health and
//! alarms.

pub mod api;
pub mod auth;
pub mod backup;
pub mod command;
pub mod health;
pub mod releases;
pub mod supervisor;
pub mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's API (the manager calls it).
    pub listen: SocketAddr,
    /// This server's name in the topology.
    pub server: String,
    /// The application type of the bundles it accepts: manager, engine, probe, collector.
    pub app_type: String,
    /// The role process it runs: `engine`, `probe`, `collector`, `manager` or `serve`.
    pub role: String,
    /// The role's configuration file.
    pub role_config: PathBuf,
    /// Where bundles, releases and backups live.
    pub dir: PathBuf,
    /// Hex ed25519 public keys whose bundle signatures are trusted.
    pub trusted_keys: Vec<String>,
    /// Bearer token the manager presents.
    pub token: String,
    /// The largest release bundle it accepts, in MiB (streamed to disk while received).
    #[serde(default = "default_max_bundle_mb")]
    pub max_bundle_mb: u64,
    /// The largest request it passes on to the role's API (e.g. a policy the manager pushes),
    /// in MiB.
    #[serde(default = "default_max_role_request_mb")]
    pub max_role_request_mb: u64,
}

/// A release bundle holds one tollgate binary (a release build is tens of MiB, an unstripped
/// debug build a few hundred).
fn default_max_bundle_mb() -> u64 {
    512
}

/// A policy file pushed by the manager (its lists travel separately).
fn default_max_role_request_mb() -> u64 {
    16
}

/// The largest value either body limit takes.
const MAX_LIMIT_MB: u64 = 4096;

impl AgentConfig {
    /// Checks the fields; errors name the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.role.as_str(), "engine" | "probe" | "collector" | "manager" | "serve") {
            anyhow::bail!("agent.role: {:?} is not engine, probe, collector, manager or serve", self.role);
        }
        if !matches!(self.app_type.as_str(), "engine" | "probe" | "collector" | "manager") {
            anyhow::bail!("agent.app_type: {:?} is not engine, probe, collector or manager", self.app_type);
        }
        if self.token.len() < 16 {
            anyhow::bail!("agent.token: at least 16 characters");
        }
        if self.trusted_keys.is_empty() {
            anyhow::bail!("agent.trusted_keys: at least one release signing key");
        }
        if self.server.trim().is_empty() {
            anyhow::bail!("agent.server: must not be empty");
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_bundle_mb) {
            anyhow::bail!("agent.max_bundle_mb: {} is not between 1 and {MAX_LIMIT_MB}", self.max_bundle_mb);
        }
        if !(1..=MAX_LIMIT_MB).contains(&self.max_role_request_mb) {
            anyhow::bail!(
                "agent.max_role_request_mb: {} is not between 1 and {MAX_LIMIT_MB}",
                self.max_role_request_mb
            );
        }
        Ok(())
    }
}

/// Runs the agent until SIGINT or SIGTERM: starts the release in force, serves the API.
pub fn run(config: &crate::config::Config) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    let cfg = config.agent.clone().context("`tollgate agent` needs an [agent] section in the configuration")?;
    cfg.validate()?;
    let role = crate::config::Config::load(Some(&cfg.role_config))
        .with_context(|| format!("the role configuration {}", cfg.role_config.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tollgate-agent").build()?;
    // Releases, backups (the role's tokens and records) and the role's log: owner only, also
    // when an older release left them open.
    crate::private_files::create_private_dir(&cfg.dir)
        .with_context(|| format!("agent.dir: cannot create {}", cfg.dir.display()))?;
    crate::private_files::tighten_state(&cfg.dir, "agent directory")?;
    // One agent per directory: two would stage, install and back out over each other. (Its own
    // lock file: the agent's directory may also be its role's state directory.)
    let _lock = tollgate_records::dirlock::DirLock::acquire(&cfg.dir, "agent.lock", "tollgate agent")
        .map_err(|e| anyhow::anyhow!("agent directory {e}"))?;
    runtime.block_on(async move {
        let releases = releases::Releases::open(&cfg.dir)?;
        let trusted = tollgate_upgrade::bundle::TrustedKeys::from_hex(&cfg.trusted_keys)
            .map_err(|e| anyhow::anyhow!("agent.trusted_keys: {e}"))?;
        let app: tollgate_upgrade::topology::AppType =
            cfg.app_type.parse().map_err(|e| anyhow::anyhow!("agent.app_type: {e}"))?;
        let agent = std::sync::Arc::new(api::Agent {
            role,
            releases,
            trusted,
            app,
            supervisor: supervisor::Supervisor::new(),
            busy: tokio::sync::Mutex::new(()),
            token: auth::AgentToken::new(&cfg.token),
            config: cfg.clone(),
        });
        if let Err(e) = agent.start_current().await {
            tracing::error!(error = %e, "the release in force did not start");
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot bind the agent API {}", cfg.listen))?;
        // The agent's API has the HTTP limits of [api], like every HTTP listener.
        crate::fd_limit::check(&[("api.max_connections", config.api.max_connections as u64)]);
        let server = tollgate_web::server::HttpServer::new(
            listener,
            "agent",
            config.api.http_limits(),
            tollgate_listener::ListenerStats::default(),
        )
        .limit_setting("api.max_connections");
        say!(
            "tollgate agent ready: server={} application={} release={} api=http://{}",
            cfg.server,
            cfg.app_type,
            agent.releases.current().map_or("none".to_string(), |r| r.version),
            server.local_addr()?
        );
        server.serve(api::router(agent.clone()), crate::serve::shutdown_signal()).await;
        agent.supervisor.stop().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> anyhow::Result<AgentConfig> {
        let text = format!(
            "listen = \"127.0.0.1:7000\"\nserver = \"east-a\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"r.toml\"\ndir = \"agent\"\ntrusted_keys = [\"k\"]\ntoken = \"agent-token-0123456789\"\n{extra}"
        );
        let c: AgentConfig = toml::from_str(&text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn body_limits_default_and_are_checked() {
        let c = config("").unwrap();
        assert_eq!((c.max_bundle_mb, c.max_role_request_mb), (512, 16));
        let c = config("max_bundle_mb = 2048\nmax_role_request_mb = 1\n").unwrap();
        assert_eq!((c.max_bundle_mb, c.max_role_request_mb), (2048, 1));
        for (extra, field) in [
            ("max_bundle_mb = 0\n", "agent.max_bundle_mb"),
            ("max_bundle_mb = 5000\n", "agent.max_bundle_mb"),
            ("max_role_request_mb = 0\n", "agent.max_role_request_mb"),
        ] {
            let e = config(extra).unwrap_err().to_string();
            assert!(e.starts_with(field), "{extra}: {e}");
        }
    }
}
