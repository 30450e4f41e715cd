//! The SRP chassis runtime: one task owns every SRP part (election machine, link, timers,
//! checkpointer, session store, monitors) and decides, in the order events arrive, whether this
//! chassis serves the service address. While Active the replicated state is checkpointed to
//! the mate; while Standby the mate's copy is kept, ready to take over.
//!
//! What it needs from its owner, injected so it runs in-process in tests:
//! * [`ReplicatedState`]: the state checkpointed to the mate (the engine's velocity table);
//! * [`ServiceAddress`]: claiming and releasing the service (the ENUM listener and its IP);
//! * [`ForcedStandbySource`]: the agent's forced-standby flag (a file in production, a
//!   channel in tests).
//!
//! Operators reach it through [`SrpHandle`] with typed requests ([`SrpRequest`]); answers are
//! [`SrpReply<SrpData>`], refusals [`SrpError`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tollgate_alarms::{self as alarms, Alarms};
use tollgate_api::srp::{
    AuditStarted, ConcurrentCalls, ConfigurationValid, NackSet, SrpReply, SrpRequest, SrpView, SwitchoverValidated,
    VelocityCounter,
};

use crate::audit::{self, AuditStatistics, StoreDigest};
use crate::checkpoint::{CheckpointCmdInfo, CheckpointStatistics, Checkpointer, ReceiveOutcome};
use crate::election::{self, Action, Event, Machine, Params, State};
use crate::link::{Link, LinkConfig, LinkEvent};
pub use crate::link_tls::LinkSecurity;
use crate::message::Message;
use crate::monitor::{MonitorSet, TargetStatus};
use crate::probe::{self, TargetChange};
use crate::session::{CmdId, SessionStore};
use crate::status::{SrpInfo, SrpStatistics, SwitchoverStatistics};
use crate::timer::Timers;
use crate::{SrpConfig, step};

#[cfg(test)]
mod tests;

/// How often checkpoints are polled and state changes moved into the session store.
const TICK: Duration = Duration::from_millis(10);
/// How long the Active waits between tries to serve its service address after a claim failed.
pub const CLAIM_RETRY: Duration = Duration::from_secs(10);

/// The state an SRP pair replicates: the Active snapshots it into the session store (whose
/// changes the checkpointer sends), the Standby's store holds the copy it applies when it takes
/// over.
pub trait ReplicatedState: Send + Sync + 'static {
    /// The micro-checkpoint commands (id, name) the state's entries use.
    fn commands(&self) -> Vec<(CmdId, &'static str)>;
    /// Active: moves what changed since the last call into the store (micro-checkpoints).
    fn snapshot_micro(&mut self, store: &mut SessionStore, now: Instant);
    /// Active, before a full checkpoint or an audit: makes the store hold exactly the state.
    fn snapshot_full(&mut self, store: &mut SessionStore, now: Instant);
    /// Taking over: replaces the state with the copy held in the store; returns the sessions
    /// recovered.
    fn apply_full(&mut self, store: &SessionStore) -> usize;
    /// Housekeeping while Active (every 30 s): drops what expired.
    fn purge(&mut self);
    /// Entries held now (`show srp checkpoint statistics`).
    fn len(&self) -> usize;
    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A view of the state itself (`velocity`, `concurrent`): from the live state when `copy`
    /// is none (Active), else from the copy in the store (Standby). None: not a view of this
    /// state.
    fn view(&self, view: SrpView, copy: Option<&SessionStore>) -> Option<(String, SrpData)>;
}

/// Claiming and releasing the service this pair provides (the ENUM listener on the service
/// address).
pub trait ServiceAddress: Send + Sync + 'static {
    /// Takes the service: claims the address and starts serving. An error raises the
    /// service-address alarm, and the runtime calls [`ServiceAddress::retry_claim`] every
    /// [`CLAIM_RETRY`] while it holds the service. A service of several parts should serve
    /// the parts it could start, and say in the error which part it could not.
    fn claim(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Tries again, after a failed claim, to start what is not serving yet (the parts that
    /// already serve stay as they are). It must not wait long: the runtime's loop waits for it.
    /// By default, [`ServiceAddress::claim`] again.
    fn retry_claim(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        self.claim()
    }
    /// Gives the service up (also at start: a restart after a crash may find the address still
    /// held). Errors are the implementation's to log.
    fn release(&mut self) -> impl Future<Output = ()> + Send;
}

/// The agent's forced-standby flag, polled every tick.
pub trait ForcedStandbySource: Send + Sync + 'static {
    /// The flag, when it changed since the last call.
    fn changed(&mut self) -> Option<bool>;
}

/// No agent: never held.
impl ForcedStandbySource for () {
    fn changed(&mut self) -> Option<bool> {
        None
    }
}

/// A flag set through a channel (tests, or an owner that watches the flag itself).
impl ForcedStandbySource for watch::Receiver<bool> {
    fn changed(&mut self) -> Option<bool> {
        self.has_changed().unwrap_or(false).then(|| *self.borrow_and_update())
    }
}

/// One switchover this chassis took part in (`show srp call-loss statistics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLossRecord {
    /// When this chassis started serving.
    pub at: DateTime<Utc>,
    /// Why: the mate's dead interval expired, a switchover request, the initial election...
    pub reason: String,
    /// Sessions taken over from the checkpointed copy.
    pub sessions_recovered: usize,
    /// Sessions the mate last reported holding, minus those recovered (never negative); 0 when
    /// the mate's count was never heard.
    pub sessions_lost: usize,
    /// Whether the copy was synchronised (a full checkpoint applied and nothing missing since).
    pub synchronised: bool,
}

/// Data of `initiate-switchover`: done, this chassis left service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverDone {
    /// This chassis' state now (Standby).
    pub state: State,
}

/// Data of `forced-standby`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedStandbySet {
    /// Held now.
    pub forced_standby: bool,
    /// This chassis' state now.
    pub state: State,
}

/// The data of an SRP answer, by view or command. Serialised without a tag (the wire carries
/// the data as it always did); a reader knows which view or command it asked for and decodes
/// with [`SrpData::decode`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SrpData {
    /// `show srp info`.
    Info(SrpInfo),
    /// `show srp statistics`.
    Statistics(SrpStatistics),
    /// `show srp checkpoint statistics`.
    CheckpointStatistics(CheckpointStatistics),
    /// `show srp checkpoint info`.
    CheckpointInfo(Vec<CheckpointCmdInfo>),
    /// `show srp monitor`.
    Monitor(Vec<TargetStatus>),
    /// `show srp call-loss statistics`.
    CallLoss(Vec<CallLossRecord>),
    /// `show srp audit-statistics`.
    Audit(AuditStatistics),
    /// `show srp velocity`.
    Velocity(Vec<VelocityCounter>),
    /// `show srp concurrent`.
    Concurrent(Vec<ConcurrentCalls>),
    /// `srp validate-switchover`.
    SwitchoverValidated(SwitchoverValidated),
    /// `srp initiate-switchover`.
    SwitchoverDone(SwitchoverDone),
    /// `srp initiate-audit`.
    AuditStarted(AuditStarted),
    /// `srp enable|disable nack`.
    Nack(NackSet),
    /// `srp forced-standby`.
    ForcedStandby(ForcedStandbySet),
    /// `srp validate-configuration`.
    Configuration(ConfigurationValid),
}

impl SrpData {
    /// Decodes a whole answer to `show srp <view>` (`{"text", "data"}`).
    pub fn decode_reply(view: SrpView, json: &str) -> Result<SrpReply<SrpData>, serde_json::Error> {
        fn typed<T: serde::de::DeserializeOwned>(
            json: &str,
            wrap: fn(T) -> SrpData,
        ) -> Result<SrpReply<SrpData>, serde_json::Error> {
            let r: SrpReply<T> = serde_json::from_str(json)?;
            Ok(SrpReply { text: r.text, data: wrap(r.data) })
        }
        match view {
            SrpView::Info => typed(json, SrpData::Info),
            SrpView::Statistics => typed(json, SrpData::Statistics),
            SrpView::CheckpointStatistics => typed(json, SrpData::CheckpointStatistics),
            SrpView::CheckpointInfo => typed(json, SrpData::CheckpointInfo),
            SrpView::Monitor => typed(json, SrpData::Monitor),
            SrpView::CallLossStatistics => typed(json, SrpData::CallLoss),
            SrpView::AuditStatistics => typed(json, SrpData::Audit),
            SrpView::Velocity => typed(json, SrpData::Velocity),
            SrpView::Concurrent => typed(json, SrpData::Concurrent),
        }
    }

    /// Decodes the JSON data of an answer to `show srp <view>`.
    pub fn decode(view: SrpView, json: &str) -> Result<SrpData, serde_json::Error> {
        Ok(match view {
            SrpView::Info => SrpData::Info(serde_json::from_str(json)?),
            SrpView::Statistics => SrpData::Statistics(serde_json::from_str(json)?),
            SrpView::CheckpointStatistics => SrpData::CheckpointStatistics(serde_json::from_str(json)?),
            SrpView::CheckpointInfo => SrpData::CheckpointInfo(serde_json::from_str(json)?),
            SrpView::Monitor => SrpData::Monitor(serde_json::from_str(json)?),
            SrpView::CallLossStatistics => SrpData::CallLoss(serde_json::from_str(json)?),
            SrpView::AuditStatistics => SrpData::Audit(serde_json::from_str(json)?),
            SrpView::Velocity => SrpData::Velocity(serde_json::from_str(json)?),
            SrpView::Concurrent => SrpData::Concurrent(serde_json::from_str(json)?),
        })
    }
}

/// Why a request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrpError {
    /// Refused (a switchover towards an unready standby, an audit on the Standby...), in words.
    #[error("{0}")]
    Refused(String),
    /// The runtime has stopped.
    #[error("the SRP task has stopped")]
    Stopped,
}

/// An answer of the runtime.
pub type SrpAnswer = Result<SrpReply<SrpData>, SrpError>;

/// Requests to the task.
enum Request {
    Operator(SrpRequest, oneshot::Sender<SrpAnswer>),
    Stop(oneshot::Sender<()>),
}

/// The handle operators' requests go through (the HTTP API).
#[derive(Clone)]
pub struct SrpHandle {
    tx: mpsc::Sender<Request>,
}

impl SrpHandle {
    /// Carries out a request.
    pub async fn request(&self, req: SrpRequest) -> SrpAnswer {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.tx.send(Request::Operator(req, reply_tx)).await.map_err(|_| SrpError::Stopped)?;
        reply_rx.await.map_err(|_| SrpError::Stopped)?
    }

    /// Stops the runtime: the service is released and the link closed (the mate sees this
    /// chassis gone).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Request::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl std::fmt::Debug for SrpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrpHandle")
    }
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `[srp]` section is not valid.
    #[error("[srp]: {0}")]
    Config(String),
    /// The link's security: plain text between non-loopback addresses not allowed, or TLS
    /// material rustls refuses.
    #[error("[srp]: {0}")]
    Security(#[from] crate::link_tls::LinkSecurityError),
    /// The link could not bind.
    #[error("SRP link on {address}: {reason}")]
    Link {
        /// The bind address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// What the runtime is made of.
pub struct Chassis<S, A, F> {
    /// `[srp]`.
    pub config: SrpConfig,
    /// The replicated state.
    pub state: S,
    /// The service this chassis provides while it holds the service address.
    pub service: A,
    /// The forced-standby flag (read before the first election, then watched).
    pub forced_standby: F,
    /// Where alarms go.
    pub alarms: Arc<Alarms>,
    /// This server's node name (alarms, logs).
    pub node: String,
    /// Fault injection (tests of the NACK path): corrupt every Nth micro-checkpoint sent.
    pub corrupt_every: Option<u64>,
    /// TLS of the link (`[tls]`), or plain text where allowed ([`LinkSecurity::check`]).
    pub link_security: LinkSecurity,
}

/// Starts the runtime; returns its handle and a receiver of state changes (for the ready line
/// and logs).
pub async fn start<S, A, F>(chassis: Chassis<S, A, F>) -> Result<(SrpHandle, watch::Receiver<State>), StartError>
where
    S: ReplicatedState,
    A: ServiceAddress,
    F: ForcedStandbySource,
{
    let Chassis { config, state, mut service, mut forced_standby, alarms, node, corrupt_every, link_security } =
        chassis;
    config.validate().map_err(|e| StartError::Config(e.to_string()))?;
    let mut link_config = LinkConfig::from_config(&config);
    link_config.tls = link_security.check(config.bind_address, config.peer_address)?;
    // A restart after a crash may find the service address still held: this chassis is not
    // serving until the election says so.
    service.release().await;
    let (link, link_events) = Link::start(link_config)
        .await
        .map_err(|e| StartError::Link { address: config.bind_address.to_string(), reason: e.to_string() })?;
    let (machine, mut actions) = Machine::new(Params::from_config(&config));
    // Held in forced standby before this start (an upgraded standby restarting): in force
    // before the first election.
    let (machine, more) = match forced_standby.changed() {
        Some(on) => step(&machine, Event::ForcedStandby(on)),
        None => (machine, Vec::new()),
    };
    actions.extend(more);
    let (timers, fired) = Timers::new();
    let mut checkpointer = Checkpointer::new(&config);
    for (cmd, name) in state.commands() {
        checkpointer.register_cmd(cmd, name);
    }
    let (tx, rx) = mpsc::channel(16);
    let (state_tx, state_rx) = watch::channel(machine.state());
    let (serving_tx, serving_rx) = watch::channel(false);
    let (monitor_tx, monitor_rx) = mpsc::channel(64);
    probe::spawn(&config.monitors, serving_rx, monitor_tx);
    let mut task = Task {
        monitors: MonitorSet::new(&config.monitors),
        config,
        machine,
        link: Some(link),
        timers,
        checkpointer,
        store: SessionStore::new(),
        state,
        service,
        alarms,
        node,
        call_loss: Vec::new(),
        switchovers: SwitchoverStatistics::default(),
        audit_stats: AuditStatistics::default(),
        peer_sessions: None,
        state_tx,
        pending_validation: Vec::new(),
        pending_switchover: Vec::new(),
        last_sync: false,
        took_over_reason: "initial election".into(),
        failed_claim: None,
        serving: serving_tx,
        corrupt_every: corrupt_every.filter(|n| *n > 0),
        micro_sent: 0,
        forced_standby,
    };
    task.carry_out(actions).await;
    tokio::spawn(task.run(link_events, fired, rx, monitor_rx));
    Ok((SrpHandle { tx }, state_rx))
}

struct Task<S, A, F> {
    config: SrpConfig,
    machine: Machine,
    /// None once stopped.
    link: Option<Link>,
    timers: Timers,
    checkpointer: Checkpointer,
    store: SessionStore,
    state: S,
    monitors: MonitorSet,
    service: A,
    alarms: Arc<Alarms>,
    node: String,
    call_loss: Vec<CallLossRecord>,
    switchovers: SwitchoverStatistics,
    audit_stats: AuditStatistics,
    /// Sessions the mate reported in its last audit digest or checkpoint statistics.
    peer_sessions: Option<usize>,
    state_tx: watch::Sender<State>,
    pending_validation: Vec<oneshot::Sender<SrpAnswer>>,
    pending_switchover: Vec<oneshot::Sender<SrpAnswer>>,
    last_sync: bool,
    took_over_reason: String,
    /// While the last try to serve the service address failed (Active only): what it said
    /// (the alarm's detail), and when to try again.
    failed_claim: Option<(String, tokio::time::Instant)>,
    /// True while serving: monitors probe only then.
    serving: watch::Sender<bool>,
    /// Fault injection: corrupt every Nth micro-checkpoint sent.
    corrupt_every: Option<u64>,
    micro_sent: u64,
    /// The agent's forced-standby flag.
    forced_standby: F,
}

fn reply(text: &str, data: SrpData) -> SrpReply<SrpData> {
    SrpReply { text: format!("{text}\n"), data }
}

impl<S: ReplicatedState, A: ServiceAddress, F: ForcedStandbySource> Task<S, A, F> {
    fn link(&self) -> &Link {
        self.link.as_ref().expect("the link lives until the task stops")
    }

    async fn send(&self, message: Message) {
        let _ = self.link().send(message).await;
    }

    async fn run(
        mut self,
        mut link_events: mpsc::Receiver<LinkEvent>,
        mut fired: mpsc::UnboundedReceiver<crate::timer::Fired>,
        mut requests: mpsc::Receiver<Request>,
        mut monitor_changes: mpsc::Receiver<TargetChange>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge = tokio::time::interval(Duration::from_secs(30));
        let mut next_audit = self.next_audit();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_audit) => {
                    next_audit = self.next_audit();
                    if self.machine.holds_service_address() && self.link().is_connected() {
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
                Some(request) = requests.recv() => match request {
                    Request::Operator(req, reply) => self.on_request(req, reply).await,
                    Request::Stop(done) => {
                        self.stop().await;
                        let _ = done.send(());
                        return;
                    }
                },
                Some(change) = monitor_changes.recv() => {
                    for event in self.monitors.report(change.kind, &change.target, change.up) {
                        self.feed(event).await;
                    }
                }
                _ = tick.tick() => self.on_tick().await,
                _ = purge.tick() => {
                    if self.machine.holds_service_address() {
                        self.state.purge();
                    }
                }
                else => break,
            }
        }
    }

    async fn stop(&mut self) {
        tracing::warn!(node = %self.node, "SRP chassis stopping");
        if self.machine.holds_service_address() {
            let _ = self.serving.send(false);
            self.service.release().await;
        }
        if let Some(link) = self.link.take() {
            link.shutdown().await;
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
                Action::SendHello => self.link().set_hello(self.machine.status()),
                Action::TakeServiceAddress => self.take_service().await,
                Action::ReleaseServiceAddress => self.release_service().await,
                Action::RequestFullCheckpoint => self.send(Message::FullCheckpointRequest).await,
                Action::FlushCheckpoints => {
                    self.state.snapshot_micro(&mut self.store, Instant::now());
                    let batch = self.checkpointer.micro_checkpoints(&mut self.store, Instant::now());
                    self.send_checkpoints(batch).await;
                }
                Action::SendSwitchoverRequest { force, reason } => {
                    self.send(Message::SwitchoverRequest { force, reason }).await
                }
                Action::SendSwitchoverResponse { accepted, refusal } => {
                    self.send(Message::SwitchoverResponse { accepted, refusal }).await
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
                        let _ = r.send(Err(SrpError::Refused(msg.clone())));
                    }
                }
                Action::SwitchoverValidated(result) => {
                    for r in self.pending_validation.drain(..) {
                        let _ = r.send(match result {
                            Ok(()) => Ok(reply(
                                "switchover validated: the standby is ready",
                                SrpData::SwitchoverValidated(SwitchoverValidated { valid: true }),
                            )),
                            Err(refusal) => Err(SrpError::Refused(crate::status::refusal_message(refusal))),
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
                let _ = r.send(Ok(reply(
                    "switchover done: this chassis is Standby",
                    SrpData::SwitchoverDone(SwitchoverDone { state: State::Standby }),
                )));
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
        self.state.snapshot_full(&mut self.store, Instant::now());
        let mine = StoreDigest::of(&self.store, Instant::now());
        self.send(Message::AuditDigest(mine)).await;
    }

    /// Sends checkpoints to the mate, corrupting every Nth micro-checkpoint when fault
    /// injection asks for it (tests of the NACK path).
    async fn send_checkpoints(&mut self, batch: Vec<crate::Checkpoint>) {
        for mut c in batch {
            if let (Some(every), crate::checkpoint::CheckpointKind::Micro { .. }) = (self.corrupt_every, c.kind) {
                self.micro_sent += 1;
                if self.micro_sent.is_multiple_of(every) {
                    tracing::warn!(seq = c.seq, "fault injection: corrupting a micro-checkpoint");
                    c.checksum ^= 0x5a5a_5a5a;
                }
            }
            self.send(Message::Checkpoint(c)).await;
        }
    }

    /// A full checkpoint of the state to the mate.
    async fn send_full_checkpoint(&mut self, now: Instant) {
        self.state.snapshot_full(&mut self.store, now);
        let batch = self.checkpointer.full_checkpoint(&mut self.store, now);
        self.send_checkpoints(batch).await;
    }

    async fn take_service(&mut self) {
        let recovered = self.state.apply_full(&self.store);
        let lost = self.peer_sessions.map_or(0, |p| p.saturating_sub(recovered));
        let record = CallLossRecord {
            at: Utc::now(),
            reason: std::mem::replace(&mut self.took_over_reason, "initial election".into()),
            sessions_recovered: recovered,
            sessions_lost: lost,
            synchronised: self.checkpointer.is_synchronised(),
        };
        tracing::warn!(node = %self.node, recovered, lost, "serving the service address");
        let _ = self.serving.send(true);
        self.call_loss.push(record);
        let claimed = self.service.claim().await;
        self.after_claim(claimed);
    }

    /// Raises or clears the service-address alarm after a try to serve, and schedules the next
    /// try while the service is not whole.
    fn after_claim(&mut self, claimed: Result<(), String>) {
        match claimed {
            Ok(()) => {
                if self.failed_claim.take().is_some() {
                    tracing::warn!(node = %self.node, "serving the whole service address after a retry");
                }
                self.alarms.clear(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node);
            }
            Err(e) => {
                // Logged when what fails changes; the same failure again only at debug (a port
                // held for a day would otherwise log 8,640 errors).
                if self.failed_claim.as_ref().is_some_and(|(last, _)| *last == e) {
                    tracing::debug!(node = %self.node, error = %e, "still cannot serve the service address");
                } else {
                    tracing::error!(node = %self.node, error = %e, retry_every_s = CLAIM_RETRY.as_secs(), "cannot serve the service address");
                }
                // The detail says what does not serve now (a part may have come back).
                if !self.alarms.update_detail(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node, e.clone()) {
                    self.alarms.raise(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node, e.clone());
                }
                self.failed_claim = Some((e, tokio::time::Instant::now() + CLAIM_RETRY));
            }
        }
    }

    async fn release_service(&mut self) {
        let _ = self.serving.send(false);
        self.failed_claim = None;
        self.service.release().await;
        self.alarms.clear(alarms::SRP_SERVICE_ADDRESS_FAILED, &self.node);
        self.monitors.reset_all();
    }

    async fn on_link(&mut self, event: LinkEvent) {
        if self.link.is_none() {
            return;
        }
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
                    self.send(Message::Nack(nack)).await;
                }
                self.peer_sessions = Some(self.store.len());
            }
            LinkEvent::Nack(nack) => {
                if self.machine.holds_service_address() {
                    self.state.snapshot_full(&mut self.store, now);
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
                    election::SwitchoverReason::Manual => "switchover requested by the mate".into(),
                    election::SwitchoverReason::Monitor { group } => format!("the mate's monitor {group} is down"),
                };
                self.feed(Event::PeerSwitchoverRequest { force, reason }).await;
            }
            LinkEvent::SwitchoverResponse { accepted, refusal } => {
                if let Some(r) = refusal {
                    for p in self.pending_switchover.drain(..) {
                        let _ = p.send(Err(SrpError::Refused(crate::status::refusal_message(r))));
                    }
                }
                self.feed(Event::PeerSwitchoverResponse { accepted }).await;
            }
            LinkEvent::AuditDigest(peer) => {
                let mine = StoreDigest::of(&self.store, now);
                if self.machine.holds_service_address() {
                    // The Standby's copy against ours.
                    let report = audit::compare(&mine, &peer, self.config.checkpoint_delay());
                    self.audit_stats.record(&report);
                } else {
                    self.send(Message::AuditDigest(mine)).await;
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
        let owed = !self.machine.holds_service_address() && self.link().is_connected();
        self.alarms.set(alarms::DB_REPLICATION_TO_SLAVE_FAILURE, &self.node, owed && !ready, || {
            "the copy of the mate's sessions is not synchronised".into()
        });
    }

    async fn on_tick(&mut self) {
        if self.link.is_none() {
            return;
        }
        if let Some(on) = self.forced_standby.changed() {
            tracing::info!(node = %self.node, on, "forced standby set by the manager");
            self.feed(Event::ForcedStandby(on)).await;
        }
        if self.machine.holds_service_address()
            && self.failed_claim.as_ref().is_some_and(|(_, at)| *at <= tokio::time::Instant::now())
        {
            let claimed = self.service.retry_claim().await;
            self.after_claim(claimed);
        }
        let now = Instant::now();
        if self.machine.holds_service_address() {
            self.state.snapshot_micro(&mut self.store, now);
            if self.link().is_connected() {
                let batch = self.checkpointer.poll_active(&mut self.store, now);
                self.send_checkpoints(batch).await;
            }
        } else if let Some(nack) = self.checkpointer.poll_standby(now) {
            self.send(Message::Nack(nack)).await;
        }
        self.sync_status().await;
    }

    async fn on_request(&mut self, req: SrpRequest, reply_tx: oneshot::Sender<SrpAnswer>) {
        let answer = match req {
            SrpRequest::Show(view) => Ok(self.show(view)),
            SrpRequest::ValidateSwitchover => {
                self.pending_validation.push(reply_tx);
                self.feed(Event::ValidateSwitchover).await;
                // Unanswered means the machine had nothing to say: treat as refused.
                for r in self.pending_validation.drain(..) {
                    let _ = r.send(Err(SrpError::Refused("switchover not validated".into())));
                }
                return;
            }
            SrpRequest::InitiateSwitchover { force } => {
                self.pending_switchover.push(reply_tx);
                self.feed(Event::ManualSwitchover { force }).await;
                return;
            }
            SrpRequest::InitiateAudit => {
                if self.machine.holds_service_address() && self.link().is_connected() {
                    self.start_audit().await;
                    Ok(reply(
                        "audit started: the standby compares its copy and reports",
                        SrpData::AuditStarted(AuditStarted { started: true }),
                    ))
                } else {
                    Err(SrpError::Refused("an audit starts on the Active chassis with the mate connected".into()))
                }
            }
            SrpRequest::Nack { cmd, enable } => {
                let r = if enable { self.checkpointer.enable_nack(cmd) } else { self.checkpointer.disable_nack(cmd) };
                r.map(|_| {
                    reply(
                        &format!("NACK {} for micro-chkpt-cmd {cmd}", if enable { "enabled" } else { "disabled" }),
                        SrpData::Nack(NackSet { cmd, nack_enabled: enable }),
                    )
                })
                .map_err(|e| SrpError::Refused(e.to_string()))
            }
            SrpRequest::ForcedStandby { on } => {
                tracing::info!(node = %self.node, on, "srp forced-standby");
                self.feed(Event::ForcedStandby(on)).await;
                let text = match (on, self.machine.holds_service_address()) {
                    (true, true) => "forced standby on: this chassis serves until it hands over, then takes no service",
                    (true, false) => "forced standby on: this chassis takes no service",
                    (false, _) => "forced standby off",
                };
                Ok(reply(
                    text,
                    SrpData::ForcedStandby(ForcedStandbySet { forced_standby: on, state: self.machine.state() }),
                ))
            }
            SrpRequest::ValidateConfiguration => match self.config.validate() {
                Ok(()) => match self.link().connection().map(|c| c.config_matches) {
                    Some(false) => {
                        Err(SrpError::Refused("the mate's SRP configuration differs from this chassis'".into()))
                    }
                    matches => Ok(reply(
                        "configuration is valid",
                        SrpData::Configuration(ConfigurationValid { valid: true, peer_config_matches: matches }),
                    )),
                },
                Err(e) => Err(SrpError::Refused(e.to_string())),
            },
        };
        let _ = reply_tx.send(answer);
    }

    fn show(&self, view: SrpView) -> SrpReply<SrpData> {
        let (text, data) = match view {
            SrpView::Info => {
                let info = SrpInfo::new(&self.machine, self.link().connection());
                (info.to_string(), SrpData::Info(info))
            }
            SrpView::Statistics => {
                let s = SrpStatistics { link: self.link().statistics(), switchovers: self.switchovers.clone() };
                (s.to_string(), SrpData::Statistics(s))
            }
            SrpView::CheckpointStatistics => {
                let s = self.checkpointer.statistics();
                let mut text = s.to_string();
                text.push_str(&format!("{:<32}{}\n", "Current sessions", self.store.len()));
                text.push_str(&format!("{:<32}{}\n", "Velocity counters", self.state.len()));
                text.push_str(&format!(
                    "{:<32}{}\n",
                    "Peer conn",
                    if self.checkpointer.is_synchronised() || self.machine.holds_service_address() {
                        "Ready"
                    } else {
                        "Not ready"
                    }
                ));
                (text, SrpData::CheckpointStatistics(s.clone()))
            }
            SrpView::CheckpointInfo => {
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
                (text, SrpData::CheckpointInfo(info))
            }
            SrpView::Monitor => {
                let targets = self.monitors.targets();
                let text = if targets.is_empty() {
                    "no monitors configured\n".to_string()
                } else {
                    targets.iter().map(|t| format!("{t:?}\n")).collect()
                };
                (text, SrpData::Monitor(targets))
            }
            SrpView::CallLossStatistics => {
                let mut text = format!(
                    "{:<27} {:<36} {:>10} {:>6} {}\n",
                    "Switchover (UTC)", "Reason", "Recovered", "Lost", "Synchronised"
                );
                for r in &self.call_loss {
                    text.push_str(&format!(
                        "{:<27} {:<36} {:>10} {:>6} {}\n",
                        r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        r.reason,
                        r.sessions_recovered,
                        r.sessions_lost,
                        if r.synchronised { "yes" } else { "no" }
                    ));
                }
                (text, SrpData::CallLoss(self.call_loss.clone()))
            }
            SrpView::AuditStatistics => (format!("{:?}\n", self.audit_stats), SrpData::Audit(self.audit_stats.clone())),
            SrpView::Velocity | SrpView::Concurrent => {
                let copy = (!self.machine.holds_service_address()).then_some(&self.store);
                self.state.view(view, copy).unwrap_or_else(|| (String::new(), SrpData::Velocity(Vec::new())))
            }
        };
        SrpReply { text, data }
    }
}

fn alarm_of(a: &election::Alarm) -> (alarms::AlarmDef, String) {
    match a {
        election::Alarm::PeerUnreachable => (alarms::HA_PATH_DOWN, "no Hello from the mate".into()),
        election::Alarm::MonitorFailure(g) => (alarms::SRP_MONITOR_FAILURE, format!("{g:?}")),
        election::Alarm::SwitchoverFailed => (alarms::HA_MANAGEMENT_FAULT, "the mate did not answer".into()),
        election::Alarm::DuplicateNodeId => (alarms::SRP_DUPLICATE_NODE_ID, "the mate uses this node id".into()),
    }
}
