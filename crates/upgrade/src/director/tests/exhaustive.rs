//! Exhaustive exploration of one cluster's reachable states, for each cluster shape (a manager
//! cluster of two servers, engine clusters of one, two and 2+1 servers), in both directions.
//!
//! From "every server on V1", every event the world can send is applied to every state reached:
//! each legal action started, each running action progressing, succeeding, failing (retryable or
//! leaving a Zombie), a server becoming unreachable or indeterminate and coming back, a Zombie
//! repaired, a manager failover with the reports that resolve the actions it orphaned. Faults
//! are explored one at a time (no new fault while one is unresolved). In every state reached:
//! * every candidate action is either legal, and then started with [`Effect::Execute`], or
//!   refused with a reason, and then nothing changes;
//! * the legal actions are exactly the preferred one plus the "Advanced" ones, in either
//!   direction, and none while an action runs;
//! * invariants: one Active server; at most one server out of service, never the Active of a
//!   cluster of two or more, and without faults the Active serves; forced standby exactly on the
//!   servers that are not on the Active's release (or are out of service, or Zombies), except the
//!   target of a running failover, which is released to take over; the alarms
//!   raised are exactly those whose condition holds;
//! * without faults and with no action running, both directions have a preferred action unless
//!   done, and taking the preferred action repeatedly reaches "every server on V2" (upgrade) and
//!   "every server on V1" (backout), with every alarm cleared.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use super::*;
use tollgate_alarms as alarms;

/// What identifies a state for the exploration (not log IDs, times or alarm details), hashed.
fn key(d: &Director) -> u64 {
    let c = &d.topology.clusters[0];
    let servers: Vec<_> = c
        .servers
        .iter()
        .map(|s| {
            (
                &s.running_release,
                &s.previous_release,
                s.ha_role,
                (s.forced_standby, s.reachable, s.zombie, s.awaiting_contact, s.out_of_service),
            )
        })
        .collect();
    let running = d.running.values().next().map(|r| (&r.action, r.step, r.orphaned, &r.before));
    let mut h = std::hash::DefaultHasher::new();
    (servers, &c.config_release, running, d.failures.keys().collect::<Vec<_>>()).hash(&mut h);
    h.finish()
}

/// Servers with a fault, plus an orphaned action.
fn faults(d: &Director) -> usize {
    let c = &d.topology.clusters[0];
    c.servers.iter().filter(|s| !s.reachable || s.zombie || s.awaiting_contact).count()
        + d.running.values().filter(|r| r.orphaned).count()
}

/// A report repeating what the Director knows of `s`.
fn report_of(s: &Server) -> ServerReport {
    ServerReport {
        reachable: true,
        running_release: Some(s.running_release.clone()),
        previous_release: s.previous_release.clone(),
        ha_role: Some(s.ha_role),
        forced_standby: Some(s.forced_standby),
        staged: Some(s.staged.clone()),
        busy: false,
    }
}

fn reported(hostname: &str, report: ServerReport) -> Event {
    Event::ServerReported { hostname: hostname.to_string(), report, at: t0() }
}

fn successors(d: &Director) -> Vec<(String, Director)> {
    let at = t0();
    let next = |event: Event| {
        let mut n = d.clone();
        n.apply(event);
        n
    };
    let mut out = Vec::new();
    let c = &d.topology.clusters[0];
    let f = faults(d);
    for (i, action) in d.candidate_actions(c).into_iter().enumerate() {
        if d.check(&action).is_ok() {
            // Alternate the modes: both are logged.
            let mode = if i % 2 == 0 { Mode::Manual { user: "admin".into() } } else { Mode::Automatic };
            out.push((format!("start {action}"), next(Event::ActionStarted { action, mode, at })));
        }
    }
    if let Some(ra) = d.running.values().next() {
        let id = ra.id;
        out.push(("succeed".into(), next(Event::ActionSucceeded { id, at })));
        let failed = |indeterminate| Event::ActionFailed { id, at, reason: "boom".into(), indeterminate };
        out.push(("fail".into(), next(failed(false))));
        if ra.action.kind.is_server_action() && f == 0 {
            out.push(("fail, indeterminate".into(), next(failed(true))));
        }
        let steps = ra.action.kind.steps();
        if let Some(step) = steps.iter().position(|s| *s == ra.step).and_then(|p| steps.get(p + 1)) {
            out.push((format!("progress {step:?}"), next(Event::ActionProgress { id, step: *step, at })));
        }
        if !ra.orphaned && f == 0 {
            out.push(("manager failover".into(), next(Event::ManagerFailover { at })));
        }
        let target = ra.action.server.clone().unwrap_or_default();
        if let (true, Some(s)) = (ra.orphaned, c.server(&target)) {
            let mut busy = report_of(s);
            busy.busy = true;
            out.push(("orphan: busy".into(), next(reported(&target, busy))));
            let mut lost = report_of(s);
            lost.running_release = None;
            out.push(("orphan: indeterminate".into(), next(reported(&target, lost))));
            if ra.action.kind.is_server_action() {
                let after = if ra.action.kind == ActionKind::InitiateUpgrade {
                    Some(ra.target.clone())
                } else {
                    ra.before.previous.clone()
                };
                let mut done = report_of(s);
                done.running_release = after;
                done.previous_release = Some(ra.before.running.clone());
                out.push(("orphan: done".into(), next(reported(&target, done))));
                let mut same = report_of(s);
                same.running_release = Some(ra.before.running.clone());
                same.previous_release = ra.before.previous.clone();
                out.push(("orphan: not done".into(), next(reported(&target, same))));
            } else {
                let mut active = report_of(s);
                active.ha_role = Some(HaRole::Active);
                out.push(("orphan: failed over".into(), next(reported(&target, active))));
                out.push(("orphan: not failed over".into(), next(reported(&target, report_of(s)))));
            }
        }
    }
    let orphan_target = d.running.values().find(|r| r.orphaned).and_then(|r| r.action.server.clone());
    for s in &c.servers {
        if f == 0 {
            out.push((format!("{} unreachable", s.hostname), next(reported(&s.hostname, ServerReport::unreachable()))));
            let mut lost = report_of(s);
            lost.running_release = None;
            out.push((format!("{} indeterminate", s.hostname), next(reported(&s.hostname, lost))));
        }
        if (!s.reachable || s.awaiting_contact) && !s.zombie && orphan_target.as_deref() != Some(s.hostname.as_str()) {
            out.push((format!("{} back", s.hostname), next(reported(&s.hostname, report_of(s)))));
        }
        if s.zombie {
            let repaired = Event::ZombieRepaired { hostname: s.hostname.clone(), user: "support".into(), at };
            out.push((format!("{} repaired", s.hostname), next(repaired)));
        }
    }
    let lone_unreachable = c.servers.iter().any(|s| !s.reachable && !s.zombie && !s.awaiting_contact);
    if f == 1 && d.running.is_empty() && lone_unreachable {
        out.push(("manager failover, a server unreachable".into(), next(Event::ManagerFailover { at })));
    }
    out
}

fn check_invariants(d: &Director, path: &str) {
    let c = &d.topology.clusters[0];
    let actives: Vec<&Server> = c.servers.iter().filter(|s| s.ha_role == HaRole::Active).collect();
    assert_eq!(actives.len(), 1, "{path}: one Active");
    let active = actives[0];
    let oos: Vec<&Server> = c.servers.iter().filter(|s| s.out_of_service).collect();
    assert!(oos.len() <= 1, "{path}: two servers out of service");
    if let Some(s) = oos.first() {
        let ra = d.running.values().next().unwrap_or_else(|| panic!("{path}: OOS without an action"));
        assert!(ra.action.kind.is_server_action() && ra.action.scope_name() == s.hostname, "{path}");
        assert!(ra.step.takes_server_out(), "{path}");
    }
    if c.servers.len() > 1 {
        assert!(!active.out_of_service, "{path}: the Active was taken out of service");
        if faults(d) == 0 {
            assert!(active.in_service(), "{path}: no fault, yet the Active does not serve");
        }
    }
    let failover_target = d
        .running
        .values()
        .find(|r| matches!(r.action.kind, ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion))
        .and_then(|r| r.action.server.as_deref());
    for s in c.servers.iter().filter(|s| s.ha_role != HaRole::Active) {
        // The target of a running failover is released: it is to take over.
        let want = failover_target != Some(s.hostname.as_str())
            && (s.zombie || s.out_of_service || s.running_release != active.running_release);
        assert_eq!(s.forced_standby, want, "{path}: forced standby of {}", s.hostname);
    }
    let desired = d.desired_alarms();
    assert_eq!(d.raised, desired, "{path}: raised alarms");
    let has = |def: alarms::AlarmDef, scope: &str| d.raised.contains(&(def.id, scope.to_string()));
    assert_eq!(has(alarms::CLUSTER_MIXED_VERSION, &c.name), c.is_mixed_version(), "{path}");
    for s in &c.servers {
        let h = s.hostname.as_str();
        let acting = d.running.values().any(|r| r.action.kind.is_server_action() && r.action.scope_name() == h);
        assert_eq!(has(alarms::UPGRADE_IN_PROGRESS, h), acting, "{path}: 70507 {h}");
        assert_eq!(has(alarms::SERVER_FORCED_STANDBY, h), s.forced_standby, "{path}: 70503 {h}");
        assert_eq!(has(alarms::ZOMBIE_SERVER, h), s.zombie, "{path}: 70508 {h}");
        assert_eq!(has(alarms::LOST_COMMUNICATION_WITH_SERVER, h), !s.reachable, "{path}: 31283 {h}");
    }
}

fn check_actions(d: &Director, path: &str) -> (usize, usize) {
    let c = &d.topology.clusters[0];
    let mut legal = BTreeSet::new();
    let mut refused = 0;
    // Refused actions must leave the state as it was: one copy serves them all.
    let mut scratch = d.clone();
    for action in d.candidate_actions(c) {
        let checked = d.check(&action);
        let mut fresh;
        let n = if checked.is_ok() {
            fresh = d.clone();
            &mut fresh
        } else {
            &mut scratch
        };
        let effects = n.apply(Event::ActionStarted { action: action.clone(), mode: Mode::Automatic, at: t0() });
        match checked {
            Ok(()) => {
                assert!(
                    matches!(effects.last(), Some(Effect::Execute { action: a, .. }) if *a == action),
                    "{path}: {action} legal but not executed"
                );
                legal.insert(action);
            }
            Err(r) => {
                assert!(!r.reason.is_empty(), "{path}: {action} refused without a reason");
                assert!(
                    matches!(effects.as_slice(), [Effect::Refused { action: Some(a), refusal }] if *a == action && *refusal == r),
                    "{path}: {action} refused: {effects:?}"
                );
                assert_eq!(*n, *d, "{path}: the refused {action} changed the state");
                refused += 1;
            }
        }
    }
    if !d.running.is_empty() {
        assert!(legal.is_empty(), "{path}: actions legal while one runs: {legal:?}");
    }
    for direction in [Direction::Upgrade, Direction::Backout] {
        let advice = d.advise(&c.name, direction).unwrap();
        let mut offered: BTreeSet<Action> = advice.others.iter().map(|p| p.action.clone()).collect();
        if let Some(p) = &advice.preferred {
            assert!(legal.contains(&p.action), "{path}: preferred {} is not legal", p.action);
            assert!(offered.insert(p.action.clone()), "{path}: preferred also among the others");
        }
        assert_eq!(offered, legal, "{path}: {direction:?} preferred + Advanced != legal");
        if advice.done {
            assert!(advice.preferred.is_none() && advice.waiting.is_none(), "{path}");
        }
        if d.running.is_empty() && faults(d) == 0 {
            assert!(advice.done || advice.preferred.is_some(), "{path}: {direction:?} stuck: {:?}", advice.waiting);
        }
    }
    (legal.len(), refused)
}

/// Takes the preferred action (executed successfully) until done; the state reached and whether
/// any action was taken.
fn converge(d: &Director, direction: Direction, path: &str) -> (Director, bool) {
    let mut d = d.clone();
    let name = d.topology.clusters[0].name.clone();
    for taken in 0..12 {
        let advice = d.advise(&name, direction).unwrap();
        if advice.done {
            return (d, taken > 0);
        }
        let p = advice.preferred.unwrap_or_else(|| panic!("{path}: {direction:?} stuck: {:?}", advice.waiting));
        let effects = d.apply(Event::ActionStarted { action: p.action.clone(), mode: Mode::Automatic, at: t0() });
        let Some(Effect::Execute { id, .. }) = effects.last() else { panic!("{path}: {} not executed", p.action) };
        let id = *id;
        for step in p.action.kind.steps().iter().skip(1) {
            d.apply(Event::ActionProgress { id, step: *step, at: t0() });
            check_invariants(&d, path);
        }
        d.apply(Event::ActionSucceeded { id, at: t0() });
        check_invariants(&d, path);
    }
    panic!("{path}: {direction:?} did not converge");
}

fn check_convergence(d: &Director, path: &str) {
    if !d.running.is_empty() || faults(d) != 0 {
        return;
    }
    let (up, acted) = converge(d, Direction::Upgrade, path);
    let c = &up.topology.clusters[0];
    assert!(c.servers.iter().all(|s| s.running_release == v(V2) && !s.forced_standby), "{path}: upgrade");
    assert!(c.is_manager() || c.config_release == Some(v(V2)), "{path}: upgrade without reapply");
    check_cleared(&up, acted, &format!("{path}: after the upgrade"));
    let (back, acted) = converge(d, Direction::Backout, path);
    let c = &back.topology.clusters[0];
    assert!(c.servers.iter().all(|s| s.running_release == v(V1) && !s.forced_standby), "{path}: backout");
    assert!(c.is_manager() || c.config_release == Some(v(V1)), "{path}: backout without reapply");
    check_cleared(&back, acted, &format!("{path}: after the backout"));
}

/// Every alarm is cleared once the cluster is complete, except an earlier failure when nothing
/// was done since (the cluster was already complete: the operator still has to see it failed).
fn check_cleared(d: &Director, acted: bool, path: &str) {
    let left: Vec<&(u32, String)> =
        d.raised.iter().filter(|(id, _)| acted || *id != alarms::UPGRADE_OPERATION_FAILED.id).collect();
    assert!(left.is_empty(), "{path}: alarms left: {left:?}");
}

struct Stats {
    states: usize,
    transitions: usize,
    legal: usize,
    refused: usize,
    converged_from: usize,
}

fn explore(shape: Shape) -> Stats {
    let mut start = single(shape);
    start.resync(t0());
    let mut seen = HashSet::from([key(&start)]);
    let mut queue = VecDeque::from([(start, String::from("all on V1"))]);
    let mut stats = Stats { states: 0, transitions: 0, legal: 0, refused: 0, converged_from: 0 };
    while let Some((d, path)) = queue.pop_front() {
        stats.states += 1;
        check_invariants(&d, &path);
        let (legal, refused) = check_actions(&d, &path);
        stats.legal += legal;
        stats.refused += refused;
        if d.running.is_empty() && faults(&d) == 0 {
            check_convergence(&d, &path);
            stats.converged_from += 1;
        }
        for (label, n) in successors(&d) {
            stats.transitions += 1;
            if seen.insert(key(&n)) {
                // Keep the path short: the last few events are enough to find a failure.
                let tail: Vec<&str> = path.rsplit(" > ").take(6).collect();
                let mut tail: Vec<&str> = tail.into_iter().rev().collect();
                tail.push(&label);
                queue.push_back((n, tail.join(" > ")));
            }
        }
    }
    stats
}

fn run(shape: Shape, min_states: usize) {
    let s = explore(shape);
    eprintln!(
        "{shape:?}: {} states, {} transitions, {} legal and {} refused actions checked, convergence from {} states",
        s.states, s.transitions, s.legal, s.refused, s.converged_from
    );
    assert!(s.states >= min_states, "{shape:?}: only {} states reached", s.states);
}

#[test]
fn every_state_of_a_two_server_manager_cluster() {
    run(Shape::Manager2, 50);
}

#[test]
fn every_state_of_a_two_server_engine_cluster() {
    run(Shape::Engine2, 50);
}

#[test]
fn every_state_of_a_georedundant_engine_cluster() {
    run(Shape::Engine3, 200);
}

#[test]
fn every_state_of_a_one_server_engine_cluster() {
    run(Shape::Engine1, 10);
}
