//! The engine as one chassis of an SRP pair: the election decides whether this server serves
//! the ENUM service address; while Active its velocity counters are checkpointed to the mate,
//! while Standby it keeps the mate's copy, ready to take over.
//!
//! One task owns every SRP part (machine, link, timers, checkpointer, session store) and the
//! ENUM listener of the service address, so the order of events is the order of decisions.
//! Operators reach it through [`SrpHandle`] (the HTTP API and `tollgate srp ...`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tollgate_alarms::{self as alarms, Alarms};
use tollgate_enum::Responder;
use tollgate_enum::metrics::EnumMetrics;
use tollgate_enum::server::{EnumServer, RecordSink};
use tollgate_policy::VelocityTable;
use tollgate_policy::velocity::VelocityEntry;
use tollgate_records::spool::Spool;
use tollgate_srp::audit::{self, AuditStatistics, StoreDigest};
use tollgate_srp::checkpoint::{Checkpointer, ReceiveOutcome};
use tollgate_srp::election::{self, Action, Event, Machine, Params, State};
use tollgate_srp::link::{Link, LinkConfig, LinkEvent};
use tollgate_srp::message::Message;
use tollgate_srp::monitor::MonitorSet;
use tollgate_srp::session::SessionStore;
use tollgate_srp::status::{SrpInfo, SrpStatistics, SwitchoverStatistics};
use tollgate_srp::timer::Timers;
use tollgate_srp::{SrpConfig, step};
use tollgate_web::srp::{SrpReply, SrpRequest, SrpService};

use crate::forced_standby::ForcedStandbyWatch;
use crate::service_address::ServiceAddress;
use crate::srp_monitor;

/// The micro-checkpoint command id of velocity counters.
pub const CMD_VELOCITY: u8 = 1;
/// The micro-checkpoint command id of calls in progress per caller.
pub const CMD_CONCURRENT: u8 = 2;

/// How often checkpoints are polled and velocity changes moved into the session store.
const TICK: Duration = Duration::from_millis(10);

/// One switchover this chassis took part in (`show srp call-loss statistics`).
#[derive(Debug, Clone, Serialize)]
pub struct CallLossRecord {
    /// When this chassis started serving.
    pub at: DateTime<Utc>,
    /// Why: the mate's dead interval expired, a switchover request, the initial election...
    pub reason: String,
    /// Velocity sessions taken over from the checkpointed copy.
    pub sessions_recovered: usize,
    /// Sessions the mate last reported holding, minus those recovered (never negative); 0 when
    /// the mate's count was never heard.
    pub sessions_lost: usize,
    /// Whether the copy was synchronised (a full checkpoint applied and nothing missing since).
    pub synchronised: bool,
}

/// What the task publishes for `show` commands without a round trip.
#[derive(Debug, Default)]
struct View {
    call_loss: Vec<CallLossRecord>,
}

/// Requests from operators to the SRP task.
type Request = (SrpRequest, oneshot::Sender<Result<SrpReply, String>>);

/// The handle the API uses.
#[derive(Clone)]
pub struct SrpHandle {
    tx: mpsc::Sender<Request>,
}

impl SrpService for SrpHandle {
    fn request(
        &self,
        req: SrpRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<SrpReply, String>> + Send + '_>> {
        Box::pin(async move {
            let (reply_tx, reply_rx) = oneshot::channel();
            self.tx.send((req, reply_tx)).await.map_err(|_| "the SRP task has stopped".to_string())?;
            reply_rx.await.map_err(|_| "the SRP task has stopped".to_string())?
        })
    }
}

/// What the SRP task needs to serve the ENUM service address.
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
}

/// Starts the SRP task; returns its handle and a receiver of state changes (for the ready
/// line and logs).
pub async fn start(
    config: SrpConfig,
    service: EnumService,
    alarms: Arc<Alarms>,
    node: String,
) -> anyhow::Result<(SrpHandle, tokio::sync::watch::Receiver<State>)> {
    config.validate().map_err(|e| anyhow::anyhow!("[srp]: {e}"))?;
    // A restart after a crash may find the service address still on the interface: this
    // chassis is not serving until the election says so.
    if let Err(e) = service.address.release().await {
        tracing::warn!(error = %e, "cannot release a stale service address");
    }
    let (link, link_events) = Link::start(LinkConfig::from_config(&config))
        .await
        .map_err(|e| anyhow::anyhow!("SRP link on {}: {e}", config.bind_address))?;
    let (machine, mut actions) = Machine::new(Params::from_config(&config));
    // Held in forced standby by the manager before this start (an upgraded standby restarting):
    // in force before the first election.
    let mut forced_file = ForcedStandbyWatch::from_env();
    let (machine, more) = match forced_file.changed() {
        Some(on) => step(&machine, Event::ForcedStandby(on)),
        None => (machine, Vec::new()),
    };
    actions.extend(more);
    let (timers, fired) = Timers::new();
    let mut checkpointer = Checkpointer::new(&config);
    checkpointer.register_cmd(CMD_VELOCITY, "velocity");
    checkpointer.register_cmd(CMD_CONCURRENT, "concurrent");
    let (tx, rx) = mpsc::channel(16);
    let (state_tx, state_rx) = tokio::sync::watch::channel(machine.state());
    let (serving_tx, serving_rx) = tokio::sync::watch::channel(false);
    let (monitor_tx, monitor_rx) = mpsc::channel(64);
    srp_monitor::spawn(&config.monitors, serving_rx, monitor_tx);
    let velocity = service.responder.velocity().clone();
    let mut task = Task {
        monitors: MonitorSet::new(&config.monitors),
        config,
        machine,
        link,
        timers,
        checkpointer,
        store: SessionStore::new(),
        velocity,
        service,
        server: None,
        alarms,
        node,
        view: Arc::new(Mutex::new(View::default())),
        switchovers: SwitchoverStatistics::default(),
        audit_stats: AuditStatistics::default(),
        peer_sessions: None,
        state_tx,
        pending_validation: Vec::new(),
        pending_switchover: Vec::new(),
        last_sync: false,
        took_over_reason: "initial election".into(),
        serving: serving_tx,
        corrupt_every: std::env::var("TOLLGATE_SRP_FAULT_CORRUPT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0),
        micro_sent: 0,
        forced_file,
    };
    task.carry_out(actions).await;
    tokio::spawn(task.run(link_events, fired, rx, monitor_rx));
    Ok((SrpHandle { tx }, state_rx))
}

struct Task {
    config: SrpConfig,
    machine: Machine,
    link: Link,
    timers: Timers,
    checkpointer: Checkpointer,
    store: SessionStore,
    velocity: Arc<VelocityTable>,
    monitors: MonitorSet,
    service: EnumService,
    server: Option<EnumServer>,
    alarms: Arc<Alarms>,
    node: String,
    view: Arc<Mutex<View>>,
    switchovers: SwitchoverStatistics,
    audit_stats: AuditStatistics,
    /// Sessions the mate reported in its last audit digest or checkpoint statistics.
    peer_sessions: Option<usize>,
    state_tx: tokio::sync::watch::Sender<State>,
    pending_validation: Vec<oneshot::Sender<Result<SrpReply, String>>>,
    pending_switchover: Vec<oneshot::Sender<Result<SrpReply, String>>>,
    last_sync: bool,
    took_over_reason: String,
    /// True while serving: monitors probe only then.
    serving: tokio::sync::watch::Sender<bool>,
    /// Fault injection: corrupt every Nth micro-checkpoint sent.
    corrupt_every: Option<u64>,
    micro_sent: u64,
    /// The agent's forced-standby flag.
    forced_file: ForcedStandbyWatch,
}

fn session_key(e: &VelocityEntry) -> String {
    format!("velocity/{}/{}", e.rule, e.source)
}

impl Task {
    async fn run(
        mut self,
        mut link_events: mpsc::Receiver<LinkEvent>,
        mut fired: mpsc::UnboundedReceiver<tollgate_srp::timer::Fired>,
        mut requests: mpsc::Receiver<Request>,
        mut monitor_changes: mpsc::Receiver<srp_monitor::TargetChange>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(Duration::from_secs(30));
        let mut next_audit = self.next_audit();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_audit) => {
                    next_audit = self.next_audit();
                    if self.machine.holds_service_address() && self.link.is_connected() {
                        tracing::info!(node = %self.node, "scheduled SRP audit");
                        self.start_audit().await;
                    }
                }
                Some(event) = link_events.recv() => self.on_link(event).await,
                Some(f) = fired.recv() => {
                    if let Some(event) = self.timers.expired(f) {
                        if matches!(event, Event::TimerExpired(election::Timer::DeadInterval)) {
                            self.took_over_reason = "the mate's dead interval expired".into();
                        }
                        self.feed(event).await;
                    }
                }
                Some((req, reply)) = requests.recv() => self.on_request(req, reply).await,
                Some(change) = monitor_changes.recv() => {
                    for event in self.monitors.report(change.kind, &change.target, change.up) {
                        self.feed(event).await;
                    }
                }
                _ = tick.tick() => self.on_tick().await,
                _ = purge.tick() => {
                    if self.machine.holds_service_address() {
                        self.velocity.purge(Utc::now().timestamp_micros());
                    }
                }
                else => break,
            }
        }
    }

    /// Steps the machine and carries out what it says.
    async fn feed(&mut self, event: Event) {
        let (machine, actions) = step(&self.machine, event);
        self.machine = machine;
        self.carry_out(actions).await;
    }

    async fn carry_out(&mut self, actions: Vec<Action>) {
        self.switchovers.record(&actions);
        for action in actions {
            if self.timers.apply(&action) {
                continue;
            }
            match action {
                Action::StateChanged { from, to } => {
                    tracing::warn!(node = %self.node, %from, %to, "SRP state changed");
                    let _ = self.state_tx.send(to);
                }
                Action::SendHello => self.link.set_hello(self.machine.status()),
                Action::TakeServiceAddress => self.take_service().await,
                Action::ReleaseServiceAddress => self.release_service().await,
                Action::RequestFullCheckpoint => {
                    let _ = self.link.send(Message::FullCheckpointRequest).await;
                }
                Action::FlushCheckpoints => {
                    self.move_velocity_changes();
                    let batch = self.checkpointer.micro_checkpoints(&mut self.store, Instant::now());
                    self.send_checkpoints(batch).await;
                }
                Action::SendSwitchoverRequest { force, reason } => {
                    let _ = self.link.send(Message::SwitchoverRequest { force, reason }).await;
                }
                Action::SendSwitchoverResponse { accepted, refusal } => {
                    let _ = self.link.send(Message::SwitchoverResponse { accepted, refusal }).await;
                }
                Action::SetRouteModifier(_) => {}
                Action::RaiseAlarm(a) => {
                    let (def, detail) = alarm_of(&a);
                    self.alarms.raise(def, &self.node, detail);
                }
                Action::ClearAlarm(a) => {
                    let (def, _) = alarm_of(&a);
                    self.alarms.clear(def, &self.node);
                }
                Action::CommandRefused { command, reason } => {
                    let msg = format!("{command:?} refused: {reason}");
                    for r in self.pending_switchover.drain(..) {
                        let _ = r.send(Err(msg.clone()));
                    }
                }
                Action::SwitchoverValidated(result) => {
                    for r in self.pending_validation.drain(..) {
                        let _ = r.send(match result {
                            Ok(()) => Ok(reply("switchover validated: the standby is ready", json!({"valid": true}))),
                            Err(refusal) => Err(tollgate_srp::status::refusal_message(refusal)),
                        });
                    }
                }
                Action::SplitBrainResolved { kept_active } => {
                    tracing::warn!(node = %self.node, kept_active, "SRP split brain resolved");
                }
                Action::StartTimer { .. } | Action::CancelTimer(_) => {}
            }
        }
        // A switchover request that led to this chassis leaving Active is done.
        if !self.pending_switchover.is_empty() && !self.machine.holds_service_address() {
            for r in self.pending_switchover.drain(..) {
                let _ = r.send(Ok(reply("switchover done: this chassis is Standby", json!({"state": "Standby"}))));
            }
        }
    }

    /// When the next scheduled audit is due (`[srp.audit]` daily start time and periodicity,
    /// UTC).
    fn next_audit(&self) -> tokio::time::Instant {
        let now = Utc::now();
        let minute = (now.timestamp().rem_euclid(86_400) / 60) as u32;
        let minutes = self.config.audit.minutes_until_next(minute).unwrap_or(60).max(1);
        let secs_into_minute = now.timestamp().rem_euclid(60) as u64;
        tokio::time::Instant::now() + Duration::from_secs(u64::from(minutes) * 60 - secs_into_minute.min(59))
    }

    /// An audit: the Active sends its digest; the Standby answers with its own; the Active
    /// compares (`show srp audit-statistics`).
    async fn start_audit(&mut self) {
        self.store_from_table();
        let mine = StoreDigest::of(&self.store, Instant::now());
        let _ = self.link.send(Message::AuditDigest(mine)).await;
    }

    /// Sends checkpoints to the mate, corrupting every Nth micro-checkpoint when the fault
    /// injection `TOLLGATE_SRP_FAULT_CORRUPT_EVERY=N` is set (tests of the NACK path).
    async fn send_checkpoints(&mut self, batch: Vec<tollgate_srp::Checkpoint>) {
        for mut c in batch {
            if let (Some(every), tollgate_srp::checkpoint::CheckpointKind::Micro { .. }) = (self.corrupt_every, c.kind)
            {
                self.micro_sent += 1;
                if self.micro_sent.is_multiple_of(every) {
                    tracing::warn!(seq = c.seq, "fault injection: corrupting a micro-checkpoint");
                    c.checksum ^= 0x5a5a_5a5a;
                }
            }
            let _ = self.link.send(Message::Checkpoint(c)).await;
        }
    }

    /// Moves changed velocity counters and calls in progress into the session store (Active
    /// only).
    fn move_velocity_changes(&mut self) {
        let now = Instant::now();
        for (source, n) in self.velocity.drain_concurrent_changes() {
            let key = format!("concurrent/{source}");
            if n == 0 {
                self.store.remove(&key);
            } else if let Err(err) = self.store.upsert_json(CMD_CONCURRENT, &key, &n, now) {
                tracing::error!(error = %err, "cannot checkpoint calls in progress");
            }
        }
        for e in self.velocity.drain_changes() {
            let key = session_key(&e);
            if e.times.is_empty() {
                self.store.remove(&key);
            } else if let Err(err) = self.store.upsert_json(CMD_VELOCITY, &key, &e, now) {
                tracing::error!(error = %err, "cannot checkpoint a velocity counter");
            }
        }
    }

    /// Makes the session store hold exactly the velocity table (Active, before a full
    /// checkpoint: the table is the truth, whatever the store was left with).
    fn store_from_table(&mut self) {
        let now = Instant::now();
        self.velocity.drain_changes();
        self.velocity.drain_concurrent_changes();
        let snapshot = self.velocity.snapshot();
        let concurrent = self.velocity.concurrent_snapshot();
        let mut keep: std::collections::HashSet<String> = snapshot.iter().map(session_key).collect();
        keep.extend(concurrent.iter().map(|(s, _)| format!("concurrent/{s}")));
        let stale: Vec<String> = self
            .store
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| (k.starts_with("velocity/") || k.starts_with("concurrent/")) && !keep.contains(k))
            .collect();
        for k in stale {
            self.store.remove(&k);
        }
        for e in &snapshot {
            let key = session_key(e);
            let same = self
                .store
                .get(&key)
                .and_then(|s| serde_json::from_slice::<VelocityEntry>(&s.value).ok())
                .is_some_and(|old| old == *e);
            if !same && let Err(err) = self.store.upsert_json(CMD_VELOCITY, &key, e, now) {
                tracing::error!(error = %err, "cannot checkpoint a velocity counter");
            }
        }
        for (source, n) in concurrent {
            let key = format!("concurrent/{source}");
            if self.store.get_json::<u32>(&key).ok().flatten() != Some(n)
                && let Err(err) = self.store.upsert_json(CMD_CONCURRENT, &key, &n, now)
            {
                tracing::error!(error = %err, "cannot checkpoint calls in progress");
            }
        }
    }

    /// Calls in progress per caller held in the session store.
    fn concurrent_from_store(&self) -> Vec<(tollgate_number::E164, u32)> {
        self.store
            .iter()
            .filter_map(|(k, e)| {
                let source = k.strip_prefix("concurrent/")?.parse().ok()?;
                Some((source, serde_json::from_slice::<u32>(&e.value).ok()?))
            })
            .collect()
    }

    /// A full checkpoint of the velocity table to the mate.
    async fn send_full_checkpoint(&mut self, now: Instant) {
        self.store_from_table();
        let batch = self.checkpointer.full_checkpoint(&mut self.store, now);
        self.send_checkpoints(batch).await;
    }

    /// The velocity counters held in the session store (the mate's copy on a Standby).
    fn velocity_from_store(&self) -> Vec<VelocityEntry> {
        self.store
            .iter()
            .filter(|(k, _)| k.starts_with("velocity/"))
            .filter_map(|(_, e)| serde_json::from_slice::<VelocityEntry>(&e.value).ok())
            .collect()
    }

    async fn take_service(&mut self) {
        let recovered = self.velocity_from_store();
        let lost = self.peer_sessions.map_or(0, |p| p.saturating_sub(recovered.len()));
        self.velocity.replace_all(&recovered);
        self.velocity.apply_concurrent(&self.concurrent_from_store(), true);
        let record = CallLossRecord {
            at: Utc::now(),
            reason: std::mem::replace(&mut self.took_over_reason, "initial election".into()),
            sessions_recovered: recovered.len(),
            sessions_lost: lost,
            synchronised: self.checkpointer.is_synchronised(),
        };
        tracing::warn!(node = %self.node, recovered = record.sessions_recovered, lost, "serving the ENUM service address");
        let _ = self.serving.send(true);
        self.view.lock().unwrap_or_else(|e| e.into_inner()).call_loss.push(record);
        if let Err(e) = self.service.address.claim().await {
            tracing::error!(error = %e, "cannot claim the service address");
        }
        // The mate may still hold the sockets for a moment (a switchover on one host): retry.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = &self.service;
            match EnumServer::start(
                s.responder.clone(),
                RecordSink::Spool(s.spool.clone()),
                s.metrics.clone(),
                &s.udp,
                &s.tcp,
            )
            .await
            {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "service address busy; retrying");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot serve the ENUM service address");
                    self.alarms.raise(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node, e.to_string());
                    return;
                }
            }
        }
    }

    async fn release_service(&mut self) {
        let _ = self.serving.send(false);
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Err(e) = self.service.address.release().await {
            tracing::error!(error = %e, "cannot release the service address");
        }
        self.alarms.clear(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node);
        self.monitors.reset_all();
    }

    async fn on_link(&mut self, event: LinkEvent) {
        let now = Instant::now();
        match event {
            LinkEvent::Connected(_) => {
                self.checkpointer.on_connected(now);
                self.feed(Event::LinkUp).await;
                if self.machine.holds_service_address() {
                    self.send_full_checkpoint(now).await;
                }
            }
            LinkEvent::Disconnected { reason } => {
                tracing::warn!(node = %self.node, %reason, "SRP link down");
                self.feed(Event::LinkDown).await;
            }
            LinkEvent::Hello(status) => self.feed(Event::PeerHello(status)).await,
            LinkEvent::Checkpoint(_) if self.machine.holds_service_address() => {
                // Both sides were Active (a partition just healed): only a Standby applies
                // checkpoints; the election decides who that is and it asks for a full one.
                tracing::info!(node = %self.node, "checkpoint from the mate ignored while Active");
            }
            LinkEvent::Checkpoint(c) => {
                let receipt = self.checkpointer.receive(&mut self.store, c, now);
                if let ReceiveOutcome::Failed(why) = &receipt.outcome {
                    tracing::warn!(node = %self.node, %why, "checkpoint failed");
                }
                if let Some(nack) = receipt.nack {
                    let _ = self.link.send(Message::Nack(nack)).await;
                }
                self.peer_sessions = Some(self.store.len());
            }
            LinkEvent::Nack(nack) => {
                if self.machine.holds_service_address() {
                    self.store_from_table();
                    let batch = self.checkpointer.handle_nack(&nack, &mut self.store, now);
                    self.send_checkpoints(batch).await;
                }
            }
            LinkEvent::FullCheckpointRequest => {
                if self.machine.holds_service_address() {
                    self.send_full_checkpoint(now).await;
                }
            }
            LinkEvent::SwitchoverRequest { force, reason } => {
                self.took_over_reason = match &reason {
                    tollgate_srp::election::SwitchoverReason::Manual => "switchover requested by the mate".into(),
                    tollgate_srp::election::SwitchoverReason::Monitor { group } => {
                        format!("the mate's monitor {group} is down")
                    }
                };
                self.feed(Event::PeerSwitchoverRequest { force, reason }).await;
            }
            LinkEvent::SwitchoverResponse { accepted, refusal } => {
                if let Some(r) = refusal {
                    for p in self.pending_switchover.drain(..) {
                        let _ = p.send(Err(tollgate_srp::status::refusal_message(r)));
                    }
                }
                self.feed(Event::PeerSwitchoverResponse { accepted }).await;
            }
            LinkEvent::AuditDigest(peer) => {
                if self.machine.holds_service_address() {
                    // The Standby's copy against ours.
                    let mine = StoreDigest::of(&self.store, now);
                    let report = audit::compare(&mine, &peer, self.config.checkpoint_delay());
                    self.audit_stats.record(&report);
                } else {
                    let mine = StoreDigest::of(&self.store, now);
                    let _ = self.link.send(Message::AuditDigest(mine)).await;
                }
            }
        }
        self.sync_status().await;
    }

    /// Tells the machine when this chassis' copy became (un)synchronised.
    async fn sync_status(&mut self) {
        let ready = self.checkpointer.is_synchronised();
        if ready != self.last_sync {
            self.last_sync = ready;
            self.feed(Event::SyncStatus { ready }).await;
        }
        // Only a Standby with a connected Active mate owes a synchronised copy.
        let owed = !self.machine.holds_service_address() && self.link.is_connected();
        self.alarms.set(alarms::DB_REPLICATION_TO_SLAVE_FAILURE, &self.node, owed && !ready, || {
            "the copy of the mate's sessions is not synchronised".into()
        });
    }

    async fn on_tick(&mut self) {
        if let Some(on) = self.forced_file.changed() {
            tracing::info!(node = %self.node, on, "forced standby set by the manager");
            self.feed(Event::ForcedStandby(on)).await;
        }
        let now = Instant::now();
        if self.machine.holds_service_address() {
            self.move_velocity_changes();
            if self.link.is_connected() {
                let batch = self.checkpointer.poll_active(&mut self.store, now);
                self.send_checkpoints(batch).await;
            }
        } else if let Some(nack) = self.checkpointer.poll_standby(now) {
            let _ = self.link.send(Message::Nack(nack)).await;
        }
        self.sync_status().await;
    }

    async fn on_request(&mut self, req: SrpRequest, reply_tx: oneshot::Sender<Result<SrpReply, String>>) {
        let answer = match req {
            SrpRequest::Show(what) => self.show(&what),
            SrpRequest::ValidateSwitchover => {
                self.pending_validation.push(reply_tx);
                self.feed(Event::ValidateSwitchover).await;
                // Unanswered means the machine had nothing to say: treat as refused.
                for r in self.pending_validation.drain(..) {
                    let _ = r.send(Err("switchover not validated".into()));
                }
                return;
            }
            SrpRequest::InitiateSwitchover { force } => {
                self.pending_switchover.push(reply_tx);
                self.feed(Event::ManualSwitchover { force }).await;
                return;
            }
            SrpRequest::InitiateAudit => {
                if self.machine.holds_service_address() && self.link.is_connected() {
                    self.start_audit().await;
                    Ok(reply("audit started: the standby compares its copy and reports", json!({"started": true})))
                } else {
                    Err("an audit starts on the Active chassis with the mate connected".into())
                }
            }
            SrpRequest::Nack { cmd, enable } => {
                let r = if enable { self.checkpointer.enable_nack(cmd) } else { self.checkpointer.disable_nack(cmd) };
                r.map(|_| {
                    reply(
                        &format!("NACK {} for micro-chkpt-cmd {cmd}", if enable { "enabled" } else { "disabled" }),
                        json!({"cmd": cmd, "nack_enabled": enable}),
                    )
                })
                .map_err(|e| e.to_string())
            }
            SrpRequest::ForcedStandby { on } => {
                tracing::info!(node = %self.node, on, "srp forced-standby");
                self.feed(Event::ForcedStandby(on)).await;
                let text = match (on, self.machine.holds_service_address()) {
                    (true, true) => "forced standby on: this chassis serves until it hands over, then takes no service",
                    (true, false) => "forced standby on: this chassis takes no service",
                    (false, _) => "forced standby off",
                };
                Ok(reply(text, json!({"forced_standby": on, "state": self.machine.state()})))
            }
            SrpRequest::ValidateConfiguration => match self.config.validate() {
                Ok(()) => {
                    let matches = self.link.connection().map(|c| c.config_matches);
                    match matches {
                        Some(false) => Err("the mate's SRP configuration differs from this chassis'".into()),
                        _ => {
                            Ok(reply("configuration is valid", json!({"valid": true, "peer_config_matches": matches})))
                        }
                    }
                }
                Err(e) => Err(e.to_string()),
            },
        };
        let _ = reply_tx.send(answer);
    }

    fn show(&self, what: &str) -> Result<SrpReply, String> {
        match what {
            "info" => {
                let info = SrpInfo::new(&self.machine, self.link.connection());
                Ok(SrpReply { text: info.to_string(), data: serde_json::to_value(&info).unwrap_or_default() })
            }
            "statistics" => {
                let s = SrpStatistics { link: self.link.statistics(), switchovers: self.switchovers.clone() };
                Ok(SrpReply { text: s.to_string(), data: serde_json::to_value(&s).unwrap_or_default() })
            }
            "checkpoint-statistics" => {
                let s = self.checkpointer.statistics();
                let mut text = s.to_string();
                text.push_str(&format!("{:<32}{}\n", "Current sessions", self.store.len()));
                text.push_str(&format!("{:<32}{}\n", "Velocity counters", self.velocity.len()));
                text.push_str(&format!(
                    "{:<32}{}\n",
                    "Peer conn",
                    if self.checkpointer.is_synchronised() || self.machine.holds_service_address() {
                        "Ready"
                    } else {
                        "Not ready"
                    }
                ));
                Ok(SrpReply { text, data: serde_json::to_value(s).unwrap_or_default() })
            }
            "checkpoint-info" => {
                let info = self.checkpointer.info();
                let text = info
                    .iter()
                    .map(|c| {
                        format!(
                            "{:>4} {:<16} nack {:<8} sent {:<8} applied {:<8} failed {}\n",
                            c.cmd_id,
                            c.name,
                            if c.nack_enabled { "enabled" } else { "disabled" },
                            c.sent,
                            c.applied,
                            c.failed
                        )
                    })
                    .collect();
                Ok(SrpReply { text, data: serde_json::to_value(&info).unwrap_or_default() })
            }
            "monitor" => {
                let targets = self.monitors.targets();
                let text = if targets.is_empty() {
                    "no monitors configured\n".to_string()
                } else {
                    targets.iter().map(|t| format!("{t:?}\n")).collect()
                };
                Ok(SrpReply { text, data: serde_json::to_value(&targets).unwrap_or_default() })
            }
            "call-loss-statistics" => {
                let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                let mut text = format!(
                    "{:<27} {:<36} {:>10} {:>6} {}\n",
                    "Switchover (UTC)", "Reason", "Recovered", "Lost", "Synchronised"
                );
                for r in &view.call_loss {
                    text.push_str(&format!(
                        "{:<27} {:<36} {:>10} {:>6} {}\n",
                        r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        r.reason,
                        r.sessions_recovered,
                        r.sessions_lost,
                        if r.synchronised { "yes" } else { "no" }
                    ));
                }
                Ok(SrpReply { text, data: serde_json::to_value(&view.call_loss).unwrap_or_default() })
            }
            "audit-statistics" => Ok(SrpReply {
                text: format!("{:?}\n", self.audit_stats),
                data: serde_json::to_value(&self.audit_stats).unwrap_or_default(),
            }),
            "velocity" => {
                // Not a seed command: the counters themselves (on a Standby, its copy of the
                // Active's), for operators and tests.
                let mut snapshot = if self.machine.holds_service_address() {
                    self.velocity.snapshot()
                } else {
                    self.velocity_from_store()
                };
                snapshot.sort_by(|a, b| (&a.rule, a.source).cmp(&(&b.rule, b.source)));
                let text =
                    snapshot.iter().map(|e| format!("{} {} {} calls\n", e.rule, e.source, e.times.len())).collect();
                Ok(SrpReply { text, data: serde_json::to_value(&snapshot).unwrap_or_default() })
            }
            "concurrent" => {
                // Not a seed command: calls in progress per caller (on a Standby, its copy).
                let mut list = if self.machine.holds_service_address() {
                    self.velocity.concurrent_snapshot()
                } else {
                    self.concurrent_from_store()
                };
                list.sort();
                let text = list.iter().map(|(s, n)| format!("{s} {n} calls in progress\n")).collect();
                let data = list.iter().map(|(s, n)| json!({"source": s, "calls": n})).collect::<Vec<_>>();
                Ok(SrpReply { text, data: serde_json::Value::Array(data) })
            }
            other => Err(format!(
                "unknown: show srp {other} (info, statistics, checkpoint-statistics, checkpoint-info, monitor, call-loss-statistics, audit-statistics, velocity, concurrent)"
            )),
        }
    }
}

fn reply(text: &str, data: serde_json::Value) -> SrpReply {
    SrpReply { text: format!("{text}\n"), data }
}

fn alarm_of(a: &election::Alarm) -> (alarms::AlarmDef, String) {
    match a {
        election::Alarm::PeerUnreachable => (alarms::HA_PATH_DOWN, "no Hello from the mate".into()),
        election::Alarm::MonitorFailure(g) => (alarms::SRP_MONITOR_FAILURE, format!("{g:?}")),
        election::Alarm::SwitchoverFailed => (alarms::HA_MANAGEMENT_FAULT, "the mate did not answer".into()),
        election::Alarm::DuplicateNodeId => (alarms::SRP_DUPLICATE_NODE_ID, "the mate uses this node id".into()),
    }
}
