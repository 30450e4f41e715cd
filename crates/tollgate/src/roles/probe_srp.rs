//! The probe as one chassis of an SRP pair: the pair's HEP (and mirror) addresses are a
//! service address, as an engine pair's ENUM address is. The SBC or proxy sends its HEP to that
//! one address; only the Active binds it and receives, the Standby binds nothing; when the
//! Active dies the Standby takes the address after the dead interval and receives from then on.
//!
//! Why one receiver and not a feed to both: every call is seen, tracked and recorded by exactly
//! one probe, so no record is ever counted twice and the SBC sends each message once (HEP
//! senders such as Kamailio's siptrace have one destination; a carrier puts a floating address
//! in front of its HEP collectors for the same reason).
//!
//! What is replicated: nothing. A call's dialog state lives only in the probe that saw its
//! INVITE. A call in flight when the Active dies is therefore not recorded by either probe: the
//! old Active's open calls die with it, and the new Active sees only the call's later messages,
//! which it counts as messages of unknown calls (`tollgate_probe_unknown_call_messages`), never
//! as a partial record. Records the old Active had closed are in its spool and are shipped when
//! it starts again. A chassis that stops serving without dying (a switchover, forced standby)
//! forgets its open calls the same way (`Probe::abandon_open`, counted in
//! `tollgate_probe_calls_abandoned_total`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tollgate_alarms::Alarms;
use tollgate_api::srp::SrpView;
use tollgate_probe::live::{HepTcpLimits, LiveProbe, Shared};
use tollgate_srp::runtime::{self, Chassis, ForcedStandbySource, LinkSecurity, ReplicatedState, SrpData, SrpHandle};
use tollgate_srp::session::{CmdId, SessionStore};
use tollgate_srp::{SrpConfig, State};

use crate::roles::service_address::{Patience, ServiceAddress, bind_retrying};
use tollgate_files::forced_standby::ForcedStandbyWatch;

/// The probe's live sources as the service of an SRP chassis: bound while Active.
pub struct HepService {
    shared: Shared,
    mirror: Vec<SocketAddr>,
    hep_udp: Vec<SocketAddr>,
    hep_tcp: Vec<SocketAddr>,
    limits: HepTcpLimits,
    /// Receive buffer of the UDP sockets, bytes (`probe.udp_receive_buffer_mb`).
    udp_receive_buffer: usize,
    address: ServiceAddress,
    /// The sources while serving.
    live: Option<LiveProbe>,
}

impl HepService {
    /// The service of these sources (not serving yet): `mirror`, `hep_udp` and `hep_tcp` are
    /// the service addresses, claimed as `address` says; UDP sockets get a receive buffer of
    /// `udp_receive_buffer` bytes.
    pub fn new(
        shared: Shared,
        (mirror, hep_udp, hep_tcp): (Vec<SocketAddr>, Vec<SocketAddr>, Vec<SocketAddr>),
        limits: HepTcpLimits,
        udp_receive_buffer: usize,
        address: ServiceAddress,
    ) -> Self {
        HepService { shared, mirror, hep_udp, hep_tcp, limits, udp_receive_buffer, address, live: None }
    }
}

impl HepService {
    /// Claims the address and starts receiving (what is not done yet), trying to bind as
    /// patiently as `patience` says. The error names what failed.
    async fn start(&mut self, patience: Patience) -> Result<(), String> {
        let mut failed = Vec::new();
        if let Err(e) = self.address.claim().await {
            failed.push(e);
        }
        if self.live.is_none() {
            match self.bind(patience).await {
                Ok(live) => self.live = Some(live),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
    }

    /// Binds the sources.
    async fn bind(&self, patience: Patience) -> Result<LiveProbe, String> {
        let live = bind_retrying("probe service address", patience, || {
            LiveProbe::start(
                self.shared.clone(),
                &self.mirror,
                &self.hep_udp,
                &self.hep_tcp,
                self.limits.clone(),
                self.udp_receive_buffer,
            )
        })
        .await?;
        tracing::info!(hep_udp = ?live.hep_udp_addrs, hep_tcp = ?live.hep_tcp_addrs, mirror = ?live.mirror_addrs, "probe serving: receiving on the service addresses");
        Ok(live)
    }
}

impl runtime::ServiceAddress for HepService {
    async fn claim(&mut self) -> Result<(), String> {
        // The mate may still hold the sockets for a moment (a switchover on one host).
        self.start(Patience::WaitForMate).await
    }

    async fn retry_claim(&mut self) -> Result<(), String> {
        self.start(Patience::Once).await
    }

    async fn release(&mut self) {
        // The address first, then the sockets (as the engine pair does): once the address is
        // gone, a sender's packets go nowhere rather than to a closed port.
        if let Err(e) = self.address.release().await {
            tracing::error!(error = %e, "cannot release the probe's service address");
        }
        if let Some(live) = self.live.take() {
            live.shutdown().await;
            // The mate records from now on: the calls open here would otherwise stay "in
            // progress" (for `concurrent`) and be closed as timeouts, with partial records,
            // whenever this chassis serves again.
            let abandoned = self.shared.probe.lock().unwrap_or_else(|e| e.into_inner()).abandon_open();
            tracing::info!(
                abandoned,
                "probe not serving: service addresses released; its open calls forgotten without a record"
            );
        }
    }
}

/// What a probe pair replicates: nothing (see the module's documentation). The runtime still
/// needs a state to report on.
pub struct NoSessions;

impl ReplicatedState for NoSessions {
    fn commands(&self) -> Vec<(CmdId, &'static str)> {
        Vec::new()
    }

    fn snapshot_micro(&mut self, _store: &mut SessionStore, _now: Instant) {}

    fn snapshot_full(&mut self, _store: &mut SessionStore, _now: Instant) {}

    fn apply_full(&mut self, _store: &SessionStore) -> usize {
        0
    }

    fn purge(&mut self) {}

    fn len(&self) -> usize {
        0
    }

    fn view(&self, _view: SrpView, _copy: Option<&SessionStore>) -> Option<(String, SrpData)> {
        None
    }
}

/// The agent's forced-standby flag file as the runtime's source of the flag.
struct ForcedStandbyFile(ForcedStandbyWatch);

impl ForcedStandbySource for ForcedStandbyFile {
    fn changed(&mut self) -> Option<bool> {
        self.0.changed()
    }
}

/// Starts the SRP chassis of a probe; returns its handle and a receiver of state changes.
pub async fn start(
    config: SrpConfig,
    service: HepService,
    alarms: Arc<Alarms>,
    node: String,
    link_security: LinkSecurity,
) -> anyhow::Result<(SrpHandle, watch::Receiver<State>)> {
    let chassis = Chassis {
        config,
        state: NoSessions,
        service,
        forced_standby: ForcedStandbyFile(ForcedStandbyWatch::from_env()),
        alarms,
        node,
        corrupt_every: None,
        link_security,
    };
    Ok(runtime::start(chassis).await?)
}
