//! The rolling upgrade of issue 6, end to end: `tollgate lab up` starts a manager pair, two
//! engine clusters of 2+1 (SRP pairs serving ENUM on port 53), a probe pair and a collector,
//! all on release 1.0.0. Kamailio (the SBC) sends SIPp calls through the engine clusters at a
//! steady rate while the manager upgrades every cluster to 2.0.0 by repeatedly taking the next
//! preferred action, then backs everything out to 1.0.0.
//!
//! Shown: zero failed calls, and every call decided by an engine (the lab policy redirects
//! every call; a call Kamailio routes normally means ENUM did not answer); a schema-2 policy
//! refused while an engine of the cluster runs 1.0.0 and accepted once all run 2.0.0; the
//! active manager killed in the middle of the upgrade and the upgrade completed by the other;
//! the upgrade log complete and ordered; the Director's alarms raised on the way and every
//! alarm cleared at the end. Needs root (port 53, Kamailio's private resolv.conf).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::sip::{Callee, Kamailio, e2e_dir, require_root_and_peers, sipp_call_counts};
use common::wait_until;
use serde_json::{Value, json};

const NET: u8 = 78;

fn ip(host: u8) -> String {
    format!("127.0.{NET}.{host}")
}

/// SIPp placing calls through Kamailio at a steady rate until stopped.
struct Traffic {
    child: Child,
    dir: tempfile::TempDir,
}

impl Traffic {
    fn start(sbc: &str) -> Traffic {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(e2e_dir().join("uac.xml"))
            .args(["-s", "+12125550100", "-key", "from", "+13125551234"])
            .args(["-r", "4", "-m", "100000", "-l", "40", "-i", &ip(70), "-p", "5070", "-mp", "6100"])
            .args(["-nostdin", "-trace_stat", "-fd", "1", "-stf"])
            .arg(dir.path().join("stats.csv"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .arg(format!("{sbc}:5060"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp");
        Traffic { child, dir }
    }

    /// Stops placing calls, lets the calls in progress end; (successful, failed) calls.
    fn stop(mut self) -> (u64, u64, String) {
        let _ = Command::new("kill").args(["-USR1", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (ok, failed) = sipp_call_counts(&self.dir.path().join("stats.csv"));
        let errors = std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default();
        (ok, failed, errors)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

const SCHEMA_2_POLICY: &str = r#"schema = 2
name = "lab-v2"

[[rule]]
name = "robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "too-fast"
source = "+13125550777"
velocity = { calls = 3, window = "1m" }
action = "terminate"

[[rule]]
name = "redirect-all"
destination = "+1*"
action = "redirect"
target = "+12125550199"
"#;

/// What the test saw while driving.
#[derive(Default)]
struct Seen {
    alarms: std::collections::BTreeSet<u32>,
    server_alarms: std::collections::BTreeSet<u32>,
    mixed_refusal: Option<String>,
    /// Servers seen held in forced standby by their own SRP chassis while their Active mate
    /// runs another release.
    srp_held: std::collections::BTreeSet<String>,
    failover_done: bool,
    /// Servers whose action the manager failover interrupted.
    interrupted: std::collections::BTreeSet<String>,
}

/// Takes the next preferred actions until every cluster is done in `direction`; `hook` runs
/// on every status seen.
fn drive(lab: &Lab, direction: &str, seen: &mut Seen, mut hook: impl FnMut(&Lab, &Value, &mut Seen)) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = lab.get("/api/v1/upgrade/status");
        if Instant::now() > deadline {
            let (_, next) = lab.post("/api/v1/upgrade/next", json!({ "direction": direction }));
            let log = lab.get("/api/v1/upgrade/log");
            let tail: Vec<&Value> = log.as_array().unwrap().iter().rev().take(12).collect();
            panic!(
                "the {direction} did not finish in 5 minutes\nnext: {next:#}\nstatus: {status:#}\nlog tail: {tail:#?}"
            );
        }
        // The only failures allowed: actions the lost manager had started, which the promoted
        // one declares failed ("it can be attempted again"); the next preferred action retries.
        let failures = status["failures"].as_object().cloned().unwrap_or_default();
        for (scope, why) in &failures {
            let why = why.as_str().unwrap_or_default();
            assert!(why.contains("before the manager failover"), "an action failed on {scope}: {why}");
            seen.interrupted.insert(scope.clone());
        }
        for a in status["alarms"].as_array().into_iter().flatten() {
            seen.alarms.insert(a["def"]["id"].as_u64().unwrap() as u32);
        }
        for a in status["server_alarms"].as_array().into_iter().flatten() {
            seen.server_alarms.insert(a["alarm"]["id"].as_u64().unwrap() as u32);
        }
        hook(lab, &status, seen);
        let (code, next) = lab.post("/api/v1/upgrade/next", json!({ "direction": direction }));
        if code == 200 && next["done"] == true {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every server of the status's grid.
fn servers(status: &Value) -> impl Iterator<Item = &Value> {
    status["clusters"].as_array().unwrap().iter().flat_map(|c| c["servers"].as_array().unwrap())
}

fn server<'a>(status: &'a Value, hostname: &str) -> &'a Value {
    servers(status).find(|s| s["hostname"] == hostname).unwrap()
}

fn all_on(status: &Value, release: &str) -> bool {
    servers(status).all(|s| s["running_release"] == release)
}

#[test]
fn rolling_upgrade_and_backout_under_calls_with_a_manager_failover() {
    require_root_and_peers();
    let lab = Lab::up(NET, 53);
    let _policy_callee = Callee::start(&ip(60));
    let normal_callee = Callee::start(&ip(61));
    let policy_callee_invites = || _policy_callee.invites().len();
    let kamailio = Kamailio::start(&ip(50), &ip(61), &[&ip(10), &ip(20)], true);
    let traffic = Traffic::start(&kamailio.ip);
    let traffic_started = Instant::now();
    wait_until(20, "calls flowing through the engines", || policy_callee_invites() >= 8);

    // Upgrade: select 2.0.0 (staged on every server), then the next preferred actions.
    let (code, body) = lab.post("/api/v1/upgrade/procedure", json!({ "release": "2.0.0" }));
    assert_eq!(code, 200, "{body}");
    let mut seen = Seen::default();
    let mut killed: Option<String> = None;
    drive(&lab, "upgrade", &mut seen, |lab, status, seen| {
        // Mixed versions in an engine cluster: a schema-2 policy is refused, nothing installed.
        let east_b = server(status, "east-b");
        let east_a = server(status, "east-a");
        if seen.mixed_refusal.is_none() && east_b["running_release"] == "2.0.0" && east_a["running_release"] == "1.0.0"
        {
            let (code, body) = lab.push_policy(SCHEMA_2_POLICY);
            assert_eq!(code, 409, "a schema-2 policy while east-a runs 1.0.0: {body}");
            seen.mixed_refusal = Some(body["error"].as_str().unwrap().to_string());
        }
        // After the failover to 2.0.0, the server left on 1.0.0 is held by its SRP chassis: it
        // would not take over if the new version failed.
        for (old, new) in [("east-a", "east-b"), ("west-a", "west-b")] {
            let (o, n) = (server(status, old), server(status, new));
            if o["running_release"] == "1.0.0" && n["running_release"] == "2.0.0" && n["ha_role"] == "Active" {
                let (oi, ni) = (lab.srp_info(old), lab.srp_info(new));
                if oi.is_some_and(|i| i["forced_standby"] == true && i["chassis_state"] == "Standby")
                    && ni.is_some_and(|i| i["peer_forced_standby"] == true)
                {
                    seen.srp_held.insert(old.to_string());
                }
            }
        }
        // The manager cluster is done and an engine server is being upgraded: kill the active
        // manager; the other takes over and the upgrade goes on.
        let running_engine = status["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["application"] == "engine" && c["running"]["action"]["kind"] == "InitiateUpgrade");
        // The manager cluster is done when both run 2.0.0 and its last action (which clears
        // the upgraded manager's forced standby) has finished: killing the active one before
        // that leaves the other held, by design (a failover must not change the version).
        let mgr_done = ["mgr-a", "mgr-b"].iter().all(|h| server(status, h)["running_release"] == "2.0.0")
            && status["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["application"] == "manager")
                .all(|c| c["running"].is_null());
        if killed.is_none() && mgr_done && running_engine {
            let active = status["manager"]["hostname"].as_str().unwrap().to_string();
            lab.signal(&active, "KILL");
            killed = Some(active);
        }
        // Once the other manager took over and sees the lost one Offline, bring it back.
        if let Some(k) = &killed
            && !seen.failover_done
            && status["manager"]["hostname"] != k.as_str()
            && server(status, k)["reachable"] == false
        {
            lab.restart_server(k);
            seen.failover_done = true;
        }
    });
    let status = lab.get("/api/v1/upgrade/status");
    assert!(all_on(&status, "2.0.0"), "every server on 2.0.0:\n{status:#}");
    assert!(seen.failover_done, "the manager failover happened during the upgrade");
    assert!(seen.srp_held.contains("east-a"), "east-a held in forced standby by SRP: {:?}", seen.srp_held);
    let refusal = seen.mixed_refusal.clone().expect("the mixed-version refusal was observed");
    assert!(refusal.contains("east-a") && refusal.contains("1.0.0") && refusal.contains("schema 2"), "{refusal}");
    // Every engine on 2.0.0: the schema-2 policy installs; then the schema-1 policy goes back
    // before the backout (1.0.0 cannot read schema 2).
    let (code, body) = lab.push_policy(SCHEMA_2_POLICY);
    assert_eq!(code, 200, "schema 2 once every engine runs 2.0.0: {body}");
    let lab_policy = std::fs::read_to_string(lab.path().join("policy.toml")).unwrap();
    let (code, body) = lab.push_policy(&lab_policy);
    assert_eq!(code, 200, "{body}");

    // Before the upgrade, a system backup was taken: every server has one, and its own
    // backup before its upgrade.
    let backups = lab.get("/api/v1/backups");
    for b in backups.as_array().unwrap() {
        let names: Vec<&str> = b["backups"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert!(names.iter().any(|n| n.contains("pre-upgrade-system-2.0.0")), "{}: {names:?}", b["hostname"]);
        assert!(names.iter().any(|n| n.ends_with("pre-upgrade-2.0.0.tar.gz")), "{}: {names:?}", b["hostname"]);
    }
    // `tollgate health`, system-wide: every server runs the seed's syscheck classes.
    let health = lab.cli_json(&["health"]);
    let servers = health["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 11, "{health:#}");
    for sv in servers {
        let classes: Vec<&str> = sv["health"]["classes"]
            .as_array()
            .unwrap_or_else(|| panic!("{sv}"))
            .iter()
            .map(|c| c["class"].as_str().unwrap())
            .collect();
        assert_eq!(
            classes,
            ["disk", "hardware", "proc", "net", "replication", "alarms", "tls", "system", "upgrade"],
            "{sv}"
        );
    }

    // Backout, in reverse, to 1.0.0.
    drive(&lab, "backout", &mut seen, |_, _, _| {});
    let status = lab.get("/api/v1/upgrade/status");
    assert!(all_on(&status, "1.0.0"), "every server back on 1.0.0:\n{status:#}");

    // Calls: none failed, every one decided by an engine.
    std::thread::sleep(Duration::from_secs(2));
    let (ok, failed, errors) = traffic.stop();
    assert_eq!(failed, 0, "failed calls during the upgrade and backout:\n{errors}");
    // SIPp places 4 calls a second for as long as the upgrade and the backout take.
    let expected = traffic_started.elapsed().as_secs() * 4;
    assert!(ok * 10 >= expected * 8, "only {ok} calls were placed in {} s", traffic_started.elapsed().as_secs());
    assert_eq!(normal_callee.invites().len(), 0, "calls routed without an ENUM answer");
    assert!(policy_callee_invites() as u64 >= ok, "{} redirected INVITEs for {ok} calls", policy_callee_invites());

    // The upgrade log: complete, ordered, every entry closed with success.
    let log = lab.get("/api/v1/upgrade/log");
    let entries = log.as_array().unwrap();
    let ids: Vec<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "log IDs in order: {ids:?}");
    for e in entries {
        let interrupted = e["result"] == "Failure"
            && e["description"].as_str().unwrap().contains("before the manager failover")
            && seen.interrupted.contains(e["hostname"].as_str().unwrap());
        assert!(e["result"] == "Success" || interrupted, "{e}");
        assert!(e["end"].is_string(), "closed: {e}");
        let parent = e["parent_id"].as_u64().unwrap();
        assert!(parent == 0 || ids.contains(&parent), "parent of {e} is in the log");
    }
    let has = |action: &str, host: &str| {
        entries.iter().any(|e| e["action_name"] == action && e["hostname"] == host && e["result"] == "Success")
    };
    for host in [
        "mgr-a",
        "mgr-b",
        "east-a",
        "east-b",
        "east-c",
        "west-a",
        "west-b",
        "west-c",
        "probe-a",
        "probe-b",
        "collector-a",
    ] {
        assert!(has("Upgrading server", host), "{host} upgraded in the log");
        assert!(has("Backing out server upgrade", host), "{host} backed out in the log");
    }
    for cluster in ["mgr", "engine-east", "engine-west"] {
        assert!(has("Failover to new version", cluster), "{cluster} failed over to the new version");
        assert!(has("Failover to old version", cluster), "{cluster} failed over to the old version");
    }

    // The audit log of operator actions is a separate log: who started what.
    let audit = lab.cli_json(&["upgrade", "audit"]);
    let operations: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["operation"].as_str().unwrap()).collect();
    for op in ["Initiate upgrade east-b", "Failover to new version engine-east", "Initiate backout east-b"] {
        assert!(operations.contains(&op), "{op} in the audit log: {operations:?}");
    }
    assert!(operations.iter().all(|o| !o.contains("Modify the role")), "automatic steps are not operator actions");

    // Alarms: the Director's raised on the way (mixed versions, forced standby, upgrade in
    // progress, the lost manager server), and every alarm cleared at the end.
    for id in [70500, 70501, 70503, 70507, 31283] {
        assert!(seen.alarms.contains(&id), "alarm {id} raised during the upgrade (seen {:?})", seen.alarms);
    }
    wait_until(30, "every alarm cleared", || {
        let a = lab.get("/api/v1/alarms");
        a["active"].as_array().unwrap().is_empty()
            && a["servers"].as_object().unwrap().values().all(|l| l.as_array().unwrap().is_empty())
    });
    eprintln!(
        "calls: {ok} ok, {failed} failed in {} s; log entries: {}; manager alarms seen {:?}; server alarms seen {:?}; lab {}",
        traffic_started.elapsed().as_secs(),
        entries.len(),
        seen.alarms,
        seen.server_alarms,
        lab.path().display()
    );
}
