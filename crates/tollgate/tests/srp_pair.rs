//! An SRP pair of engines (issue 5, seed 003), as processes on loopback: only the Active
//! serves the ENUM service address; kill -9 of the Active under dnsperf load and the Standby
//! serves, with the velocity counters where they were (a caller blocked before the kill stays
//! blocked after) and `show srp call-loss statistics` telling what was recovered; a manual
//! switchover validated, refused when the standby is not synchronised unless forced; the NACK
//! path through a corrupted checkpoint; a wrong key refused and counted; a partition between
//! two network namespaces (both Active) healed into exactly one Active, resynchronised; a
//! Standby held in forced standby that does not take over from a killed Active until released;
//! the same pair with its link in TLS (`[tls]`, certificates of a CA made by the test), and a
//! mate presenting a certificate of another role refused and counted.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::srp::PairNet;
use common::{Engine, EngineOptions, free_port, temp_file, text, wait_until};

const KEY: &str = "tollgate-srp-test-key-0123456789";

const VELOCITY_POLICY: &str = r#"
schema = 2
name = "srp-velocity"
[[rule]]
name = "robocall-velocity"
source = "+1312*"
velocity = { calls = 3, window = "10m" }
action = "terminate"
cause = 603
"#;

struct Chassis<'a> {
    node: &'a str,
    mode: &'a str,
    priority: u8,
    bind: SocketAddr,
    peer: SocketAddr,
    key: &'a str,
    env: Vec<(String, String)>,
}

fn chassis(net: &PairNet, c: Chassis<'_>) -> Engine {
    chassis_with(net, c, "")
}

/// A chassis with `extra` configuration after its `[srp]` section (further sections).
fn chassis_with(net: &PairNet, c: Chassis<'_>, extra: &str) -> Engine {
    let srp = format!(
        "[srp]\nnode_id = \"{}\"\nbind_address = \"{}\"\npeer_address = \"{}\"\nshared_key = \"{}\"\nchassis_mode = \"{}\"\npriority = {}\nhello_interval_ms = 100\ndead_interval_ms = 300\n",
        c.node, c.bind, c.peer, c.key, c.mode, c.priority
    );
    let e = Engine::start(EngineOptions {
        node: c.node.into(),
        role: "engine",
        enum_listen: vec![net.service],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: srp + extra,
        env: c.env,
        ..Default::default()
    });
    let (_d, p) = temp_file("velocity.toml", VELOCITY_POLICY);
    let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    e
}

fn pair(net: &PairNet, env_a: Vec<(String, String)>) -> (Engine, Engine) {
    let a = chassis(
        net,
        Chassis { node: "engine-a", mode: "primary", priority: 1, bind: net.a, peer: net.b, key: KEY, env: env_a },
    );
    let b = chassis(
        net,
        Chassis { node: "engine-b", mode: "backup", priority: 2, bind: net.b, peer: net.a, key: KEY, env: Vec::new() },
    );
    (a, b)
}

fn show(e: &Engine, what: &str) -> serde_json::Value {
    e.get_json(&format!("/api/v1/srp/show/{what}"))["data"].clone()
}

fn state(e: &Engine) -> String {
    show(e, "info")["chassis_state"].as_str().unwrap_or("?").to_string()
}

fn wait_for_pair(a: &Engine, b: &Engine) {
    wait_until(20, "engine-a Active and engine-b a synchronised Standby", || {
        state(a) == "Active" && state(b) == "Standby" && show(b, "info")["ready"] == true
    });
}

/// A DNS NAPTR query for `to`, with the caller in the query name (tollgate's `src-` label).
fn query_bytes(id: u16, from: &str, to: &str) -> Vec<u8> {
    let mut q = vec![(id >> 8) as u8, id as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut labels: Vec<String> = to.trim_start_matches('+').chars().rev().map(String::from).collect();
    labels.push(format!("src-{}", from.trim_start_matches('+')));
    labels.push("e164".into());
    labels.push("arpa".into());
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 35, 0, 1]);
    q
}

/// Asks the service address once; `Some(true)` if the answer is a NAPTR (terminated),
/// `Some(false)` for any other answer, `None` for no answer within `wait`.
fn ask(service: SocketAddr, from: &str, to: &str, wait: Duration) -> Option<bool> {
    let sock = UdpSocket::bind((service.ip(), 0)).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    let id = (Instant::now().elapsed().subsec_nanos() & 0xffff) as u16;
    sock.send_to(&query_bytes(id, from, to), service).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    (n >= 12).then(|| u16::from_be_bytes([buf[6], buf[7]]) > 0)
}

fn dnsperf(service: SocketAddr, secs: u32, qps: u32) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        for i in 0..2000 {
            writeln!(file, "{}.0.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR", i % 10).unwrap();
        }
        file.flush().unwrap();
        let out = Command::new("dnsperf")
            .args(["-s", &service.ip().to_string(), "-p", &service.port().to_string(), "-d"])
            .arg(file.path())
            .args(["-l", &secs.to_string(), "-Q", &qps.to_string(), "-c", "2", "-t", "0.5"])
            .output()
            .expect("run dnsperf (Debian package dnsperf)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

#[test]
fn kill_9_of_the_active_under_load_the_standby_serves_and_keeps_the_velocity_counters() {
    let net = PairNet::new("127.0.61");
    let (mut a, b) = pair(&net, Vec::new());
    wait_for_pair(&a, &b);

    // A robocaller: three calls allowed, the fourth terminated by the velocity rule.
    let robo = "+13125550666";
    for i in 0..3 {
        assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(false), "call {i}");
    }
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(true), "the fourth call");
    // The standby holds the counter too (micro-checkpoints every 10 ms).
    wait_until(5, "the counter checkpointed to engine-b", || {
        let s = e_velocity(&b);
        s.iter().any(|e| e["source"] == robo && e["times"].as_array().map_or(0, |t| t.len()) == 4)
    });

    // An audit finds the copies equal.
    let out = a.cli(&["srp", "initiate-audit", "--api", &a.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    wait_until(5, "a clean audit", || {
        let s = show(&a, "audit-statistics");
        s["audits"] == 1 && s["clean_audits"] == 1
    });

    // dnsperf load, a prober every 2 ms, and kill -9 of the Active in the middle.
    let load = dnsperf(net.service, 5, 5000);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        let service = net.service;
        std::thread::spawn(move || {
            // (sent, answered) of each answered query.
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if ask(service, "+14155550100", "+12125550100", Duration::from_millis(20)).is_some() {
                    answered.push((sent, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            answered
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    a.kill();
    wait_until(10, "engine-b Active", || state(&b) == "Active");
    let report = load.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = prober.join().unwrap();
    let back = answered.iter().find(|(sent, _)| *sent > killed).expect("answers after the kill");
    let gap = back.1.duration_since(killed);
    eprintln!("service answered again {gap:?} after kill -9 (dead interval 300 ms)");
    assert!(gap < Duration::from_secs(3), "the standby took over: {gap:?}");
    let sent = common::dnsperf_field(&report, "Queries sent:");
    let lost = common::dnsperf_field(&report, "Queries lost:");
    eprintln!("dnsperf: {sent} sent, {lost} lost during the switchover");
    assert!(sent > 10_000, "{report}");

    // The caller blocked before the kill is still blocked; a new caller is not.
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(true));
    assert_eq!(ask(net.service, "+13125550667", "+12125550100", Duration::from_secs(2)), Some(false));

    // call-loss statistics: the takeover, its reason, and the sessions recovered.
    let history = show(&b, "call-loss-statistics");
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "the mate's dead interval expired", "{history}");
    assert!(last["sessions_recovered"].as_u64().unwrap() >= 1, "{history}");
    assert_eq!(last["sessions_lost"], 0, "{history}");
    assert_eq!(last["synchronised"], true, "{history}");
    let text = text(&b.cli(&["srp", "show", "call-loss", "statistics", "--api", &b.api])).0;
    assert!(text.contains("the mate's dead interval expired"), "{text}");
    // The alarm of the lost mate.
    let alarms = b.get_json("/api/v1/alarms");
    assert!(alarms.to_string().contains("HA_PATH_DOWN"), "{alarms}");
}

fn e_velocity(e: &Engine) -> Vec<serde_json::Value> {
    show(e, "velocity").as_array().cloned().unwrap_or_default()
}

#[test]
fn manual_switchover_is_validated_refused_when_unsynchronised_and_forced() {
    let net = PairNet::new("127.0.62");
    // Both chassis corrupt every second micro-checkpoint they send (fault injection).
    let fault = vec![("TOLLGATE_SRP_FAULT_CORRUPT_EVERY".to_string(), "2".to_string())];
    let a = chassis(
        &net,
        Chassis {
            node: "engine-a",
            mode: "primary",
            priority: 1,
            bind: net.a,
            peer: net.b,
            key: KEY,
            env: fault.clone(),
        },
    );
    let b = chassis(
        &net,
        Chassis { node: "engine-b", mode: "backup", priority: 2, bind: net.b, peer: net.a, key: KEY, env: fault },
    );
    wait_for_pair(&a, &b);
    let srp = |e: &Engine, args: &[&str]| {
        let mut all: Vec<&str> = vec!["srp"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--api", &e.api]);
        let out = e.cli(&all);
        (out.status.success(), text(&out))
    };
    // Calls 30 ms apart, so each change goes out in its own micro-checkpoint.
    let calls = |prefix: &str| {
        for i in 0..6 {
            ask(net.service, &format!("{prefix}{i}"), "+12125550100", Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(30));
        }
    };

    // The NACK path: a corrupted micro-checkpoint is NACKed, a full checkpoint resynchronises.
    calls("+1312555070");
    wait_until(10, "a NACK answered by a full checkpoint", || {
        show(&b, "checkpoint-statistics")["nacks_sent"].as_u64().unwrap_or(0) >= 1 && show(&b, "info")["ready"] == true
    });
    let stats = text(&b.cli(&["srp", "show", "checkpoint", "statistics", "--api", &b.api])).0;
    assert!(stats.contains("Peer conn") && stats.contains("Ready"), "{stats}");

    // Validated, then done: engine-b serves, engine-a is its synchronised Standby.
    let (ok, out) = srp(&a, &["validate-switchover"]);
    assert!(ok, "{out:?}");
    let (ok, out) = srp(&a, &["initiate-switchover"]);
    assert!(ok, "{out:?}");
    wait_until(10, "engine-b Active, engine-a Standby", || state(&b) == "Active" && state(&a) == "Standby");
    assert!(ask(net.service, "+14155550100", "+12125550100", Duration::from_secs(2)).is_some());
    wait_until(10, "engine-a synchronised", || show(&a, "info")["ready"] == true);

    // With NACKs off on engine-a, a corrupted checkpoint leaves it unsynchronised: a
    // switchover is refused unless forced.
    let (ok, out) = srp(&a, &["disable", "nack", "micro-chkpt-cmd", "1"]);
    assert!(ok, "{out:?}");
    calls("+1312555080");
    wait_until(10, "engine-a unsynchronised", || show(&a, "info")["ready"] == false);
    let (ok, out) = srp(&b, &["initiate-audit"]);
    assert!(ok, "{out:?}");
    wait_until(5, "the audit finds the missing update", || {
        show(&b, "audit-statistics")["last_discrepancies"].as_u64().unwrap_or(0) >= 1
    });
    let (ok, out) = srp(&b, &["validate-switchover"]);
    assert!(!ok && out.1.contains("not synchronised"), "{out:?}");
    let (ok, out) = srp(&b, &["initiate-switchover"]);
    assert!(!ok && out.1.contains("not synchronised"), "{out:?}");
    assert_eq!(state(&b), "Active", "a refused switchover changes nothing");
    let (ok, out) = srp(&b, &["initiate-switchover", "--force"]);
    assert!(ok, "{out:?}");
    wait_until(10, "forced switchover done", || state(&a) == "Active" && state(&b) == "Standby");
    let (ok, out) = srp(&a, &["enable", "nack", "micro-chkpt-cmd", "1"]);
    assert!(ok, "{out:?}");
}

#[test]
fn a_standby_in_forced_standby_does_not_take_over_from_a_killed_active_until_released() {
    let net = PairNet::new("127.0.66");
    // engine-b's agent holds it in forced standby (another version than the Active) before it
    // starts: the flag file, as `tollgate agent` passes it.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("forced-standby");
    std::fs::write(&flag, "1\n").unwrap();
    let held = vec![("TOLLGATE_FORCED_STANDBY_FILE".to_string(), flag.display().to_string())];
    let mut a = chassis(
        &net,
        Chassis { node: "engine-a", mode: "primary", priority: 1, bind: net.a, peer: net.b, key: KEY, env: Vec::new() },
    );
    let b = chassis(
        &net,
        Chassis { node: "engine-b", mode: "backup", priority: 2, bind: net.b, peer: net.a, key: KEY, env: held },
    );
    wait_for_pair(&a, &b);
    assert_eq!(show(&b, "info")["forced_standby"], true);
    wait_until(5, "engine-a sees its mate held", || show(&a, "info")["peer_forced_standby"] == true);
    let info = text(&b.cli(&["srp", "show", "info", "--api", &b.api])).0;
    assert!(info.contains("Forced standby              Yes"), "{info}");

    // No switchover towards it, not even forced.
    for args in [&["srp", "validate-switchover"][..], &["srp", "initiate-switchover", "--force"][..]] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--api", &a.api]);
        let (out, err) = text(&a.cli(&all));
        assert!(err.contains("the peer chassis is in forced standby"), "{args:?}: {out} {err}");
    }
    assert_eq!(state(&a), "Active");

    // The flag is watched both ways.
    std::fs::remove_file(&flag).unwrap();
    wait_until(5, "engine-b released by its flag", || show(&b, "info")["forced_standby"] == false);
    std::fs::write(&flag, "1\n").unwrap();
    wait_until(5, "engine-b held again by its flag", || show(&b, "info")["forced_standby"] == true);

    // kill -9 of the Active: the held Standby does not take over (the dead interval is 300 ms).
    assert!(ask(net.service, "+14155550100", "+12125550100", Duration::from_secs(2)).is_some());
    a.kill();
    wait_until(5, "engine-b notices its mate is gone", || show(&b, "info")["peer_alive"] == false);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(&b), "Standby", "a simple failover must not change the version in service");
    assert_eq!(show(&b, "info")["service_address_held"], false);
    assert_eq!(ask(net.service, "+14155550100", "+12125550100", Duration::from_millis(500)), None, "nobody serves");

    // Released by the operator: nobody serves, so it takes over at once, counters and all.
    let (out, err) = text(&b.cli(&["srp", "forced-standby", "off", "--api", &b.api]));
    assert!(out.contains("forced standby off"), "{out} {err}");
    wait_until(5, "engine-b Active once released", || state(&b) == "Active");
    assert!(ask(net.service, "+14155550100", "+12125550100", Duration::from_secs(2)).is_some());
}

#[test]
fn a_wrong_key_is_refused_and_counted() {
    let net = PairNet::new("127.0.63");
    let a = chassis(
        &net,
        Chassis { node: "engine-a", mode: "primary", priority: 1, bind: net.a, peer: net.b, key: KEY, env: Vec::new() },
    );
    let b = chassis(
        &net,
        Chassis {
            node: "engine-b",
            mode: "backup",
            priority: 2,
            bind: net.b,
            peer: net.a,
            key: "a-different-key-of-enough-length",
            env: Vec::new(),
        },
    );
    wait_until(10, "the wrong key counted", || {
        let (sa, sb) = (show(&a, "statistics"), show(&b, "statistics"));
        let failures = |s: &serde_json::Value| {
            s["link"]["auth_failures"].as_u64().unwrap_or(0) + s["link"]["handshake_failures"].as_u64().unwrap_or(0)
        };
        failures(&sa) + failures(&sb) > 0
    });
    assert_eq!(show(&a, "info")["connection"], serde_json::Value::Null, "never connected");
    assert_eq!(show(&b, "info")["connection"], serde_json::Value::Null, "never connected");
    let text = text(&a.cli(&["srp", "show", "statistics", "--api", &a.api])).0;
    assert!(text.contains("Handshake failures") || text.contains("Authentication failures"), "{text}");
}

/// Two network namespaces joined by a veth pair (10.213.x.1 and .2), removed on drop.
struct Namespaces {
    a: String,
    b: String,
    /// The veth ends in `a` and in `b`: named per test (its subnet) as well as per process,
    /// since both are made in the root namespace first, where two tests running at once
    /// would otherwise clash.
    veth: (String, String),
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Namespaces {
    fn new(subnet: u8) -> Namespaces {
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("tg-srp-a{subnet}-{id}"), format!("tg-srp-b{subnet}-{id}"));
        let (va, vb) = (format!("tga{subnet}-{id}"), format!("tgb{subnet}-{id}"));
        let ns = Namespaces { a: a.clone(), b: b.clone(), veth: (va.clone(), vb.clone()) };
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", &a]);
        ip(&["link", "set", &vb, "netns", &b]);
        for (n, v, host) in [(&a, &va, 1), (&b, &vb, 2)] {
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "addr", "add", &format!("10.213.{subnet}.{host}/24"), "dev", v]);
            ip(&["-n", n, "link", "set", v, "up"]);
        }
        ns
    }

    fn link(&self, up: bool) {
        ip(&["-n", &self.a, "link", "set", &self.veth_a(), if up { "up" } else { "down" }]);
    }

    fn veth_a(&self) -> String {
        self.veth.0.clone()
    }

    fn veth_b(&self) -> String {
        self.veth.1.clone()
    }

    /// The addresses on a namespace's veth.
    fn addresses(&self, ns: &str, dev: &str) -> String {
        let out = Command::new("ip").args(["-n", ns, "-4", "addr", "show", "dev", dev]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn cli_json(e: &Engine, args: &[&str]) -> serde_json::Value {
    let mut all: Vec<&str> = vec!["srp", "show"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--api", &e.api]);
    let out = e.cli(&all);
    assert!(out.status.success(), "{:?}", text(&out));
    serde_json::from_str(&text(&out).0).unwrap()
}

fn ns_state(e: &Engine) -> String {
    cli_json(e, &["info"])["chassis_state"].as_str().unwrap_or("?").to_string()
}

/// A call placed inside a namespace with dig; true if terminated (NAPTR answer).
fn ns_call(e: &Engine, from: &str) -> bool {
    let name = format!("0.0.1.0.5.5.5.2.1.2.1.src-{}.e164.arpa.", from.trim_start_matches('+'));
    let ns = e.options.netns.clone().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "dig", "@127.0.0.1", "-p", &e.udp.port().to_string(), "+short", "+tries=1"])
        .args(["+time=2", "NAPTR", &name])
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).contains("603@reject")
}

#[test]
fn a_partition_makes_two_actives_and_healing_leaves_exactly_one_resynchronised() {
    let ns = Namespaces::new(1);
    let enum_port = 5400 + (std::process::id() % 500) as u16;
    let start = |node: &'static str, mode: &str, priority: u8, me: u8, peer: u8, netns: &str| {
        let srp = format!(
            "[srp]\nnode_id = \"{node}\"\nbind_address = \"10.213.1.{me}:7501\"\npeer_address = \"10.213.1.{peer}:7501\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\n\n# Between namespaces, not loopback: plain text must be allowed (TLS: the tests below).\n[tls]\nallow_plaintext = true\n"
        );
        let e = Engine::start(EngineOptions {
            node: node.into(),
            role: "engine",
            enum_listen: vec![format!("127.0.0.1:{enum_port}").parse().unwrap()],
            api_listen: "127.0.0.1:8081".parse().unwrap(),
            extra_config: srp,
            netns: Some(netns.to_string()),
            ..Default::default()
        });
        let (_d, p) = temp_file("velocity.toml", VELOCITY_POLICY);
        let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
        assert!(out.status.success(), "{:?}", text(&out));
        e
    };
    let a = start("engine-a", "primary", 1, 1, 2, &ns.a);
    let b = start("engine-b", "backup", 2, 2, 1, &ns.b);
    wait_until(20, "a synchronised pair", || {
        ns_state(&a) == "Active" && ns_state(&b) == "Standby" && cli_json(&b, &["info"])["ready"] == true
    });

    // Partition: each side stops hearing the other; both serve.
    ns.link(false);
    wait_until(10, "both Active", || ns_state(&a) == "Active" && ns_state(&b) == "Active");
    // The sides diverge: engine-a blocks a robocaller (4 calls), engine-b sees one call.
    let robo = "+13125550666";
    let blocked: Vec<bool> = (0..4).map(|_| ns_call(&a, robo)).collect();
    assert_eq!(blocked, vec![false, false, false, true]);
    assert!(!ns_call(&b, "+13125550999"));

    // Heal: exactly one Active, the other resynchronised from it.
    ns.link(true);
    wait_until(20, "exactly one Active and a synchronised Standby", || {
        let (sa, sb) = (ns_state(&a), ns_state(&b));
        let (standby, ok) = match (sa.as_str(), sb.as_str()) {
            ("Active", "Standby") => (&b, true),
            ("Standby", "Active") => (&a, true),
            _ => (&a, false),
        };
        ok && cli_json(standby, &["info"])["ready"] == true
    });
    let (active, standby) = if ns_state(&a) == "Active" { (&a, &b) } else { (&b, &a) };
    wait_until(10, "the standby's copy equals the active's counters", || {
        cli_json(standby, &["velocity"]) == cli_json(active, &["velocity"])
    });
    let stats = cli_json(active, &["statistics"]);
    assert!(
        stats["switchovers"]["split_brains_resolved"].as_u64().unwrap_or(0) >= 1
            || cli_json(standby, &["statistics"])["switchovers"]["split_brains_resolved"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
}

/// FreeRADIUS in the foreground with the Debian default configuration (client localhost,
/// secret `testing123`), killed on drop.
struct FreeRadius(std::process::Child);

impl FreeRadius {
    fn start() -> FreeRadius {
        let child = Command::new("freeradius")
            .args(["-f", "-l", "stdout"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run freeradius (Debian package freeradius)");
        wait_until(20, "freeradius listening on 1812", || {
            common::sip::udp_bound("127.0.0.1", 1812)
                || common::sip::udp_bound("0.0.0.0", 1812)
                || common::sip::udp_bound("*", 1812)
        });
        FreeRadius(child)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_aaa_server_down_switches_over_for_good() {
    let radius = FreeRadius::start();
    let net = PairNet::new("127.0.64");
    let monitor = "[[srp.monitor]]\nkind = \"aaa\"\ntargets = [\"127.0.0.1:1812\"]\nsecret = \"testing123\"\ninterval_ms = 200\ntimeout_ms = 1000\nmax_retries = 3\n";
    let start = |node: &str, mode: &str, priority: u8, bind: SocketAddr, peer: SocketAddr| {
        let srp = format!(
            "[srp]\nnode_id = \"{node}\"\nbind_address = \"{bind}\"\npeer_address = \"{peer}\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\nguard_period_secs = 0\n{monitor}"
        );
        Engine::start(EngineOptions {
            node: node.into(),
            role: "engine",
            enum_listen: vec![net.service],
            api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
            extra_config: srp,
            ..Default::default()
        })
    };
    let a = start("engine-a", "primary", 1, net.a, net.b);
    let b = start("engine-b", "backup", 2, net.b, net.a);
    wait_for_pair(&a, &b);
    // The Active probes the RADIUS server: up.
    wait_until(10, "the AAA target probed up", || {
        show(&a, "monitor").as_array().is_some_and(|t| t.iter().any(|t| t["up"] == true))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&a), "Active", "a server that answers keeps the Active");

    // Every AAA server down: the Active switches over, and does not come back.
    drop(radius);
    wait_until(10, "engine-b Active after the AAA group went down", || state(&b) == "Active" && state(&a) == "Standby");
    let history = show(&b, "call-loss-statistics");
    assert!(history.to_string().contains("monitor aaa group 0 is down"), "{history}");
    assert!(a.get_json("/api/v1/alarms").to_string().contains("SRP_MONITOR_FAILURE"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(state(&b), "Active", "non-revertible: no switch back though the AAA server is still down");
    assert!(show(&a, "info")["monitor_failure_flag"] == true || show(&b, "info")["monitor_failure_flag"] == true);
}

/// A HEP3 packet carrying `sip` from the caller to the SBC.
fn hep(sip: &str, from_caller: bool) -> Vec<u8> {
    let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:5060".parse().unwrap(), "10.0.0.2:5060".parse().unwrap());
    let (src, dst) = if from_caller { (a, b) } else { (b, a) };
    tollgate_probe::hep::encode_v3(&tollgate_probe::hep::HepPacket {
        version: 3,
        src,
        dst,
        ip_protocol: 17,
        ts_us: chrono::Utc::now().timestamp_micros(),
        protocol_type: 1,
        capture_id: 1,
        payload: sip.as_bytes(),
    })
}

fn sip(start: &str, call: &str, from: &str, cseq: &str, to_tag: &str) -> String {
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call}{}\r\nFrom: <sip:{from}@10.0.0.1>;tag=a\r\nTo: <sip:2125550100@10.0.0.2>{to_tag}\r\nCall-ID: {call}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
        cseq.replace(' ', "")
    )
}

#[test]
fn calls_in_progress_seen_by_the_probe_decide_and_survive_a_switchover() {
    let net = PairNet::new("127.0.65");
    let policy = "schema = 2\n[[rule]]\nname = \"too-many-at-once\"\nsource = \"+1312*\"\nconcurrent = 2\naction = \"terminate\"\ncause = 486\n";
    let start = |node: &str, mode: &str, priority: u8, bind: SocketAddr, peer: SocketAddr| {
        let srp = format!(
            "[srp]\nnode_id = \"{node}\"\nbind_address = \"{bind}\"\npeer_address = \"{peer}\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\n"
        );
        // serve: engine, probe (HEP) and collector in one process, so the probe's dialogs are
        // the engine's calls in progress.
        let e = Engine::start(EngineOptions {
            node: node.into(),
            role: "serve",
            enum_listen: vec![net.service],
            api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
            extra_config: srp,
            probe: "hep_udp = [\"127.0.0.1:0\"]\nhep_tcp = []\n".into(),
            ..Default::default()
        });
        let (_d, p) = temp_file("concurrent.toml", policy);
        let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
        assert!(out.status.success(), "{:?}", text(&out));
        e
    };
    let mut a = start("engine-a", "primary", 1, net.a, net.b);
    let b = start("engine-b", "backup", 2, net.b, net.a);
    wait_for_pair(&a, &b);
    let hep_a: SocketAddr = a.ready_field("hep_udp").unwrap().parse().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let robo = "+13125550666";
    // A call is in progress once it rings (the SBC forwarded its INVITE after asking).
    let ring = |call: &str| {
        udp.send_to(
            &hep(&sip("INVITE sip:2125550100@10.0.0.2 SIP/2.0", call, "3125550666", "1 INVITE", ""), true),
            hep_a,
        )
        .unwrap();
        udp.send_to(&hep(&sip("SIP/2.0 180 Ringing", call, "3125550666", "1 INVITE", ";tag=b"), false), hep_a).unwrap();
    };
    // Two calls from the robocaller in progress (INVITE, ringing, no answer yet).
    for call in ["c1", "c2"] {
        ring(call);
    }
    wait_until(5, "two calls in progress on engine-a", || show(&a, "concurrent").to_string().contains("\"calls\":2"));
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(true), "a third call");
    // One ends: allowed again.
    udp.send_to(&hep(&sip("SIP/2.0 486 Busy Here", "c1", "3125550666", "1 INVITE", ";tag=b"), false), hep_a).unwrap();
    wait_until(5, "one call in progress", || show(&a, "concurrent").to_string().contains("\"calls\":1"));
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(false));
    // A third call starts; the standby's copy follows; after a kill -9 the Standby decides
    // with it.
    ring("c3");
    wait_until(5, "two in progress on engine-b's copy", || show(&b, "concurrent").to_string().contains("\"calls\":2"));
    a.kill();
    wait_until(10, "engine-b Active", || state(&b) == "Active");
    assert_eq!(
        ask(net.service, robo, "+12125550100", Duration::from_secs(2)),
        Some(true),
        "the standby kept the count"
    );
}

#[test]
fn in_ip_mode_the_service_address_moves_to_the_new_active() {
    // Each engine in its own namespace; the service address 10.213.2.100 is added to the
    // Active's veth (ip addr add + gratuitous ARP) and answered there; the other namespace
    // reaches it over the veth. After kill -9 the Standby adds it to its own veth.
    let ns = Namespaces::new(2);
    let service = "10.213.2.100:5300";
    let start = |node: &'static str, mode: &str, priority: u8, me: u8, peer: u8, netns: &str, dev: String| {
        let cfg = format!(
            "[srp]\nnode_id = \"{node}\"\nbind_address = \"10.213.2.{me}:7501\"\npeer_address = \"10.213.2.{peer}:7501\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\n[service_address]\nmode = \"ip\"\ninterface = \"{dev}\"\n[tls]\nallow_plaintext = true\n"
        );
        Engine::start(EngineOptions {
            node: node.into(),
            role: "engine",
            enum_listen: vec![service.parse().unwrap()],
            api_listen: "127.0.0.1:8081".parse().unwrap(),
            extra_config: cfg,
            netns: Some(netns.to_string()),
            ..Default::default()
        })
    };
    let mut a = start("engine-a", "primary", 1, 1, 2, &ns.a, ns.veth_a());
    let b = start("engine-b", "backup", 2, 2, 1, &ns.b, ns.veth_b());
    wait_until(20, "a synchronised pair", || {
        ns_state(&a) == "Active" && ns_state(&b) == "Standby" && cli_json(&b, &["info"])["ready"] == true
    });
    assert!(ns.addresses(&ns.a, &ns.veth_a()).contains("10.213.2.100/32"), "the Active holds the address");
    assert!(!ns.addresses(&ns.b, &ns.veth_b()).contains("10.213.2.100"), "the Standby does not");
    let dig_from_b = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.b, "dig", "@10.213.2.100", "-p", "5300", "+tries=1", "+time=1"])
            .args(["NAPTR", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa."])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("status: NXDOMAIN")
    };
    assert!(dig_from_b(), "served by engine-a across the veth");
    a.kill();
    wait_until(10, "engine-b Active", || ns_state(&b) == "Active");
    wait_until(5, "the address on engine-b's veth", || ns.addresses(&ns.b, &ns.veth_b()).contains("10.213.2.100/32"));
    wait_until(5, "served by engine-b", dig_from_b);
}

/// A CA for one test and the `[tls]` section of an engine certificate of `role` for `host` at
/// `ip`, issued by it.
struct TestPki {
    dir: tempfile::TempDir,
    ca: tollgate_tls::pki::Ca,
}

impl TestPki {
    fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            tollgate_tls::pki::Ca::init(&dir.path().join("ca"), "srp pair CA", tollgate_tls::pki::DEFAULT_CA_VALIDITY)
                .unwrap();
        TestPki { dir, ca }
    }

    fn tls_section(&self, role: tollgate_tls::Role, host: &str, ip: std::net::IpAddr) -> String {
        let issued = self
            .ca
            .issue(&tollgate_tls::pki::IssueRequest {
                role,
                host: host.into(),
                // The SRP address, and the API's (the test and the CLI reach it on 127.0.0.1).
                ips: vec![ip, std::net::Ipv4Addr::LOCALHOST.into()],
                dns_names: vec![],
                validity: tollgate_tls::pki::DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let (cert, key) = tollgate_tls::pki::issued_paths(self.dir.path(), host);
        issued.write(&cert, &key).unwrap();
        format!(
            "\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.dir.path().join("ca").join("ca.crt").display(),
            cert.display(),
            key.display()
        )
    }
}

/// An engine of an SRP pair whose link is TLS (`tls`: its `[tls]` section).
fn tls_chassis(
    net: &PairNet,
    node: &str,
    mode: &str,
    priority: u8,
    bind: SocketAddr,
    peer: SocketAddr,
    tls: &str,
) -> Engine {
    let config = format!(
        "[srp]\nnode_id = \"{node}\"\nbind_address = \"{bind}\"\npeer_address = \"{peer}\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\n{tls}"
    );
    let e = Engine::start(EngineOptions {
        node: node.into(),
        role: "engine",
        enum_listen: vec![net.service],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: config,
        ..Default::default()
    });
    let (_d, p) = temp_file("velocity.toml", VELOCITY_POLICY);
    let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    e
}

#[test]
fn over_a_tls_link_the_pair_replicates_and_the_standby_takes_over_from_a_killed_active() {
    let net = PairNet::new("127.0.67");
    let pki = TestPki::new();
    let tls_a = pki.tls_section(tollgate_tls::Role::Engine, "engine-a", net.a.ip());
    let tls_b = pki.tls_section(tollgate_tls::Role::Engine, "engine-b", net.b.ip());
    let mut a = tls_chassis(&net, "engine-a", "primary", 1, net.a, net.b, &tls_a);
    let b = tls_chassis(&net, "engine-b", "backup", 2, net.b, net.a, &tls_b);
    wait_for_pair(&a, &b);
    for e in [&a, &b] {
        let link = &show(e, "statistics")["link"];
        assert_eq!((link["tls_failures"].as_u64(), link["handshake_failures"].as_u64()), (Some(0), Some(0)), "{link}");
    }

    let robo = "+13125550777";
    for i in 0..3 {
        assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(false), "call {i}");
    }
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(true), "the fourth call");
    wait_until(5, "the counter checkpointed to engine-b over TLS", || {
        e_velocity(&b).iter().any(|e| e["source"] == robo && e["times"].as_array().map_or(0, |t| t.len()) == 4)
    });

    a.kill();
    wait_until(10, "engine-b Active", || state(&b) == "Active");
    assert_eq!(ask(net.service, robo, "+12125550100", Duration::from_secs(2)), Some(true), "still blocked");
    let history = show(&b, "call-loss-statistics");
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["sessions_lost"].as_u64(), last["synchronised"].as_bool()), (Some(0), Some(true)), "{history}");

    // engine-a back: a new TLS connection and a full checkpoint make it a synchronised Standby.
    a.start_again();
    wait_until(20, "engine-a a synchronised Standby", || state(&a) == "Standby" && show(&a, "info")["ready"] == true);
}

#[test]
fn a_mate_presenting_a_manager_certificate_is_refused_and_counted() {
    let net = PairNet::new("127.0.68");
    let pki = TestPki::new();
    let tls_a = pki.tls_section(tollgate_tls::Role::Engine, "engine-a", net.a.ip());
    let tls_b = pki.tls_section(tollgate_tls::Role::Manager, "mgr-b", net.b.ip());
    let a = tls_chassis(&net, "engine-a", "primary", 1, net.a, net.b, &tls_a);
    let b = tls_chassis(&net, "engine-b", "backup", 2, net.b, net.a, &tls_b);
    wait_until(10, "the refusals counted on both sides", || {
        let failures = |e: &Engine| show(e, "statistics")["link"]["tls_failures"].as_u64().unwrap_or(0);
        failures(&a) > 0 && failures(&b) > 0
    });
    assert_eq!(show(&a, "info")["connection"], serde_json::Value::Null, "never connected");
    assert_eq!(show(&b, "info")["connection"], serde_json::Value::Null, "never connected");
    let text = text(&a.cli(&["srp", "show", "statistics", "--api", &a.api])).0;
    assert!(text.contains("TLS handshake failures"), "{text}");
}

/// A SIP OPTIONS request to the service address.
fn sip_options(call_id: &str, transport: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:tollgate@127.0.69.10 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.69.10:5999;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:sbc@127.0.69.10>;tag=1\r\nTo: <sip:tollgate@127.0.69.10>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn sip_requests(e: &Engine, transport: &str) -> f64 {
    common::metric_at(
        &e.api,
        &format!("tollgate_sip_redirect_requests_total{{method=\"OPTIONS\",transport=\"{transport}\"}}"),
    )
}

/// The SIP redirect server's addresses are service addresses too (issue 19): only the Active
/// binds them, and after kill -9 of the Active the new Active does. Seen in which engine counts
/// the SIP requests sent to the service address, over UDP and TCP.
#[test]
fn the_sip_redirect_service_address_is_served_by_the_active_only_and_moves_on_kill_9() {
    let net = PairNet::new("127.0.69");
    let sip: SocketAddr = format!("127.0.69.10:{}", free_port("127.0.69.10")).parse().unwrap();
    let extra = format!("\n[sip_redirect]\nlisten_udp = [\"{sip}\"]\nlisten_tcp = [\"{sip}\"]\n");
    let mut a = chassis_with(
        &net,
        Chassis { node: "engine-a", mode: "primary", priority: 1, bind: net.a, peer: net.b, key: KEY, env: Vec::new() },
        &extra,
    );
    let b = chassis_with(
        &net,
        Chassis { node: "engine-b", mode: "backup", priority: 2, bind: net.b, peer: net.a, key: KEY, env: Vec::new() },
        &extra,
    );
    wait_for_pair(&a, &b);
    assert!(a.ready.contains(&format!("sip_udp={sip}")), "{}", a.ready);

    let client = UdpSocket::bind("127.0.69.10:0").unwrap();
    client.send_to(&sip_options("srp-1", "UDP"), sip).unwrap();
    wait_until(30, "the Active read the SIP request", || sip_requests(&a, "udp") == 1.0);
    let mut stream = std::net::TcpStream::connect(sip).expect("the Active accepts SIP over TCP");
    std::io::Write::write_all(&mut stream, &sip_options("srp-2", "TCP")).unwrap();
    wait_until(30, "the Active read the SIP request over TCP", || sip_requests(&a, "tcp") == 1.0);
    assert_eq!((sip_requests(&b, "udp"), sip_requests(&b, "tcp")), (0.0, 0.0), "the Standby serves nothing");
    drop(stream);

    a.kill();
    wait_until(10, "engine-b Active", || state(&b) == "Active");
    // The new Active binds the SIP service address (retrying while the old sockets go).
    wait_until(30, "the new Active reads SIP over UDP", || {
        client.send_to(&sip_options("srp-3", "UDP"), sip).unwrap();
        sip_requests(&b, "udp") >= 1.0
    });
    let mut stream = std::net::TcpStream::connect(sip).expect("the new Active accepts SIP over TCP");
    std::io::Write::write_all(&mut stream, &sip_options("srp-4", "TCP")).unwrap();
    wait_until(30, "the new Active read the SIP request over TCP", || sip_requests(&b, "tcp") == 1.0);
}

/// The `SRP_SERVICE_ADDRESS_FAILED` alarm of this engine, if raised: its detail.
fn service_address_alarm(e: &Engine) -> Option<String> {
    e.alarms().active.into_iter().find(|a| a.def.name == "SRP_SERVICE_ADDRESS_FAILED").map(|a| a.detail)
}

/// What a lone chassis test holds: the pair's addresses, the SIP address, the socket the test
/// holds, the engine, and the detail of its SRP_SERVICE_ADDRESS_FAILED.
type HeldPort = (PairNet, SocketAddr, UdpSocket, Engine, String);

/// A lone chassis (its mate never answers, so it takes the service at the election) serving
/// ENUM and the SIP redirect server over UDP on `net`, Active, while the test holds one of its
/// ports (`hold_sip`: the SIP one, else ENUM's), once its service-address alarm is raised.
fn lone_chassis_with_a_port_held(net: &str, hold_sip: bool) -> HeldPort {
    let net = PairNet::new(net);
    let sip_ip = net.service.ip().to_string();
    let sip: SocketAddr = format!("{sip_ip}:{}", free_port(&sip_ip)).parse().unwrap();
    let squatter = UdpSocket::bind(if hold_sip { sip } else { net.service }).expect("the test holds the address");
    let extra = format!("\n[sip_redirect]\nlisten_udp = [\"{sip}\"]\n");
    let lone = chassis_with(
        &net,
        Chassis { node: "engine-a", mode: "primary", priority: 1, bind: net.a, peer: net.b, key: KEY, env: Vec::new() },
        &extra,
    );
    wait_until(30, "engine-a Active", || state(&lone) == "Active");
    wait_until(30, "the service-address alarm", || service_address_alarm(&lone).is_some());
    let detail = service_address_alarm(&lone).unwrap();
    (net, sip, squatter, lone, detail)
}

/// A SIP service address another process holds (a careless operator's port clash) must not
/// take ENUM down with it: the Active serves ENUM, raises SRP_SERVICE_ADDRESS_FAILED naming
/// the SIP listener, and retries; once the port is free it serves SIP and clears the alarm.
#[test]
fn an_active_whose_sip_address_is_taken_serves_enum_alarms_and_serves_sip_once_free() {
    let (net, sip, squatter, lone, detail) = lone_chassis_with_a_port_held("127.0.70", true);
    assert!(
        detail.contains("SIP redirect service address") && !detail.contains("ENUM"),
        "names the SIP listener only: {detail}"
    );
    assert_eq!(
        ask(net.service, "+13125550100", "+12125550100", Duration::from_secs(5)),
        Some(false),
        "ENUM is served although SIP cannot be"
    );

    drop(squatter);
    let client = UdpSocket::bind("127.0.70.10:0").unwrap();
    wait_until(60, "the retry serves SIP once the address is free", || {
        client.send_to(&sip_options("taken-1", "UDP"), sip).unwrap();
        sip_requests(&lone, "udp") >= 1.0
    });
    wait_until(30, "the alarm clears", || service_address_alarm(&lone).is_none());
    assert_eq!(ask(net.service, "+13125550100", "+12125550100", Duration::from_secs(5)), Some(false));
    assert_eq!(state(&lone), "Active");
}

/// The reverse: an ENUM service address another process holds leaves the SIP redirect server
/// serving, with the alarm naming ENUM, until the address is free.
#[test]
fn an_active_whose_enum_address_is_taken_serves_sip_alarms_and_serves_enum_once_free() {
    let (net, sip, squatter, lone, detail) = lone_chassis_with_a_port_held("127.0.71", false);
    assert!(detail.contains("ENUM service address") && !detail.contains("SIP"), "names ENUM only: {detail}");
    let client = UdpSocket::bind("127.0.71.10:0").unwrap();
    wait_until(30, "SIP is served although ENUM cannot be", || {
        client.send_to(&sip_options("enum-taken-1", "UDP"), sip).unwrap();
        sip_requests(&lone, "udp") >= 1.0
    });

    drop(squatter);
    wait_until(60, "the retry serves ENUM once the address is free", || {
        ask(net.service, "+13125550100", "+12125550100", Duration::from_secs(2)) == Some(false)
    });
    wait_until(30, "the alarm clears", || service_address_alarm(&lone).is_none());
}
