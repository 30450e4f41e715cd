//! Running roles: `serve` (engine + probe + collector + UI), `engine`, `collector`, `probe`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tollgate_alarms::{self as alarms, Alarms};
use tollgate_enum::Responder;
use tollgate_enum::metrics::{EnumMetrics, RecordsNotWritten};
use tollgate_enum::server::{EnumServer, RecordSink};
use tollgate_listener::ConnectionMetrics;
use tollgate_policy::VelocityTable;
use tollgate_policy::service::PolicyService;
use tollgate_policy::store::PolicyStore;
use tollgate_records::dirlock::DirLock;
use tollgate_records::ship::{Shipper, ShipperStats};
use tollgate_records::spool::{Spool, SpoolOptions};
use tollgate_sip_redirect::Redirector;
use tollgate_sip_redirect::metrics::RedirectMetrics;
use tollgate_sip_redirect::server::RedirectServer;
use tollgate_store::Store;
use tollgate_tls::{Role as TlsRole, RoleSet, Versions};
use tollgate_web::auth::Auth;
use tollgate_web::server::HttpServer;
use tollgate_web::{AppState, IngestMetrics, ReleaseInfo, StatusFn};

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::roles::demo;
use crate::roles::probe::ProbeRole;
use crate::roles::service_address::ServiceAddress;
use crate::roles::srp::{self as srp_role, EnumService, SipService};
use tollgate_srp::runtime::SrpHandle;

/// Which roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// Engine, probe, collector and UI, with the demo policy on first start.
    Serve,
    /// The ENUM engine with its API; ships records to a collector.
    Engine,
    /// The collector (record store, analytics) with the UI.
    Collector,
    /// The SIP probe on live sources; ships call records to a collector. With `summary`, a
    /// rolling summary line is printed that often.
    Probe {
        /// How often to print a summary line.
        summary: Option<Duration>,
    },
}

impl Roles {
    fn engine(self) -> bool {
        matches!(self, Roles::Serve | Roles::Engine)
    }

    fn probe(self) -> bool {
        matches!(self, Roles::Serve | Roles::Probe { .. })
    }

    fn collector(self) -> bool {
        matches!(self, Roles::Serve | Roles::Collector)
    }

    /// The command, as lock files name their holder.
    fn command(self) -> &'static str {
        match self {
            Roles::Serve => "tollgate serve",
            Roles::Engine => "tollgate engine",
            Roles::Collector => "tollgate collector",
            Roles::Probe { .. } => "tollgate probe",
        }
    }
}

/// The lock file of a state directory: one daemon (serve, engine, collector, probe) per state
/// directory. CLI commands that change a running server's files on purpose do not take it.
pub const STATE_LOCK_FILE: &str = "tollgate.lock";

/// Locks the state directory for this process's life; a second daemon on it gets an error
/// naming the first one's pid.
fn lock_state_dir(config: &Config, roles: Roles) -> anyhow::Result<DirLock> {
    let dir = &config.node.state_dir;
    DirLock::acquire(dir, STATE_LOCK_FILE, roles.command()).map_err(|e| anyhow::anyhow!("state directory {e}"))
}

/// Applies command-line overrides to the configuration.
fn apply(mut config: Config, args: &ServeArgs) -> Config {
    let role = &args.engine.role;
    if let Some(dir) = &role.state_dir {
        config.node.state_dir = dir.clone();
    }
    if let Some(node) = &role.node {
        config.node.name = node.clone();
    }
    if !args.engine.enum_listen.is_empty() {
        config.enum_.listen_udp = args.engine.enum_listen.clone();
        config.enum_.listen_tcp = args.engine.enum_listen.clone();
    }
    if let Some(api) = role.api_listen {
        config.api.listen = api;
    }
    config
}

/// Runs until SIGINT or SIGTERM.
pub fn run(config: Config, args: ServeArgs, roles: Roles) -> anyhow::Result<ExitCode> {
    let config = apply(config, &args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tollgate").build()?;
    runtime.block_on(serve(config, roles, roles == Roles::Serve && !args.no_demo))?;
    Ok(ExitCode::SUCCESS)
}

/// The engine role's running parts.
struct Engine {
    service: Arc<PolicyService>,
    responder: Arc<Responder>,
    /// The ENUM listeners (a standalone engine; with SRP the SRP task runs them while Active).
    server: Option<EnumServer>,
    /// The SIP redirect server (a standalone engine with `[sip_redirect]` listen addresses;
    /// with SRP the SRP task runs it beside the ENUM listeners while Active).
    sip_server: Option<RedirectServer>,
    /// The SRP chassis, with `[srp]`.
    srp: Option<(SrpHandle, tokio::sync::watch::Receiver<tollgate_srp::State>)>,
    /// The ENUM metrics (standalone or SRP), for the alarms they raise.
    metrics: Arc<EnumMetrics>,
    /// The exchange of velocity counts through Redis, with `[shared_counters]`.
    _shared: Option<tollgate_shared_counters::SharedCounters>,
}

/// The spool settings of a configuration, for a process that is `holder`.
pub fn spool_options(config: &Config, holder: &str) -> SpoolOptions {
    SpoolOptions {
        segment_bytes: config.spool.segment_mb << 20,
        fsync_interval: Duration::from_millis(config.spool.fsync_ms),
        max_unacked_bytes: config.spool.max_disk_mb << 20,
        near_full_percent: config.spool.near_full_percent,
        holder: holder.to_string(),
        ..Default::default()
    }
}

/// Opens (and locks) the record spool shared by the engine and the probe, once its limits are
/// known to fit this machine.
fn open_spool(config: &Config, roles: Roles) -> anyhow::Result<Spool> {
    let lanes = crate::spool_plan::Lanes::of(config, roles.engine(), roles.probe());
    let plan = crate::spool_plan::plan(config, lanes)?;
    if let Some(w) = plan.warning(crate::spool_plan::spool_bytes_now(&plan.dir)) {
        tracing::warn!("{w}");
    }
    Ok(Spool::open(config.spool_dir(), spool_options(config, roles.command()))?)
}

#[allow(clippy::too_many_arguments)] // the parts of a start, each used once
async fn start_engine(
    config: &Config,
    registry: &mut Registry,
    alarms: &Arc<Alarms>,
    spool: &Spool,
    install_demo: bool,
    not_written: &RecordsNotWritten,
    tls: Option<&tollgate_tls::TlsMaterial>,
    with_probe: bool,
    connections: &ConnectionMetrics,
) -> anyhow::Result<Engine> {
    let store = PolicyStore::open(config.policy_dir())?;
    let service = Arc::new(
        PolicyService::open(store, config.dialing_plan.clone(), config.enum_.intercept_names())?
            .with_max_schema(crate::release::current().max_policy_schema),
    );
    if let Some(e) = service.load_error() {
        tracing::error!("{e}; serving with no policy (every call allowed) until a valid policy is installed");
        alarms.raise(alarms::POLICY_LOAD_FAILED, &config.node.name, e.to_string());
    }
    // Registered before the demo install, so the install histogram counts it too.
    crate::roles::metrics::register_policy(registry, service.clone());
    if install_demo && service.history()?.is_empty() {
        let version = demo::install(&service)?;
        tracing::info!(version, "installed the demo policy (first start)");
    }
    let enum_metrics = EnumMetrics::register(registry, not_written.clone());
    // Velocity counters: tracked for checkpointing when this engine is one of an SRP pair,
    // shared with the other engines through Redis with [shared_counters].
    let velocity = Arc::new(crate::roles::shared_counters::table(config, 1_000_000, config.srp.is_some()));
    purge_velocity(velocity.clone());
    let shared = crate::roles::shared_counters::start(config, velocity.clone(), alarms, registry, true, with_probe)?;
    let responder = Arc::new(
        Responder::new(
            config.enum_.clone(),
            config.dialing_plan.clone(),
            service.installed().clone(),
            config.node.name.clone(),
        )
        .with_velocity(velocity.clone()),
    );
    // The SIP redirect server decides through the same responder: the same policy, velocity
    // table (checkpointed, shared) and records.
    let sip = &config.sip_redirect;
    let sip_tls = sip_tls_listeners(config, tls)?;
    let redirect = sip.enabled().then(|| {
        (
            Arc::new(Redirector::new(sip.clone(), responder.clone())),
            RedirectMetrics::register(registry, not_written.clone(), connections),
        )
    });
    if let Some(srp) = &config.srp {
        let ips = config
            .enum_
            .listen_udp
            .iter()
            .chain(&config.enum_.listen_tcp)
            .chain(&sip.listen_udp)
            .chain(&sip.listen_tcp)
            .chain(&sip.listen_tls)
            .map(|a| a.ip());
        let mut enum_service = EnumService::new(
            responder.clone(),
            spool.clone(),
            enum_metrics.clone(),
            config.enum_.listen_udp.clone(),
            config.enum_.listen_tcp.clone(),
            ServiceAddress::new(config.service_address.clone(), ips),
        );
        if let Some((redirector, metrics)) = redirect {
            enum_service = enum_service.with_sip(SipService::new(
                redirector,
                metrics,
                sip.listen_udp.clone(),
                sip.listen_tcp.clone(),
                sip_tls,
            ));
        }
        let security = srp_role::link_security(config, tls);
        let started =
            srp_role::start(srp.clone(), velocity, enum_service, alarms.clone(), config.node.name.clone(), security)
                .await?;
        return Ok(Engine {
            service,
            responder,
            server: None,
            sip_server: None,
            srp: Some(started),
            metrics: enum_metrics,
            _shared: shared,
        });
    }
    let server = EnumServer::start(
        responder.clone(),
        RecordSink::Spool(spool.clone()),
        enum_metrics.clone(),
        &config.enum_.listen_udp,
        &config.enum_.listen_tcp,
    )
    .await?;
    let sip_server = match redirect {
        Some((redirector, metrics)) => Some(
            RedirectServer::start_with_tls(
                redirector,
                RecordSink::Spool(spool.clone()),
                metrics,
                &sip.listen_udp,
                &sip.listen_tcp,
                sip_tls.as_ref(),
            )
            .await?,
        ),
        None => None,
    };
    Ok(Engine {
        service,
        responder,
        server: Some(server),
        sip_server,
        srp: None,
        metrics: enum_metrics,
        _shared: shared,
    })
}

/// The SIP redirect server's TLS listeners (`sip_redirect.listen_tls`): `[tls]`'s certificate
/// (reloaded with the material), TLS 1.2 and 1.3 (SBCs still speak 1.2), no client certificate
/// asked (SBCs have their own PKI; clients are told apart by address).
fn sip_tls_listeners(
    config: &Config,
    tls: Option<&tollgate_tls::TlsMaterial>,
) -> anyhow::Result<Option<tollgate_sip_redirect::server::TlsListeners>> {
    let addrs = &config.sip_redirect.listen_tls;
    if addrs.is_empty() {
        return Ok(None);
    }
    let Some(material) = tls else {
        anyhow::bail!("sip_redirect.listen_tls needs [tls] cert, key and ca: the certificate SIP over TLS presents");
    };
    let server_config =
        tollgate_tls::server_config_without_client_auth(material, tollgate_tls::Versions::Tls12And13, &[])
            .context("sip_redirect.listen_tls: cannot build the TLS configuration")?;
    Ok(Some(tollgate_sip_redirect::server::TlsListeners {
        addrs: addrs.clone(),
        acceptor: tollgate_tls::tokio_rustls::TlsAcceptor::from(server_config),
    }))
}

/// Drops velocity counters whose calls left their window, every 30 s (an SRP Active does it
/// itself, so the removals are checkpointed).
fn purge_velocity(table: Arc<VelocityTable>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            table.purge(chrono::Utc::now().timestamp_micros());
        }
    });
}

fn ingest_token(config: &Config) -> Option<String> {
    if !config.shipper.token.is_empty() {
        return Some(config.shipper.token.clone());
    }
    std::fs::read_to_string(config.node.state_dir.join("ingest-token")).ok().map(|t| t.trim().to_string())
}

/// Raises and clears the spool and shipping alarms as conditions change, from what the spool
/// holds unacknowledged at each tick (open segments and a shipping pass in progress included):
/// RECORDS_LATE while its oldest record is older than `late_after` (zero: never).
fn watch_alarms(
    alarms: Arc<Alarms>,
    node: String,
    spool: Spool,
    shipper: Option<Arc<ShipperStats>>,
    late_after: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let backlog = spool.backlog();
            let age = backlog.oldest_age(std::time::SystemTime::now());
            alarms.set(alarms::RECORDS_LATE, &node, !late_after.is_zero() && age >= late_after, || {
                format!(
                    "{} records ({:.1} MiB) not yet acknowledged by the collector; the oldest is {} s old \
                     (spool.late_after_secs = {})",
                    backlog.records,
                    backlog.bytes as f64 / 1048576.0,
                    age.as_secs(),
                    late_after.as_secs()
                )
            });
            let u = spool.usage();
            let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
            let detail = || {
                format!(
                    "{} records, {} not yet acknowledged by the collector, of {} ({} on disk)",
                    backlog.records,
                    mib(u.unacked_bytes),
                    mib(u.max_bytes),
                    mib(u.disk_bytes)
                )
            };
            alarms.set(alarms::SPOOL_NEAR_FULL, &node, u.near_full && !u.full, detail);
            alarms.set(alarms::SPOOL_FULL, &node, u.full, detail);
            if let Some(s) = &shipper {
                // A collector refusing records of a newer format answered: not unreachable (those
                // records wait in the spool, and RECORDS_LATE says so once they are late).
                let down = !s.connected.load(Ordering::Relaxed) && s.failures.load(Ordering::Relaxed) > 0;
                alarms.set(alarms::COLLECTOR_UNREACHABLE, &node, down, || {
                    let error = s.last_error.lock().map(|e| e.clone().unwrap_or_default()).unwrap_or_default();
                    format!(
                        "{error}; {} records wait in the spool, the oldest {} s old",
                        backlog.records,
                        age.as_secs()
                    )
                });
                let damaged = s.damaged_bytes.load(Ordering::Relaxed);
                alarms.set(alarms::SPOOL_DAMAGED, &node, damaged > 0, || format!("{damaged} bytes moved aside"));
            }
        }
    });
}

/// Applies retention and refreshes statistics periodically.
fn maintain_store(store: Arc<dyn Store>, config: &Config) {
    let retention = config.collector.retention;
    let every = Duration::from_secs(config.collector.maintenance_minutes.max(1) * 60);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let s = store.clone();
            match tokio::task::spawn_blocking(move || {
                let r = s.apply_retention(chrono::Utc::now(), &retention)?;
                s.refresh_statistics()?;
                Ok::<_, tollgate_store::StoreError>(r)
            })
            .await
            {
                Ok(Ok(r)) => tracing::info!(raw = r.raw, rollups = r.rollups, "store maintenance done"),
                Ok(Err(e)) => tracing::error!(error = %e, "store maintenance failed"),
                Err(e) => tracing::error!(error = %e, "store maintenance panicked"),
            }
        }
    });
}

fn status_fn(
    spool: Option<Spool>,
    shipper: Option<Arc<ShipperStats>>,
    velocity: Option<Arc<VelocityTable>>,
) -> Option<StatusFn> {
    let spool = spool?;
    Some(Arc::new(move || {
        let u = spool.usage();
        let backlog = spool.backlog();
        let mib = |b: u64| b as f64 / 1048576.0;
        let mut v = vec![(
            "Spool".to_string(),
            if u.max_bytes > 0 {
                format!(
                    "{:.1} of {:.0} MiB not yet shipped ({:.1} MiB on disk)",
                    mib(u.unacked_bytes),
                    mib(u.max_bytes),
                    mib(u.disk_bytes)
                )
            } else {
                format!("{:.1} MiB not yet shipped ({:.1} MiB on disk)", mib(u.unacked_bytes), mib(u.disk_bytes))
            },
        )];
        if backlog.records > 0 {
            v.push((
                "Backlog".to_string(),
                format!(
                    "{} records not yet acknowledged by the collector, the oldest {} s old",
                    backlog.records,
                    backlog.oldest_age(std::time::SystemTime::now()).as_secs()
                ),
            ));
        }
        if let Some(s) = &shipper {
            v.push((
                "Shipping".to_string(),
                if s.connected.load(Ordering::Relaxed) || s.failures.load(Ordering::Relaxed) == 0 {
                    let sent = format!("{} records sent", s.shipped.load(Ordering::Relaxed));
                    if s.holding_newer.load(Ordering::Relaxed) {
                        // Refused by a collector of an older release: they wait for its upgrade.
                        let last = s.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        format!(
                            "{sent}; records of a newer format wait for the collector's upgrade: {}",
                            last.unwrap_or_default()
                        )
                    } else {
                        sent
                    }
                } else {
                    // What the last delivery said: unreachable, or a refused token.
                    let last = s.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    format!("failing: {}", last.unwrap_or_else(|| "no answer".into()))
                },
            ));
        }
        if let Some(line) =
            velocity.as_ref().and_then(|t| t.shared_view(chrono::Utc::now().timestamp_micros()).describe())
        {
            v.push(("Shared counters".to_string(), line));
        }
        v
    }))
}

/// Fails, naming the address, when one of the fixed addresses this process will listen on is
/// taken by another process. Checked before the state directory is created, so a start that
/// cannot work leaves nothing behind and shows no first-start password. (A check, not a
/// reservation: the listeners are bound when their role starts.)
fn check_addresses_free(config: &Config, roles: Roles) -> anyhow::Result<()> {
    let mut udp: Vec<(&str, std::net::SocketAddr)> = Vec::new();
    let mut tcp: Vec<(&str, std::net::SocketAddr)> = Vec::new();
    // An SRP chassis binds the ENUM addresses only while Active (its mate may hold them).
    if roles.engine() && config.srp.is_none() {
        udp.extend(config.enum_.listen_udp.iter().map(|a| ("ENUM UDP", *a)));
        tcp.extend(config.enum_.listen_tcp.iter().map(|a| ("ENUM TCP", *a)));
    }
    // A probe chassis of an SRP pair binds its mirror and HEP addresses only while Active.
    if roles.probe() && !probe_pair(config, roles) {
        udp.extend(config.probe.mirror.iter().map(|a| ("probe mirror", *a)));
        udp.extend(config.probe.hep_udp.iter().map(|a| ("HEP UDP", *a)));
        tcp.extend(config.probe.hep_tcp.iter().map(|a| ("HEP TCP", *a)));
    }
    for (what, addr) in udp.into_iter().filter(|(_, a)| a.port() != 0) {
        std::net::UdpSocket::bind(addr).with_context(|| format!("cannot bind the {what} listener {addr}"))?;
    }
    for (what, addr) in tcp.into_iter().filter(|(_, a)| a.port() != 0) {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot bind the {what} listener {addr}"))?;
    }
    Ok(())
}

/// Whether this process is a probe chassis of an SRP pair: `tollgate probe` with `[srp]` (in
/// `serve`, `[srp]` is the engine's).
fn probe_pair(config: &Config, roles: Roles) -> bool {
    matches!(roles, Roles::Probe { .. }) && config.srp.is_some()
}

async fn serve(config: Config, roles: Roles, install_demo: bool) -> anyhow::Result<()> {
    // First: a SIGHUP (`systemctl reload`) during the start must not end the process.
    crate::roles::reload::spawn_handler(roles.command());
    // TLS material first (a bad certificate ends the start naming the file), and without it
    // the rule for plain HTTP, before anything is bound.
    let tls = crate::roles::tls::material(&config)?;
    crate::roles::tls::before_bind(&config, tls.as_ref(), "api.listen", config.api.listen)?;
    // Listen first: a port in use ends the start before anything is created or printed.
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot bind the API listener {}", config.api.listen))?;
    check_addresses_free(&config, roles)?;
    if roles.probe() {
        crate::roles::probe::check_interface(&config)?;
    }
    let state_dir = &config.node.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let _state_lock = lock_state_dir(&config, roles)?;
    tighten_role_state(&config)?;
    // Before anything is written (a first start's admin password is shown only once): a spool
    // that cannot work here, or that another process writes, stops the start.
    let spool = if roles.engine() || roles.probe() { Some(open_spool(&config, roles)?) } else { None };
    let alarms = Arc::new(Alarms::default());
    let (auth, bootstrap) = Auth::open(state_dir, config.api.token.clone())?;
    if let Some(b) = &bootstrap {
        say!(
            "tollgate first start: user `admin`, password {} (shown only now; change it on the Users page)",
            b.admin_password
        );
        say!("tollgate first start: an admin token for the CLI is in {}", b.cli_token_file.display());
    }
    let mut registry = Registry::default();
    auth.register_metrics(&mut registry);
    let tls_status = tls.as_ref().map(|material| {
        crate::roles::metrics::register_tls(&mut registry, material.clone());
        crate::roles::tls::supervise(material, &config, alarms.clone(), &config.node.name)
    });
    let connections = ConnectionMetrics::register(&mut registry);
    check_descriptor_budget(&config, roles);

    if let Some(spool) = &spool {
        crate::roles::metrics::register_spool(&mut registry, spool.clone());
    }
    let not_written = RecordsNotWritten::register(&mut registry);
    let engine = match &spool {
        Some(spool) if roles.engine() => Some(
            start_engine(
                &config,
                &mut registry,
                &alarms,
                spool,
                install_demo,
                &not_written,
                tls.as_ref(),
                roles.probe(),
                &connections,
            )
            .await?,
        ),
        _ => None,
    };
    let probe = match &spool {
        Some(spool) if roles.probe() => {
            let summary = match roles {
                Roles::Probe { summary } => summary,
                _ => None,
            };
            let table = engine.as_ref().map(|e| e.responder.velocity().clone());
            Some(
                ProbeRole::start(
                    &config,
                    spool,
                    &mut registry,
                    &connections,
                    summary,
                    table,
                    not_written.clone(),
                    &alarms,
                    probe_pair(&config, roles).then(|| srp_role::link_security(&config, tls.as_ref())),
                )
                .await?,
            )
        }
        _ => None,
    };

    let store: Option<Arc<dyn Store>> = if roles.collector() {
        let url = config.store_url();
        let sqlite = config.collector.sqlite_options();
        let opened = tokio::task::spawn_blocking(move || tollgate_store::open_with(&url, sqlite)).await?;
        let store: Arc<dyn Store> = Arc::from(opened.with_context(|| {
            format!("cannot open the record store {}", tollgate_store::redact_url(&config.store_url()))
        })?);
        maintain_store(store.clone(), &config);
        crate::roles::metrics::register_store(&mut registry, store.clone());
        Some(store)
    } else {
        None
    };
    let ingest = IngestMetrics::register(&mut registry);

    let api_stats = connections.listener("api");
    let server = HttpServer::new(listener, "api", config.api.http_limits(), api_stats.clone())
        .limit_setting("api.max_connections");
    let server = crate::roles::tls::secure(
        server,
        tls.as_ref(),
        "api.listen",
        crate::roles::tls::web_policy(&config),
        Versions::Tls12And13,
    )?;
    let scheme = server.scheme();
    let api_addr = server.local_addr()?;
    let mut watched = vec![("api".to_string(), api_stats)];
    if probe
        .as_ref()
        .is_some_and(|p| p.live.as_ref().map_or(!config.probe.hep_tcp.is_empty(), |l| !l.hep_tcp_addrs.is_empty()))
    {
        watched.push(("hep_tcp".to_string(), connections.listener("hep_tcp")));
    }
    if engine.is_some() {
        use tollgate_sip_redirect::metrics::{TCP_LISTENER, TLS_LISTENER};
        for (addrs, name) in
            [(&config.sip_redirect.listen_tcp, TCP_LISTENER), (&config.sip_redirect.listen_tls, TLS_LISTENER)]
        {
            if !addrs.is_empty() {
                watched.push((name.to_string(), connections.listener(name)));
            }
        }
    }
    crate::roles::connection_alarm::watch(alarms.clone(), config.node.name.clone(), watched);

    let mut shipper = None;
    if let Some(spool) = &spool {
        // The collector's certificate must name the collector role; shipping to this process's
        // own API, its own certificate's role (an engine and collector in one process).
        let mut servers = vec![TlsRole::Collector];
        let mut resolve = None;
        let configured = config.shipper.collector_urls();
        let collectors = if !configured.is_empty() {
            Some(configured)
        } else if roles.collector() {
            let leaf = tls.as_ref().and_then(|m| m.leaf());
            servers.extend(leaf.as_ref().and_then(|l| l.role));
            match leaf.and_then(|l| l.host()) {
                // The certificate names a host, not necessarily this address: call it by its
                // name, connecting to the address.
                Some(host) if host.parse::<std::net::IpAddr>().is_err() => {
                    let to = crate::roles::tls::base_url("http", api_addr);
                    let addr: std::net::SocketAddr = to.trim_start_matches("http://").parse()?;
                    resolve = Some((host.clone(), addr));
                    Some(vec![format!("https://{host}:{}", api_addr.port())])
                }
                _ => Some(vec![crate::roles::tls::base_url(scheme, api_addr)]),
            }
        } else {
            tracing::warn!("no [shipper] collector configured: records stay in the spool");
            None
        };
        if let Some(urls) = collectors {
            let token = ingest_token(&config)
                .context("no ingest token: set [shipper] token or keep <state_dir>/ingest-token")?;
            // reqwest's blocking client must be built (and dropped) off the async threads.
            let client_tls = crate::roles::tls::client(tls.as_ref(), RoleSet::of(&servers))?;
            let mut shipper_config = config.shipper.clone();
            if config.shipper.collector_urls().is_empty() {
                // Shipping to this process's own API over loopback: compression would only
                // cost CPU on both ends.
                shipper_config.compression = tollgate_config::Compression::None;
            }
            let (uplink, options) = tokio::task::spawn_blocking(move || {
                crate::roles::uplink::uplinks(&urls, token, client_tls.as_ref(), resolve, &shipper_config)
            })
            .await??;
            let s = Shipper::start(spool.clone(), uplink, options)?;
            crate::roles::metrics::register_shipper(&mut registry, s.stats().clone());
            shipper = Some(s);
        }
        crate::roles::record_alarms::watch(
            alarms.clone(),
            config.node.name.clone(),
            not_written.clone(),
            engine.as_ref().map(|e| e.metrics.clone()),
        );
        watch_alarms(
            alarms.clone(),
            config.node.name.clone(),
            spool.clone(),
            shipper.as_ref().map(|s| s.stats().clone()),
            Duration::from_secs(config.spool.late_after_secs),
        );
    }

    let state = Arc::new(AppState {
        node: config.node.name.clone(),
        policy: engine.as_ref().map(|e| e.service.clone()),
        responder: engine.as_ref().map(|e| e.responder.clone()),
        store,
        registry: Arc::new(registry),
        auth: Arc::new(auth),
        alarms,
        quarantine: Arc::new(tollgate_web::quarantine::Quarantine::new(
            state_dir.join("quarantine"),
            config.collector.quarantine_max_mb << 20,
        )),
        ingest,
        status: status_fn(
            spool.clone(),
            shipper.as_ref().map(|s| s.stats().clone()),
            engine.as_ref().map(|e| e.responder.velocity().clone()),
        ),
        srp: engine
            .as_ref()
            .and_then(|e| e.srp.as_ref())
            .or_else(|| probe.as_ref().and_then(|p| p.srp.as_ref()))
            .map(|(h, _)| h.clone()),
        probe_calls: probe.as_ref().and_then(|p| p.calls.clone()),
        release: {
            let r = crate::release::current();
            let mut role_names = Vec::new();
            if roles.engine() {
                role_names.push("engine".to_string());
            }
            if roles.probe() {
                role_names.push("probe".to_string());
            }
            if roles.collector() {
                role_names.push("collector".to_string());
            }
            ReleaseInfo {
                release: r.version,
                build: r.build.to_string(),
                max_policy_schema: r.max_policy_schema,
                roles: role_names,
            }
        },
        tls: tls_status,
        console: config.api.console.clone(),
    });
    let app = tollgate_web::router(state);

    let list = |v: &[std::net::SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    let mut ready = format!("tollgate ready: node={} release={}", config.node.name, crate::release::current().version);
    if let Some(e) = &engine {
        let active = e.service.installed().snapshot();
        match (&e.server, &e.srp) {
            (Some(server), _) => {
                ready.push_str(&format!(" enum_udp={} enum_tcp={}", list(&server.udp_addrs), list(&server.tcp_addrs)))
            }
            (None, Some((_, state))) => ready.push_str(&format!(
                " enum_udp={} enum_tcp={} srp={}",
                list(&config.enum_.listen_udp),
                list(&config.enum_.listen_tcp),
                state.borrow().to_string().replace(' ', "_")
            )),
            (None, None) => {}
        }
        // The SIP redirect server's addresses: bound (standalone), or those the SRP Active binds.
        let sip = &config.sip_redirect;
        let sip_addrs = match (&e.sip_server, &e.srp) {
            (Some(server), _) => Some((&server.udp_addrs, &server.tcp_addrs, &server.tls_addrs)),
            (None, Some(_)) if sip.enabled() => Some((&sip.listen_udp, &sip.listen_tcp, &sip.listen_tls)),
            _ => None,
        };
        if let Some((udp, tcp, tls)) = sip_addrs {
            ready.push_str(&format!(" sip_udp={} sip_tcp={}", list(udp), list(tcp)));
            if !tls.is_empty() {
                ready.push_str(&format!(" sip_tls={}", list(tls)));
            }
        }
        ready.push_str(&format!(
            " policy={}",
            active
                .version
                .map_or("none".to_string(), |v| format!("v{v}({})", active.policy.meta().name.replace(' ', "_")))
        ));
    }
    if let Some(p) = &probe {
        match (&p.live, &p.srp) {
            (Some(l), _) => ready.push_str(&format!(
                " hep_udp={} hep_tcp={} mirror={}",
                list(&l.hep_udp_addrs),
                list(&l.hep_tcp_addrs),
                list(&l.mirror_addrs)
            )),
            (None, Some((_, state))) => ready.push_str(&format!(
                " hep_udp={} hep_tcp={} mirror={} srp={}",
                list(&config.probe.hep_udp),
                list(&config.probe.hep_tcp),
                list(&config.probe.mirror),
                state.borrow().to_string().replace(' ', "_")
            )),
            (None, None) => {}
        }
    }
    ready.push_str(&format!(" api={scheme}://{api_addr}"));
    if roles.collector() {
        ready.push_str(&format!(" ui={scheme}://{api_addr}/"));
    }
    // The signal handlers are in place before the role says it is ready.
    let shutdown = shutdown_signal();
    say!("{ready}");
    // Every listener is bound (the API's accepts queue until `serve` below): systemd may start
    // what depends on this role.
    crate::roles::notify::ready(&ready);
    if let Some(udp) = engine.as_ref().and_then(|e| e.server.as_ref()).and_then(|s| s.udp_addrs.first()) {
        say!(
            "try: dig @{} -p {} +short NAPTR 1.1.1.0.5.5.5.2.1.2.1.e164.arpa.   |   tollgate lookup --to +12125550111",
            udp.ip(),
            udp.port()
        );
    }

    server.serve(app, shutdown).await;
    tracing::info!("shutting down");
    if let Some(e) = engine {
        if let Some(server) = e.server {
            server.shutdown().await;
        }
        if let Some(server) = e.sip_server {
            server.shutdown().await;
        }
    }
    if let Some(p) = probe {
        p.shutdown().await;
    }
    if let Some(spool) = &spool {
        spool.sync();
    }
    if let Some(s) = shipper {
        tokio::task::spawn_blocking(move || s.stop()).await?;
    }
    Ok(())
}

/// Warns when the connection limits of the listeners `roles` run do not fit in the open-file
/// limit.
fn check_descriptor_budget(config: &Config, roles: Roles) {
    let mut caps = vec![("api.max_connections", config.api.max_connections as u64)];
    if roles.engine() && !config.enum_.listen_tcp.is_empty() {
        caps.push((
            "enum.tcp_max_connections",
            config.enum_.tcp_max_connections as u64 * config.enum_.listen_tcp.len() as u64,
        ));
    }
    let sip_stream_listeners = config.sip_redirect.listen_tcp.len() + config.sip_redirect.listen_tls.len();
    if roles.engine() && sip_stream_listeners > 0 {
        caps.push((
            "sip_redirect.tcp_max_connections",
            config.sip_redirect.tcp_max_connections as u64 * sip_stream_listeners as u64,
        ));
    }
    if roles.probe() && !config.probe.hep_tcp.is_empty() {
        caps.push((
            "probe.hep_tcp_max_connections",
            config.probe.hep_tcp_max_connections as u64 * config.probe.hep_tcp.len() as u64,
        ));
    }
    crate::fd_limit::check(&caps);
}

/// SIGINT and SIGTERM caught from this call on; the future ends on the first of them and then
/// tells systemd the role is stopping.
///
/// Call it before the role says it is ready: a signal sent right after the ready line (by an
/// operator, a test, or systemd stopping a unit it just started) then shuts the role down
/// cleanly instead of killing it with the default action. The handlers are installed here, not
/// when the future is first polled.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let catch = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| tracing::warn!(signal = name, error = %e, "signal handler not installed")).ok()
    };
    let (interrupt, terminate) = (catch(SignalKind::interrupt(), "SIGINT"), catch(SignalKind::terminate(), "SIGTERM"));
    /// The next delivery of `signal`; never, where it could not be caught.
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    async move {
        tokio::select! {
            _ = received(interrupt) => {}
            _ = received(terminate) => {}
        }
        crate::roles::notify::stopping();
    }
}

/// A role's private data outside its state directory: a spool directory and an SQLite record
/// store configured elsewhere. The state directory itself, then these, are tightened.
fn tighten_role_state(config: &Config) -> anyhow::Result<()> {
    use tollgate_files::private_files::tighten_state;
    let state = &config.node.state_dir;
    tighten_state(state, "state directory")?;
    let spool = config.spool_dir();
    if !spool.starts_with(state) {
        tighten_state(&spool, "spool directory")?;
    }
    if let Some(db) = config.store_url().strip_prefix("sqlite:").map(std::path::Path::new)
        && !db.starts_with(state)
    {
        // The database and its sidecars only: its directory may be shared.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            if file.is_file() {
                tighten_state(&file, "record store")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tollgate_store::redact_url as redact;

    #[test]
    fn store_passwords_are_not_printed() {
        assert_eq!(redact("postgres://tollgate:s3cret@db:5432/records"), "postgres://tollgate:***@db:5432/records");
        assert_eq!(redact("sqlite:/var/lib/tollgate/records.db"), "sqlite:/var/lib/tollgate/records.db");
        assert_eq!(
            redact("postgres://tollgate@db/records?password=s3cret&sslmode=verify-full"),
            "postgres://tollgate@db/records?password=***&sslmode=verify-full"
        );
    }
}
