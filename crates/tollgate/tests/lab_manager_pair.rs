//! The manager pair when a manager is cut off, on a whole lab (`tollgate lab up`): processes are
//! frozen with SIGSTOP (they keep their sockets, so a peer sees silence, as across a broken
//! network) and woken with SIGCONT.
//!
//! Shown: a standby that reaches none of the other servers does not take over (it would make a
//! second active); it takes over once it reaches them; the frozen active that comes back steps
//! down to the one that took over and copies its state; an active that loses its mate and every
//! other server steps down by itself; once everything answers again, exactly one is active.

mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::wait_until;
use serde_json::Value;

const NET: u8 = 81;
const ENUM_PORT: u16 = 5391;

/// One manager of the pair.
struct Mgr {
    hostname: String,
    url: String,
}

fn ha(lab: &Lab, m: &Mgr) -> Option<Value> {
    lab.manager_ha(&m.url)
}

fn role(lab: &Lab, m: &Mgr) -> String {
    ha(lab, m).and_then(|h| h["ha"].as_str().map(str::to_string)).unwrap_or_else(|| "silent".into())
}

#[test]
fn a_cut_off_manager_neither_takes_over_nor_stays_active_and_one_active_remains() {
    let lab = Lab::up(NET, ENUM_PORT);
    let active_url = lab.active();
    let mgr = |url: &str| Mgr {
        hostname: lab.manager_ha(url).unwrap()["hostname"].as_str().unwrap().to_string(),
        url: url.to_string(),
    };
    let a = mgr(&active_url);
    let b = mgr(lab.managers.iter().find(|u| **u != active_url).unwrap());
    wait_until(60, "the standby synchronised", || ha(&lab, &b).is_some_and(|h| h["synchronised"] == true));
    let others: Vec<String> = lab.servers().into_iter().filter(|(_, app)| app != "manager").map(|(h, _)| h).collect();
    let signal_others = |sig: &str| others.iter().for_each(|h| lab.signal(h, sig));

    // The standby is cut off from everything but its own server: it must not take over.
    lab.signal(&a.hostname, "STOP");
    signal_others("STOP");
    let until = Instant::now() + Duration::from_secs(8); // takeover_ms is 3 s in the lab
    while Instant::now() < until {
        assert_eq!(role(&lab, &b), "Standby", "{} took over while it reached no other server", b.hostname);
        std::thread::sleep(Duration::from_millis(100));
    }

    // It reaches the servers again (the active is still frozen): it takes over. (The waits are
    // generous: after SIGCONT a whole lab's processes resume at once, and on a loaded 2-core
    // machine the standby reached them only after more than 20 s.)
    signal_others("CONT");
    wait_until(60, "the standby takes over once it reaches the servers", || role(&lab, &b) == "Active");

    // The frozen active comes back: it steps down to the one that took over, and copies its state.
    lab.signal(&a.hostname, "CONT");
    wait_until(60, "one active: the one that took over", || role(&lab, &a) == "Standby" && role(&lab, &b) == "Active");
    wait_until(60, "the one that came back copied the new active's state", || {
        ha(&lab, &a).is_some_and(|h| h["synchronised"] == true)
    });

    // The active is cut off from its mate and every other server: it steps down by itself.
    lab.signal(&a.hostname, "STOP");
    signal_others("STOP");
    wait_until(60, "the cut-off active steps down", || role(&lab, &b) == "Standby");

    // Everything answers again: exactly one active.
    lab.signal(&a.hostname, "CONT");
    signal_others("CONT");
    wait_until(60, "exactly one active manager", || {
        let roles = [role(&lab, &a), role(&lab, &b)];
        roles.iter().filter(|r| *r == "Active").count() == 1 && roles.iter().all(|r| r == "Active" || r == "Standby")
    });
    let status = lab.get("/api/v1/upgrade/status");
    assert!(status["clusters"].as_array().is_some_and(|c| !c.is_empty()), "{status}");
}
