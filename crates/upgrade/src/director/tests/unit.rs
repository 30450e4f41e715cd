//! Scenario tests: the seed's sequences, logs, alarms, failures, zombies, manager failover.

use super::*;
use crate::topology::{ClusterStatus, ServerState, alarm_severities};

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

#[test]
fn preferred_sequences_follow_the_seed() {
    // 2+1: standby, failover, reapply, spare, remaining; backout in reverse.
    let mut h = Harness::new(single(Shape::Engine3));
    let up = h.drive("mpe1", Direction::Upgrade);
    assert_eq!(
        names(&up),
        [
            "Initiate upgrade mpe1-b",
            "Failover to new version mpe1",
            "Reapply configuration mpe1",
            "Initiate upgrade mpe1-c",
            "Initiate upgrade mpe1-a"
        ]
    );
    assert_eq!(up[1].server.as_deref(), Some("mpe1-b"));
    assert!(h.d.topology().servers().all(|s| s.running_release == v(V2) && !s.forced_standby));
    assert_eq!(h.alarm_names(), vec![], "every upgrade alarm is cleared once the cluster is complete");
    let back = h.drive("mpe1", Direction::Backout);
    assert_eq!(
        names(&back),
        [
            "Initiate backout mpe1-a",
            "Initiate backout mpe1-c",
            "Failover to old version mpe1",
            "Reapply configuration mpe1",
            "Initiate backout mpe1-b"
        ]
    );
    assert!(h.d.topology().servers().all(|s| s.running_release == v(V1) && s.previous_release == Some(v(V2))));
    assert_eq!(h.d.topology().clusters[0].active().unwrap().hostname, "mpe1-a");
    assert_eq!(h.alarm_names(), vec![]);

    // 2 servers, manager: no reapply (the manager holds the configuration).
    let mut h = Harness::new(single(Shape::Manager2));
    let up = h.drive("cmp1", Direction::Upgrade);
    assert_eq!(names(&up), ["Initiate upgrade cmp1-b", "Failover to new version cmp1", "Initiate upgrade cmp1-a"]);
    let back = h.drive("cmp1", Direction::Backout);
    assert_eq!(names(&back), ["Initiate backout cmp1-a", "Failover to old version cmp1", "Initiate backout cmp1-b"]);

    // 2 servers, engine: reapply after the failover.
    let mut h = Harness::new(single(Shape::Engine2));
    let up = h.drive("mpe1", Direction::Upgrade);
    assert_eq!(names(&up)[2], "Reapply configuration mpe1");
    assert_eq!(up.len(), 4);

    // 1 server: upgraded in place.
    let mut h = Harness::new(single(Shape::Engine1));
    let up = h.drive("mpe1", Direction::Upgrade);
    assert_eq!(names(&up), ["Initiate upgrade mpe1-a", "Reapply configuration mpe1"]);
    assert!(h.d.proposal(&up[0], None).description.contains("its service stops"));
}

#[test]
fn a_failover_releases_its_target_from_forced_standby_and_then_holds_the_old_version() {
    let mut h = Harness::new(single(Shape::Engine2));
    let first = h.d.advise("mpe1", Direction::Upgrade).unwrap().preferred.unwrap().action;
    h.run(&first).unwrap();
    assert_eq!(h.forced.get("mpe1-b"), Some(&true), "the upgraded standby runs another version than the Active");
    let failover = h.d.advise("mpe1", Direction::Upgrade).unwrap().preferred.unwrap().action;
    assert_eq!(failover.kind, ActionKind::FailoverToNewVersion);
    let id = h.start(&failover).unwrap();
    assert_eq!(h.forced.get("mpe1-b"), Some(&false), "released so that its SRP chassis accepts the switchover");
    assert!(
        h.log.values().any(|e| e.description.contains("mpe1-b released from forced standby")),
        "the release is in the upgrade log"
    );
    // A report from the agent while the switchover runs does not put it back.
    let at = h.tick(1);
    let report = ServerReport {
        reachable: true,
        running_release: Some(v(V2)),
        previous_release: Some(v(V1)),
        ha_role: Some(HaRole::Standby),
        forced_standby: Some(false),
        staged: None,
        busy: false,
    };
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report, at });
    assert_eq!(h.forced.get("mpe1-b"), Some(&false));
    let at = h.tick(1);
    h.feed(Event::ActionSucceeded { id, at });
    assert_eq!(h.forced.get("mpe1-a"), Some(&true), "the old version is held once the new one serves");
    assert_eq!(h.forced.get("mpe1-b"), Some(&false));
}

#[test]
fn a_report_observed_before_the_last_action_ended_is_ignored() {
    let mut h = Harness::new(single(Shape::Engine2));
    h.run(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    let asked_before = h.tick(1);
    h.run(&Action::failover_to_new_version("mpe1", "mpe1-b")).unwrap();
    assert_eq!(h.d.topology().clusters[0].active().unwrap().hostname, "mpe1-b");
    // The poll asked mpe1-a before the switchover and delivers its answer after the success.
    let report = |role| ServerReport {
        reachable: true,
        running_release: Some(v(V1)),
        previous_release: Some(v(V0)),
        ha_role: Some(role),
        forced_standby: Some(false),
        staged: None,
        busy: false,
    };
    let effects =
        h.feed(Event::ServerReported { hostname: "mpe1-a".into(), report: report(HaRole::Active), at: asked_before });
    assert!(
        matches!(effects.as_slice(), [Effect::Ignored { reason }] if reason.contains("observed before")),
        "{effects:?}"
    );
    assert_eq!(h.d.topology().clusters[0].active().unwrap().hostname, "mpe1-b", "the stale role is not taken");
    let next = h.d.advise("mpe1", Direction::Upgrade).unwrap().preferred.unwrap().action;
    assert_ne!(next.kind, ActionKind::FailoverToNewVersion, "no second failover from a stale report");
    // A report observed afterwards is taken.
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-a".into(), report: report(HaRole::Standby), at });
    assert_eq!(h.d.topology().find_server("mpe1-a").unwrap().1.running_release, v(V1));
}

#[test]
fn labels_carry_next_and_back() {
    let h = Harness::new(single(Shape::Manager2));
    let up = h.d.advise("cmp1", Direction::Upgrade).unwrap();
    assert_eq!(up.button, "Start Upgrade");
    let p = up.preferred.unwrap();
    assert_eq!(p.label, "Initiate upgrade cmp1-b (next)");
    assert_eq!(p.name, "Initiate upgrade");
    assert_eq!(p.targets, ["cmp1-b"]);
    let back = h.d.advise("cmp1", Direction::Backout).unwrap();
    assert!(back.done && back.preferred.is_none(), "nothing to back out on a cluster that was never upgraded");
    assert!(up.others.is_empty(), "from all on V1 the only legal action is the preferred one: {:?}", up.others);
    let mut h = h;
    h.run(&Action::initiate_upgrade("cmp1", "cmp1-b")).unwrap();
    let back = h.d.advise("cmp1", Direction::Backout).unwrap();
    assert_eq!(back.button, "Start Rollback");
    assert_eq!(back.preferred.unwrap().label, "Initiate backout cmp1-b (back)");
    let up = h.d.advise("cmp1", Direction::Upgrade).unwrap();
    assert_eq!(up.button, "Continue Upgrade");
    assert_eq!(up.preferred.as_ref().unwrap().label, "Failover to new version cmp1 (next)");
    assert_eq!(
        up.others.iter().map(|p| p.label.as_str()).collect::<Vec<_>>(),
        ["Initiate backout cmp1-b"],
        "the Advanced menu holds the reverse direction"
    );
    h.run(&Action::failover_to_new_version("cmp1", "cmp1-b")).unwrap();
    h.run(&Action::failover_to_old_version("cmp1", "cmp1-a")).unwrap();
    assert_eq!(h.d.advise("cmp1", Direction::Upgrade).unwrap().button, "Resume Upgrade");
    assert_eq!(h.d.advise("cmp1", Direction::Backout).unwrap().button, "Continue Rollback");
    h.drive("cmp1", Direction::Backout);
    assert_eq!(h.d.advise("cmp1", Direction::Upgrade).unwrap().button, "Start Upgrade");
}

#[test]
fn the_upgrade_log_has_the_seeds_shape() {
    let mut h = Harness::new(single(Shape::Manager2));
    h.run(&Action::initiate_upgrade("cmp1", "cmp1-b")).unwrap();
    h.run(&Action::failover_to_new_version("cmp1", "cmp1-b")).unwrap();
    h.run(&Action::initiate_upgrade("cmp1", "cmp1-a")).unwrap();
    let rows: Vec<(u64, u64, &str, LogScope, &str, LogResult, LogMode)> = h
        .log
        .values()
        .map(|e| (e.id, e.parent_id, e.action_name.as_str(), e.scope, e.hostname.as_str(), e.result, e.mode))
        .collect();
    use LogMode::{Automatic as A, Manual as M};
    use LogResult::Success as S;
    use LogScope::{Cluster as C, Server as Sv};
    let modify = "Modify the role/replication attributes of the server";
    assert_eq!(
        rows,
        vec![
            (1, 0, "Preflight Check", Sv, "cmp1-b", S, M),
            (2, 1, "Upgrading server", Sv, "cmp1-b", S, A),
            (3, 1, modify, C, "cmp1", S, A),
            (4, 1, "Wait for replication to synchronize", Sv, "cmp1-b", S, A),
            (5, 0, "Failover to new version", C, "cmp1", S, M),
            (6, 5, modify, C, "cmp1", S, A),
            (7, 5, modify, C, "cmp1", S, A),
            (8, 0, "Preflight Check", Sv, "cmp1-a", S, M),
            (9, 8, "Upgrading server", Sv, "cmp1-a", S, A),
            (10, 8, "Wait for replication to synchronize", Sv, "cmp1-a", S, A),
            (11, 8, modify, C, "cmp1", S, A),
        ]
    );
    assert!(h.log[&6].description.contains("cmp1-b released from forced standby"), "when the failover starts");
    assert!(h.log[&7].description.contains("cmp1-a placed in forced standby"), "once it succeeded");
    let first = &h.log[&1];
    assert!(first.description.starts_with("User initiated action: Initiate upgrade cmp1-b (by admin)"));
    assert_eq!(h.log[&2].duration_text(), "0:05:00");
    assert!(h.log[&11].description.contains("cmp1-a released from forced standby"));
    // The audit log holds what the operator did, not the automatic steps.
    let ops: Vec<&str> = h.audit.iter().map(|a| a.operation.as_str()).collect();
    assert_eq!(ops, ["Initiate upgrade cmp1-b", "Failover to new version cmp1", "Initiate upgrade cmp1-a"]);
    assert!(h.audit.iter().all(|a| a.outcome == AuditOutcome::Accepted && a.user == "admin"));
}

#[test]
fn alarms_follow_the_seeds_expected_lists() {
    let mut h = Harness::new(single(Shape::Engine3));
    let id = h.start(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    assert_eq!(h.alarm_names(), vec![("mpe1-b".into(), "UPGRADE_IN_PROGRESS")]);
    let at = h.tick(1);
    h.feed(Event::ActionProgress { id, step: Step::UpgradingServer, at });
    assert_eq!(h.d.topology().find_server("mpe1-b").unwrap().1.state(), ServerState::Oos);
    assert_eq!(h.forced.get("mpe1-b"), Some(&true), "forced standby before the server leaves");
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report: ServerReport::unreachable(), at });
    assert!(h.alarm_names().contains(&("mpe1-b".into(), "LOST_COMMUNICATION_WITH_SERVER")));
    let c = h.d.topology().cluster("mpe1").unwrap().clone();
    assert_eq!(c.status(h.d.target(), alarm_severities(&c, &h.alarms.active())), ClusterStatus::Critical);
    let at = h.tick(20);
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    report.running_release = Some(v(V2));
    report.busy = true;
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report, at });
    let at = h.tick(1);
    h.feed(Event::ActionSucceeded { id, at });
    // Standby upgraded, Active still on V1: mixed version, forced standby, no replication alarm.
    assert_eq!(
        h.alarm_names(),
        vec![
            ("mpe1".into(), "CLUSTER_MIXED_VERSION"),
            ("mpe1-b".into(), "SERVER_FORCED_STANDBY"),
            ("system".into(), "SYSTEM_MIXED_VERSION")
        ]
    );
    let c = h.d.topology().cluster("mpe1").unwrap().clone();
    assert_eq!(c.status(h.d.target(), alarm_severities(&c, &h.alarms.active())), ClusterStatus::Minor);
    h.run(&Action::failover_to_new_version("mpe1", "mpe1-b")).unwrap();
    // Active on V2: the V1 servers are in forced standby and do not receive the session state.
    assert_eq!(
        h.alarm_names(),
        vec![
            ("mpe1".into(), "CLUSTER_MIXED_VERSION"),
            ("mpe1-a".into(), "REPLICATION_INHIBITED"),
            ("mpe1-a".into(), "SERVER_FORCED_STANDBY"),
            ("mpe1-c".into(), "REPLICATION_INHIBITED"),
            ("mpe1-c".into(), "SERVER_FORCED_STANDBY"),
            ("system".into(), "SYSTEM_MIXED_VERSION")
        ]
    );
    assert_eq!(h.d.topology().find_server("mpe1-a").unwrap().1.state(), ServerState::ForcedStandby);
}

#[test]
fn a_failed_action_raises_70506_and_can_be_retried() {
    let mut h = Harness::new(single(Shape::Manager2));
    let action = Action::initiate_upgrade("cmp1", "cmp1-b");
    let id = h.start(&action).unwrap();
    let at = h.tick(1);
    h.feed(Event::ActionFailed { id, at, reason: "preflight: disk full".into(), indeterminate: false });
    assert!(h.alarm_names().contains(&("cmp1-b".into(), "UPGRADE_OPERATION_FAILED")));
    assert_eq!(h.log[&1].result, LogResult::Failure);
    assert!(h.log[&1].description.ends_with(": preflight: disk full"));
    assert_eq!(h.d.topology().find_server("cmp1-b").unwrap().1.state(), ServerState::Standby);
    let advice = h.d.advise("cmp1", Direction::Upgrade).unwrap();
    assert_eq!(advice.preferred.unwrap().action, action, "the same action is offered again");
    h.run(&action).unwrap();
    assert!(!h.alarm_names().iter().any(|(_, n)| *n == "UPGRADE_OPERATION_FAILED"), "a success clears it");
    // Stale reports about the finished action are ignored.
    let effects = h.feed(Event::ActionSucceeded { id, at });
    assert!(matches!(effects.as_slice(), [Effect::Ignored { .. }]));
}

#[test]
fn an_indeterminate_server_is_a_zombie_until_repaired() {
    let mut h = Harness::new(single(Shape::Engine3));
    let id = h.start(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    let at = h.tick(10);
    h.feed(Event::ActionFailed { id, at, reason: "install script crashed".into(), indeterminate: true });
    let (_, b) = h.d.topology().find_server("mpe1-b").unwrap();
    assert_eq!(b.state(), ServerState::Zombie);
    assert!(b.forced_standby, "a Zombie may not take over");
    assert!(h.alarm_names().contains(&("mpe1-b".into(), "ZOMBIE_SERVER")));
    for action in [Action::initiate_upgrade("mpe1", "mpe1-b"), Action::failover_to_new_version("mpe1", "mpe1-b")] {
        assert_eq!(h.d.check(&action).unwrap_err().kind, RefusalKind::Zombie);
    }
    let advice = h.d.advise("mpe1", Direction::Upgrade).unwrap();
    assert!(advice.preferred.is_none());
    assert_eq!(advice.waiting.unwrap().kind, RefusalKind::Zombie);
    // The spare can still be upgraded (Advanced), the Active keeps serving.
    assert!(advice.others.iter().any(|p| p.action == Action::initiate_upgrade("mpe1", "mpe1-c")));

    let at = h.tick(60);
    h.feed(Event::ZombieRepaired { hostname: "mpe1-b".into(), user: "support".into(), at });
    assert_eq!(h.d.check(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap_err().kind, RefusalKind::AwaitingContact);
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    report.running_release = Some(v(V1));
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report, at });
    assert!(h.alarm_names().is_empty(), "{:?}", h.alarm_names());
    h.drive("mpe1", Direction::Upgrade);

    // A report that cannot tell the release makes a Zombie too.
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-c".into(), report, at });
    assert_eq!(h.d.topology().find_server("mpe1-c").unwrap().1.state(), ServerState::Zombie);
    let effects = h.feed(Event::ZombieRepaired { hostname: "mpe1-a".into(), user: "support".into(), at });
    assert!(matches!(&effects[1], Effect::Refused { refusal, .. } if refusal.kind == RefusalKind::NotApplicable));
}

#[test]
fn a_promoted_director_waits_for_the_servers_it_lost_sight_of() {
    let mut h = Harness::new(single(Shape::Engine3));
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-c".into(), report: ServerReport::unreachable(), at });
    let id = h.start(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    let at = h.tick(1);
    h.feed(Event::ActionProgress { id, step: Step::UpgradingServer, at });
    let at = h.tick(1);
    h.feed(Event::ManagerFailover { at });
    let topo = h.d.topology();
    assert!(topo.find_server("mpe1-c").unwrap().1.awaiting_contact, "unreachable at the failover");
    assert!(topo.find_server("mpe1-b").unwrap().1.awaiting_contact, "its action's outcome is unknown");
    assert!(!topo.find_server("mpe1-a").unwrap().1.awaiting_contact);
    assert!(h.d.running_action("mpe1").unwrap().orphaned);

    // The server is still busy upgrading: keep waiting.
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    report.running_release = Some(v(V1));
    report.busy = true;
    let at = h.tick(5);
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report: report.clone(), at });
    assert!(h.d.running_action("mpe1").is_some());
    // Done, on the new release: the orphaned action succeeded.
    report.busy = false;
    report.running_release = Some(v(V2));
    report.previous_release = Some(v(V1));
    let at = h.tick(15);
    h.feed(Event::ServerReported { hostname: "mpe1-b".into(), report, at });
    assert!(h.d.running_action("mpe1").is_none());
    assert_eq!(h.log[&2].result, LogResult::Success, "Upgrading server closed by the report");
    // The unreachable spare is not acted on until it is heard from.
    let c_upgrade = Action::initiate_upgrade("mpe1", "mpe1-c");
    h.run(&Action::failover_to_new_version("mpe1", "mpe1-b")).unwrap();
    h.run(&Action::reapply_configuration("mpe1")).unwrap();
    assert_eq!(h.d.check(&c_upgrade).unwrap_err().kind, RefusalKind::AwaitingContact);
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    report.running_release = Some(v(V1));
    let at = h.tick(1);
    h.feed(Event::ServerReported { hostname: "mpe1-c".into(), report, at });
    assert_eq!(h.d.check(&c_upgrade), Ok(()));

    // An orphaned action whose server comes back unchanged failed and can be retried.
    let id = h.start(&c_upgrade).unwrap();
    let at = h.tick(1);
    h.feed(Event::ManagerFailover { at });
    let mut report = ServerReport::unreachable();
    report.reachable = true;
    report.running_release = Some(v(V1));
    h.feed(Event::ServerReported { hostname: "mpe1-c".into(), report, at });
    assert!(h.d.failures().contains_key("mpe1-c"));
    assert_eq!(h.d.check(&c_upgrade), Ok(()));
    assert!(matches!(h.feed(Event::ActionSucceeded { id, at }).as_slice(), [Effect::Ignored { .. }]));
}

#[test]
fn illegal_requests_are_refused_with_a_reason() {
    let mut h = Harness::new(single(Shape::Engine3));
    let cases = [
        (Action::initiate_upgrade("mpe1", "mpe1-a"), RefusalKind::WouldStopService, "fail over first"),
        (Action::initiate_backout("mpe1", "mpe1-b"), RefusalKind::NotApplicable, "nothing to back out"),
        (Action::failover_to_new_version("mpe1", "mpe1-b"), RefusalKind::NotApplicable, "runs 0.1.0"),
        (Action::failover_to_old_version("mpe1", "mpe1-b"), RefusalKind::NotApplicable, "does not run 0.2.0"),
        (Action::reapply_configuration("mpe1"), RefusalKind::NotApplicable, "already applied for 0.1.0"),
        (Action::initiate_upgrade("mpe9", "x"), RefusalKind::UnknownCluster, "no cluster"),
        (Action::initiate_upgrade("mpe1", "cmp1-a"), RefusalKind::UnknownServer, "has no server"),
    ];
    for (action, kind, text) in cases {
        let r = h.d.check(&action).unwrap_err();
        assert_eq!(r.kind, kind, "{action}: {r}");
        assert!(r.reason.contains(text), "{action}: {r}");
    }
    let before = h.d.clone();
    let effects = h.feed(Event::ActionStarted {
        action: Action::initiate_upgrade("mpe1", "mpe1-a"),
        mode: Mode::Manual { user: "ops".into() },
        at: t0(),
    });
    assert_eq!(h.d, before, "a refused action changes nothing");
    assert!(matches!(&effects[0], Effect::Audit(a) if a.outcome == AuditOutcome::Refused && a.user == "ops"));
    assert!(matches!(&effects[1], Effect::Refused { refusal, .. } if refusal.kind == RefusalKind::WouldStopService));

    // Preflight: exactly one staged bundle of the right type.
    let mut d = single(Shape::Engine3);
    let c = d.topology.cluster_mut("mpe1").unwrap();
    c.servers[1].staged.clear();
    let extra = c.servers[2].staged[0].clone();
    c.servers[2].staged.push(StagedBundle { file_name: "other.tgb".into(), ..extra });
    let r = d.check(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::PreflightWouldFail);
    assert!(r.reason.contains("no release bundle is staged"), "{r}");
    let r = d.check(&Action::initiate_upgrade("mpe1", "mpe1-c")).unwrap_err();
    assert!(r.reason.contains("2 release bundles are staged"), "{r}");
    // Upgrade paths.
    let mut e = single(Shape::Engine2);
    e.topology.cluster_mut("mpe1").unwrap().servers[1].running_release = v("0.0.1");
    let r = e.check(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::UnsupportedUpgradePath);
    assert_eq!(r.reason, "0.2.0 does not upgrade from 0.0.1 (upgrade paths: 0.1.x)");
    // Without a procedure nothing is offered.
    let none = Director::new(single(Shape::Engine2).topology.clone(), None, DirectorConfig::default()).unwrap();
    assert_eq!(none.check(&Action::reapply_configuration("mpe1")).unwrap_err().kind, RefusalKind::NoProcedure);
    assert_eq!(none.advise("mpe1", Direction::Upgrade).unwrap().waiting.unwrap().kind, RefusalKind::NoProcedure);
}

#[test]
fn no_reversal_while_an_action_runs() {
    let mut h = Harness::new(single(Shape::Engine3));
    h.run(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    let id = h.start(&Action::initiate_upgrade("mpe1", "mpe1-c")).unwrap();
    let r = h.d.check(&Action::initiate_backout("mpe1", "mpe1-b")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::ActionInProgress);
    assert!(r.reason.contains("Initiate upgrade mpe1-c"), "{r}");
    assert!(h.d.legal_actions("mpe1").is_empty());
    for dir in [Direction::Upgrade, Direction::Backout] {
        let a = h.d.advise("mpe1", dir).unwrap();
        assert_eq!(a.waiting.unwrap().kind, RefusalKind::ActionInProgress);
    }
    // Nor a new procedure.
    let effects = h.feed(Event::ProcedureSelected { procedure: None, user: "admin".into(), at: h.now });
    assert!(
        matches!(&effects[1], Effect::Refused { action: None, refusal } if refusal.kind == RefusalKind::ActionInProgress)
    );
    // Out-of-order progress is ignored.
    let effects = h.feed(Event::ActionProgress { id, step: Step::PreflightCheck, at: h.now });
    assert!(matches!(effects.as_slice(), [Effect::Ignored { .. }]));
    let at = h.tick(1);
    h.feed(Event::ActionSucceeded { id, at });
    assert_eq!(h.d.check(&Action::initiate_backout("mpe1", "mpe1-b")), Ok(()), "reversible once it finished");
    let at = h.tick(1);
    let effects = h.feed(Event::ProcedureSelected { procedure: None, user: "admin".into(), at });
    assert!(matches!(&effects[0], Effect::Audit(a) if a.outcome == AuditOutcome::Accepted));
    assert!(h.d.procedure().is_none());
    assert!(h.alarm_names().iter().all(|(_, n)| *n != "REPLICATION_INHIBITED"));
}

#[test]
fn the_state_round_trips_through_json_and_resyncs_alarms() {
    let mut h = Harness::new(single(Shape::Engine3));
    h.run(&Action::initiate_upgrade("mpe1", "mpe1-b")).unwrap();
    h.start(&Action::failover_to_new_version("mpe1", "mpe1-b")).unwrap();
    let json = serde_json::to_string(&h.d).unwrap();
    let mut back: Director = serde_json::from_str(&json).unwrap();
    assert_eq!(back, h.d);
    let effects = back.resync(h.now);
    let raised: Vec<&str> = effects
        .iter()
        .filter_map(|e| if let Effect::RaiseAlarm { def, .. } = e { Some(def.name) } else { None })
        .collect();
    // The failover's target (mpe1-b) is released from forced standby while it runs.
    assert_eq!(raised, ["SYSTEM_MIXED_VERSION", "CLUSTER_MIXED_VERSION"]);
    assert!(effects.iter().all(|e| matches!(e, Effect::RaiseAlarm { .. })), "forced standby was already right");
}
