//! `tollgate manager`: builds the manager runtime (`tollgate-manager`) from `[manager]`, serves
//! its router (`tollgate_web::manager_api`) and runs the pair and the agents' poll until SIGINT
//! or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use tollgate_alarms::Alarms;
use tollgate_config::manager::ManagerConfig;
use tollgate_manager::agents::{AgentClient, ManagerTls};
use tollgate_manager::{Manager, first_look_with, pair};
use tollgate_tls::{Role, RoleSet, TlsMaterial, Versions};
use tollgate_web::manager_api::{self, ManagerApi};

/// The manager's alarms, for watchers that outlive a borrow of the manager.
struct ManagerAlarms(Arc<Manager>);

impl AsRef<Alarms> for ManagerAlarms {
    fn as_ref(&self) -> &Alarms {
        &self.0.alarms
    }
}

/// Runs the manager role until SIGINT or SIGTERM.
pub fn run(config: &crate::config::Config) -> anyhow::Result<std::process::ExitCode> {
    let cfg = config.manager.clone().context("`tollgate manager` needs a [manager] section in the configuration")?;
    std::fs::create_dir_all(&config.node.state_dir)
        .with_context(|| format!("cannot create state directory {}", config.node.state_dir.display()))?;
    // One manager per state directory (a second would write the same manager-state.json).
    let _lock = tollgate_records::dirlock::DirLock::acquire(
        &config.node.state_dir,
        crate::roles::serve::STATE_LOCK_FILE,
        "tollgate manager",
    )
    .map_err(|e| anyhow::anyhow!("state directory {e}"))?;
    tollgate_files::private_files::tighten_state(&config.node.state_dir, "state directory")?;
    let release = crate::release::current().version;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tollgate-manager").build()?;
    let _guard = runtime.enter();
    let tls = crate::roles::tls::material(config)?;
    crate::roles::tls::before_bind(config, tls.as_ref(), "api.listen", config.api.listen)?;
    let agents = AgentClient::with_tls(&cfg.agent_token, &manager_tls(&cfg, tls.as_ref())?)?;
    let topology = runtime.block_on(first_look_with(&cfg, &agents))?;
    let held: tollgate_manager::HeldFn = Arc::new(tollgate_files::forced_standby::held);
    let manager = Manager::with_agents(cfg, topology, &config.node.state_dir, release, held, agents)?;
    let (auth, bootstrap) = tollgate_web::auth::Auth::open(&config.node.state_dir, config.api.token.clone())
        .with_context(|| format!("the user database in {}", config.node.state_dir.display()))?;
    if let Some(b) = bootstrap {
        // Logged, not printed: under `--log-format json` every line of standard error is an event.
        tracing::info!(file = %b.cli_token_file.display(), "manager API token written to {}", b.cli_token_file.display());
    }
    let listen = config.api.listen;
    let api_limits = config.api.http_limits();
    let node = config.node.name.clone();
    runtime.block_on(async move {
        crate::roles::reload::spawn_handler("tollgate manager");
        // The manager's API has no /metrics or /api/v1/tls yet: its TLS facts are its
        // alarms and its log.
        if let Some(material) = &tls {
            crate::roles::tls::supervise(material, config, ManagerAlarms(manager.clone()), &node);
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot bind the manager API {listen}"))?;
        crate::fd_limit::check(&[("api.max_connections", api_limits.max_connections as u64)]);
        let stats = tollgate_listener::ListenerStats::default();
        let server = tollgate_web::server::HttpServer::new(listener, "manager", api_limits, stats.clone())
            .limit_setting("api.max_connections");
        // Browsers and the CLI reach it; the mate's routes check its certificate themselves.
        let server = crate::roles::tls::secure(
            server,
            tls.as_ref(),
            "api.listen",
            crate::roles::tls::web_policy(config),
            Versions::Tls12And13,
        )?;
        let scheme = server.scheme();
        let local = server.local_addr()?;
        crate::roles::connection_alarm::watch(
            ManagerAlarms(manager.clone()),
            manager.cfg.hostname.clone(),
            vec![("manager".to_string(), stats)],
        );
        let api = Arc::new(ManagerApi::new(manager.clone(), auth));
        tokio::spawn(pair::run(manager.clone()));
        tokio::spawn(pair::poll_agents(manager.clone()));
        tokio::spawn(pair::push_to_mate(manager.clone()));
        tokio::spawn(manager_api::replicate_users(api.clone()));
        let ready = format!(
            "tollgate manager ready: hostname={} release={} api={scheme}://{local} ui={scheme}://{local}/upgrade",
            manager.cfg.hostname, manager.release
        );
        // The signal handlers are in place before the manager says it is ready.
        let shutdown = crate::roles::serve::shutdown_signal();
        say!("{ready}");
        crate::roles::notify::ready(&ready);
        server.serve(manager_api::router(api), shutdown).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The TLS of the manager's clients: agents must present a server role's certificate (their
/// host's), the mate a manager's. With [tls], every agent and the mate must be `https://`
/// URLs: a token that can install software is not sent in clear.
fn manager_tls(cfg: &ManagerConfig, tls: Option<&TlsMaterial>) -> anyhow::Result<ManagerTls> {
    let Some(material) = tls else { return Ok(ManagerTls::default()) };
    let mut plain = Vec::new();
    if let Some(mate) = cfg.mate.as_deref().filter(|m| !m.starts_with("https://")) {
        plain.push(format!("manager.mate = {mate}"));
    }
    for (cluster, server) in cfg.servers().filter(|(_, s)| !s.agent.starts_with("https://")) {
        plain.push(format!("manager cluster {} server {}: agent = {}", cluster.name, server.hostname, server.agent));
    }
    if !plain.is_empty() {
        anyhow::bail!("[tls] is configured, so these URLs must be https://: {}", plain.join("; "));
    }
    Ok(ManagerTls {
        agents: crate::roles::tls::client(Some(material), RoleSet::SERVERS)?,
        mate: match &cfg.mate {
            Some(url) => {
                crate::roles::tls::client(Some(material), RoleSet::of(&[Role::Manager]))?.map(|c| (url.clone(), c))
            }
            None => None,
        },
    })
}
