//! The engine as one chassis of an SRP pair: wiring of `tollgate_srp::runtime` with the
//! engine's parts. The velocity table is the replicated state ([`VelocityState`]), the ENUM
//! listener (and the SIP redirect server, with `[sip_redirect]` listen addresses) on the
//! service address is the service ([`EnumService`]), the agent's flag file is the forced
//! standby ([`ForcedStandbyWatch`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::watch;
use tollgate_alarms::Alarms;
use tollgate_api::srp::{ConcurrentCalls, SrpView, VelocityCounter};
use tollgate_enum::Responder;
use tollgate_enum::metrics::EnumMetrics;
use tollgate_enum::server::{EnumServer, RecordSink};
use tollgate_number::E164;
use tollgate_policy::VelocityTable;
use tollgate_policy::velocity::VelocityEntry;
use tollgate_records::spool::Spool;
use tollgate_sip_redirect::Redirector;
use tollgate_sip_redirect::metrics::RedirectMetrics;
use tollgate_sip_redirect::server::{RedirectServer, TlsListeners};
use tollgate_srp::runtime::{self, Chassis, ForcedStandbySource, LinkSecurity, ReplicatedState, SrpData, SrpHandle};
use tollgate_srp::session::{CmdId, SessionStore};
use tollgate_srp::{SrpConfig, State};

use crate::config::Config;
use crate::roles::service_address::{Patience, ServiceAddress, bind_retrying};
use tollgate_files::forced_standby::ForcedStandbyWatch;

/// The micro-checkpoint command id of velocity counters.
pub const CMD_VELOCITY: CmdId = 1;
/// The micro-checkpoint command id of calls in progress per caller.
pub const CMD_CONCURRENT: CmdId = 2;

/// The environment variable of the fault injection of the NACK path's tests: corrupt every
/// Nth micro-checkpoint sent.
const FAULT_CORRUPT_EVERY: &str = "TOLLGATE_SRP_FAULT_CORRUPT_EVERY";

/// What the SRP chassis needs to serve the ENUM service address.
pub struct EnumService {
    /// The responder (with the replicated velocity table).
    pub responder: Arc<Responder>,
    /// Where records go.
    pub spool: Spool,
    /// ENUM metrics.
    pub metrics: Arc<EnumMetrics>,
    /// Service addresses (UDP).
    pub udp: Vec<SocketAddr>,
    /// Service addresses (TCP).
    pub tcp: Vec<SocketAddr>,
    /// How the service IP is claimed.
    pub address: ServiceAddress,
    /// The listener while serving.
    server: Option<EnumServer>,
    /// The SIP redirect server on the service address, with `[sip_redirect]` listen addresses.
    sip: Option<SipService>,
}

/// What the SRP chassis needs to serve the SIP redirect server on the service address.
pub struct SipService {
    /// The redirector (deciding through the same responder).
    pub redirector: Arc<Redirector>,
    /// SIP redirect metrics.
    pub metrics: Arc<RedirectMetrics>,
    /// Service addresses (UDP).
    pub udp: Vec<SocketAddr>,
    /// Service addresses (TCP).
    pub tcp: Vec<SocketAddr>,
    /// Service addresses (TLS), with their acceptor.
    pub tls: Option<TlsListeners>,
    /// The listeners while serving.
    server: Option<RedirectServer>,
}

impl SipService {
    /// The SIP service of these parts (not serving yet).
    pub fn new(
        redirector: Arc<Redirector>,
        metrics: Arc<RedirectMetrics>,
        udp: Vec<SocketAddr>,
        tcp: Vec<SocketAddr>,
        tls: Option<TlsListeners>,
    ) -> Self {
        SipService { redirector, metrics, udp, tcp, tls, server: None }
    }
}

impl EnumService {
    /// The service of these parts (not serving yet).
    pub fn new(
        responder: Arc<Responder>,
        spool: Spool,
        metrics: Arc<EnumMetrics>,
        udp: Vec<SocketAddr>,
        tcp: Vec<SocketAddr>,
        address: ServiceAddress,
    ) -> Self {
        EnumService { responder, spool, metrics, udp, tcp, address, server: None, sip: None }
    }

    /// Serves the SIP redirect server on the service address too (its addresses must be in
    /// `address`).
    pub fn with_sip(mut self, sip: SipService) -> Self {
        self.sip = Some(sip);
        self
    }
}

impl EnumService {
    /// Starts what does not serve yet: the service IP, the ENUM listener and the SIP redirect
    /// server. Each part that starts serves whether or not another could: a SIP address another
    /// process holds must not take ENUM down with it, nor the reverse. The error names each
    /// part that does not serve; the runtime raises its alarm and retries. `patience` is for
    /// the first bind that fails (the mate may still hold the sockets); once one part has
    /// waited it out, the others are tried once, so a take never waits twice.
    async fn start_missing(&mut self, mut patience: Patience) -> Result<(), String> {
        let mut failed = Vec::new();
        if let Err(e) = self.address.claim().await {
            failed.push(e);
        }
        if self.server.is_none() {
            let started = bind_retrying("ENUM service address", patience, || {
                EnumServer::start(
                    self.responder.clone(),
                    RecordSink::Spool(self.spool.clone()),
                    self.metrics.clone(),
                    &self.udp,
                    &self.tcp,
                )
            })
            .await;
            match started {
                Ok(server) => self.server = Some(server),
                Err(e) => {
                    failed.push(e);
                    patience = Patience::Once;
                }
            }
        }
        if let Some(sip) = self.sip.as_mut().filter(|sip| sip.server.is_none()) {
            let started = bind_retrying("SIP redirect service address", patience, || {
                RedirectServer::start_with_tls(
                    sip.redirector.clone(),
                    RecordSink::Spool(self.spool.clone()),
                    sip.metrics.clone(),
                    &sip.udp,
                    &sip.tcp,
                    sip.tls.as_ref(),
                )
            })
            .await;
            match started {
                Ok(server) => sip.server = Some(server),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }
}

impl runtime::ServiceAddress for EnumService {
    async fn claim(&mut self) -> Result<(), String> {
        // The mate may still hold the sockets for a moment (a switchover on one host).
        self.start_missing(Patience::WaitForMate).await
    }

    async fn retry_claim(&mut self) -> Result<(), String> {
        self.start_missing(Patience::Once).await
    }

    async fn release(&mut self) {
        // The address first, then the sockets: once the address is gone, an SBC's query to it
        // is dropped unanswered and its resolver asks again (reaching the new Active); a query
        // reaching the address after the sockets closed would get an ICMP port unreachable,
        // which a resolver takes as a final failure (the call then goes unpoliced).
        if let Err(e) = self.address.release().await {
            tracing::error!(error = %e, "cannot release the service address");
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(server) = self.sip.as_mut().and_then(|s| s.server.take()) {
            server.shutdown().await;
        }
    }
}

/// The agent's forced-standby flag file as the runtime's source of the flag.
struct ForcedStandbyFile(ForcedStandbyWatch);

impl ForcedStandbySource for ForcedStandbyFile {
    fn changed(&mut self) -> Option<bool> {
        self.0.changed()
    }
}

/// The velocity table as the state an SRP pair replicates: one session per counter
/// (`velocity/<rule>/<caller>`, [`CMD_VELOCITY`]) and one per caller with calls in progress
/// (`concurrent/<caller>`, [`CMD_CONCURRENT`]).
pub struct VelocityState(pub Arc<VelocityTable>);

fn session_key(e: &VelocityEntry) -> String {
    format!("velocity/{}/{}", e.rule, e.source)
}

/// The velocity counters held in the session store (the mate's copy on a Standby).
fn velocity_from_store(store: &SessionStore) -> Vec<VelocityEntry> {
    store
        .iter()
        .filter(|(k, _)| k.starts_with("velocity/"))
        .filter_map(|(_, e)| serde_json::from_slice::<VelocityEntry>(&e.value).ok())
        .collect()
}

/// Calls in progress per caller held in the session store.
fn concurrent_from_store(store: &SessionStore) -> Vec<(E164, u32)> {
    store
        .iter()
        .filter_map(|(k, e)| {
            let source = k.strip_prefix("concurrent/")?.parse().ok()?;
            Some((source, serde_json::from_slice::<u32>(&e.value).ok()?))
        })
        .collect()
}

impl ReplicatedState for VelocityState {
    fn commands(&self) -> Vec<(CmdId, &'static str)> {
        vec![(CMD_VELOCITY, "velocity"), (CMD_CONCURRENT, "concurrent")]
    }

    fn snapshot_micro(&mut self, store: &mut SessionStore, now: Instant) {
        for (source, n) in self.0.drain_concurrent_changes() {
            let key = format!("concurrent/{source}");
            if n == 0 {
                store.remove(&key);
            } else if let Err(err) = store.upsert_json(CMD_CONCURRENT, &key, &n, now) {
                tracing::error!(error = %err, "cannot checkpoint calls in progress");
            }
        }
        for e in self.0.drain_changes() {
            let key = session_key(&e);
            if e.times.is_empty() {
                store.remove(&key);
            } else if let Err(err) = store.upsert_json(CMD_VELOCITY, &key, &e, now) {
                tracing::error!(error = %err, "cannot checkpoint a velocity counter");
            }
        }
    }

    fn snapshot_full(&mut self, store: &mut SessionStore, now: Instant) {
        self.0.drain_changes();
        self.0.drain_concurrent_changes();
        let snapshot = self.0.snapshot();
        let concurrent = self.0.concurrent_snapshot();
        let mut keep: HashSet<String> = snapshot.iter().map(session_key).collect();
        keep.extend(concurrent.iter().map(|(s, _)| format!("concurrent/{s}")));
        let stale: Vec<String> = store
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| (k.starts_with("velocity/") || k.starts_with("concurrent/")) && !keep.contains(k))
            .collect();
        for k in stale {
            store.remove(&k);
        }
        for e in &snapshot {
            let key = session_key(e);
            let same = store
                .get(&key)
                .and_then(|s| serde_json::from_slice::<VelocityEntry>(&s.value).ok())
                .is_some_and(|old| old == *e);
            if !same && let Err(err) = store.upsert_json(CMD_VELOCITY, &key, e, now) {
                tracing::error!(error = %err, "cannot checkpoint a velocity counter");
            }
        }
        for (source, n) in concurrent {
            let key = format!("concurrent/{source}");
            if store.get_json::<u32>(&key).ok().flatten() != Some(n)
                && let Err(err) = store.upsert_json(CMD_CONCURRENT, &key, &n, now)
            {
                tracing::error!(error = %err, "cannot checkpoint calls in progress");
            }
        }
    }

    fn apply_full(&mut self, store: &SessionStore) -> usize {
        let recovered = velocity_from_store(store);
        self.0.replace_all(&recovered);
        self.0.apply_concurrent(&concurrent_from_store(store), true);
        recovered.len()
    }

    fn purge(&mut self) {
        self.0.purge(Utc::now().timestamp_micros());
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn view(&self, view: SrpView, copy: Option<&SessionStore>) -> Option<(String, SrpData)> {
        match view {
            SrpView::Velocity => {
                let mut snapshot = copy.map_or_else(|| self.0.snapshot(), velocity_from_store);
                snapshot.sort_by(|a, b| (&a.rule, a.source).cmp(&(&b.rule, b.source)));
                let text =
                    snapshot.iter().map(|e| format!("{} {} {} calls\n", e.rule, e.source, e.times.len())).collect();
                let data = snapshot
                    .into_iter()
                    .map(|e| VelocityCounter {
                        rule: e.rule,
                        source: e.source.to_string(),
                        window_us: e.window_us,
                        times: e.times,
                    })
                    .collect();
                Some((text, SrpData::Velocity(data)))
            }
            SrpView::Concurrent => {
                let mut list = copy.map_or_else(|| self.0.concurrent_snapshot(), concurrent_from_store);
                list.sort();
                let text = list.iter().map(|(s, n)| format!("{s} {n} calls in progress\n")).collect();
                let data = list.into_iter().map(|(s, n)| ConcurrentCalls { source: s.to_string(), calls: n }).collect();
                Some((text, SrpData::Concurrent(data)))
            }
            _ => None,
        }
    }
}

/// The SRP link's security from `[tls]`: TLS 1.3 with the process's certificate (`tls`, the
/// material loaded once for the process) when `[tls]` names one, otherwise plain text where
/// `tls.allow_plaintext` or loopback allows it.
pub fn link_security(config: &Config, tls: Option<&tollgate_tls::TlsMaterial>) -> LinkSecurity {
    match tls {
        Some(material) => LinkSecurity::Tls(material.clone()),
        None => LinkSecurity::Plain { allow_plaintext: config.tls.allow_plaintext },
    }
}

/// Starts the SRP chassis of an engine; returns its handle and a receiver of state changes.
pub async fn start(
    config: SrpConfig,
    velocity: Arc<VelocityTable>,
    service: EnumService,
    alarms: Arc<Alarms>,
    node: String,
    link_security: LinkSecurity,
) -> anyhow::Result<(SrpHandle, watch::Receiver<State>)> {
    let chassis = Chassis {
        config,
        state: VelocityState(velocity),
        service,
        forced_standby: ForcedStandbyFile(ForcedStandbyWatch::from_env()),
        alarms,
        node,
        corrupt_every: std::env::var(FAULT_CORRUPT_EVERY).ok().and_then(|v| v.parse().ok()),
        link_security,
    };
    Ok(runtime::start(chassis).await?)
}
