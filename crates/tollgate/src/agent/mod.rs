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

pub use tollgate_config::agent::AgentConfig;

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
        let app = cfg.app_type;
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
