//! Hostile-input tests: srp_replay (issue 11, item 10). An SRP pair of engines as processes on
//! loopback; the real traffic of a link setup is captured with tcpdump, the dialer's handshake
//! is cut out of the capture with tshark, and replayed against the acceptor many times a second
//! from many connections. Before the fix every replay replaced the live link (about 19 times a
//! second) and drove the Standby to Active; now the live link is never replaced, exactly one
//! chassis is Active throughout, and each replay is counted as a failed handshake.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::srp::PairNet;
use crate::common::tcpdump::Tcpdump;
use crate::common::{Engine, EngineOptions, free_port, text, wait_until};

const KEY: &str = "tollgate-srp-replay-key-0123456789";

fn chassis(net: &PairNet, node: &str, mode: &str, priority: u8, bind: SocketAddr, peer: SocketAddr) -> Engine {
    let srp = format!(
        "[srp]\nnode_id = \"{node}\"\nbind_address = \"{bind}\"\npeer_address = \"{peer}\"\nshared_key = \"{KEY}\"\nchassis_mode = \"{mode}\"\npriority = {priority}\nhello_interval_ms = 100\ndead_interval_ms = 300\n"
    );
    Engine::start(EngineOptions {
        node: node.into(),
        role: "engine",
        enum_listen: vec![net.service],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: srp,
        ..Default::default()
    })
}

fn show(e: &Engine, what: &str) -> serde_json::Value {
    e.get_json(&format!("/api/v1/srp/show/{what}"))["data"].clone()
}

fn state(e: &Engine) -> String {
    show(e, "info")["chassis_state"].as_str().unwrap_or("?").to_string()
}

/// `tollgate srp show statistics --json`: the link counters.
fn link_statistics(e: &Engine) -> serde_json::Value {
    let out = e.cli(&["srp", "show", "statistics", "--json", "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    let stats: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    stats["link"].clone()
}

fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or_else(|| panic!("no {name} in {stats}"))
}

/// Exactly one Active and a synchronised Standby, in either order.
fn settled_pair(a: &Engine, b: &Engine) -> bool {
    let (sa, sb) = (state(a), state(b));
    let standby = match (sa.as_str(), sb.as_str()) {
        ("Active", "Standby") => b,
        ("Standby", "Active") => a,
        _ => return false,
    };
    show(standby, "info")["ready"] == true
}

/// The loopback traffic of one TCP port, captured into a file of its own.
struct Capture {
    tcpdump: Tcpdump,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    fn start(host: std::net::IpAddr, port: u16) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("srp.pcap");
        let tcpdump = Tcpdump::start(&file, &format!("tcp and host {host} and port {port}"));
        Capture { tcpdump, file, _dir: dir }
    }
}

/// The first SRP frame the dialer sent to `port` in the capture (its handshake), as it crossed
/// the wire: the TCP payloads of the first connection carrying data towards `port`, cut at the
/// frame's length (header 20 bytes, payload, HMAC 32 bytes). `None` while the capture holds
/// no whole frame yet.
fn dialer_handshake(pcap: &std::path::Path, port: u16) -> Option<Vec<u8>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", &format!("tcp.dstport == {port} && tcp.len > 0"), "-T", "fields"])
        .args(["-e", "tcp.stream", "-e", "tcp.payload"])
        .output()
        .expect("run tshark (Debian package tshark)");
    let fields = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut first_stream = None;
    let mut bytes = Vec::new();
    for line in fields.lines() {
        let Some((stream, hex)) = line.split_once('\t') else { continue };
        if *first_stream.get_or_insert(stream.to_string()) != stream {
            continue;
        }
        let hex: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        bytes.extend((0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()));
    }
    if bytes.len() < 20 {
        return None;
    }
    assert_eq!(&bytes[..4], b"TGSR", "an SRP frame: {fields}");
    assert_eq!(bytes[5], 1, "the dialer's first frame is a Handshake (type 1): {fields}");
    let len = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
    bytes.truncate(20 + len + 32);
    (bytes.len() == 20 + len + 32).then_some(bytes)
}

/// Replays `handshake` against `target` from `workers` threads for `secs` seconds, each worker
/// one connection at a time, at most one per 5 ms: even workers read the answer and close, odd
/// ones hold the connection until the acceptor closes it. Returns the connections made.
fn replay(target: SocketAddr, handshake: Vec<u8>, workers: usize, secs: u64) -> u64 {
    let handshake = Arc::new(handshake);
    let made = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (handshake, made) = (handshake.clone(), made.clone());
            std::thread::spawn(move || {
                while Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                    let Ok(mut s) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else { continue };
                    made.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(&handshake).is_err() {
                        continue;
                    }
                    let mut buf = [0u8; 4096];
                    if w % 2 == 0 {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                        let _ = s.read(&mut buf);
                    } else {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    made.load(Ordering::Relaxed)
}

#[test]
fn a_captured_handshake_replayed_never_replaces_the_live_link_nor_makes_two_actives() {
    let _g = crate::exclusive();
    let net = PairNet::new("127.0.91");
    // engine-a (127.0.91.1) dials, engine-b (127.0.91.2) accepts: capture the link setup.
    let mut capture = Capture::start(net.b.ip(), net.b.port());
    let a = chassis(&net, "engine-a", "primary", 1, net.a, net.b);
    let mut b = chassis(&net, "engine-b", "backup", 2, net.b, net.a);
    wait_until(30, "a synchronised pair", || settled_pair(&a, &b));
    let mut handshake = None;
    wait_until(30, "the dialer's handshake in the capture", || {
        handshake = dialer_handshake(&capture.file, net.b.port());
        handshake.is_some()
    });
    capture.tcpdump.stop();
    let handshake = handshake.unwrap();

    // The acceptor whose answer the capture holds is gone: engine-b restarts (its nonces and
    // sessions with it) and the pair links again, engine-a Active, engine-b its Standby.
    b.stop();
    b.start_again();
    wait_until(30, "engine-a Active, engine-b a synchronised Standby after engine-b restarted", || {
        state(&a) == "Active" && state(&b) == "Standby" && show(&b, "info")["ready"] == true
    });
    let before = (link_statistics(&a), link_statistics(&b));

    // Replay it against the acceptor (from 127.0.0.1, not the mate's address) for 5 s from 8
    // connections at a time, sampling both chassis' states all along.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (stop, target) = (stop.clone(), net.b);
        std::thread::spawn(move || {
            let made = replay(target, handshake, 8, 5);
            stop.store(true, Ordering::Relaxed);
            made
        })
    };
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        samples.push((state(&a), state(&b)));
        std::thread::sleep(Duration::from_millis(20));
    }
    let replays = flood.join().unwrap();
    eprintln!("{replays} replayed handshakes, {} state samples", samples.len());
    assert!(replays >= 200, "the flood made {replays} connections");

    // Exactly one Active in every sample.
    let bad: Vec<_> = samples.iter().filter(|(sa, sb)| (sa == "Active") == (sb == "Active")).collect();
    assert!(bad.is_empty(), "{} of {} samples without exactly one Active: {bad:?}", bad.len(), samples.len());

    // The live link was never replaced: no connect, reconnect or disconnect on either side.
    let after = (link_statistics(&a), link_statistics(&b));
    for (node, before, after) in [("engine-a", &before.0, &after.0), ("engine-b", &before.1, &after.1)] {
        for name in ["connects", "reconnects", "disconnects"] {
            assert_eq!(counter(after, name), counter(before, name), "{node} {name}: {before} -> {after}");
        }
    }
    // Every replay is counted as a failed handshake on the acceptor.
    let failures_before = counter(&before.1, "handshake_failures");
    wait_until(30, "every replay counted as a failed handshake", || {
        counter(&link_statistics(&b), "handshake_failures") >= failures_before + replays
    });
    assert!(settled_pair(&a, &b), "still a synchronised pair: {} / {}", state(&a), state(&b));
    let peer = show(&b, "info")["connection"]["peer_node_id"].clone();
    assert_eq!(peer, "engine-a", "engine-b's link is still to engine-a");
}
