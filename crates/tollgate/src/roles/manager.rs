//! `tollgate manager`: builds the manager runtime (`tollgate-manager`) from `[manager]`, serves
//! its router (`tollgate_web::manager_api`) and runs the pair and the agents' poll until SIGINT
//! or SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use tollgate_alarms::Alarms;
use tollgate_manager::{Manager, first_look, pair};
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
    let topology = runtime.block_on(first_look(&cfg))?;
    let held: tollgate_manager::HeldFn = Arc::new(tollgate_files::forced_standby::held);
    let manager = Manager::new(cfg, topology, &config.node.state_dir, release, held)?;
    let (auth, bootstrap) = tollgate_web::auth::Auth::open(&config.node.state_dir, config.api.token.clone())
        .with_context(|| format!("the user database in {}", config.node.state_dir.display()))?;
    if let Some(b) = bootstrap {
        eprintln!("manager API token written to {}", b.cli_token_file.display());
    }
    let listen = config.api.listen;
    let api_limits = config.api.http_limits();
    runtime.block_on(async move {
        crate::roles::reload::spawn_handler("tollgate manager");
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot bind the manager API {listen}"))?;
        crate::fd_limit::check(&[("api.max_connections", api_limits.max_connections as u64)]);
        let stats = tollgate_listener::ListenerStats::default();
        let server = tollgate_web::server::HttpServer::new(listener, "manager", api_limits, stats.clone())
            .limit_setting("api.max_connections");
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
        let ready = format!(
            "tollgate manager ready: hostname={} release={} api=http://{local} ui=http://{local}/upgrade",
            manager.cfg.hostname, manager.release
        );
        say!("{ready}");
        crate::roles::notify::ready(&ready);
        server.serve(manager_api::router(api), crate::roles::serve::shutdown_signal()).await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}
