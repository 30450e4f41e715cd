//! `tollgate agent`: wiring only. Builds the agent's runtime ([`tollgate_agent::Agent`]) from
//! the `[agent]` section and the role's configuration, starts the release in force, serves the
//! agent's router ([`tollgate_web::agent_api`]) until SIGINT or SIGTERM, then stops the role.

use std::sync::Arc;

use tollgate_agent::Agent;
use tollgate_tls::{ClientPolicy, Role, RoleSet, Versions};

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
    tollgate_files::private_files::create_private_dir(&cfg.dir)
        .with_context(|| format!("agent.dir: cannot create {}", cfg.dir.display()))?;
    tollgate_files::private_files::tighten_state(&cfg.dir, "agent directory")?;
    // One agent per directory: two would stage, install and back out over each other. (Its own
    // lock file: the agent's directory may also be its role's state directory.)
    let _lock = tollgate_records::dirlock::DirLock::acquire(&cfg.dir, "agent.lock", "tollgate agent")
        .map_err(|e| anyhow::anyhow!("agent directory {e}"))?;
    runtime.block_on(async move {
        crate::roles::reload::spawn_handler("tollgate agent");
        // An agent can stage and install software: over TLS it accepts only the manager
        // cluster's certificates (TLS 1.3); without [tls], only on loopback or when allowed.
        let tls = crate::roles::tls::material(config)?;
        crate::roles::tls::before_bind(config, tls.as_ref(), "agent.listen", cfg.listen)?;
        // The agent has no alarms of its own (its role reports them): its TLS material is
        // reloaded on SIGHUP and watched for rotation.
        if let Some(material) = &tls {
            crate::roles::tls::supervise(material, config, Arc::new(tollgate_alarms::Alarms::default()), &cfg.server);
        }
        let mut agent = Agent::new(cfg.clone(), role)?;
        agent.role_tls = crate::roles::tls::client(tls.as_ref(), RoleSet::SERVERS)?;
        let agent = Arc::new(agent);
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
        let server = crate::roles::tls::secure(
            server,
            tls.as_ref(),
            "agent.listen",
            ClientPolicy::only(RoleSet::of(&[Role::Manager])),
            Versions::Tls13,
        )?;
        let ready = format!(
            "tollgate agent ready: server={} application={} release={} api={}://{}",
            cfg.server,
            cfg.app_type,
            agent.releases.current().map_or("none".to_string(), |r| r.version),
            server.scheme(),
            server.local_addr()?
        );
        // The signal handlers are in place before the agent says it is ready.
        let shutdown = crate::roles::serve::shutdown_signal();
        say!("{ready}");
        // The role process was started (and waited for) above; the agent's API is bound.
        crate::roles::notify::ready(&ready);
        let token = tollgate_web::http::SecretToken::new(&cfg.token);
        server.serve(tollgate_web::agent_api::router(agent.clone(), token), shutdown).await;
        agent.stop().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}
