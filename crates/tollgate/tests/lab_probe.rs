//! The lab's probe pair on HEP from the lab's Kamailio, across a probe failover, on a whole lab
//! (`tollgate lab up`). Kamailio (the SBC) mirrors every SIP message it receives or sends as
//! HEP3 to the probe pair's service address (`hep` in lab.json); only the Active probe binds
//! it. SIPp places calls through Kamailio and the lab's engines; the test kills the Active probe
//! with SIGKILL while calls are up and SIPp keeps placing calls.
//!
//! Shown: the Standby receives nothing while the Active lives (no call can be counted twice);
//! calls before the failover are recorded once, with device probe-a; the Standby takes the
//! service address and calls after the failover are recorded once, with device probe-b; calls
//! up at the failover (their INVITE seen by probe-a, their BYE by probe-b) are taken over by
//! probe-b from probe-a's checkpoints and recorded once, whole, by probe-b, none of their
//! messages unknown to it; every call of the steady traffic that began and ended wholly
//! outside the failover window is recorded exactly once, by the probe that held the address
//! then (probe-a's records once it is started again and ships its spool), and none in the
//! window twice. Needs root (port 53, Kamailio's private resolv.conf).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use common::lab::Lab;
use common::sip::{Callee, HeldCall, Kamailio, SbcOptions, e2e_dir, require_root_and_peers, sipp_call_counts};
use common::{metric_at, wait_until};

const NET: u8 = 87;

fn ip(host: u8) -> String {
    format!("127.0.{NET}.{host}")
}

/// A server's role API.
fn api(host: u8) -> String {
    format!("http://{}:8080", ip(host))
}

const PROBE_A: u8 = 31;
const PROBE_B: u8 = 32;
const COLLECTOR: u8 = 41;

/// Calls of the steady traffic across the failover (4 a second).
const STEADY: u64 = 80;

/// SIPp placing `calls` calls (uac.xml: answered, hung up 50 ms later) from `caller:port`
/// through the SBC at `rate` a second; its message log says when each call's messages passed.
struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
    /// The calls it places.
    calls: u64,
}

impl Sipp {
    fn start(caller: &str, port: u16, media: u16, sbc: &str, calls: u64, rate: u64) -> Sipp {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(e2e_dir().join("uac.xml"))
            .args(["-s", "+12125550100", "-key", "from", "+13125551234"])
            .args(["-m", &calls.to_string(), "-r", &rate.to_string(), "-l", "20"])
            .args(["-i", caller, "-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-timeout", "60", "-timeout_error", "-nostdin", "-trace_msg", "-message_file"])
            .arg(dir.path().join("messages.log"))
            .args(["-trace_stat", "-fd", "1", "-stf"])
            .arg(dir.path().join("stats.csv"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .arg(format!("{sbc}:5060"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (Debian package sip-tester)");
        Sipp { child, dir, calls }
    }

    /// Waits for SIPp to place every call; (successful, failed) as SIPp counted them.
    fn wait(mut self) -> (u64, u64, Sipp) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "sipp did not finish its calls in 180 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let (ok, failed) = sipp_call_counts(&self.dir.path().join("stats.csv"));
        // A call counted neither way ran into SIPp's -timeout; its error log says where.
        if failed > 0 || ok + failed < self.calls {
            eprintln!("{}", std::fs::read_to_string(self.dir.path().join("errors.log")).unwrap_or_default());
        }
        (ok, failed, self)
    }

    /// Each call's first and last message (SIPp's message log, local time), by Call-ID.
    fn calls(&self) -> BTreeMap<String, (NaiveDateTime, NaiveDateTime)> {
        sipp_call_times(&self.dir.path().join("messages.log"))
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each Call-ID's first and last message time in a SIPp `-trace_msg` log (blocks headed by
/// `----- <date> <time>`).
fn sipp_call_times(log: &Path) -> BTreeMap<String, (NaiveDateTime, NaiveDateTime)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut calls: BTreeMap<String, (NaiveDateTime, NaiveDateTime)> = BTreeMap::new();
    let mut at = None;
    for line in text.lines() {
        if line.starts_with("-----") {
            let stamp = line.trim_start_matches('-').trim();
            at = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f").ok();
        } else if let (Some(id), Some(t)) = (line.strip_prefix("Call-ID: "), at) {
            let e = calls.entry(id.trim().to_string()).or_insert((t, t));
            e.0 = e.0.min(t);
            e.1 = e.1.max(t);
        }
    }
    calls
}

/// The collector's SIP records of the last two hours: (call_id, device, disposition).
fn records(lab: &Lab) -> Vec<(String, String, String)> {
    let from = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let enc = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    let url = format!("{}/api/v1/export?dataset=SIP&from={}&to={}", api(COLLECTOR), enc(&from), enc(&to));
    let resp = reqwest::blocking::Client::new().get(url).bearer_auth(&lab.token).send().unwrap();
    assert!(resp.status().is_success(), "export: {}", resp.status());
    let csv = resp.text().unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (id, dev, disp) = (col("call_id"), col("device"), col("disposition"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .map(|f| (f[id].to_string(), f[dev].to_string(), f[disp].to_string()))
        .collect()
}

/// How many records of `call_id` the collector holds, by device.
fn recorded(all: &[(String, String, String)], call_id: &str) -> Vec<String> {
    all.iter().filter(|(id, _, _)| id == call_id).map(|(_, dev, _)| dev.clone()).collect()
}

fn chassis_state(lab: &Lab, hostname: &str) -> String {
    lab.srp_info(hostname).and_then(|i| i["chassis_state"].as_str().map(str::to_string)).unwrap_or_default()
}

fn probe_metric(host: u8, series: &str) -> u64 {
    metric_at(&api(host), series) as u64
}

#[test]
fn calls_are_recorded_once_across_a_probe_failover_and_calls_in_flight_are_taken_over() {
    require_root_and_peers();
    let lab = Lab::up(NET, 53);
    let hep = lab.info["hep"].as_str().expect("lab.json names the probe pair's HEP address").to_string();
    assert_eq!(hep, format!("{}:9060", ip(30)));
    let _policy_callee = Callee::start(&ip(60));
    let _normal_callee = Callee::start(&ip(61));
    let kamailio = Kamailio::start_sbc_hep(
        SbcOptions {
            ip: &ip(50),
            normal_ip: &ip(61),
            nameservers: &[&ip(10), &ip(20)],
            rotate: true,
            children: 4,
            dns_retries: 1,
            netns: None,
        },
        Some(&hep),
    );
    wait_until(30, "probe-a Active and probe-b Standby", || {
        chassis_state(&lab, "probe-a") == "Active" && chassis_state(&lab, "probe-b") == "Standby"
    });

    // Before the failover: 10 calls, recorded once by probe-a.
    let (ok, failed, before) = Sipp::start(&ip(70), 5070, 6100, &kamailio.ip, 10, 5).wait();
    assert_eq!((ok, failed), (10, 0), "SIPp's own count before the failover");
    let before: Vec<String> = before.calls().into_keys().collect();
    assert_eq!(before.len(), 10);
    wait_until(60, "the calls before the failover at the collector", || {
        let all = records(&lab);
        before.iter().all(|id| !recorded(&all, id).is_empty())
    });

    // Calls up at the failover: answered, held, their INVITE seen by probe-a.
    let mut held: Vec<HeldCall> =
        (0..3).map(|_| HeldCall::place(&ip(71), &kamailio.ip, "+13125554321", "+12125550100")).collect();
    assert!(
        held.iter().all(HeldCall::is_up),
        "held calls answered: {:?}",
        held.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    wait_until(30, "probe-a sees the three held calls open", || {
        probe_metric(PROBE_A, "tollgate_probe_open_calls") == 3
    });
    // The Standby received nothing at all.
    assert_eq!(probe_metric(PROBE_B, "tollgate_probe_hep_packets_total"), 0, "HEP reached the Standby");

    // Steady traffic across the failover: probe-a killed once it has recorded 30 of its calls.
    let steady = Sipp::start(&ip(72), 5072, 6200, &kamailio.ip, STEADY, 4);
    wait_until(60, "steady calls recorded by probe-a", || probe_metric(PROBE_A, "tollgate_probe_calls_total") >= 40);
    // The window opens a generous 5 s before the kill: a call whose last message passed
    // Kamailio just before the kill may still have been in probe-a's socket buffer, unread.
    let window_start = chrono::Local::now().naive_local() - chrono::Duration::seconds(5);
    lab.signal("probe-a", "KILL");
    wait_until(30, "probe-b takes over", || chassis_state(&lab, "probe-b") == "Active");
    let window_end = chrono::Local::now().naive_local();

    let (ok, failed, steady) = steady.wait();
    assert_eq!((ok, failed), (STEADY, 0), "SIPp's own count of the steady traffic");

    // The held calls end after the failover: probe-b took them over from probe-a's
    // checkpoints, so their BYEs complete them there (counted once probe-b has read
    // everything the steady traffic sent).
    assert!(
        probe_metric(PROBE_B, "tollgate_probe_calls_recovered_total") >= held.len() as u64,
        "probe-b took over at least the held calls"
    );
    let mut last = u64::MAX;
    wait_until(60, "probe-b has read every HEP packet sent so far", || {
        let now = probe_metric(PROBE_B, "tollgate_probe_hep_packets_total");
        std::thread::sleep(Duration::from_secs(1));
        std::mem::replace(&mut last, now) == now
    });
    let unknown_before = probe_metric(PROBE_B, "tollgate_probe_unknown_call_messages_total");
    for c in &mut held {
        c.hang_up();
    }
    wait_until(60, "the held calls recorded by probe-b", || {
        let all = records(&lab);
        held.iter().all(|c| !recorded(&all, &c.call_id).is_empty())
    });
    assert_eq!(
        probe_metric(PROBE_B, "tollgate_probe_unknown_call_messages_total"),
        unknown_before,
        "no message of the held calls was unknown to probe-b"
    );

    // After the failover: 10 calls, recorded once by probe-b.
    let (ok, failed, after) = Sipp::start(&ip(70), 5070, 6100, &kamailio.ip, 10, 5).wait();
    assert_eq!((ok, failed), (10, 0), "SIPp's own count after the failover");
    let after: Vec<String> = after.calls().into_keys().collect();
    assert_eq!(after.len(), 10);

    // probe-a starts again (it rejoins as Standby) and ships what its spool held.
    lab.restart_server("probe-a");
    let steady = steady.calls();
    assert_eq!(steady.len() as u64, STEADY);
    let wholly_before: Vec<&String> =
        steady.iter().filter(|(_, (_, end))| *end < window_start).map(|(id, _)| id).collect();
    let wholly_after: Vec<&String> =
        steady.iter().filter(|(_, (begin, _))| *begin > window_end).map(|(id, _)| id).collect();
    assert!(!wholly_before.is_empty() && !wholly_after.is_empty(), "steady calls on both sides of the failover");
    wait_until(120, "every call outside the failover window at the collector", || {
        let all = records(&lab);
        after
            .iter()
            .chain(wholly_before.iter().copied())
            .chain(wholly_after.iter().copied())
            .all(|id| !recorded(&all, id).is_empty())
    });
    wait_until(30, "probe-a back as Standby", || chassis_state(&lab, "probe-a") == "Standby");

    let all = records(&lab);
    for id in &before {
        assert_eq!(recorded(&all, id), ["probe-a"], "call {id} before the failover");
    }
    for id in &after {
        assert_eq!(recorded(&all, id), ["probe-b"], "call {id} after the failover");
    }
    for id in &wholly_before {
        assert_eq!(recorded(&all, id), ["probe-a"], "steady call {id} that ended before the failover");
    }
    for id in &wholly_after {
        assert_eq!(recorded(&all, id), ["probe-b"], "steady call {id} that began after the failover");
    }
    // Calls in flight: recorded once, whole, by the probe that saw their end.
    for c in &held {
        assert_eq!(recorded(&all, &c.call_id), ["probe-b"], "held call {} was up at the failover", c.call_id);
    }
    let mut in_window = 0;
    for (id, _) in steady.iter().filter(|(id, _)| !wholly_before.contains(id) && !wholly_after.contains(id)) {
        assert!(recorded(&all, id).len() <= 1, "steady call {id} in the failover window recorded twice");
        in_window += 1;
    }
    eprintln!(
        "steady traffic: {} calls before the failover window, {in_window} in it, {} after",
        wholly_before.len(),
        wholly_after.len()
    );
    // Every record is an answered call (SIPp's scenario), of one of the two probes.
    for (id, dev, disp) in &all {
        assert!(dev == "probe-a" || dev == "probe-b", "{id}: device {dev}");
        assert_eq!(disp, "answered", "{id} ({dev})");
    }
    // Nothing recorded twice anywhere.
    let mut seen = std::collections::BTreeSet::new();
    for (id, dev, _) in &all {
        assert!(seen.insert(id.clone()), "call {id} recorded twice (the second by {dev})");
    }
    drop(kamailio);
}
