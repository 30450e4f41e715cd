//! Exhaustive and scenario tests of the election state machine.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use super::*;
use crate::config::MonitorKind;

const AAA: MonitorGroupId = MonitorGroupId { kind: MonitorKind::Aaa, group: 0 };

fn params(id: &str, mode: ChassisMode, priority: u8) -> Params {
    Params {
        node_id: id.into(),
        mode,
        priority,
        delay_interval: Duration::ZERO,
        dead_interval: Duration::from_secs(30),
        guard_period: Duration::from_secs(60),
        damping_period: Duration::from_secs(10),
        switchover_timeout: Duration::from_secs(30),
    }
}

fn status(id: &str, mode: ChassisMode, priority: u8, rm: u32, state: State, ready: bool) -> PeerStatus {
    PeerStatus { node_id: id.into(), mode, priority, route_modifier: rm, state, ready, forced_standby: false }
}

fn new(id: &str, mode: ChassisMode, priority: u8) -> Machine {
    Machine::new(params(id, mode, priority)).0
}

fn run(m: &Machine, events: impl IntoIterator<Item = Event>) -> (Machine, Vec<Action>) {
    let mut m = m.clone();
    let mut all = Vec::new();
    for e in events {
        let (n, a) = step(&m, e);
        check_step(&m, &n, &a);
        m = n;
        all.extend(a);
    }
    (m, all)
}

/// A machine put directly in a given, self-consistent configuration.
#[allow(clippy::too_many_arguments)]
fn configured(
    state: State,
    link_up: bool,
    peer: Option<(PeerStatus, bool)>,
    ready: bool,
    monitor_down: bool,
    non_revertible: bool,
    guard: bool,
    damping: bool,
    delay: bool,
    rm: u32,
) -> Machine {
    let mut m = new("n-b", ChassisMode::Primary, 10);
    m.state = state;
    m.holds_service_address = state.claims_service();
    m.route_modifier = rm;
    m.link_up = link_up;
    m.peer_alive = peer.as_ref().is_some_and(|(_, alive)| *alive);
    m.peer = peer.map(|(p, _)| p);
    m.ready = ready;
    m.non_revertible = non_revertible;
    m.timers.clear();
    if delay {
        m.timers.insert(Timer::DelayInterval);
    } else {
        m.timers.insert(Timer::DeadInterval);
    }
    if m.holds_service_address && monitor_down {
        m.monitors_down.insert(AAA);
        m.alarms.insert(Alarm::MonitorFailure(AAA));
    }
    if guard && m.holds_service_address {
        m.timers.insert(Timer::GuardPeriod);
    }
    if damping && state == State::Active && monitor_down {
        m.timers.insert(Timer::DampingPeriod);
    }
    match state {
        State::PendingStandby => {
            m.timers.insert(Timer::Switchover);
        }
        State::PendingActive => {
            m.timers.insert(Timer::PostSwitchover);
        }
        _ => {}
    }
    m
}

/// Invariants every single step must keep.
fn check_step(before: &Machine, after: &Machine, actions: &[Action]) {
    let ctx = || format!("\nbefore: {before:?}\nafter: {after:?}\nactions: {actions:?}");
    // The service address is held exactly in the states that claim service.
    assert_eq!(after.holds_service_address, after.state.claims_service(), "address/state{}", ctx());
    // Timers bound to states.
    if after.timers.contains(&Timer::Switchover) {
        assert_eq!(after.state, State::PendingStandby, "{}", ctx());
    }
    if after.timers.contains(&Timer::PostSwitchover) {
        assert_eq!(after.state, State::PendingActive, "{}", ctx());
    }
    if after.timers.contains(&Timer::DampingPeriod) {
        assert_eq!(after.state, State::Active, "{}", ctx());
    }
    if after.timers.contains(&Timer::GuardPeriod) {
        assert!(after.holds_service_address, "guard without address{}", ctx());
    }
    if !after.holds_service_address {
        assert!(after.monitors_down.is_empty(), "monitor state kept while not serving{}", ctx());
    }
    // Replaying the actions on the bookkeeping of `before` gives that of `after`.
    let mut held = before.holds_service_address;
    let mut timers: BTreeSet<Timer> = before.timers.clone();
    // A delivered expiry consumes the timer (checked by the caller passing the event in).
    let mut alarms = before.alarms.clone();
    let mut rm = before.route_modifier;
    for a in actions {
        match a {
            Action::TakeServiceAddress => {
                assert!(!held, "address taken twice{}", ctx());
                held = true;
            }
            Action::ReleaseServiceAddress => {
                assert!(held, "address released while not held{}", ctx());
                held = false;
            }
            Action::StartTimer { timer, after: d } => {
                assert_eq!(*d, after.params.timer_duration(*timer));
                timers.insert(*timer);
            }
            Action::CancelTimer(t) => assert!(timers.remove(t), "cancelled a timer not running{}", ctx()),
            Action::RaiseAlarm(x) => assert!(alarms.insert(*x), "alarm raised twice{}", ctx()),
            Action::ClearAlarm(x) => assert!(alarms.remove(x), "alarm cleared while not raised{}", ctx()),
            Action::SetRouteModifier(v) => {
                assert_ne!(*v, rm, "no-op route modifier{}", ctx());
                rm = *v;
            }
            _ => {}
        }
    }
    assert_eq!(held, after.holds_service_address, "{}", ctx());
    // Expired timers vanish without a CancelTimer.
    let expected: BTreeSet<Timer> = timers.iter().copied().filter(|t| after.timers.contains(t)).collect();
    assert_eq!(expected, after.timers, "timer bookkeeping{}", ctx());
    assert!(timers.len() <= after.timers.len() + 1, "at most the expired timer vanishes{}", ctx());
    assert_eq!(alarms, after.alarms, "{}", ctx());
    assert_eq!(rm, after.route_modifier, "{}", ctx());
    // A state change is announced first, and a hello follows any status change.
    if before.state != after.state {
        assert_eq!(actions.first(), Some(&Action::StateChanged { from: before.state, to: after.state }), "{}", ctx());
    } else {
        assert!(!actions.iter().any(|a| matches!(a, Action::StateChanged { .. })), "{}", ctx());
    }
    if before.status() != after.status() {
        assert_eq!(actions.last(), Some(&Action::SendHello), "{}", ctx());
    }
    // Dead interval never runs during the delay interval.
    assert!(
        !(after.timers.contains(&Timer::DelayInterval) && after.timers.contains(&Timer::DeadInterval))
            || before.timers.contains(&Timer::DelayInterval) && before.timers.contains(&Timer::DeadInterval),
        "dead interval started during delay{}",
        ctx()
    );
}

fn peers() -> Vec<Option<(PeerStatus, bool)>> {
    let mut v = vec![None];
    for st in State::ALL {
        for ready in [false, true] {
            // A peer that loses and one that wins every comparison against "n-b" (primary, 10, rm 5).
            for (id, mode, prio, rm) in [("n-a", ChassisMode::Backup, 20, 9), ("n-c", ChassisMode::Primary, 5, 2)] {
                for alive in [false, true] {
                    v.push(Some((status(id, mode, prio, rm, st, ready), alive)));
                }
                // The same mate held in forced standby (heard: only a live mate's flag matters).
                v.push(Some((PeerStatus { forced_standby: true, ..status(id, mode, prio, rm, st, ready) }, true)));
            }
        }
    }
    v
}

fn events() -> Vec<Event> {
    let mut v = vec![
        Event::LinkUp,
        Event::LinkDown,
        Event::MonitorDown(AAA),
        Event::MonitorUp(AAA),
        Event::LocalFailureRecovered,
        Event::ManualSwitchover { force: false },
        Event::ManualSwitchover { force: true },
        Event::ValidateSwitchover,
        Event::PeerSwitchoverResponse { accepted: true },
        Event::PeerSwitchoverResponse { accepted: false },
        Event::SyncStatus { ready: true },
        Event::SyncStatus { ready: false },
        Event::PostSwitchoverComplete,
        Event::TerminatePostProcess,
        Event::ResetMonitorFailure,
        Event::ForcedStandby(true),
        Event::ForcedStandby(false),
    ];
    for force in [false, true] {
        v.push(Event::PeerSwitchoverRequest { force, reason: SwitchoverReason::Manual });
        v.push(Event::PeerSwitchoverRequest { force, reason: SwitchoverReason::Monitor { group: AAA } });
    }
    v.extend(Timer::ALL.map(Event::TimerExpired));
    for p in peers().into_iter().flatten() {
        v.push(Event::PeerHello(p.0));
    }
    v.push(Event::PeerHello(status("n-b", ChassisMode::Backup, 1, 1, State::Active, true)));
    v
}

fn machines() -> Vec<Machine> {
    let mut v = Vec::new();
    for state in State::ALL {
        for link_up in [false, true] {
            for peer in peers() {
                for ready in [false, true] {
                    for (monitor_down, damping) in [(false, false), (true, false), (true, true)] {
                        for non_revertible in [false, true] {
                            for guard in [false, true] {
                                for delay in [false, true] {
                                    // The reset threshold matters only to a serving chassis.
                                    let rms: &[u32] = if state == State::Active { &[5, 40] } else { &[5] };
                                    for &rm in rms {
                                        let m = configured(
                                            state,
                                            link_up,
                                            peer.clone(),
                                            ready,
                                            monitor_down,
                                            non_revertible,
                                            guard,
                                            damping,
                                            delay,
                                            rm,
                                        );
                                        let forced = Machine { forced_standby: true, ..m.clone() };
                                        if !forced.peer_alive && !delay {
                                            // Held while the dead interval expired: the mate is lost.
                                            let mut lost = forced.clone();
                                            lost.timers.remove(&Timer::DeadInterval);
                                            lost.alarms.insert(Alarm::PeerUnreachable);
                                            v.push(lost);
                                        }
                                        v.push(forced);
                                        v.push(m);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

#[test]
fn every_state_event_pair_keeps_the_invariants() {
    let machines = machines();
    let events = events();
    let mut pairs = HashSet::new();
    let mut steps = 0usize;
    for m in &machines {
        for e in &events {
            let (n, actions) = step(m, e.clone());
            check_step(m, &n, &actions);
            // Deterministic (sampled: it doubles the cost).
            if steps.is_multiple_of(7) {
                assert_eq!(step(m, e.clone()), (n.clone(), actions.clone()));
            }
            pairs.insert((m.state, std::mem::discriminant(e)));
            steps += 1;

            // A manual switchover is refused while the Standby is not synchronised, unless forced.
            if let Event::ManualSwitchover { force } = e {
                let peer_standby = |forced: bool, ready: bool| {
                    m.link_up
                        && m.peer_alive
                        && m.peer.as_ref().is_some_and(|p| {
                            p.state == State::Standby && p.forced_standby == forced && (forced || p.ready == ready)
                        })
                };
                if m.state == State::Active && peer_standby(false, false) && !force {
                    assert_eq!(n.state, State::Active);
                    assert!(actions.contains(&Action::CommandRefused {
                        command: Command::InitiateSwitchover,
                        reason: Refusal::NotSynchronised
                    }));
                }
                // Not even forced towards a mate held in forced standby.
                if m.state == State::Active && peer_standby(true, false) {
                    assert_eq!(n.state, State::Active);
                    assert!(actions.contains(&Action::CommandRefused {
                        command: Command::InitiateSwitchover,
                        reason: Refusal::PeerForcedStandby
                    }));
                }
                if m.state != State::Active {
                    assert_eq!(n.state, m.state, "switchover from {}", m.state);
                    assert!(matches!(actions.as_slice(), [Action::CommandRefused { .. }]), "{actions:?}");
                }
            }
            // Forced standby: a held chassis that does not serve never takes service, whatever
            // happens, until it is released; it refuses every switchover request.
            if m.forced_standby && matches!(m.state, State::Init | State::Standby) && *e != Event::ForcedStandby(false)
            {
                assert!(matches!(n.state, State::Init | State::Standby), "forced standby took service: {m:?} {e:?}");
                if let Event::PeerSwitchoverRequest { .. } = e
                    && m.state == State::Standby
                {
                    assert!(actions.contains(&Action::SendSwitchoverResponse {
                        accepted: false,
                        refusal: Some(Refusal::ForcedStandby)
                    }));
                }
            }
            // Nor does anyone start a switchover towards a chassis held in forced standby.
            if n.peer.as_ref().is_some_and(|p| p.forced_standby) {
                assert!(
                    !actions.iter().any(|a| matches!(a, Action::SendSwitchoverRequest { .. })),
                    "switchover towards a forced standby mate: {m:?} {e:?}"
                );
            }
            // Forced standby never drops service this chassis holds.
            if *e == Event::ForcedStandby(true) {
                assert_eq!(n.state, m.state);
                assert!(n.forced_standby);
            }
            // A released chassis whose mate is lost takes over at once.
            if *e == Event::ForcedStandby(false)
                && m.forced_standby
                && matches!(m.state, State::Init | State::Standby)
                && !m.peer_alive
                && m.alarms.contains(&Alarm::PeerUnreachable)
            {
                assert_eq!(n.state, State::Active, "{m:?}");
            }
            // A monitor never switches over a chassis that took over because of a monitor failure.
            if m.non_revertible
                && *e != Event::ResetMonitorFailure
                && actions.iter().any(|a| {
                    matches!(a, Action::SendSwitchoverRequest { reason: SwitchoverReason::Monitor { .. }, .. })
                })
            {
                panic!("non-revertible chassis switched over: {m:?} {e:?}");
            }
            // A chassis that gives up Active in a split brain asks for a full checkpoint.
            if let Event::PeerHello(p) = e
                && m.state.claims_service()
                && p.state.claims_service()
                && p.node_id != m.params.node_id
                && n.state == State::Standby
            {
                assert!(actions.contains(&Action::RequestFullCheckpoint), "{m:?} {e:?}");
                assert!(actions.contains(&Action::SplitBrainResolved { kept_active: false }));
            }
            // A duplicate node id is never obeyed.
            if let Event::PeerHello(p) = e
                && p.node_id == m.params.node_id
            {
                assert_eq!(n.state, m.state);
                assert!(n.alarms.contains(&Alarm::DuplicateNodeId));
            }
            // Stale timer expiries are ignored.
            if let Event::TimerExpired(t) = e
                && !m.timers.contains(t)
            {
                assert_eq!(&n, m, "stale {t:?}");
                assert!(actions.is_empty());
            }
        }
    }
    let distinct_events = {
        let mut d = HashSet::new();
        for e in &events {
            d.insert(std::mem::discriminant(e));
        }
        d.len()
    };
    assert_eq!(pairs.len(), State::ALL.len() * distinct_events, "every (state, event kind) pair is covered");
    assert!(steps > 100_000, "{steps}");
}

// ---------------------------------------------------------------------------------------------
// Two chassis wired together.
// ---------------------------------------------------------------------------------------------

struct Pair {
    m: [Machine; 2],
    link: bool,
    /// Messages in flight, to chassis `.0`.
    queue: VecDeque<(usize, Event)>,
    full_checkpoint_requests: [usize; 2],
    /// A full checkpoint was requested and not yet received.
    wants_full: [bool; 2],
    log: Vec<String>,
}

impl Pair {
    fn new(a: Machine, b: Machine) -> Pair {
        Pair {
            m: [a, b],
            link: false,
            queue: VecDeque::new(),
            full_checkpoint_requests: [0, 0],
            wants_full: [false; 2],
            log: Vec::new(),
        }
    }

    fn deliver(&mut self, to: usize, e: Event) {
        let (n, actions) = step(&self.m[to], e.clone());
        check_step(&self.m[to], &n, &actions);
        self.log.push(format!("{to}: {e:?} -> {} {actions:?}", n.state));
        self.m[to] = n;
        let other = 1 - to;
        for a in actions {
            match a {
                Action::SendHello if self.link => {
                    self.queue.push_back((other, Event::PeerHello(self.m[to].status())));
                }
                Action::SendSwitchoverRequest { force, reason } if self.link => {
                    self.queue.push_back((other, Event::PeerSwitchoverRequest { force, reason }));
                }
                Action::SendSwitchoverResponse { accepted, .. } if self.link => {
                    self.queue.push_back((other, Event::PeerSwitchoverResponse { accepted }));
                }
                Action::RequestFullCheckpoint => {
                    self.full_checkpoint_requests[to] += 1;
                    self.wants_full[to] = true;
                }
                Action::TakeServiceAddress if self.m[to].state == State::PendingActive => {
                    self.queue.push_back((to, Event::PostSwitchoverComplete));
                }
                _ => {}
            }
        }
    }

    fn drain(&mut self) {
        let mut budget = 10_000;
        loop {
            while let Some((to, e)) = self.queue.pop_front() {
                self.deliver(to, e);
                budget -= 1;
                assert!(budget > 0, "no quiescence:\n{}", self.log.join("\n"));
            }
            // The serving chassis answers a full checkpoint request; applying it synchronises.
            let Some(i) = (0..2).find(|&i| {
                self.wants_full[i]
                    && self.link
                    && self.m[1 - i].state.claims_service()
                    && self.m[i].state == State::Standby
            }) else {
                return;
            };
            self.wants_full[i] = false;
            self.queue.push_back((i, Event::SyncStatus { ready: true }));
        }
    }

    fn exchange_hellos(&mut self) {
        if self.link {
            let (s0, s1) = (self.m[0].status(), self.m[1].status());
            self.queue.push_back((1, Event::PeerHello(s0)));
            self.queue.push_back((0, Event::PeerHello(s1)));
        }
        self.drain();
    }

    fn link_up(&mut self) {
        self.link = true;
        self.queue.push_back((0, Event::LinkUp));
        self.queue.push_back((1, Event::LinkUp));
        self.drain();
    }

    fn link_down(&mut self) {
        self.link = false;
        self.queue.clear();
        self.deliver(0, Event::LinkDown);
        self.deliver(1, Event::LinkDown);
    }

    fn fire(&mut self, who: usize, t: Timer) {
        assert!(self.m[who].timers.contains(&t), "{who} has no {t:?} running: {:?}", self.m[who]);
        self.deliver(who, Event::TimerExpired(t));
        self.drain();
    }

    /// Hellos until nothing changes; fires pending non-dead timers when stuck.
    fn settle(&mut self) {
        for _ in 0..50 {
            let before = (self.m[0].clone(), self.m[1].clone());
            self.exchange_hellos();
            self.exchange_hellos();
            if (self.m[0].clone(), self.m[1].clone()) == before {
                let pending = [0, 1].into_iter().find_map(|i| {
                    [Timer::Switchover, Timer::PostSwitchover, Timer::DampingPeriod, Timer::GuardPeriod]
                        .into_iter()
                        .find(|t| self.m[i].timers.contains(t))
                        .map(|t| (i, t))
                });
                match pending {
                    Some((i, t)) => self.fire(i, t),
                    None => return,
                }
            }
        }
        panic!("did not settle:\n{}", self.log.join("\n"));
    }

    fn states(&self) -> (State, State) {
        (self.m[0].state, self.m[1].state)
    }

    /// The resolved-pair invariants: exactly one chassis serves, it is Active, and its route
    /// modifier is the lower.
    fn assert_resolved(&self) {
        let servers: Vec<usize> = (0..2).filter(|&i| self.m[i].holds_service_address).collect();
        assert_eq!(servers.len(), 1, "exactly one serving: {:?}\n{}", self.states(), self.log.join("\n"));
        let a = servers[0];
        assert_eq!(self.m[a].state, State::Active, "{}", self.log.join("\n"));
        assert_eq!(self.m[1 - a].state, State::Standby, "{}", self.log.join("\n"));
        assert!(
            self.m[a].route_modifier < self.m[1 - a].route_modifier,
            "active rm {} standby rm {}",
            self.m[a].route_modifier,
            self.m[1 - a].route_modifier
        );
    }
}

fn pair_machine(id: &str, mode: ChassisMode, prio: u8, state: State, ready: bool, rm: u32) -> Machine {
    let mut m = new(id, mode, prio);
    m.state = state;
    m.holds_service_address = state.claims_service();
    m.ready = ready;
    m.route_modifier = rm;
    match state {
        State::PendingStandby => {
            m.timers.insert(Timer::Switchover);
        }
        State::PendingActive => {
            m.timers.insert(Timer::PostSwitchover);
        }
        _ => {}
    }
    m
}

#[test]
fn every_pair_of_states_resolves_to_one_active_on_reconnection() {
    let mut cases = 0;
    for sa in State::ALL {
        for sb in State::ALL {
            for (ra, rb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (rma, rmb) in [(3, 4), (4, 3), (7, 7), (40, 2)] {
                    for (ma, mb) in
                        [(ChassisMode::Primary, ChassisMode::Backup), (ChassisMode::Backup, ChassisMode::Backup)]
                    {
                        let a = pair_machine("n-a", ma, 10, sa, ra, rma);
                        let b = pair_machine("n-b", mb, 10, sb, rb, rmb);
                        let mut p = Pair::new(a, b);
                        p.link_up();
                        p.settle();
                        p.assert_resolved();
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 5 * 4 * 4 * 2);
}

#[test]
fn every_pair_of_states_with_one_chassis_in_forced_standby_resolves_to_the_other() {
    let mut cases = 0;
    for sa in State::ALL {
        for sb in State::ALL {
            for (ra, rb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (rma, rmb) in [(3, 4), (4, 3), (7, 7), (40, 2)] {
                    // n-a is the one every plain comparison prefers (primary, higher priority).
                    let a = pair_machine("n-a", ChassisMode::Primary, 1, sa, ra, rma);
                    let a = Machine { forced_standby: true, ..a };
                    let b = pair_machine("n-b", ChassisMode::Backup, 10, sb, rb, rmb);
                    let mut p = Pair::new(a, b);
                    p.link_up();
                    p.settle();
                    p.assert_resolved();
                    // The held chassis serves only if it already did (it never drops service;
                    // a Pending-Standby whose mate did not take over goes back to Active).
                    if p.m[0].state == State::Active {
                        assert!(
                            matches!(sa, State::Active | State::PendingActive | State::PendingStandby),
                            "forced standby took service from {sa}:\n{}",
                            p.log.join("\n")
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 5 * 5 * 4 * 4);
}

#[test]
fn both_start_together_primary_wins_then_priority_then_node_id() {
    for (a, b, winner) in [
        (("n-a", ChassisMode::Primary, 50), ("n-b", ChassisMode::Backup, 1), 0),
        (("n-a", ChassisMode::Backup, 50), ("n-b", ChassisMode::Primary, 1), 1),
        (("n-a", ChassisMode::Primary, 2), ("n-b", ChassisMode::Primary, 1), 1),
        (("n-a", ChassisMode::Backup, 1), ("n-b", ChassisMode::Backup, 2), 0),
        // Same mode and priority: the greater node id wins (the seed's higher MAC).
        (("00-02-43-03-1c-2b", ChassisMode::Primary, 5), ("00-02-43-03-01-3b", ChassisMode::Primary, 5), 0),
        (("n-a", ChassisMode::Backup, 5), ("n-b", ChassisMode::Backup, 5), 1),
    ] {
        let mut p = Pair::new(new(a.0, a.1, a.2), new(b.0, b.1, b.2));
        p.link_up();
        p.settle();
        p.assert_resolved();
        assert_eq!(p.m[winner].state, State::Active, "{a:?} {b:?}");
        assert_eq!(p.m[winner].route_modifier, ROUTE_MODIFIER_BASE);
        assert!(p.full_checkpoint_requests[1 - winner] >= 1, "the standby asks for a full checkpoint");
    }
}

#[test]
fn a_lone_chassis_takes_over_after_delay_and_dead_interval_and_a_late_mate_becomes_standby() {
    let mut prm = params("n-a", ChassisMode::Backup, 10);
    prm.delay_interval = Duration::from_secs(120);
    let (m, start) = Machine::new(prm);
    assert!(start.contains(&Action::StartTimer { timer: Timer::DelayInterval, after: Duration::from_secs(120) }));
    assert!(!start.iter().any(|a| matches!(a, Action::StartTimer { timer: Timer::DeadInterval, .. })));
    let (m, a) = run(&m, [Event::TimerExpired(Timer::DeadInterval)]);
    assert!(a.is_empty(), "no dead interval before the delay ends");
    let (m, a) = run(&m, [Event::TimerExpired(Timer::DelayInterval)]);
    assert_eq!(a, vec![Action::StartTimer { timer: Timer::DeadInterval, after: Duration::from_secs(30) }]);
    let (m, a) = run(&m, [Event::TimerExpired(Timer::DeadInterval)]);
    assert_eq!(m.state, State::Active);
    assert!(a.contains(&Action::TakeServiceAddress));
    assert!(a.contains(&Action::RaiseAlarm(Alarm::PeerUnreachable)));
    assert_eq!(m.route_modifier, ROUTE_MODIFIER_INITIAL_BACKUP, "a lone takeover keeps the high initial value");

    // The mate (primary!) starts later: it does not preempt.
    let mut p = Pair::new(m, new("n-b", ChassisMode::Primary, 1));
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Active, State::Standby));
    assert!(!p.m[0].alarms.contains(&Alarm::PeerUnreachable), "cleared by the mate's hello");
    assert_eq!(p.m[0].route_modifier, ROUTE_MODIFIER_BASE, "reset once coordinated");
}

/// Starts a resolved pair: n-a Active, n-b Standby and synchronised.
fn running_pair() -> Pair {
    let mut p = Pair::new(new("n-a", ChassisMode::Primary, 1), new("n-b", ChassisMode::Backup, 2));
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Active, State::Standby));
    assert!(p.m[1].ready);
    // Let the post-takeover guard period end.
    if p.m[0].timers.contains(&Timer::GuardPeriod) {
        p.fire(0, Timer::GuardPeriod);
    }
    p
}

#[test]
fn failover_on_dead_interval_then_split_brain_resolves_to_the_previous_active() {
    let mut p = running_pair();
    p.link_down();
    assert_eq!(p.states(), (State::Active, State::Standby), "a lost link alone changes nothing");
    p.fire(1, Timer::DeadInterval);
    p.fire(0, Timer::DeadInterval);
    assert_eq!(p.states(), (State::Active, State::Active), "split brain");
    assert!(p.m[0].route_modifier < p.m[1].route_modifier, "the previous Active keeps the lower route modifier");
    let requests = p.full_checkpoint_requests[1];
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Active, State::Standby));
    assert_eq!(p.full_checkpoint_requests[1], requests + 1, "the loser resyncs");
    assert!(p.log.iter().any(|l| l.contains("SplitBrainResolved { kept_active: false }")));
}

#[test]
fn a_standby_takes_over_from_a_dead_active_and_the_restarted_mate_rejoins_as_standby() {
    let mut p = running_pair();
    p.link_down();
    p.fire(1, Timer::DeadInterval);
    assert_eq!(p.m[1].state, State::Active);
    // n-a restarts.
    p.m[0] = new("n-a", ChassisMode::Primary, 1);
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
}

#[test]
fn a_synchronised_standby_takes_over_from_a_mate_that_restarts_within_the_dead_interval() {
    let mut p = running_pair();
    p.link_down();
    p.m[0] = new("n-a", ChassisMode::Primary, 1);
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active), "the sessions are on the standby");
}

#[test]
fn a_standby_in_forced_standby_does_not_take_over_from_a_dead_active_until_released() {
    let mut p = running_pair();
    p.deliver(1, Event::ForcedStandby(true));
    p.drain();
    assert!(p.m[0].peer.as_ref().is_some_and(|m| m.forced_standby), "the Active learns it from the hello");
    p.link_down();
    p.fire(1, Timer::DeadInterval);
    assert_eq!(p.m[1].state, State::Standby, "a simple failover must not change the version in service");
    assert!(!p.m[1].holds_service_address);
    assert!(p.m[1].alarms.contains(&Alarm::PeerUnreachable));
    // Released (the Director lifts it, or the operator): nobody serves, so it takes over now.
    let (n, a) = run(&p.m[1], [Event::ForcedStandby(false)]);
    assert_eq!(n.state, State::Active);
    assert!(a.contains(&Action::TakeServiceAddress));
}

#[test]
fn a_restarting_chassis_in_forced_standby_joins_as_standby_and_never_wins_alone() {
    // Both start; the one every comparison prefers is held: the other serves.
    let held = Machine { forced_standby: true, ..new("n-a", ChassisMode::Primary, 1) };
    let mut p = Pair::new(held, new("n-b", ChassisMode::Backup, 10));
    p.link_up();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
    // Alone, a held chassis waits as Standby after the dead interval.
    let lone = Machine { forced_standby: true, ..new("n-c", ChassisMode::Primary, 1) };
    let (lone, _) = run(&lone, [Event::TimerExpired(Timer::DeadInterval)]);
    assert_eq!(lone.state, State::Standby);
    assert!(!lone.holds_service_address);
}

#[test]
fn switchover_towards_a_forced_standby_is_refused_until_released_then_the_old_version_is_held() {
    let mut p = running_pair();
    p.deliver(1, Event::ForcedStandby(true));
    p.drain();
    p.deliver(0, Event::ValidateSwitchover);
    assert!(p.log.last().unwrap().contains("SwitchoverValidated(Err(PeerForcedStandby))"), "{:?}", p.log.last());
    p.deliver(0, Event::ManualSwitchover { force: true });
    assert!(p.log.last().unwrap().contains("PeerForcedStandby"), "not even forced");
    assert_eq!(p.states(), (State::Active, State::Standby));
    // A request that crossed the hello is refused by the held chassis itself.
    let (_, a) = run(&p.m[1], [Event::PeerSwitchoverRequest { force: true, reason: SwitchoverReason::Manual }]);
    assert_eq!(a, vec![Action::SendSwitchoverResponse { accepted: false, refusal: Some(Refusal::ForcedStandby) }]);
    // The Upgrade Director's failover: release the new version, switch over, hold the old one.
    p.deliver(1, Event::ForcedStandby(false));
    p.drain();
    assert_eq!(p.states(), (State::Active, State::Standby), "released, it waits for the switchover");
    p.deliver(0, Event::ManualSwitchover { force: false });
    p.drain();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
    p.deliver(0, Event::ForcedStandby(true));
    p.drain();
    // The new version fails: the old one does not come back into service by itself.
    p.link_down();
    p.fire(0, Timer::DeadInterval);
    assert_eq!(p.m[0].state, State::Standby);
}

#[test]
fn manual_switchover_needs_a_synchronised_standby_unless_forced() {
    let mut p = running_pair();
    p.wants_full = [false; 2];
    p.deliver(1, Event::SyncStatus { ready: false });
    p.drain();
    p.deliver(0, Event::ValidateSwitchover);
    assert!(p.log.last().unwrap().contains("SwitchoverValidated(Err(NotSynchronised))"));
    p.deliver(0, Event::ManualSwitchover { force: false });
    assert!(p.log.last().unwrap().contains("NotSynchronised"));
    assert_eq!(p.states(), (State::Active, State::Standby));
    // Forced: the standby accepts despite not being synchronised.
    p.deliver(0, Event::ManualSwitchover { force: true });
    p.drain();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
}

#[test]
fn manual_switchover_round_trip_keeps_route_modifiers_ordered_and_resets_at_threshold() {
    let mut p = running_pair();
    p.deliver(1, Event::SyncStatus { ready: true });
    p.deliver(0, Event::ValidateSwitchover);
    assert!(p.log.last().unwrap().contains("SwitchoverValidated(Ok(()))"));
    let mut seen_max = 0;
    for i in 0..80 {
        let active = if p.m[0].state == State::Active { 0 } else { 1 };
        p.deliver(1 - active, Event::SyncStatus { ready: true });
        p.drain();
        p.deliver(active, Event::ManualSwitchover { force: false });
        assert_eq!(p.m[active].state, State::PendingStandby);
        assert!(!p.m[active].holds_service_address);
        p.drain();
        p.settle();
        p.assert_resolved();
        assert_eq!(p.m[1 - active].state, State::Active, "switchover {i}");
        seen_max = seen_max.max(p.m[0].route_modifier).max(p.m[1].route_modifier);
    }
    assert!(seen_max <= ROUTE_MODIFIER_RESET_THRESHOLD + 1, "route modifier reset: max {seen_max}");
}

#[test]
fn switchover_without_answer_reverts_and_link_loss_while_pending_hands_over() {
    let mut p = running_pair();
    p.link = false; // messages are lost but neither side noticed yet
    p.deliver(0, Event::ManualSwitchover { force: false });
    assert_eq!(p.m[0].state, State::PendingStandby);
    p.fire(0, Timer::Switchover);
    assert_eq!(p.m[0].state, State::Active);
    assert!(p.m[0].alarms.contains(&Alarm::SwitchoverFailed));

    let mut p = running_pair();
    p.deliver(0, Event::ManualSwitchover { force: false });
    p.queue.clear();
    p.link_down();
    assert_eq!(p.m[0].state, State::Standby, "unknown outcome: stay off the address");
    p.fire(0, Timer::DeadInterval);
    assert_eq!(p.m[0].state, State::Active, "mate silent: take back over");
}

#[test]
fn standby_refuses_to_take_over_when_not_synchronised() {
    let m = configured(
        State::Standby,
        true,
        Some((status("n-a", ChassisMode::Primary, 1, 1, State::Active, false), true)),
        false,
        false,
        false,
        false,
        false,
        false,
        2,
    );
    let (n, a) = run(&m, [Event::PeerSwitchoverRequest { force: false, reason: SwitchoverReason::Manual }]);
    assert_eq!(n.state, State::Standby);
    assert_eq!(a, vec![Action::SendSwitchoverResponse { accepted: false, refusal: Some(Refusal::NotSynchronised) }]);
}

#[test]
fn monitor_failure_switches_over_once_and_is_non_revertible() {
    let mut p = running_pair();
    p.deliver(0, Event::MonitorDown(AAA));
    p.drain();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
    assert!(p.m[1].non_revertible);
    if p.m[1].timers.contains(&Timer::GuardPeriod) {
        p.fire(1, Timer::GuardPeriod);
    }
    // The new Active's own monitor fails too: it stays.
    p.deliver(1, Event::MonitorDown(AAA));
    p.drain();
    p.settle();
    assert_eq!(p.states(), (State::Standby, State::Active));
    assert!(p.m[1].alarms.contains(&Alarm::MonitorFailure(AAA)));
    // `srp reset-auth-probe-fail` clears the flag: now it switches back.
    p.deliver(1, Event::ResetMonitorFailure);
    p.drain();
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Active, State::Standby));
}

#[test]
fn monitor_failure_in_guard_period_waits_for_damping() {
    let mut p = running_pair();
    p.deliver(0, Event::LocalFailureRecovered);
    assert!(p.m[0].timers.contains(&Timer::GuardPeriod));
    p.deliver(0, Event::MonitorDown(AAA));
    assert_eq!(p.m[0].state, State::Active);
    assert!(p.m[0].timers.contains(&Timer::DampingPeriod));
    // Recovers within the damping period: no switchover.
    p.deliver(0, Event::MonitorUp(AAA));
    assert!(!p.m[0].timers.contains(&Timer::DampingPeriod));
    // Fails again and stays down past the damping period (still inside the guard period).
    p.deliver(0, Event::MonitorDown(AAA));
    p.fire(0, Timer::DampingPeriod);
    assert!(p.log.iter().any(|l| l.contains("SendSwitchoverRequest { force: true, reason: Monitor")));
    p.settle();
    p.assert_resolved();
    assert_eq!(p.states(), (State::Standby, State::Active));
}

#[test]
fn monitor_failure_in_guard_period_without_damping_waits_for_the_guard_to_end() {
    let mut p = running_pair();
    p.m[0].params.damping_period = Duration::ZERO;
    p.deliver(0, Event::LocalFailureRecovered);
    p.deliver(0, Event::MonitorDown(AAA));
    assert_eq!(p.m[0].state, State::Active);
    assert!(!p.m[0].timers.contains(&Timer::DampingPeriod));
    p.fire(0, Timer::GuardPeriod);
    assert_eq!(p.states(), (State::Standby, State::Active));
}

#[test]
fn monitor_failure_without_a_standby_only_alarms() {
    let mut p = running_pair();
    p.link_down();
    p.deliver(0, Event::MonitorDown(AAA));
    assert_eq!(p.m[0].state, State::Active);
    assert!(p.m[0].alarms.contains(&Alarm::MonitorFailure(AAA)));
}

#[test]
fn monitor_events_are_ignored_while_not_serving() {
    let mut p = running_pair();
    p.deliver(1, Event::MonitorDown(AAA));
    assert!(p.m[1].monitors_down.is_empty());
    assert!(p.m[1].alarms.is_empty());
}

#[test]
fn duplicate_node_id_and_stale_timers_are_ignored() {
    let m = new("n-a", ChassisMode::Primary, 1);
    let (n, a) = run(&m, [Event::PeerHello(status("n-a", ChassisMode::Primary, 1, 1, State::Active, true))]);
    assert_eq!(n.state, State::Init);
    assert_eq!(a, vec![Action::RaiseAlarm(Alarm::DuplicateNodeId)]);
    let (n2, a) = run(&n, [Event::TimerExpired(Timer::Switchover), Event::TimerExpired(Timer::GuardPeriod)]);
    assert_eq!(n2, n);
    assert!(a.is_empty());
}

#[test]
fn post_switchover_can_be_terminated() {
    let m = configured(State::PendingActive, true, None, true, false, false, false, false, false, 2);
    let (n, a) = run(&m, [Event::TerminatePostProcess]);
    assert_eq!(n.state, State::Active);
    assert!(a.contains(&Action::CancelTimer(Timer::PostSwitchover)));
    let (n, _) = run(&m, [Event::TimerExpired(Timer::PostSwitchover)]);
    assert_eq!(n.state, State::Active);
}

#[test]
fn state_names_follow_the_seed() {
    let names: Vec<String> = State::ALL.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, ["Init", "Active", "Standby", "Pending-Active", "Pending-Standby"]);
    assert_eq!(serde_json::to_string(&State::PendingStandby).unwrap(), "\"Pending-Standby\"");
}
