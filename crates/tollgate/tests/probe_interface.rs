//! `tollgate probe --interface IFACE --filter BPF` on a real interface (issue 18): a veth pair,
//! one end in a network namespace of the test's own holding SIPp callees, SIPp callers on the
//! other end, the probe capturing there through libpcap.
//!
//! - the calls the probe records (call-id, disposition, final code) are those SIPp placed, as
//!   SIPp saw them: answered and busy;
//! - SIP on a port the filter excludes crosses the same link (the interface's own transmit
//!   counter shows it) and is not seen: the probe's captured-frame and SIP counters do not move;
//! - kernel drops are 0 in that run; with a 1 MiB capture buffer and the probe stopped
//!   (SIGSTOP) while a burst crosses the link, they are counted in
//!   `tollgate_probe_kernel_drops_total` and in the summary line once it runs again;
//! - when the interface is removed the capture stops, and says so: the metric
//!   `tollgate_probe_capture_running` falls to 0 and alarm PROBE_CAPTURE_STOPPED is raised,
//!   while the process goes on running;
//! - a missing interface or a filter that does not compile ends the start naming it.
//!
//! Needs root (namespaces, libpcap) and SIPp, as the other end-to-end tests.
#![cfg(feature = "live-capture")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{ip, kill_namespace_processes};
use common::sip::{Callee, e2e_dir, place_calls, require_root_and_peers};
use common::{free_port, tollgate_bin};

/// The /24 of the link: the probe's end `.1` (the callers), the namespace's `.2` (answering
/// callee) and `.3` (busy callee).
const SUBNET: &str = "10.218.18";
/// Names of this test's namespace and links start with this.
const PREFIX: &str = "tgpi";
/// The port of the traffic the filter excludes.
const NOISE_PORT: u16 = 9999;
/// The port of the burst sent while the probe is stopped.
const BURST_PORT: u16 = 9998;

/// A veth pair, `<link>` in the root namespace and its peer in namespace `<ns>`; removed (with
/// every process in the namespace) on drop, whatever way the test ends.
struct Link {
    ns: String,
    link: String,
}

impl Link {
    fn create() -> Link {
        remove_leftovers();
        let pid = std::process::id();
        let link = Link { ns: format!("{PREFIX}-{pid}"), link: format!("{PREFIX}{pid}a") };
        let routed =
            Command::new("ip").args(["-4", "route", "show", "to", "match", &format!("{SUBNET}.0/24")]).output();
        let routed = String::from_utf8_lossy(&routed.expect("run ip").stdout).into_owned();
        assert!(!routed.contains(&format!("{SUBNET}.0/24")), "{SUBNET}.0/24 is routed here already: {routed}");
        ip(&["netns", "add", &link.ns]);
        ip(&["link", "add", &link.link, "type", "veth", "peer", "name", "eth0", "netns", &link.ns]);
        ip(&["addr", "add", &format!("{SUBNET}.1/24"), "dev", &link.link]);
        ip(&["link", "set", &link.link, "up"]);
        ip(&["-n", &link.ns, "link", "set", "lo", "up"]);
        for host in [2, 3] {
            ip(&["-n", &link.ns, "addr", "add", &format!("{SUBNET}.{host}/24"), "dev", "eth0"]);
        }
        ip(&["-n", &link.ns, "link", "set", "eth0", "up"]);
        link
    }

    /// Packets sent out of the probe's end so far.
    fn tx_packets(&self) -> u64 {
        let path = format!("/sys/class/net/{}/statistics/tx_packets", self.link);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().parse().unwrap()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        kill_namespace_processes(&self.ns);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip").args(["link", "del", &self.link]).stderr(Stdio::null()).output();
    }
}

/// Removes the namespaces and links of earlier runs of this test whose process is gone.
fn remove_leftovers() {
    let gone = |pid: &str| pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
    let text =
        |args: &[&str]| String::from_utf8_lossy(&Command::new("ip").args(args).output().unwrap().stdout).into_owned();
    for ns in text(&["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.strip_prefix(&format!("{PREFIX}-")).is_some_and(gone) {
            kill_namespace_processes(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
    for line in text(&["-o", "link", "show"]).lines() {
        let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n)) else { continue };
        if name.strip_prefix(PREFIX).map(|r| r.trim_end_matches('a')).is_some_and(gone) {
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
}

/// The probe process, killed if the test fails half-way; its stdout lines collected.
struct Probe {
    child: Child,
    api: String,
    state: std::path::PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: std::path::PathBuf,
}

impl Probe {
    fn start(dir: &Path, interface: &str, filter: &str) -> Probe {
        let config = dir.join("tollgate.toml");
        // The smallest capture buffer, so that a burst overflows it.
        std::fs::write(&config, "[probe]\ncapture_buffer_mb = 1\n").unwrap();
        let state = dir.join("state");
        let api = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let stderr = dir.join("probe.log");
        let mut child = Command::new(tollgate_bin())
            .arg("--config")
            .arg(&config)
            .args(["--log", "info", "probe", "--device", "span-if", "--summary-secs", "1"])
            .args(["--interface", interface, "--filter", filter, "--api-listen", &api, "--state-dir"])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = stdout.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut probe = Probe { child, api: format!("http://{api}"), state, stdout, stderr };
        probe.wait_for(Duration::from_secs(60), "the ready line", |p| {
            p.lines().iter().any(|l| l.starts_with("tollgate ready:"))
        });
        probe
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Polls `done` until it holds; fails after `within` with the probe's output.
    fn wait_for(&mut self, within: Duration, what: &str, mut done: impl FnMut(&Probe) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the probe exited ({status}) waiting for {what}:\n{}\n{}", self.lines().join("\n"), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {within:?}; stdout:\n{}\nlog:\n{}",
                self.lines().join("\n"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn metrics(&self) -> String {
        reqwest::blocking::get(format!("{}/metrics", self.api)).and_then(|r| r.text()).unwrap_or_default()
    }

    /// A metric's value (0 when absent).
    fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics(), name)
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{signal}");
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A SIP INVITE of call `call_id` from `from` (so it would be a call, were it seen).
fn invite(call_id: &str, from: &str, to: &str) -> String {
    format!(
        "INVITE sip:4155550999@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{call_id}\r\nFrom: <sip:2125550999@{from}>;tag=n\r\nTo: <sip:4155550999@{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The filter of the test: the link's own UDP (not whatever else the machine sends out of every
/// interface), except the noise port.
fn filter() -> String {
    format!("udp and src net {SUBNET}.0/24 and dst net {SUBNET}.0/24 and not port {NOISE_PORT}")
}

/// One group of SIPp calls.
struct Group {
    disposition: &'static str,
    final_code: u64,
    /// The callee's address and scenario.
    callee: &'static str,
    scenario: &'static str,
    calls: u64,
}

#[test]
fn the_probe_on_a_veth_records_sipps_calls_filters_counts_kernel_drops_and_reports_a_lost_interface() {
    require_root_and_peers();
    let work = tempfile::tempdir().unwrap();
    let link = Link::create();
    let ns = Some(link.ns.as_str());

    // The callees, in the namespace: one answers, one is busy.
    let answer = Callee::start_in(ns, &format!("{SUBNET}.2"), 5060, &e2e_dir().join("uas-answer.xml"), 6000);
    let busy_scenario = work.path().join("uas-486.xml");
    let text = std::fs::read_to_string(e2e_dir().join("probe/uas-final.xml")).unwrap();
    std::fs::write(
        &busy_scenario,
        text.replace("@CODE@", "486").replace("@REASON@", "Busy Here").replace("@EXTRA@", ""),
    )
    .unwrap();
    let busy = Callee::start_in(ns, &format!("{SUBNET}.3"), 5060, &busy_scenario, 6100);

    let mut probe = Probe::start(work.path(), &link.link, &filter());
    assert_eq!(probe.metric("tollgate_probe_capture_running"), 1.0, "{}", probe.metrics());

    // Traffic the filter excludes: SIP INVITEs to the noise port, out of the captured interface,
    // then one datagram it lets through. Once that one is read, the noise before it would have
    // been too: exactly one frame more is captured, and no SIP.
    let captured_before = probe.metric("tollgate_probe_captured_frames_total");
    let tx_before = link.tx_packets();
    let noise = UdpSocket::bind(format!("{SUBNET}.1:0")).unwrap();
    let callee_ip = format!("{SUBNET}.2");
    let noise_count = 500;
    for i in 0..noise_count {
        let m = invite(&format!("noise-{i}"), &format!("{SUBNET}.1"), &callee_ip);
        noise.send_to(m.as_bytes(), (callee_ip.as_str(), NOISE_PORT)).unwrap();
    }
    noise.send_to(b"marker", (callee_ip.as_str(), BURST_PORT)).unwrap();
    assert!(link.tx_packets() - tx_before > noise_count, "the noise went out of {}", link.link);
    probe.wait_for(Duration::from_secs(30), "the marker datagram captured", |p| {
        p.metric("tollgate_probe_captured_frames_total") > captured_before
    });
    std::thread::sleep(Duration::from_secs(1));
    let m = probe.metrics();
    assert_eq!(metric(&m, "tollgate_probe_captured_frames_total"), captured_before + 1.0, "only the marker: {m}");
    assert_eq!(metric(&m, "tollgate_probe_sip_messages_total"), 0.0, "no noise INVITE: {m}");
    assert_eq!(metric(&m, "tollgate_probe_open_calls"), 0.0, "no noise call: {m}");

    // The calls, SIPp's callers on the probe's end. Answered calls one at a time (the callee
    // answers every call on one media port).
    let groups = [
        Group { disposition: "answered", final_code: 200, callee: "2", scenario: "probe/uac-answered.xml", calls: 4 },
        Group { disposition: "busy", final_code: 486, callee: "3", scenario: "probe/uac-final.xml", calls: 3 },
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (i, g) in groups.iter().enumerate() {
        let numbers = work.path().join(format!("numbers-{i}.csv"));
        let mut csv = String::from("SEQUENTIAL\n");
        for n in 0..g.calls {
            csv.push_str(&format!("212555000{n};415555010{i};\n"));
        }
        std::fs::write(&numbers, csv).unwrap();
        let scenario = work.path().join(format!("uac-{i}.xml"));
        let text = std::fs::read_to_string(e2e_dir().join(g.scenario)).unwrap().replace("@CODE@", "486");
        std::fs::write(&scenario, text).unwrap();
        let concurrent = if g.disposition == "answered" { 1 } else { 10 };
        let run = place_calls(
            &scenario,
            &numbers,
            g.calls,
            concurrent,
            &format!("{SUBNET}.1"),
            5070 + i as u16,
            7000 + 100 * i as u16,
            &format!("{SUBNET}.{}", g.callee),
        );
        assert!(run.success, "SIPp {} calls: {run:?}", g.disposition);
        assert_eq!(run.successful_calls, g.calls, "SIPp's own count of {} calls: {run:?}", g.disposition);
        assert_eq!(run.failed_calls, 0, "{run:?}");
        assert_eq!(run.call_ids.len() as u64, g.calls, "{run:?}");
        for id in run.call_ids {
            expected.insert(id, (g.disposition.to_string(), g.final_code));
        }
    }
    drop((answer, busy));
    let total = expected.len() as f64;
    probe.wait_for(Duration::from_secs(60), "every call in the metrics", |p| {
        p.metric("tollgate_probe_calls_total") >= total
    });
    let m = probe.metrics();
    assert_eq!(metric(&m, "tollgate_probe_calls_total"), total, "{m}");
    assert_eq!(metric(&m, "tollgate_probe_calls_answered_total"), 4.0, "{m}");
    assert_eq!(metric(&m, "tollgate_probe_calls_busy_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "tollgate_probe_kernel_drops_total"), 0.0, "no drops in a normal run: {m}");
    assert_eq!(metric(&m, "tollgate_probe_open_calls"), 0.0, "{m}");

    // Kernel drops for real: the probe stopped while a burst fills its 1 MiB buffer many times
    // over, then running again.
    let before = probe.metric("tollgate_probe_captured_frames_total");
    probe.signal("STOP");
    let burst = 20_000u64;
    let tx_before = link.tx_packets();
    let payload = vec![0u8; 1200];
    let mut accepted = 0u64;
    for _ in 0..burst {
        accepted += u64::from(noise.send_to(&payload, (callee_ip.as_str(), BURST_PORT)).is_ok());
    }
    let sent = link.tx_packets() - tx_before;
    assert!(sent >= burst / 2, "the burst went out of {} ({sent} packets)", link.link);
    probe.signal("CONT");
    // Nothing is lost without being counted: each datagram of the burst is read or counted as
    // dropped by the kernel (once the probe has caught up).
    probe.wait_for(Duration::from_secs(60), "every datagram of the burst read or counted dropped", |p| {
        let m = p.metrics();
        metric(&m, "tollgate_probe_captured_frames_total") - before + metric(&m, "tollgate_probe_kernel_drops_total")
            >= accepted as f64
    });
    let m = probe.metrics();
    let drops = metric(&m, "tollgate_probe_kernel_drops_total");
    let read = metric(&m, "tollgate_probe_captured_frames_total") - before;
    assert!(drops > 0.0, "the kernel dropped some of the burst: {m}");
    assert_eq!(read + drops, accepted as f64, "read {read} + dropped {drops} = the {accepted} sent; {m}");
    probe.wait_for(Duration::from_secs(30), "kernel drops in the summary line", |p| {
        p.lines().iter().any(|l| {
            l.starts_with("probe ")
                && l.split_once(&format!("capture on {}: ", link.link))
                    .and_then(|(_, rest)| rest.split_once(" frames, "))
                    .and_then(|(_, rest)| rest.split_once(" dropped by the kernel"))
                    .and_then(|(n, _)| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
        })
    });
    eprintln!("burst: {sent} packets sent, {read} read, {drops} dropped by the kernel");

    // The interface goes away: the capture stops, says so, and the process runs on.
    ip(&["link", "del", &link.link]);
    probe.wait_for(Duration::from_secs(30), "the capture reported stopped", |p| {
        let m = p.metrics();
        m.lines().any(|l| l.starts_with("tollgate_probe_capture_running "))
            && metric(&m, "tollgate_probe_capture_running") == 0.0
    });
    assert!(probe.log().contains(&format!("the capture on interface {} stopped", link.link)), "{}", probe.log());
    let token = std::fs::read_to_string(probe.state.join("cli-token")).unwrap();
    let scope = format!("/{}", link.link);
    probe.wait_for(Duration::from_secs(10), "alarm PROBE_CAPTURE_STOPPED", |p| {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/alarms", p.api))
            .bearer_auth(token.trim())
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.contains("PROBE_CAPTURE_STOPPED") && t.contains(&scope))
    });

    // Stopped, the probe says what it captured; its records are SIPp's calls.
    probe.signal("TERM");
    assert!(probe.child.wait().unwrap().success(), "{}", probe.log());
    let lines = probe.lines();
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("capture on {}: ", link.link)) && l.contains("STOPPED")),
        "{}",
        lines.join("\n")
    );
    let out =
        Command::new(tollgate_bin()).args(["spool", "dump", "--dir"]).arg(probe.state.join("spool")).output().unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    let recorded: std::collections::BTreeMap<String, (String, u64)> = dump
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|c| {
            assert_eq!(c["device"], "span-if", "{c}");
            let id = c["call_id"].as_str().unwrap().to_string();
            (id, (c["disposition"].as_str().unwrap().to_string(), c["final_code"].as_u64().unwrap_or(0)))
        })
        .collect();
    assert_eq!(recorded, expected, "the probe's calls are SIPp's, with SIPp's outcomes (no noise call):\n{dump}");
}

/// Runs `tollgate probe` expecting it to fail at start, before it creates its state directory;
/// its error output.
fn failed_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let state = dir.path().join("state");
    let out = Command::new(tollgate_bin())
        .args(["probe", "--api-listen", &api, "--state-dir"])
        .arg(&state)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} started: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tollgate ready"), "{args:?}: ready");
    assert!(!state.exists(), "{args:?}: a start that cannot work leaves nothing behind (no state directory)");
    stderr
}

#[test]
fn a_missing_interface_or_a_bad_filter_ends_the_start_naming_it() {
    require_root_and_peers();
    let e = failed_start(&["--interface", "tgpi-none0"]);
    assert!(e.contains("interface \"tgpi-none0\" does not exist here (interfaces: "), "{e}");
    assert!(e.contains("lo"), "the interfaces there are are listed: {e}");
    let e = failed_start(&["--interface", "lo", "--filter", "udp and and port 5060"]);
    assert!(e.contains("filter \"udp and and port 5060\" is not a valid BPF expression for interface \"lo\""), "{e}");
}
