//! SRP switchover, measured with real processes on loopback and printed as Markdown tables,
//! each figure with the link in plain TCP and in TLS 1.3 (mutual engine certificates of a CA
//! made for the run, `[tls]`), side by side:
//!
//! * switchover time over RUNS kill -9 runs of the Active (hello 100 ms, dead 300 ms): from
//!   the kill to the first answer from the Standby on the service address (a prober asks every
//!   2 ms), median and max;
//! * rejoin time of the same runs: the killed chassis started again until it is a synchronised
//!   Standby (process start, the link's connect and handshakes, TLS included, and the full
//!   checkpoint);
//! * failed queries during a switchover with dnsperf at 10,000 queries/s;
//! * checkpoint throughput: velocity counter updates per second replicated to the Standby while
//!   dnsperf drives distinct callers, and replication lag (an update on the Active until the
//!   Standby holds it).
//!
//! `cargo bench -p tollgate --bench srp_switchover -- [RUNS] [--switchover-only]` (default 20
//! runs; `--switchover-only`: the first table alone, without dnsperf). Needs dnsperf; run as
//! root is not needed (ports above 1024).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Engine, EngineOptions, free_port, temp_file, wait_until};

const KEY: &str = "tollgate-srp-bench-key-0123456789";
const POLICY: &str = r#"
schema = 2
name = "bench"
[[rule]]
name = "velocity"
source = "any"
velocity = { calls = 1000, window = "10m" }
action = "terminate"
cause = 603
"#;

/// How the pair's link is protected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Plain,
    Tls,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Plain => "plain TCP",
            Link::Tls => "TLS 1.3",
        }
    }
}

struct Pair {
    a: Engine,
    b: Engine,
    service: SocketAddr,
    /// The CA and certificates of a TLS pair.
    _pki: Option<tempfile::TempDir>,
}

/// A CA in a temporary directory and an engine certificate for each chassis' SRP address;
/// the `[tls]` section of each.
fn pki(ips: [&str; 2]) -> (tempfile::TempDir, [String; 2]) {
    use tollgate_tls::Role;
    use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(&dir.path().join("ca"), "bench CA", DEFAULT_CA_VALIDITY).unwrap();
    let section = |host: &str, ip: &str| {
        let issued = ca
            .issue(&IssueRequest {
                role: Role::Engine,
                host: host.into(),
                ips: vec![ip.parse().unwrap()],
                dns_names: vec![],
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let (cert, key) = issued_paths(dir.path(), host);
        issued.write(&cert, &key).unwrap();
        format!(
            "\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("ca").join("ca.crt").display(),
            cert.display(),
            key.display()
        )
    };
    let sections = [section("engine-a", ips[0]), section("engine-b", ips[1])];
    (dir, sections)
}

fn start_pair(net: &str, link: Link) -> Pair {
    let ip = |h: u8| format!("{net}.{h}");
    let (pa, pb) = (free_port(&ip(1)), free_port(&ip(2)));
    let service: SocketAddr = format!("{}:{}", ip(10), free_port(&ip(10))).parse().unwrap();
    let (dir, tls) = match link {
        Link::Plain => (None, [String::new(), String::new()]),
        Link::Tls => {
            let (dir, sections) = pki([&ip(1), &ip(2)]);
            (Some(dir), sections)
        }
    };
    let chassis = |node: &str, mode: &str, prio: u8, me: String, peer: String| {
        let tls = if node == "engine-a" { &tls[0] } else { &tls[1] };
        let e = Engine::start(EngineOptions {
            node: node.into(),
            role: "engine",
            enum_listen: vec![service],
            api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
            extra_config: format!(
                "[srp]\nnode_id = \"{node}\"\nbind_address = \"{me}\"\npeer_address = \"{peer}\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {prio}\nhello_interval_ms = 100\ndead_interval_ms = 300\n{tls}"
            ),
            ..Default::default()
        });
        let (_d, p) = temp_file("policy.toml", POLICY);
        assert!(e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]).status.success());
        e
    };
    let a = chassis("engine-a", "primary", 1, format!("{}:{pa}", ip(1)), format!("{}:{pb}", ip(2)));
    let b = chassis("engine-b", "backup", 2, format!("{}:{pb}", ip(2)), format!("{}:{pa}", ip(1)));
    wait_until(30, "a synchronised pair", || {
        show(&a, "info")["chassis_state"] == "Active"
            && show(&b, "info")["chassis_state"] == "Standby"
            && show(&b, "info")["ready"] == true
    });
    if link == Link::Tls {
        let tls_failures = show(&b, "statistics")["link"]["tls_failures"].as_u64();
        assert_eq!(tls_failures, Some(0), "a TLS pair: the link is up in TLS");
    }
    Pair { a, b, service, _pki: dir }
}

fn show(e: &Engine, what: &str) -> serde_json::Value {
    e.get_json(&format!("/api/v1/srp/show/{what}"))["data"].clone()
}

fn query(id: u16, from: u64) -> Vec<u8> {
    let mut q = vec![(id >> 8) as u8, id as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut labels: Vec<String> = "12125550100".chars().rev().map(String::from).collect();
    labels.push(format!("src-{from}"));
    labels.push("e164".into());
    labels.push("arpa".into());
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 35, 0, 1]);
    q
}

fn answered(service: SocketAddr, from: u64, wait: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind((service.ip(), 0)) else { return false };
    let _ = sock.set_read_timeout(Some(wait));
    let _ = sock.send_to(&query(7, from), service);
    let mut buf = [0u8; 1500];
    sock.recv_from(&mut buf).is_ok()
}

/// Kills the Active under a 2 ms prober; returns the time to the first answer after the kill,
/// and the time from starting the killed chassis again until it is a synchronised Standby.
fn switchover_once(net: &str, link: Link) -> (Duration, Duration) {
    let mut p = start_pair(net, link);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, service) = (stop.clone(), p.service);
        std::thread::spawn(move || {
            // (sent, answered) of each answered query.
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if answered(service, 14_155_550_100, Duration::from_millis(20)) {
                    times.push((sent, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            times
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    p.a.kill();
    wait_until(10, "engine-b Active", || show(&p.b, "info")["chassis_state"] == "Active");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let times = prober.join().unwrap();
    // The first answer to a query sent after the kill (answers in flight at the kill do not
    // count).
    let switchover = times
        .into_iter()
        .find(|(sent, _)| *sent > killed)
        .map(|(_, got)| got.duration_since(killed))
        .expect("answers after the kill");
    // The killed chassis back: a new link connection (TLS handshake included) and a full
    // checkpoint make it a synchronised Standby.
    let restarted = Instant::now();
    p.a.start_again();
    wait_until(30, "engine-a a synchronised Standby", || {
        let info = show(&p.a, "info");
        info["chassis_state"] == "Standby" && info["ready"] == true
    });
    (switchover, restarted.elapsed())
}

fn dnsperf(service: SocketAddr, secs: u32, qps: u32, distinct_callers: bool) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for i in 0..100_000u64 {
            let src = if distinct_callers { 13_125_500_000 + i } else { 14_155_550_100 };
            writeln!(file, "0.0.1.0.5.5.5.2.1.2.1.src-{src}.e164.arpa. NAPTR").unwrap();
        }
        file.flush().unwrap();
        let out = Command::new("dnsperf")
            .args(["-s", &service.ip().to_string(), "-p", &service.port().to_string(), "-d"])
            .arg(file.path())
            .args(["-l", &secs.to_string(), "-Q", &qps.to_string(), "-c", "4", "-q", "5000", "-t", "0.5"])
            .output()
            .expect("run dnsperf");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

fn field(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Plain and TLS runs alternate, so both see the same machine load.
    let mut measured: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    for i in 0..runs {
        for (n, link) in [Link::Plain, Link::Tls].into_iter().enumerate() {
            let (switchover, rejoin) = switchover_once("127.0.71", link);
            eprintln!("run {} ({}): switchover {switchover:?}, rejoin {rejoin:?}", i + 1, link.name());
            measured[n].0.push(switchover);
            measured[n].1.push(rejoin);
        }
    }
    println!(
        "\n| link | kill -9 runs | hello / dead | switchover median (ms) | max (ms) | min (ms) | rejoin median (ms) | max (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (n, link) in [Link::Plain, Link::Tls].into_iter().enumerate() {
        let (times, rejoins) = &mut measured[n];
        times.sort();
        rejoins.sort();
        println!(
            "| {} | {runs} | 100 ms / 300 ms | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            link.name(),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            ms(times[0]),
            ms(rejoins[rejoins.len() / 2]),
            ms(*rejoins.last().unwrap()),
        );
    }

    if std::env::args().any(|a| a == "--switchover-only") {
        return;
    }

    // Failed queries during one switchover at 10,000 queries/s.
    println!("\n| link | dnsperf rate | queries sent | lost (no answer) | switchover |");
    println!("|---|---|---|---|---|");
    for _ in 0..3 {
        for link in [Link::Plain, Link::Tls] {
            let mut p = start_pair("127.0.72", link);
            let load = dnsperf(p.service, 6, 10_000, false);
            std::thread::sleep(Duration::from_secs(3));
            p.a.kill();
            wait_until(10, "engine-b Active", || show(&p.b, "info")["chassis_state"] == "Active");
            let report = load.join().unwrap();
            println!(
                "| {} | 10,000/s | {} | {} | kill -9 of the Active at 3 s |",
                link.name(),
                field(&report, "Queries sent:"),
                field(&report, "Queries lost:")
            );
        }
    }

    println!(
        "\n| link | counter updates (dnsperf, 5 s) | micro-checkpoints applied | counters on the standby | standby caught up after load | replication lag median / max |"
    );
    println!("|---|---|---|---|---|---|");
    for link in [Link::Plain, Link::Tls] {
        checkpointing(link);
    }
}

/// Checkpoint throughput and replication lag: every query from a new caller creates a velocity
/// counter on the Active, replicated to the Standby.
fn checkpointing(link: Link) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = start_pair("127.0.73", link);
    let before = show(&p.b, "checkpoint-statistics");
    let load = dnsperf(p.service, 5, 10_000, true);
    let report = load.join().unwrap();
    let started = Instant::now();
    let completed = field(&report, "Queries completed:");
    wait_until(30, "the standby holds every counter", || {
        show(&p.b, "checkpoint-statistics")["current_pre_allocated_calls"].as_u64().unwrap_or(0)
            >= completed.min(100_000)
    });
    let drain = started.elapsed();
    let after = show(&p.b, "checkpoint-statistics");
    let micro = after["micro_checkpoints_applied"].as_u64().unwrap_or(0)
        - before["micro_checkpoints_applied"].as_u64().unwrap_or(0);
    let sessions = after["current_pre_allocated_calls"].as_u64().unwrap_or(0);
    drop(p);
    // Lag, on a fresh pair (small tables): one new counter, timed until the standby holds it.
    let p = start_pair("127.0.74", link);
    let mut lags = Vec::new();
    for i in 0..20u64 {
        let caller = 19_995_550_000 + i;
        let t = Instant::now();
        answered(p.service, caller, Duration::from_secs(1));
        let key = format!("+{caller}");
        while !show(&p.b, "velocity").as_array().is_some_and(|v| v.iter().any(|e| e["source"] == key.as_str())) {
            std::thread::sleep(Duration::from_millis(1));
        }
        lags.push(t.elapsed());
    }
    lags.sort();
    println!(
        "| {} | {completed} ({:.0}/s) | {micro} | {sessions} | {:.0} ms | {:.1} ms / {:.1} ms |",
        link.name(),
        completed as f64 / 5.0,
        ms(drain),
        ms(lags[lags.len() / 2]),
        ms(*lags.last().unwrap())
    );
}
