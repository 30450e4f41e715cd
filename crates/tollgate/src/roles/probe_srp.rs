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
//! What is replicated: the open calls. The Active checkpoints each call it tracks to the
//! Standby when a SIP message changes it (its dialog state, media endpoints, and its RTP
//! streams as they are then; one session `call/<Call-ID>` under micro-checkpoint command
//! [`CMD_PROBE_CALL`]), and deletes it when the call ends. RTP packets alone are not
//! checkpointed: a new Active counts a stream's packets it did not see as unseen, not lost.
//!
//! A Standby that takes over tracks the calls it holds from then on: their later messages
//! complete them, and it records them whole when they end, so a call is recorded by the
//! chassis that sees its end. What a failover can still lose is what the Active saw in the
//! moment before it died and had not checkpointed yet (one flush): a recovered call whose end
//! the dead Active saw and recorded, but whose deletion never reached the mate, is confirmed
//! by no later message (an ACK or a response to its BYE does not confirm) and is forgotten at
//! its timeout, or to make room, without a record
//! (`tollgate_probe_calls_recovered_unconfirmed`). A call's messages kept for its ladder are
//! not replicated: the new Active's ladder of a recovered call starts at the failover.
//! Records the old Active had closed are in its spool and are shipped when it starts again.
//!
//! A chassis that stops serving without dying (a switchover, forced standby) forgets its open
//! calls (`Probe::abandon_open`, counted in `tollgate_probe_calls_abandoned_total`): its mate
//! took them over from its checkpoints. The changes it noted until then still go out with the
//! switchover's last flush, which comes after the release.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use tollgate_alarms::Alarms;
use tollgate_api::srp::SrpView;
use tollgate_probe::live::{HepTcpLimits, LiveProbe, Shared};
use tollgate_probe::pipeline::{Probe, lock};
use tollgate_sip::dialog::OpenCallCheckpoint;
use tollgate_srp::runtime::{self, Chassis, ForcedStandbySource, LinkSecurity, ReplicatedState, SrpData, SrpHandle};
use tollgate_srp::session::{CmdId, MAX_KEY_LEN, SessionStore};
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
        }
        // The mate records from now on: the calls open here (also those taken over when the
        // sockets could not be bound) would otherwise stay "in progress" (for `concurrent`)
        // and be closed as timeouts, with partial records, whenever this chassis serves again.
        let abandoned = lock(&self.shared.probe).abandon_open();
        tracing::info!(
            abandoned,
            "probe not serving: service addresses released; its open calls forgotten without a record"
        );
    }
}

/// The micro-checkpoint command of a probe pair's open calls (`call/<Call-ID>` sessions).
pub const CMD_PROBE_CALL: CmdId = 3;

/// The session key of an open call; none for a Call-ID too long to be a key (such a call is
/// not replicated).
fn call_key(call_id: &str) -> Option<String> {
    let key = format!("call/{call_id}");
    (key.len() <= MAX_KEY_LEN).then_some(key)
}

/// What a probe pair replicates: the open calls of its probe (see the module's
/// documentation).
pub struct OpenCalls {
    probe: Arc<Mutex<Probe>>,
}

impl OpenCalls {
    /// The open calls of `probe`, which from now on notes which of them change.
    pub fn new(probe: Arc<Mutex<Probe>>) -> Self {
        lock(&probe).note_changes(true);
        OpenCalls { probe }
    }
}

/// Checkpoints `call` unless the store holds it as it is; a call that cannot be checkpointed
/// (too large) leaves the store, so the mate never takes over an older copy of it.
fn upsert(store: &mut SessionStore, call: &OpenCallCheckpoint, now: Instant) {
    let Some(key) = call_key(&call.call.call_id) else { return };
    let written = serde_json::to_vec(call).map_err(|e| e.to_string()).and_then(|value| {
        if store.get(&key).is_some_and(|held| held.value == value) {
            return Ok(());
        }
        store.upsert(CMD_PROBE_CALL, &key, value, now).map(drop).map_err(|e| e.to_string())
    });
    if let Err(err) = written {
        store.remove(&key);
        tracing::error!(error = %err, call_id = %call.call.call_id, "cannot checkpoint an open call; the mate will not take it over");
    }
}

impl ReplicatedState for OpenCalls {
    fn commands(&self) -> Vec<(CmdId, &'static str)> {
        vec![(CMD_PROBE_CALL, "probe-call")]
    }

    fn snapshot_micro(&mut self, store: &mut SessionStore, now: Instant) {
        let changes = lock(&self.probe).drain_checkpoint();
        for call_id in &changes.closed {
            if let Some(key) = call_key(call_id) {
                store.remove(&key);
            }
        }
        for call in &changes.changed {
            upsert(store, call, now);
        }
    }

    fn snapshot_full(&mut self, store: &mut SessionStore, now: Instant) {
        let calls = lock(&self.probe).checkpoint_open();
        let keep: HashSet<String> = calls.iter().filter_map(|c| call_key(&c.call.call_id)).collect();
        let stale: Vec<String> = store
            .iter()
            .filter(|(k, e)| e.cmd == CMD_PROBE_CALL && !keep.contains(*k))
            .map(|(k, _)| k.to_string())
            .collect();
        for key in stale {
            store.remove(&key);
        }
        for call in &calls {
            upsert(store, call, now);
        }
    }

    fn apply_full(&mut self, store: &SessionStore) -> usize {
        let mut calls: Vec<OpenCallCheckpoint> = store
            .iter()
            .filter(|(_, e)| e.cmd == CMD_PROBE_CALL)
            .filter_map(|(key, e)| match serde_json::from_slice(&e.value) {
                Ok(call) => Some(call),
                Err(err) => {
                    tracing::error!(%key, error = %err, "an open call checkpointed by the mate is unreadable; left out");
                    None
                }
            })
            .collect();
        // In the order the calls began: claims on a shared media endpoint are made in the
        // order the mate made them, and a cap keeps the oldest.
        calls.sort_by_key(|c| (c.call.invite_us, c.last_us));
        lock(&self.probe).restore_open(calls)
    }

    fn purge(&mut self) {
        // The probe closes its calls itself (their timeouts, from the packets' times).
    }

    fn len(&self) -> usize {
        lock(&self.probe).tracker().open_calls()
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
        state: OpenCalls::new(service.shared.probe.clone()),
        service,
        forced_standby: ForcedStandbyFile(ForcedStandbyWatch::from_env()),
        alarms,
        node,
        corrupt_every: None,
        link_security,
    };
    Ok(runtime::start(chassis).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_probe::CallReport;
    use tollgate_probe::decode::{Datagram, Transport};
    use tollgate_probe::fuzzing::example_settings;
    use tollgate_records::Disposition;

    fn probe(device: &str) -> Arc<Mutex<Probe>> {
        Arc::new(Mutex::new(Probe::new(example_settings(device))))
    }

    /// One SIP message of call `call` (INVITE's CSeq 1, BYE's 2) at `ms`, fed to `probe`.
    fn feed(probe: &Mutex<Probe>, call: &str, what: &str, ms: i64) -> Vec<CallReport> {
        let (start, cseq) = match what {
            "INVITE" => ("INVITE sip:+12125550100@10.0.0.2 SIP/2.0".to_string(), "1 INVITE"),
            "BYE" => ("BYE sip:+12125550100@10.0.0.2 SIP/2.0".to_string(), "2 BYE"),
            code => (format!("SIP/2.0 {code} X"), "1 INVITE"),
        };
        let to_tag = if what == "INVITE" { "" } else { ";tag=b" };
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{call}\r\nFrom: <sip:+13125550666@10.0.0.1>;tag=a\r\nTo: <sip:+12125550100@10.0.0.2>{to_tag}\r\nCall-ID: {call}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        );
        let d = Datagram {
            ts_us: 1_800_000_000_000_000 + ms * 1000,
            src: "10.0.0.1:5060".parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            payload: text.as_bytes(),
        };
        lock(probe).on_datagram(&d)
    }

    fn keys(store: &SessionStore) -> Vec<String> {
        let mut keys: Vec<String> = store.iter().map(|(k, _)| k.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn an_open_call_checkpointed_by_the_active_is_recorded_whole_by_the_mate_that_takes_over() {
        let (probe_a, probe_b) = (probe("probe-a"), probe("probe-b"));
        let mut active = OpenCalls::new(probe_a.clone());
        let mut store = SessionStore::new();
        for (what, ms) in [("INVITE", 0), ("180", 800), ("200", 3000)] {
            feed(&probe_a, "held", what, ms);
        }
        feed(&probe_a, "refused", "INVITE", 100);
        active.snapshot_micro(&mut store, Instant::now());
        assert_eq!(keys(&store), ["call/held", "call/refused"]);
        assert_eq!(feed(&probe_a, "refused", "486", 200).len(), 1);
        active.snapshot_micro(&mut store, Instant::now());
        assert_eq!(keys(&store), ["call/held"], "an ended call leaves the checkpoint");
        assert_eq!(active.len(), 1);

        // probe-a dies; probe-b takes over with its copy of the store.
        let mut mate = OpenCalls::new(probe_b.clone());
        assert_eq!(mate.apply_full(&store), 1);
        assert_eq!(mate.len(), 1);
        let reports = feed(&probe_b, "held", "BYE", 63_000);
        assert_eq!(reports.len(), 1, "recorded when its BYE reaches the new Active");
        let r = &reports[0].record;
        assert_eq!((r.device.as_str(), r.disposition), ("probe-b", Disposition::Answered));
        assert_eq!((r.pdd_ms, r.duration_ms), (Some(800), Some(60_000)), "times from the INVITE probe-a saw");
        assert_eq!(lock(&probe_b).counters().recovered, 1);
        assert_eq!(lock(&probe_b).tracker().stats().unknown_call, 0);
        mate.snapshot_micro(&mut store, Instant::now());
        assert!(keys(&store).is_empty(), "the new Active's checkpoints follow its own calls");
    }

    #[test]
    fn a_planned_switchover_carries_what_changed_since_the_last_flush() {
        let (probe_a, probe_b) = (probe("probe-a"), probe("probe-b"));
        let mut active = OpenCalls::new(probe_a.clone());
        let mut store = SessionStore::new();
        feed(&probe_a, "up", "INVITE", 0);
        feed(&probe_a, "gone", "INVITE", 0);
        active.snapshot_micro(&mut store, Instant::now());
        // Between two flushes: one call answered, one refused; then the service is released
        // (the switchover releases before its last flush).
        feed(&probe_a, "up", "200", 2000);
        assert_eq!(feed(&probe_a, "gone", "486", 2000).len(), 1);
        assert_eq!(lock(&probe_a).abandon_open(), 1);
        active.snapshot_micro(&mut store, Instant::now());
        assert_eq!(keys(&store), ["call/up"], "the refused call left, the answered one stayed");
        let held: OpenCallCheckpoint = store.get_json("call/up").unwrap().unwrap();
        assert_eq!(held.call.final_code, Some(200), "as it was when the service was released");
        active.snapshot_micro(&mut store, Instant::now());
        assert_eq!(keys(&store), ["call/up"], "the abandoned call is not deleted by a later flush");

        let mut mate = OpenCalls::new(probe_b.clone());
        assert_eq!(mate.apply_full(&store), 1);
        let reports = feed(&probe_b, "up", "BYE", 62_000);
        assert_eq!(
            (reports[0].record.disposition, reports[0].record.duration_ms),
            (Disposition::Answered, Some(60_000))
        );
    }

    #[test]
    fn a_full_checkpoint_holds_exactly_the_open_calls_and_leaves_other_sessions() {
        let probe_a = probe("probe-a");
        let mut active = OpenCalls::new(probe_a.clone());
        let mut store = SessionStore::new();
        let now = Instant::now();
        store.upsert_json(CMD_PROBE_CALL, "call/gone", &"stale", now).unwrap();
        store.upsert_json(1, "velocity/other", &1u32, now).unwrap();
        feed(&probe_a, "up", "INVITE", 0);
        active.snapshot_full(&mut store, now);
        assert_eq!(keys(&store), ["call/up", "velocity/other"]);
        let held: OpenCallCheckpoint = store.get_json("call/up").unwrap().unwrap();
        assert_eq!(held.call.call_id, "up");

        // A copy that does not read is left out, not taken over half.
        store.upsert(CMD_PROBE_CALL, "call/torn", b"{\"call_id\":".to_vec(), now).unwrap();
        let probe_b = probe("probe-b");
        assert_eq!(OpenCalls::new(probe_b.clone()).apply_full(&store), 1);
        assert!(lock(&probe_b).tracker().is_open("up"));
    }

    #[test]
    fn a_call_id_too_long_for_a_key_is_not_replicated() {
        assert_eq!(call_key("a").as_deref(), Some("call/a"));
        assert!(call_key(&"x".repeat(MAX_KEY_LEN)).is_none());
        let probe_a = probe("probe-a");
        let mut active = OpenCalls::new(probe_a.clone());
        let mut store = SessionStore::new();
        feed(&probe_a, &"x".repeat(MAX_KEY_LEN), "INVITE", 0);
        active.snapshot_micro(&mut store, Instant::now());
        active.snapshot_full(&mut store, Instant::now());
        assert!(store.is_empty());
        assert_eq!(active.len(), 1, "still tracked here");
    }
}
