//! Which chassis is Active: a pure state machine, `(machine, event) -> (machine, actions)`.
//!
//! States (the seed's names): Init, Active, Standby, Pending-Active, Pending-Standby. The machine
//! never sleeps, reads a clock or touches a socket: the owner delivers [`Event`]s (hellos from the
//! mate, link state, timer expiries, monitor group changes, operator commands) to [`step`] and
//! carries out the returned [`Action`]s in order (send a hello, take or release the service address,
//! start or cancel a timer, request a full checkpoint, ...).
//!
//! Rules, from the seed:
//! * Initialisation: when both chassis start together the primary chassis-mode wins, then the
//!   higher priority (lower number), then the higher node id (the seed compares MAC addresses).
//!   A chassis that starts while its mate is already Active becomes Standby and requests a full
//!   checkpoint. A chassis that hears nobody for the dead interval (after the optional delay
//!   interval) becomes Active.
//! * Failover: a Standby that hears no Hello for the dead interval becomes Active.
//! * Split brain (SRP link lost, both Active): the route modifier decides on reconnection (the
//!   lower wins: the previously Active chassis kept its lower value, a chassis that took over
//!   unilaterally kept its higher one), then priority, then node id. The loser releases the service
//!   address, becomes Standby and requests a full checkpoint (resync).
//! * Route modifier: the Active chassis' value is lower than the Standby's; it grows by one at each
//!   switchover (the chassis going Standby takes the new Active's value plus one) and is reset to
//!   [`ROUTE_MODIFIER_BASE`] after a coordinated switchover once it reaches
//!   [`ROUTE_MODIFIER_RESET_THRESHOLD`]. A starting chassis uses a high initial value so that an
//!   operating chassis stays preferred.
//! * Switchover (`srp initiate-switchover`, or a monitor group down on the Active chassis): Active ->
//!   Pending-Standby (service address released, pending checkpoints flushed, request sent); the
//!   Standby accepts -> Pending-Active (service address taken, post-switchover processing) -> Active;
//!   the requester -> Standby. A manual switchover is refused while the Standby is not synchronised,
//!   unless forced.
//! * Monitors: a monitor failure inside the guard period (after a switchover or a local failure
//!   recovery) waits for the damping period (or, without one, for the guard period to end). A
//!   switchover caused by a monitor failure is non-revertible: the new Active chassis ignores its
//!   own monitor failures until a manual switchover, another non-monitor failover, or
//!   `srp reset-auth-probe-fail` / `srp reset-diameter-fail` ([`Event::ResetMonitorFailure`]).
//! * Forced standby (seed 000: "every server that is NOT running the same version as the active
//!   server must be in forced standby", so that "a simple failover does not cause a change in the
//!   version of code that is providing service"): a chassis in forced standby ([`Event::ForcedStandby`])
//!   that is not serving never takes service: not when the mate is lost (it stays Standby and
//!   raises [`Alarm::PeerUnreachable`]), not in an election, not on a switchover request (refused
//!   with [`Refusal::ForcedStandby`]; the Active chassis refuses to start one towards it with
//!   [`Refusal::PeerForcedStandby`]). It loses every contest (initial election, split brain) to a
//!   mate that is not forced. It never drops service it holds: set on the Active chassis, it takes
//!   effect once the chassis hands over. Lifted, the chassis takes over at once if nobody serves.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ChassisMode, SrpConfig};
use crate::monitor::MonitorGroupId;

/// Lowest (most preferred) route modifier an Active chassis uses after a coordinated election.
pub const ROUTE_MODIFIER_BASE: u32 = 1;
/// A coordinated switchover resets the new Active chassis' route modifier to the base once it
/// reaches this value (the seed's "threshold ... to avoid rollover").
pub const ROUTE_MODIFIER_RESET_THRESHOLD: u32 = 32;
/// Initial route modifier of a primary chassis: higher than any operational value.
pub const ROUTE_MODIFIER_INITIAL_PRIMARY: u32 = 64;
/// Initial route modifier of a backup chassis.
pub const ROUTE_MODIFIER_INITIAL_BACKUP: u32 = 65;

/// A chassis' SRP state (`show srp info`: "Chassis State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    /// Starting; the mate's state is not known yet.
    Init,
    /// Serving: holds the service address.
    Active,
    /// Ready to take over; receives checkpoints.
    Standby,
    /// Taking over: holds the service address, post-switchover processing runs.
    #[serde(rename = "Pending-Active")]
    PendingActive,
    /// Handing over: service address released, pending checkpoints flushed, waiting for the mate.
    #[serde(rename = "Pending-Standby")]
    PendingStandby,
}

impl State {
    /// Every state.
    pub const ALL: [State; 5] =
        [State::Init, State::Active, State::Standby, State::PendingActive, State::PendingStandby];

    /// Whether the chassis holds (or is taking) the service address in this state.
    pub fn claims_service(self) -> bool {
        matches!(self, State::Active | State::PendingActive)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "Init",
            State::Active => "Active",
            State::Standby => "Standby",
            State::PendingActive => "Pending-Active",
            State::PendingStandby => "Pending-Standby",
        })
    }
}

/// What a chassis tells its mate in every Hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Sender's node id.
    pub node_id: String,
    /// Sender's chassis mode.
    pub mode: ChassisMode,
    /// Sender's priority (lower number wins).
    pub priority: u8,
    /// Sender's current route modifier (lower is preferred).
    pub route_modifier: u32,
    /// Sender's state.
    pub state: State,
    /// Sender holds a synchronised copy of the session state (meaningful on a Standby; the seed's
    /// "Ready" in "peer conn").
    pub ready: bool,
    /// Sender is held in forced standby: it will not take service (absent from older hellos).
    #[serde(default)]
    pub forced_standby: bool,
}

/// The timers the machine starts and cancels; the owner delivers [`Event::TimerExpired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// `delay-interval` after start-up, before the dead interval starts.
    DelayInterval,
    /// `dead-interval` since the last Hello (restarted by each Hello).
    DeadInterval,
    /// `guard-period` after a switchover or local failure recovery.
    GuardPeriod,
    /// `damping-period` of a monitor failure inside the guard period.
    DampingPeriod,
    /// Pending-Standby waiting for the mate's answer to a switchover request.
    Switchover,
    /// Pending-Active post-switchover processing.
    PostSwitchover,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 6] = [
        Timer::DelayInterval,
        Timer::DeadInterval,
        Timer::GuardPeriod,
        Timer::DampingPeriod,
        Timer::Switchover,
        Timer::PostSwitchover,
    ];
}

/// Why a switchover is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "lowercase")]
pub enum SwitchoverReason {
    /// `srp initiate-switchover`.
    Manual,
    /// A monitor group is down on the Active chassis (non-revertible).
    Monitor {
        /// The group.
        group: MonitorGroupId,
    },
}

/// Why a command or request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// Only the Active chassis can initiate a switchover.
    #[error("this chassis is not Active")]
    NotActive,
    /// The SRP link is down or the mate is not heard.
    #[error("the peer chassis is not connected")]
    PeerNotConnected,
    /// The mate is not Standby.
    #[error("the peer chassis is not Standby")]
    PeerNotStandby,
    /// The Standby does not hold a synchronised copy of the sessions (use force to override).
    #[error("the standby chassis is not synchronised (use force to switch over anyway)")]
    NotSynchronised,
    /// A switchover is already in progress.
    #[error("a switchover is already in progress")]
    SwitchoverInProgress,
    /// The mate refused the switchover request.
    #[error("the peer chassis refused the switchover")]
    PeerRefused,
    /// This chassis is held in forced standby and does not take service.
    #[error("this chassis is in forced standby")]
    ForcedStandby,
    /// The mate is held in forced standby and does not take service.
    #[error("the peer chassis is in forced standby")]
    PeerForcedStandby,
}

/// The operator commands the machine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `srp initiate-switchover`.
    InitiateSwitchover,
    /// `srp validate-switchover`.
    ValidateSwitchover,
}

/// Conditions the machine raises and clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Alarm {
    /// No Hello from the mate for the dead interval.
    PeerUnreachable,
    /// A monitor group is down.
    MonitorFailure(MonitorGroupId),
    /// A switchover request got no answer in time; this chassis went back to Active.
    SwitchoverFailed,
    /// The mate uses this chassis' node id: its hellos are ignored.
    DuplicateNodeId,
}

/// Inputs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A Hello from the mate.
    PeerHello(PeerStatus),
    /// The SRP link (TCP connection, authenticated) is up.
    LinkUp,
    /// The SRP link is down.
    LinkDown,
    /// A timer the machine started expired.
    TimerExpired(Timer),
    /// Every target of a monitor group is down (ignored unless this chassis serves).
    MonitorDown(MonitorGroupId),
    /// A monitor group has a target up again.
    MonitorUp(MonitorGroupId),
    /// This chassis recovered from a local failure (task restart, card reboot): starts the guard
    /// period (when serving).
    LocalFailureRecovered,
    /// `srp initiate-switchover [force]`.
    ManualSwitchover {
        /// Switch over even when the Standby is not synchronised.
        force: bool,
    },
    /// `srp validate-switchover`.
    ValidateSwitchover,
    /// The mate asks this chassis to take over.
    PeerSwitchoverRequest {
        /// Take over even when not synchronised.
        force: bool,
        /// Why.
        reason: SwitchoverReason,
    },
    /// The mate's answer to this chassis' switchover request.
    PeerSwitchoverResponse {
        /// Whether the mate takes over.
        accepted: bool,
    },
    /// This chassis' copy of the sessions became (un)synchronised (from the checkpoint receiver).
    SyncStatus {
        /// Synchronised.
        ready: bool,
    },
    /// Post-switchover processing finished.
    PostSwitchoverComplete,
    /// `srp terminate-post-process`.
    TerminatePostProcess,
    /// `srp reset-auth-probe-fail` / `srp reset-diameter-fail`: clears the non-revertible flag.
    ResetMonitorFailure,
    /// `srp forced-standby on|off` (the Upgrade Director's forced standby): hold this chassis out
    /// of service, or release it.
    ForcedStandby(bool),
}

/// Outputs of the machine, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// Send a Hello now (this chassis' status changed); periodic hellos are the link's job.
    SendHello,
    /// Start serving on the service address (advertise routes, bind the service IP).
    TakeServiceAddress,
    /// Stop serving on the service address. Monitor state is forgotten with it: stop probing and
    /// reset the [`MonitorSet`](crate::monitor::MonitorSet).
    ReleaseServiceAddress,
    /// Ask the mate for a full checkpoint.
    RequestFullCheckpoint,
    /// Send every pending checkpoint now (before handing over).
    FlushCheckpoints,
    /// Ask the mate to take over.
    SendSwitchoverRequest {
        /// Even if the mate is not synchronised.
        force: bool,
        /// Why.
        reason: SwitchoverReason,
    },
    /// Answer the mate's switchover request.
    SendSwitchoverResponse {
        /// Whether this chassis takes over.
        accepted: bool,
        /// Why not, when refused.
        refusal: Option<Refusal>,
    },
    /// Start (or restart) a timer; deliver [`Event::TimerExpired`] when it expires.
    StartTimer {
        /// Which.
        timer: Timer,
        /// After how long.
        after: Duration,
    },
    /// Cancel a timer; an expiry that was already queued is ignored by the machine.
    CancelTimer(Timer),
    /// Advertise this route modifier.
    SetRouteModifier(u32),
    /// Raise an alarm.
    RaiseAlarm(Alarm),
    /// Clear an alarm.
    ClearAlarm(Alarm),
    /// An operator command was refused.
    CommandRefused {
        /// Which command.
        command: Command,
        /// Why.
        reason: Refusal,
    },
    /// The answer to `srp validate-switchover`.
    SwitchoverValidated(Result<(), Refusal>),
    /// Both chassis were Active; resolved.
    SplitBrainResolved {
        /// Whether this chassis stayed Active.
        kept_active: bool,
    },
}

/// This chassis' fixed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Node id (last tie-break: the greater wins).
    pub node_id: String,
    /// Chassis mode.
    pub mode: ChassisMode,
    /// Priority (lower number wins).
    pub priority: u8,
    /// `delay-interval` (zero: none).
    pub delay_interval: Duration,
    /// `dead-interval`.
    pub dead_interval: Duration,
    /// `guard-period` (zero: none).
    pub guard_period: Duration,
    /// `damping-period` (zero: wait for the end of the guard period).
    pub damping_period: Duration,
    /// How long Pending-Standby waits for an answer and Pending-Active post-processes.
    pub switchover_timeout: Duration,
}

impl Params {
    /// The parameters of a configuration; the switchover timeout is the dead interval.
    pub fn from_config(c: &SrpConfig) -> Params {
        Params {
            node_id: c.node_id.clone(),
            mode: c.chassis_mode,
            priority: c.priority,
            delay_interval: c.delay_interval(),
            dead_interval: c.dead_interval(),
            guard_period: c.guard_period(),
            damping_period: c.damping_period(),
            switchover_timeout: c.dead_interval(),
        }
    }

    fn timer_duration(&self, t: Timer) -> Duration {
        match t {
            Timer::DelayInterval => self.delay_interval,
            Timer::DeadInterval => self.dead_interval,
            Timer::GuardPeriod => self.guard_period,
            Timer::DampingPeriod => self.damping_period,
            Timer::Switchover | Timer::PostSwitchover => self.switchover_timeout,
        }
    }
}

/// The election state of one chassis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    params: Params,
    state: State,
    holds_service_address: bool,
    route_modifier: u32,
    link_up: bool,
    peer: Option<PeerStatus>,
    peer_alive: bool,
    ready: bool,
    monitors_down: BTreeSet<MonitorGroupId>,
    non_revertible: bool,
    forced_standby: bool,
    timers: BTreeSet<Timer>,
    alarms: BTreeSet<Alarm>,
}

/// Feeds one event to the machine: the next machine and the actions to carry out, in order.
pub fn step(machine: &Machine, event: Event) -> (Machine, Vec<Action>) {
    let mut next = machine.clone();
    let actions = next.handle(event);
    (next, actions)
}

/// Ordering key of the initial election: primary mode, then lower priority, then greater node id.
fn election_key(mode: ChassisMode, priority: u8, node_id: &str) -> (bool, std::cmp::Reverse<u8>, &str) {
    (mode == ChassisMode::Primary, std::cmp::Reverse(priority), node_id)
}

/// Ordering key of split-brain resolution: lower route modifier, then lower priority, then greater
/// node id.
fn split_brain_key(
    route_modifier: u32,
    priority: u8,
    node_id: &str,
) -> (std::cmp::Reverse<u32>, std::cmp::Reverse<u8>, &str) {
    (std::cmp::Reverse(route_modifier), std::cmp::Reverse(priority), node_id)
}

impl Machine {
    /// A machine in Init, and the actions that start it (initial route modifier, delay or dead
    /// timer, first hello).
    pub fn new(params: Params) -> (Machine, Vec<Action>) {
        let route_modifier = match params.mode {
            ChassisMode::Primary => ROUTE_MODIFIER_INITIAL_PRIMARY,
            ChassisMode::Backup => ROUTE_MODIFIER_INITIAL_BACKUP,
        };
        let mut m = Machine {
            params,
            state: State::Init,
            holds_service_address: false,
            route_modifier,
            link_up: false,
            peer: None,
            peer_alive: false,
            ready: false,
            monitors_down: BTreeSet::new(),
            non_revertible: false,
            forced_standby: false,
            timers: BTreeSet::new(),
            alarms: BTreeSet::new(),
        };
        let mut out = vec![Action::SetRouteModifier(route_modifier)];
        if m.params.delay_interval.is_zero() {
            m.start(Timer::DeadInterval, &mut out);
        } else {
            m.start(Timer::DelayInterval, &mut out);
        }
        out.push(Action::SendHello);
        (m, out)
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// Whether this chassis holds the service address.
    pub fn holds_service_address(&self) -> bool {
        self.holds_service_address
    }
    /// Current route modifier.
    pub fn route_modifier(&self) -> u32 {
        self.route_modifier
    }
    /// Whether the SRP link is up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }
    /// The mate's last Hello, and whether it is still considered alive (heard within the dead
    /// interval).
    pub fn peer(&self) -> Option<(&PeerStatus, bool)> {
        self.peer.as_ref().map(|p| (p, self.peer_alive))
    }
    /// Whether this chassis' session copy is synchronised.
    pub fn ready(&self) -> bool {
        self.ready
    }
    /// Whether the last switchover was caused by a monitor failure (the seed's AAA failure flag):
    /// monitor failures then do not switch back.
    pub fn non_revertible(&self) -> bool {
        self.non_revertible
    }
    /// Whether this chassis is held in forced standby.
    pub fn forced_standby(&self) -> bool {
        self.forced_standby
    }
    /// Monitor groups currently down.
    pub fn monitors_down(&self) -> &BTreeSet<MonitorGroupId> {
        &self.monitors_down
    }
    /// Timers the machine believes are running.
    pub fn timers(&self) -> &BTreeSet<Timer> {
        &self.timers
    }
    /// Alarms raised and not cleared.
    pub fn alarms(&self) -> &BTreeSet<Alarm> {
        &self.alarms
    }
    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// What this chassis' Hello carries.
    pub fn status(&self) -> PeerStatus {
        PeerStatus {
            node_id: self.params.node_id.clone(),
            mode: self.params.mode,
            priority: self.params.priority,
            route_modifier: self.route_modifier,
            state: self.state,
            ready: self.ready,
            forced_standby: self.forced_standby,
        }
    }

    fn peer_connected(&self) -> Option<&PeerStatus> {
        if self.link_up && self.peer_alive { self.peer.as_ref() } else { None }
    }

    // ---- action helpers: each keeps the machine's own bookkeeping in line with what it emits ----

    fn start(&mut self, t: Timer, out: &mut Vec<Action>) {
        let after = self.params.timer_duration(t);
        self.timers.insert(t);
        out.push(Action::StartTimer { timer: t, after });
    }

    fn cancel(&mut self, t: Timer, out: &mut Vec<Action>) {
        if self.timers.remove(&t) {
            out.push(Action::CancelTimer(t));
        }
    }

    fn raise(&mut self, a: Alarm, out: &mut Vec<Action>) {
        if self.alarms.insert(a) {
            out.push(Action::RaiseAlarm(a));
        }
    }

    fn clear(&mut self, a: Alarm, out: &mut Vec<Action>) {
        if self.alarms.remove(&a) {
            out.push(Action::ClearAlarm(a));
        }
    }

    fn set_route_modifier(&mut self, rm: u32, out: &mut Vec<Action>) {
        if rm != self.route_modifier {
            self.route_modifier = rm;
            out.push(Action::SetRouteModifier(rm));
        }
    }

    /// Enters `to`, taking or releasing the service address and cancelling timers that belong to
    /// the state left.
    fn enter(&mut self, to: State, out: &mut Vec<Action>) {
        if to == self.state {
            return;
        }
        if to.claims_service() && !self.holds_service_address {
            self.holds_service_address = true;
            out.push(Action::TakeServiceAddress);
            if !self.params.guard_period.is_zero() {
                self.start(Timer::GuardPeriod, out);
            }
        } else if !to.claims_service() && self.holds_service_address {
            self.holds_service_address = false;
            out.push(Action::ReleaseServiceAddress);
            self.cancel(Timer::GuardPeriod, out);
            // Monitors are probed only while serving: forget their state.
            for g in std::mem::take(&mut self.monitors_down) {
                self.clear(Alarm::MonitorFailure(g), out);
            }
        }
        if to != State::PendingStandby {
            self.cancel(Timer::Switchover, out);
        }
        if to != State::PendingActive {
            self.cancel(Timer::PostSwitchover, out);
        }
        if to != State::Active {
            self.cancel(Timer::DampingPeriod, out);
        }
        self.state = to;
    }

    /// Becomes Standby under an Active (or taking-over) mate whose route modifier is `peer_rm`, and
    /// asks for a full checkpoint: checkpoint sequences restart with every new Active.
    fn become_standby(&mut self, peer_rm: u32, out: &mut Vec<Action>) {
        self.enter(State::Standby, out);
        self.set_route_modifier(peer_rm.saturating_add(1), out);
        out.push(Action::RequestFullCheckpoint);
    }

    /// Whether this chassis wins split-brain resolution against `p`: a chassis in forced standby
    /// loses to one that is not.
    fn wins_split_brain(&self, p: &PeerStatus) -> bool {
        if self.forced_standby != p.forced_standby {
            return p.forced_standby;
        }
        split_brain_key(self.route_modifier, self.params.priority, &self.params.node_id).cmp(&split_brain_key(
            p.route_modifier,
            p.priority,
            &p.node_id,
        )) == Ordering::Greater
    }

    /// Whether this chassis wins the initial election against `p`: a chassis in forced standby
    /// loses to one that is not.
    fn wins_election(&self, p: &PeerStatus) -> bool {
        if self.forced_standby != p.forced_standby {
            return p.forced_standby;
        }
        election_key(self.params.mode, self.params.priority, &self.params.node_id)
            .cmp(&election_key(p.mode, p.priority, &p.node_id))
            == Ordering::Greater
    }

    /// Why a switchover cannot start now (manual checks; `force` skips the synchronisation check).
    fn switchover_refusal(&self, force: bool) -> Option<Refusal> {
        match self.state {
            State::Active => {}
            State::PendingActive | State::PendingStandby => return Some(Refusal::SwitchoverInProgress),
            State::Init | State::Standby => return Some(Refusal::NotActive),
        }
        let Some(p) = self.peer_connected() else { return Some(Refusal::PeerNotConnected) };
        if p.state != State::Standby {
            return Some(Refusal::PeerNotStandby);
        }
        if p.forced_standby {
            return Some(Refusal::PeerForcedStandby);
        }
        if !p.ready && !force {
            return Some(Refusal::NotSynchronised);
        }
        None
    }

    fn initiate_switchover(&mut self, force: bool, reason: SwitchoverReason, out: &mut Vec<Action>) {
        self.clear(Alarm::SwitchoverFailed, out);
        self.enter(State::PendingStandby, out);
        out.push(Action::FlushCheckpoints);
        out.push(Action::SendSwitchoverRequest { force, reason });
        self.start(Timer::Switchover, out);
    }

    /// On the Active chassis: switches over if a monitor group is down and nothing holds it back.
    /// `damped`: the damping period just ended, which overrides the guard period.
    fn evaluate_monitors(&mut self, damped: bool, out: &mut Vec<Action>) {
        if self.state != State::Active || self.non_revertible {
            return;
        }
        let Some(group) = self.monitors_down.iter().next().copied() else { return };
        if !damped && self.timers.contains(&Timer::GuardPeriod) {
            if !self.params.damping_period.is_zero() && !self.timers.contains(&Timer::DampingPeriod) {
                self.start(Timer::DampingPeriod, out);
            }
            return;
        }
        if self.timers.contains(&Timer::DampingPeriod) {
            return;
        }
        // Monitor switchovers are unplanned: the seed asks for no synchronisation check.
        if self.switchover_refusal(true).is_none() {
            self.initiate_switchover(true, SwitchoverReason::Monitor { group }, out);
        }
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let before = self.status();
        let from = self.state;
        self.dispatch(event, &mut out);
        if self.state != from {
            out.insert(0, Action::StateChanged { from, to: self.state });
        }
        if self.status() != before {
            out.push(Action::SendHello);
        }
        out
    }

    fn dispatch(&mut self, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::LinkUp => self.link_up = true,
            Event::LinkDown => {
                self.link_up = false;
                if self.state == State::PendingStandby {
                    // Whether the mate accepted is unknown: stay off the service address, and above the
                    // mate's route modifier as a chassis that handed over; if the mate did not take
                    // over, the dead interval makes this chassis Active again.
                    let peer_rm = self.peer.as_ref().map_or(self.route_modifier, |p| p.route_modifier);
                    self.become_standby(peer_rm.max(self.route_modifier), out);
                }
            }
            Event::PeerHello(p) => self.on_hello(p, out),
            Event::TimerExpired(t) => {
                if self.timers.remove(&t) {
                    self.on_timer(t, out);
                }
            }
            Event::MonitorDown(g) => {
                if !self.holds_service_address {
                    // Monitors are probed only while serving (the seed: "AAA probing is only
                    // performed on the active chassis").
                    return;
                }
                self.monitors_down.insert(g);
                self.raise(Alarm::MonitorFailure(g), out);
                self.evaluate_monitors(false, out);
            }
            Event::MonitorUp(g) => {
                self.monitors_down.remove(&g);
                self.clear(Alarm::MonitorFailure(g), out);
                if self.monitors_down.is_empty() {
                    self.cancel(Timer::DampingPeriod, out);
                }
            }
            Event::LocalFailureRecovered => {
                if self.holds_service_address && !self.params.guard_period.is_zero() {
                    self.start(Timer::GuardPeriod, out);
                }
            }
            Event::ManualSwitchover { force } => match self.switchover_refusal(force) {
                Some(reason) => out.push(Action::CommandRefused { command: Command::InitiateSwitchover, reason }),
                None => {
                    self.non_revertible = false;
                    self.initiate_switchover(force, SwitchoverReason::Manual, out);
                }
            },
            Event::ValidateSwitchover => {
                out.push(Action::SwitchoverValidated(self.switchover_refusal(false).map_or(Ok(()), Err)));
            }
            Event::PeerSwitchoverRequest { force, reason } => {
                let refusal = if self.state != State::Standby {
                    Some(Refusal::PeerNotStandby)
                } else if self.forced_standby {
                    Some(Refusal::ForcedStandby)
                } else if !self.ready && !force {
                    Some(Refusal::NotSynchronised)
                } else {
                    None
                };
                match refusal {
                    Some(r) => out.push(Action::SendSwitchoverResponse { accepted: false, refusal: Some(r) }),
                    None => {
                        self.non_revertible = matches!(reason, SwitchoverReason::Monitor { .. });
                        self.enter(State::PendingActive, out);
                        out.push(Action::SendSwitchoverResponse { accepted: true, refusal: None });
                        self.start(Timer::PostSwitchover, out);
                    }
                }
            }
            Event::PeerSwitchoverResponse { accepted } => {
                if self.state == State::PendingStandby {
                    if accepted {
                        let peer_rm = self.peer.as_ref().map_or(self.route_modifier, |p| p.route_modifier);
                        self.become_standby(peer_rm.max(self.route_modifier), out);
                    } else {
                        self.enter(State::Active, out);
                        out.push(Action::CommandRefused {
                            command: Command::InitiateSwitchover,
                            reason: Refusal::PeerRefused,
                        });
                    }
                }
            }
            Event::SyncStatus { ready } => self.ready = ready,
            Event::PostSwitchoverComplete | Event::TerminatePostProcess => {
                if self.state == State::PendingActive {
                    self.finish_takeover(out);
                }
            }
            Event::ResetMonitorFailure => {
                self.non_revertible = false;
                self.evaluate_monitors(false, out);
            }
            Event::ForcedStandby(on) => {
                let lifted = self.forced_standby && !on;
                self.forced_standby = on;
                if lifted && matches!(self.state, State::Init | State::Standby) {
                    self.reconsider_after_lift(out);
                }
            }
        }
    }

    /// Forced standby was lifted on a chassis that does not serve: take over now if nobody does
    /// (the mate was lost while this chassis was held), or decide again against the mate's last
    /// hello.
    fn reconsider_after_lift(&mut self, out: &mut Vec<Action>) {
        if let Some(p) = self.peer_connected().cloned() {
            self.on_peer_state(&p, out);
        } else if !self.peer_alive && self.alarms.contains(&Alarm::PeerUnreachable) {
            self.non_revertible = false;
            self.enter(State::Active, out);
        }
    }

    /// Pending-Active -> Active after a coordinated switchover.
    fn finish_takeover(&mut self, out: &mut Vec<Action>) {
        self.enter(State::Active, out);
        if self.route_modifier >= ROUTE_MODIFIER_RESET_THRESHOLD {
            self.set_route_modifier(ROUTE_MODIFIER_BASE, out);
        }
    }

    fn on_timer(&mut self, t: Timer, out: &mut Vec<Action>) {
        match t {
            Timer::DelayInterval => self.start(Timer::DeadInterval, out),
            Timer::DeadInterval => {
                self.peer_alive = false;
                self.raise(Alarm::PeerUnreachable, out);
                match self.state {
                    // Held out of service: stay (or become) Standby; lifting forced standby
                    // takes over.
                    State::Init | State::Standby if self.forced_standby => self.enter(State::Standby, out),
                    State::Init | State::Standby | State::PendingStandby => {
                        // Unilateral takeover: keep the (higher) route modifier so that a mate that
                        // is in fact alive stays preferred by routing and wins on reconnection.
                        self.non_revertible = false;
                        self.enter(State::Active, out);
                    }
                    State::PendingActive => self.enter(State::Active, out),
                    State::Active => {}
                }
            }
            Timer::GuardPeriod => self.evaluate_monitors(false, out),
            Timer::DampingPeriod => self.evaluate_monitors(true, out),
            Timer::Switchover => {
                if self.state == State::PendingStandby {
                    self.enter(State::Active, out);
                    self.raise(Alarm::SwitchoverFailed, out);
                }
            }
            Timer::PostSwitchover => {
                if self.state == State::PendingActive {
                    self.finish_takeover(out);
                }
            }
        }
    }

    fn on_hello(&mut self, p: PeerStatus, out: &mut Vec<Action>) {
        if p.node_id == self.params.node_id {
            self.raise(Alarm::DuplicateNodeId, out);
            return;
        }
        self.clear(Alarm::DuplicateNodeId, out);
        self.peer_alive = true;
        self.clear(Alarm::PeerUnreachable, out);
        if !self.timers.contains(&Timer::DelayInterval) {
            self.start(Timer::DeadInterval, out);
        }
        self.peer = Some(p.clone());
        // Hellos arrive only over the link; a hello proves it is up.
        self.link_up = true;
        self.on_peer_state(&p, out);
    }

    /// What this chassis does given the mate's status, by the pair of states.
    fn on_peer_state(&mut self, p: &PeerStatus, out: &mut Vec<Action>) {
        // A chassis held in forced standby takes service from nobody.
        let may_take = !self.forced_standby;
        match (self.state, p.state) {
            // ---- Init ----
            (State::Init, State::Active | State::PendingActive) => self.become_standby(p.route_modifier, out),
            (State::Init, State::Init) => {
                if may_take && self.wins_election(p) {
                    self.enter(State::Active, out);
                    self.set_route_modifier(ROUTE_MODIFIER_BASE, out);
                } else {
                    self.enter(State::Standby, out);
                    out.push(Action::RequestFullCheckpoint);
                }
            }
            (State::Init, State::Standby) => {
                // A synchronised Standby takes over from a restarting mate; otherwise (or when the
                // Standby is held in forced standby) this chassis does.
                if may_take && (!p.ready || p.forced_standby) {
                    self.enter(State::Active, out);
                    self.set_route_modifier(ROUTE_MODIFIER_BASE, out);
                }
            }
            (State::Init, State::PendingStandby) => {}
            // ---- Standby ----
            (State::Standby, State::Active | State::PendingActive) => {
                self.set_route_modifier(p.route_modifier.saturating_add(1), out);
            }
            (State::Standby, State::Standby) => {
                // Nobody serves: the one not held in forced standby, then the synchronised one
                // takes over, else the election decides.
                let wins = match (self.ready, p.ready) {
                    _ if p.forced_standby && !self.forced_standby => true,
                    (true, false) => true,
                    (false, true) => false,
                    _ => self.wins_election(p),
                };
                if may_take && wins {
                    self.enter(State::Active, out);
                }
            }
            (State::Standby, State::Init) => {
                if may_take && (self.ready || p.forced_standby) {
                    self.enter(State::Active, out);
                }
            }
            (State::Standby, State::PendingStandby) => {}
            // ---- Active ----
            (State::Active, State::Active | State::PendingActive) => self.resolve_split_brain(p, out),
            (State::Active, State::Standby) => {
                if self.route_modifier >= ROUTE_MODIFIER_RESET_THRESHOLD {
                    self.set_route_modifier(ROUTE_MODIFIER_BASE, out);
                }
                self.evaluate_monitors(false, out);
            }
            (State::Active, State::Init | State::PendingStandby) => {}
            // ---- Pending-Standby ----
            (State::PendingStandby, State::Active | State::PendingActive) => {
                self.become_standby(p.route_modifier.max(self.route_modifier), out);
            }
            (State::PendingStandby, State::Init) => self.enter(State::Active, out),
            (State::PendingStandby, State::PendingStandby) => {
                if self.wins_split_brain(p) {
                    self.enter(State::Active, out);
                } else {
                    self.become_standby(p.route_modifier, out);
                }
            }
            (State::PendingStandby, State::Standby) => {}
            // ---- Pending-Active ----
            (State::PendingActive, State::Active | State::PendingActive) => self.resolve_split_brain(p, out),
            (State::PendingActive, State::Init | State::Standby | State::PendingStandby) => {}
        }
    }

    fn resolve_split_brain(&mut self, p: &PeerStatus, out: &mut Vec<Action>) {
        let kept_active = self.wins_split_brain(p);
        if !kept_active {
            self.become_standby(p.route_modifier.max(self.route_modifier), out);
        }
        out.push(Action::SplitBrainResolved { kept_active });
    }
}

#[cfg(test)]
mod tests;
