use tollgate_api::manager::{ClusterView, ServerView};

use super::*;

fn server(hostname: &str, role: ServerState) -> ServerView {
    serde_json::from_value(serde_json::json!({
        "hostname": hostname, "site": "", "up_to_date": "N/A", "ha_role": "Active", "role": role,
        "running_release": "1.0.0",
    }))
    .unwrap()
}

fn cluster(name: &str, site: &str, segment: Option<&str>, servers: &[&str]) -> ClusterView {
    let mut c: ClusterView = serde_json::from_value(serde_json::json!({
        "name": name, "application": "engine", "site": site, "segment": segment, "status": "OK",
        "up_to_date": "N/A", "servers": [],
    }))
    .unwrap();
    c.servers = servers.iter().map(|h| server(h, ServerState::Active)).collect();
    c
}

fn inside(inner: Rect, outer: Rect) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && inner.x + inner.w <= outer.x + outer.w
        && inner.y + inner.h <= outer.y + outer.h
}

fn overlap(a: Rect, b: Rect) -> bool {
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
}

#[test]
fn clusters_are_grouped_by_site_then_segment_and_every_box_holds_its_contents() {
    let clusters = vec![
        cluster("mgr", "east", None, &["mgr-a", "mgr-b"]),
        cluster("engine-east", "east", Some("voice"), &["east-a", "east-b", "east-c"]),
        cluster("engine-west", "west", Some("voice"), &["west-a", "west-b"]),
        cluster("probes", "east", Some("voice"), &["probe-a"]),
    ];
    let l = layout(&clusters);
    let names: Vec<_> = l.sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["east", "west"]);
    let east = &l.sites[0];
    let segs: Vec<_> = east.segments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(segs, ["", "voice"], "the clusters without a segment first");
    let voice: Vec<_> = east.segments[1].clusters.iter().map(|c| clusters[c.cluster].name.as_str()).collect();
    assert_eq!(voice, ["engine-east", "probes"], "clusters keep their order");
    let mut all_servers = Vec::new();
    for site in &l.sites {
        assert!(site.rect.x + site.rect.w <= l.width && site.rect.y + site.rect.h <= l.height);
        for seg in &site.segments {
            assert!(inside(seg.rect, site.rect), "{seg:?} in {site:?}");
            for c in &seg.clusters {
                assert!(inside(c.rect, seg.rect), "{c:?} in {seg:?}");
                assert_eq!(c.servers.len(), clusters[c.cluster].servers.len());
                for s in &c.servers {
                    assert!(inside(*s, c.rect), "{s:?} in {c:?}");
                    all_servers.push(*s);
                }
            }
        }
    }
    assert_eq!(all_servers.len(), 8);
    for (i, a) in all_servers.iter().enumerate() {
        for b in &all_servers[i + 1..] {
            assert!(!overlap(*a, *b), "{a:?} and {b:?} overlap");
        }
    }
    assert!(!overlap(l.sites[0].rect, l.sites[1].rect));
}

#[test]
fn a_cluster_without_a_site_takes_its_servers_and_an_empty_topology_draws_nothing() {
    let mut c = cluster("lone", "", None, &["x"]);
    c.servers[0].site = "north".into();
    assert_eq!(layout(&[c]).sites[0].name, "north");
    assert_eq!(layout(&[cluster("bare", "", None, &[])]).sites[0].name, "(no site)");
    let empty = layout(&[]);
    assert!(empty.sites.is_empty() && empty.width > 0 && empty.height > 0);
}

#[test]
fn forced_standby_is_drawn_as_such() {
    let mut s = server("a", ServerState::Standby);
    assert_eq!(ha_state(&s), "Standby");
    s.forced_standby = true;
    assert_eq!(ha_state(&s), "Forced Standby");
    assert_eq!(ha_state(&server("b", ServerState::ForcedStandby)), "Forced Standby");
    assert_eq!(ha_state(&server("c", ServerState::Spare)), "Spare");
}
