//! The whole system: manager clusters and the primary site first, at most N clusters in progress,
//! backout in reverse.

use std::collections::BTreeSet;

use super::*;
use tollgate_alarms as alarms;

/// Two manager clusters and six others over two sites and two segments, listed out of order.
fn system(limit: usize) -> Director {
    let seg = |n: u8| Some(if n == 1 { "Segment 1" } else { "Segment 2" });
    let clusters = vec![
        cluster("s2seg2-probe", AppType::Probe, None, "Site2", seg(2), 2),
        cluster("s1seg2-mpe", AppType::Engine, None, "Site1", seg(2), 3),
        cluster("cmp-s", AppType::Manager, Some(ManagerDesignation::Secondary), "Site2", None, 2),
        cluster("s2seg1-mpe", AppType::Engine, None, "Site2", seg(1), 2),
        cluster("s1seg1-mpe", AppType::Engine, None, "Site1", seg(1), 3),
        cluster("s2seg2-med", AppType::Collector, None, "Site2", seg(2), 2),
        cluster("cmp-p", AppType::Manager, Some(ManagerDesignation::Primary), "Site1", None, 2),
        cluster("s1seg1-mra", AppType::Engine, None, "Site1", seg(1), 2),
    ];
    let topology = Topology {
        sites: sites(),
        segments: vec![Segment { name: "Segment 1".into() }, Segment { name: "Segment 2".into() }],
        clusters,
    };
    Director::new(topology, Some(procedure()), DirectorConfig { max_parallel_clusters: limit }).unwrap()
}

const UPGRADE_ORDER: [&str; 8] =
    ["cmp-p", "cmp-s", "s1seg1-mpe", "s1seg1-mra", "s2seg1-mpe", "s1seg2-mpe", "s2seg2-probe", "s2seg2-med"];

fn all_on(d: &Director, cluster: &str, release: &str) -> bool {
    d.topology().cluster(cluster).unwrap().servers.iter().all(|s| s.running_release == v(release))
}

/// Starts every action `next_actions` offers, then completes them one at a time (the last
/// started first), until nothing is offered; returns the order in which clusters were first
/// touched. Checks the parallel limit after every event.
fn run_system(h: &mut Harness, direction: Direction, limit: usize) -> Vec<String> {
    let mut touched: Vec<String> = Vec::new();
    let mut saw_limit_refusal = false;
    for _ in 0..200 {
        let offered = h.d.next_actions(direction);
        if offered.is_empty() {
            break;
        }
        let mut ids = Vec::new();
        for p in &offered {
            let cluster = p.action.cluster.clone();
            if !touched.contains(&cluster) {
                // The manager clusters lead on the way up and trail on the way down.
                let managers_done = ["cmp-p", "cmp-s"].iter().all(|m| all_on(&h.d, m, V2));
                match (direction, cluster.starts_with("cmp")) {
                    (Direction::Upgrade, false) => assert!(managers_done, "{cluster} before the managers"),
                    (Direction::Upgrade, true) if cluster == "cmp-s" => assert!(all_on(&h.d, "cmp-p", V2)),
                    (Direction::Backout, true) => {
                        assert!(UPGRADE_ORDER[2..].iter().all(|c| all_on(&h.d, c, V1)), "{cluster} before the others");
                        if cluster == "cmp-p" {
                            assert!(all_on(&h.d, "cmp-s", V1));
                        }
                    }
                    _ => {}
                }
                touched.push(cluster);
            }
            ids.push(h.start(&p.action).unwrap_or_else(|r| panic!("{}: {r}", p.label)));
            assert!(h.d.clusters_in_progress().len() <= limit, "{:?}", h.d.clusters_in_progress());
        }
        // With the limit reached, a settled cluster cannot start.
        if h.d.clusters_in_progress().len() == limit {
            for c in h.d.topology().clusters.clone() {
                if h.d.in_progress(&c) {
                    continue;
                }
                if let Ok(Some(action)) = h.d.default_step(&c, direction)
                    && let Err(r) = h.d.check(&action)
                    && r.kind == RefusalKind::ParallelLimit
                {
                    saw_limit_refusal = true;
                }
            }
        }
        for id in ids.into_iter().rev() {
            let at = h.tick(3);
            h.feed(Event::ActionSucceeded { id, at });
            assert!(h.d.clusters_in_progress().len() <= limit);
        }
    }
    assert!(saw_limit_refusal, "the limit was never reached");
    touched
}

#[test]
fn the_system_goes_managers_first_primary_site_first_and_within_the_limit() {
    let limit = 2;
    let mut h = Harness::new(system(limit));
    assert_eq!(h.d.cluster_order(Direction::Upgrade), UPGRADE_ORDER);
    let mut reverse = UPGRADE_ORDER.to_vec();
    reverse.reverse();
    assert_eq!(h.d.cluster_order(Direction::Backout), reverse);

    // Out of order is refused.
    let r = h.d.check(&Action::initiate_upgrade("s1seg1-mpe", "s1seg1-mpe-b")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::UpgradeOrder);
    assert_eq!(r.reason, "manager clusters are upgraded first: cmp-s, cmp-p not completely on 0.2.0");
    let r = h.d.check(&Action::initiate_upgrade("cmp-s", "cmp-s-b")).unwrap_err();
    assert_eq!(r.reason, "the Primary manager cluster cmp-p is upgraded first");

    let touched = run_system(&mut h, Direction::Upgrade, limit);
    assert_eq!(touched, UPGRADE_ORDER, "first actions per cluster, in order");
    assert!(h.d.topology().servers().all(|s| s.running_release == v(V2) && !s.forced_standby));
    assert!(h.alarm_names().is_empty(), "{:?}", h.alarm_names());
    assert!(
        h.alarms.history().iter().any(|e| e.raised && e.id == alarms::SYSTEM_MIXED_VERSION.id),
        "70500 was raised while the system was mixed"
    );
    assert!(UPGRADE_ORDER.iter().all(|c| h.d.is_done(c, Direction::Upgrade)));

    // Backout: managers last, the Secondary before the Primary.
    let r = h.d.check(&Action::initiate_backout("cmp-p", "cmp-p-a")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::UpgradeOrder);
    assert!(r.reason.starts_with("non-manager clusters are backed out first: "), "{r}");
    let touched = run_system(&mut h, Direction::Backout, limit);
    assert_eq!(touched, reverse);
    assert!(h.d.topology().servers().all(|s| s.running_release == v(V1)));
    assert!(h.alarm_names().is_empty(), "{:?}", h.alarm_names());
    assert!(UPGRADE_ORDER.iter().all(|c| h.d.is_done(c, Direction::Backout)));

    // The log: unique IDs, parents that exist and precede their children, every entry closed.
    let ids: BTreeSet<u64> = h.log.keys().copied().collect();
    for e in h.log.values() {
        assert!(e.parent_id == 0 || (ids.contains(&e.parent_id) && e.parent_id < e.id), "{e:?}");
        assert!(e.end.is_some() && e.result == LogResult::Success, "{e:?}");
    }
}

#[test]
fn the_limit_counts_clusters_left_mixed() {
    let mut h = Harness::new(system(1));
    h.d.set_config(DirectorConfig { max_parallel_clusters: 3 });
    h.drive("cmp-p", Direction::Upgrade);
    h.drive("cmp-s", Direction::Upgrade);
    h.d.set_config(DirectorConfig { max_parallel_clusters: 1 });
    // One cluster half upgraded and left so: it is in progress, the next may not start.
    h.run(&Action::initiate_upgrade("s1seg1-mpe", "s1seg1-mpe-b")).unwrap();
    let r = h.d.check(&Action::initiate_upgrade("s1seg1-mra", "s1seg1-mra-b")).unwrap_err();
    assert_eq!(r.kind, RefusalKind::ParallelLimit);
    assert_eq!(r.reason, "1 clusters are in progress (limit 1): s1seg1-mpe");
    let offered: Vec<String> = h.d.next_actions(Direction::Upgrade).into_iter().map(|p| p.label).collect();
    assert_eq!(offered, ["Failover to new version s1seg1-mpe (next)"]);
    // Backing it out frees the slot.
    h.drive("s1seg1-mpe", Direction::Backout);
    assert_eq!(h.d.check(&Action::initiate_upgrade("s1seg1-mra", "s1seg1-mra-b")), Ok(()));
}
