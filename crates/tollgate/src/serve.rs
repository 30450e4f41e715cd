//! `tollgate serve` and `tollgate engine`: the engine role with its HTTP API.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tollgate_enum::Responder;
use tollgate_enum::metrics::EnumMetrics;
use tollgate_enum::server::{EnumServer, RecordSink};
use tollgate_policy::service::PolicyService;
use tollgate_policy::store::PolicyStore;
use tollgate_records::spool::{Spool, SpoolOptions};
use tollgate_web::ApiState;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::demo;

/// Applies command-line overrides to the configuration.
fn apply(mut config: Config, args: &ServeArgs) -> Config {
    if let Some(dir) = &args.state_dir {
        config.node.state_dir = dir.clone();
    }
    if let Some(node) = &args.node {
        config.node.name = node.clone();
    }
    if !args.enum_listen.is_empty() {
        config.enum_.listen_udp = args.enum_listen.clone();
        config.enum_.listen_tcp = args.enum_listen.clone();
    }
    if let Some(api) = args.api_listen {
        config.api.listen = api;
    }
    config
}

/// Runs until SIGINT or SIGTERM.
pub fn run(config: Config, args: ServeArgs, install_demo: bool) -> anyhow::Result<ExitCode> {
    let config = apply(config, &args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tollgate").build()?;
    runtime.block_on(serve(config, install_demo && !args.no_demo))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config, install_demo: bool) -> anyhow::Result<()> {
    let state = &config.node.state_dir;
    std::fs::create_dir_all(state).with_context(|| format!("cannot create state directory {}", state.display()))?;
    let store = PolicyStore::open(config.policy_dir())?;
    let service = Arc::new(PolicyService::open(store, config.dialing_plan.clone(), config.enum_.intercept_names())?);
    if let Some(e) = service.load_error() {
        tracing::error!("{e}; serving with no policy (every call allowed) until a valid policy is installed");
    }
    if install_demo && service.history()?.is_empty() {
        let version = demo::install(&service)?;
        tracing::info!(version, "installed the demo policy (first start)");
    }

    let spool = Spool::open(
        config.spool_dir(),
        SpoolOptions {
            segment_bytes: config.spool.segment_mb << 20,
            fsync_interval: Duration::from_millis(config.spool.fsync_ms),
        },
    )?;
    let mut registry = Registry::default();
    let enum_metrics = EnumMetrics::register(&mut registry);
    crate::metrics::register(&mut registry, spool.clone(), service.clone());

    let responder = Arc::new(Responder::new(
        config.enum_.clone(),
        config.dialing_plan.clone(),
        service.installed().clone(),
        config.node.name.clone(),
    ));
    let server = EnumServer::start(
        responder.clone(),
        RecordSink::Spool(spool.clone()),
        enum_metrics,
        &config.enum_.listen_udp,
        &config.enum_.listen_tcp,
    )
    .await?;

    let api = tollgate_web::router(ApiState {
        policy: service.clone(),
        responder,
        registry: Arc::new(registry),
        token: config.api.token.clone(),
    });
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot bind the API listener {}", config.api.listen))?;
    let api_addr = listener.local_addr()?;

    let active = service.installed().snapshot();
    let list = |v: &[std::net::SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    println!(
        "tollgate ready: node={} enum_udp={} enum_tcp={} api=http://{} policy={}",
        config.node.name,
        list(&server.udp_addrs),
        list(&server.tcp_addrs),
        api_addr,
        active.version.map_or("none".to_string(), |v| format!("v{v} ({})", active.policy.meta().name)),
    );
    if let Some(udp) = server.udp_addrs.first() {
        println!(
            "try: dig @{} -p {} +short NAPTR 1.1.1.0.5.5.5.2.1.2.1.e164.arpa.   |   tollgate lookup --to +12125550111",
            udp.ip(),
            udp.port()
        );
    }

    axum::serve(listener, api).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    spool.sync();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
