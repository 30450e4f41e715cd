//! The acceptance tests of seed 002 ("PolicyGuru ENUM Server Validation Testing"), with
//! Kamailio as the SBC and SIPp as caller and callees, all on 127.0.0.0/8.
//!
//! * FST B2, "Proper Exchange and Processing of Regex Responses by SBC": rules that allow,
//!   terminate, redirect (and reject) specific test calls; uninstall; the same calls allowed.
//! * FST B3, "SBC Routing of Calls Based on ENUM Server Status": three engines queried
//!   round-robin; one, then two down; back up; all down (calls fail open to the normal route);
//!   all back (round-robin resumes).

mod common;

use common::sip::{Callee, Kamailio, call, require_root_and_peers, sbc_engine_answers};
use common::{Engine, EngineOptions, free_port, temp_file, text};

const POLICY: &str = r#"
schema = 1
name = "fst-b2"

[[rule]]
name = "reject-robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "allow-test-call"
destination = "+12125550100"
action = "allow"

[[rule]]
name = "terminate-test-call"
destination = "+12125550111"
action = "terminate"

[[rule]]
name = "redirect-test-call"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
"#;

/// Callees of one test: the dialled (normal route), the terminate extension, the reroute
/// extension.
struct Callees {
    normal: Callee,
    intercept: Callee,
    reroute: Callee,
}

impl Callees {
    fn start(net: &str) -> Callees {
        Callees {
            normal: Callee::start(&format!("{net}.20")),
            intercept: Callee::start(&format!("{net}.21")),
            reroute: Callee::start(&format!("{net}.22")),
        }
    }

    fn counts(&self) -> [usize; 3] {
        [self.normal.invites().len(), self.intercept.invites().len(), self.reroute.invites().len()]
    }
}

fn engine(node: &str, enum_ip: &str, net: &str) -> Engine {
    Engine::start(EngineOptions {
        node: node.into(),
        role: "engine",
        enum_listen: vec![format!("{enum_ip}:53").parse().unwrap()],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: sbc_engine_answers(net),
        ..Default::default()
    })
}

fn install(e: &Engine, policy: &std::path::Path) {
    let out = e.cli(&["policy", "install", policy.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "install on {}: {:?}", e.options.node, text(&out));
}

fn uninstall(e: &Engine) {
    let out = e.cli(&["policy", "uninstall", "--api", &e.api]);
    assert!(out.status.success(), "uninstall on {}: {:?}", e.options.node, text(&out));
}

/// Every record the engine has spooled, as JSON, in time order (each UDP worker writes its own
/// spool lane, so the dump is grouped by lane).
fn records(e: &Engine) -> Vec<serde_json::Value> {
    let dir = e.state.join("spool");
    let out = e.cli(&["spool", "dump", "--dir", dir.to_str().unwrap()]);
    let mut recs: Vec<serde_json::Value> = text(&out).0.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    recs.sort_by_key(|r| chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap());
    recs
}

#[test]
fn fst_b2_regex_responses_followed_by_kamailio() {
    require_root_and_peers();
    let net = "127.0.61";
    let e = engine("enum-b2", "127.0.53.11", net);
    let callees = Callees::start(net);
    let sbc = Kamailio::start(&format!("{net}.1"), &format!("{net}.20"), &["127.0.53.11"], false);
    let caller = format!("{net}.10");
    let dial = |from: &str, to: &str| {
        assert!(call(&caller, &sbc.ip, from, to, false), "call {from} -> {to} failed:\n{}", sbc.log())
    };

    // No policy yet: the test numbers reach the dialled callee.
    dial("14155550000", "12125550111");
    assert_eq!(callees.normal.invites(), vec!["sip:+12125550111@127.0.61.20:5080"]);

    let (_dir, policy) = temp_file("fst-b2.toml", POLICY);
    install(&e, &policy);

    // Allow: the call proceeds to the destination in a normal fashion.
    dial("14155550000", "12125550100");
    assert_eq!(callees.normal.invites().last().unwrap(), "sip:+12125550100@127.0.61.20:5080");
    // Terminate: the call does not go to the dialled destination, it reaches the terminate
    // extension.
    dial("14155550000", "12125550111");
    assert_eq!(callees.intercept.invites(), vec!["sip:intercept@127.0.61.21:5080"]);
    // Redirect: the call reaches the reroute extension with the new target.
    dial("14155550000", "12125550122");
    assert_eq!(callees.reroute.invites(), vec!["sip:+12125550199@127.0.61.22:5080"]);
    // Reject: the caller gets 603, nobody is called.
    assert!(call(&caller, &sbc.ip, "13125550666", "12125550100", true), "603 expected:\n{}", sbc.log());
    assert_eq!(callees.counts(), [2, 1, 1]);

    // Uninstall all test policies: the same calls are allowed.
    uninstall(&e);
    dial("14155550000", "12125550111");
    dial("14155550000", "12125550122");
    dial("13125550666", "12125550100");
    assert_eq!(callees.counts(), [5, 1, 1]);
    assert_eq!(
        callees.normal.invites()[2..],
        ["sip:+12125550111@127.0.61.20:5080", "sip:+12125550122@127.0.61.20:5080", "sip:+12125550100@127.0.61.20:5080"]
    );

    // tollgate recorded each query with the deciding rule and the calling number.
    let recs = records(&e);
    let summary: Vec<(String, String, String)> = recs
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap_or("").to_string(),
                r["destination"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("+14155550000", "+12125550111", "-"),
        ("+14155550000", "+12125550100", "allow-test-call"),
        ("+14155550000", "+12125550111", "terminate-test-call"),
        ("+14155550000", "+12125550122", "redirect-test-call"),
        ("+13125550666", "+12125550100", "reject-robocaller"),
        ("+14155550000", "+12125550111", "-"),
        ("+14155550000", "+12125550122", "-"),
        ("+13125550666", "+12125550100", "-"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(summary, expected);
    // The engine is the record's device; the SBC is named by its address.
    assert!(recs.iter().all(|r| r["device"] == "enum-b2" && r["client"] == "kamailio-sbc"), "{recs:?}");
}

/// Which engine answered each query, in time order.
fn query_order(engines: &[&Engine]) -> Vec<usize> {
    let mut all: Vec<(chrono::DateTime<chrono::FixedOffset>, usize)> = Vec::new();
    for (i, e) in engines.iter().enumerate() {
        let time = |r: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap();
        all.extend(records(e).iter().map(|r| (time(r), i)));
    }
    all.sort();
    all.into_iter().map(|(_, i)| i).collect()
}

fn assert_round_robin(order: &[usize], what: &str) {
    assert!(order.len() >= 6, "{what}: too few queries {order:?}");
    for w in order.windows(2) {
        assert_ne!(w[0], w[1], "{what}: not round-robin: {order:?}");
    }
    for i in 3..order.len() {
        assert_eq!(order[i], order[i - 3], "{what}: not round-robin: {order:?}");
    }
}

#[test]
fn fst_b3_round_robin_failover_and_fail_open() {
    require_root_and_peers();
    let net = "127.0.62";
    let ips = ["127.0.53.21", "127.0.53.22", "127.0.53.23"];
    let mut engines: Vec<Engine> =
        ips.iter().enumerate().map(|(i, ip)| engine(&format!("enum-{}", i + 1), ip, net)).collect();
    let (_dir, policy) = temp_file("fst-b3.toml", POLICY);
    for e in &engines {
        install(e, &policy);
    }
    let callees = Callees::start(net);
    let sbc = Kamailio::start(&format!("{net}.1"), &format!("{net}.20"), &ips, true);
    let caller = format!("{net}.10");
    let counts = |engines: &[Engine]| engines.iter().map(|e| records(e).len()).collect::<Vec<_>>();
    let calls = |n: usize| {
        for _ in 0..n {
            assert!(call(&caller, &sbc.ip, "14155550000", "12125550111", false), "call failed:\n{}", sbc.log());
        }
    };

    // All three up: requests are distributed round-robin, and every call is handled.
    calls(9);
    assert_eq!(counts(&engines), vec![3, 3, 3]);
    let refs: Vec<&Engine> = engines.iter().collect();
    assert_round_robin(&query_order(&refs), "all engines up");
    assert_eq!(callees.intercept.invites().len(), 9);

    // ENUM 1 down: requests go to ENUM 2 and 3; calls are processed normally.
    engines[0].kill();
    let before = counts(&engines);
    calls(6);
    let after = counts(&engines);
    assert_eq!(after[0], before[0], "ENUM 1 is down");
    assert_eq!((after[1] - before[1]) + (after[2] - before[2]), 6);
    assert!(after[1] > before[1] && after[2] > before[2], "both ENUM 2 and 3 take requests: {before:?} -> {after:?}");
    assert_eq!(callees.intercept.invites().len(), 15);

    // ENUM 1 and 2 down: every request goes to ENUM 3.
    engines[1].kill();
    let before = counts(&engines);
    calls(3);
    let after = counts(&engines);
    assert_eq!(after, vec![before[0], before[1], before[2] + 3]);
    assert_eq!(callees.intercept.invites().len(), 18);

    // ENUM 1 and 2 back: requests reach all three again.
    engines[0].restart();
    engines[1].restart();
    let before = counts(&engines);
    calls(9);
    let after = counts(&engines);
    assert_eq!(after.iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<_>>(), vec![3, 3, 3]);
    assert_eq!(callees.intercept.invites().len(), 27);

    // All down: calls proceed normally (Kamailio routes them to the next hop: fail open).
    for e in &mut engines {
        e.kill();
    }
    let normal_before = callees.normal.invites().len();
    calls(3);
    assert_eq!(callees.normal.invites().len(), normal_before + 3, "calls fail open to the normal route");
    assert_eq!(callees.intercept.invites().len(), 27);

    // All back: round-robin resumes.
    for e in &mut engines {
        e.restart();
    }
    let before = counts(&engines);
    calls(9);
    let after = counts(&engines);
    assert_eq!(after.iter().zip(&before).map(|(a, b)| a - b).collect::<Vec<_>>(), vec![3, 3, 3]);
    assert_eq!(callees.intercept.invites().len(), 36);
}
