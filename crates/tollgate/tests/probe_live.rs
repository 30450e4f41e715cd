//! `tollgate probe --listen ... --hep ...`: the live probe on a mirror port and on HEP over
//! TCP, its rolling summary, its metrics and the call records it spools.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{free_port, tollgate_bin};
use tollgate_probe::hep::{HepPacket, encode_v3};

/// Kills the probe if the test fails half-way.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn message(start: &str, call: &str, cseq: &str, extra: &str) -> String {
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{call}{cseq}\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>{extra}\r\nCall-ID: {call}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn live_probe_on_a_mirror_port_and_hep_tcp_prints_a_rolling_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (mirror, hep, api) = (free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1"));
    let mut child = ChildGuard(
        Command::new(tollgate_bin())
            .args(["--log", "warn", "probe", "--device", "span-1", "--summary-secs", "1"])
            .args(["--listen", &format!("127.0.0.1:{mirror}"), "--hep", &format!("127.0.0.1:{hep}")])
            .args(["--api-listen", &format!("127.0.0.1:{api}"), "--state-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut ready = String::new();
    while !ready.starts_with("tollgate ready:") {
        ready = rx.recv_timeout(Duration::from_secs(30)).expect("the probe started");
    }
    assert!(ready.starts_with("tollgate ready:"), "{ready}");
    assert!(ready.contains(&format!("mirror=127.0.0.1:{mirror}")), "{ready}");
    assert!(ready.contains(&format!("hep_tcp=127.0.0.1:{hep}")), "{ready}");

    // An answered call and a busy one, mirrored as plain SIP datagrams.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for m in [
        message("INVITE sip:4155550100@10.0.0.2 SIP/2.0", "ans", "1 INVITE", ""),
        message("SIP/2.0 180 Ringing", "ans", "1 INVITE", ";tag=b"),
        message("SIP/2.0 200 OK", "ans", "1 INVITE", ";tag=b"),
        message("ACK sip:4155550100@10.0.0.2 SIP/2.0", "ans", "1 ACK", ";tag=b"),
        message("BYE sip:4155550100@10.0.0.2 SIP/2.0", "ans", "2 BYE", ";tag=b"),
        message("INVITE sip:4155550101@10.0.0.2 SIP/2.0", "busy", "1 INVITE", ""),
        message("SIP/2.0 486 Busy Here", "busy", "1 INVITE", ";tag=c"),
    ] {
        udp.send_to(m.as_bytes(), ("127.0.0.1", mirror)).unwrap();
    }
    // A rejected call over HEP3/TCP, both messages in one write, plus a frame of garbage.
    let mut tcp = TcpStream::connect(("127.0.0.1", hep)).unwrap();
    let mut stream = Vec::new();
    for (m, from_caller) in [
        (message("INVITE sip:4155550102@10.0.0.2 SIP/2.0", "rej", "1 INVITE", ""), true),
        (message("SIP/2.0 603 Decline", "rej", "1 INVITE", ";tag=d"), false),
    ] {
        let (a, b) = ("10.0.0.1:5060".parse().unwrap(), "10.0.0.2:5060".parse().unwrap());
        let (src, dst) = if from_caller { (a, b) } else { (b, a) };
        stream.extend(encode_v3(&HepPacket {
            version: 3,
            src,
            dst,
            ip_protocol: 17,
            ts_us: chrono::Utc::now().timestamp_micros(),
            protocol_type: 1,
            capture_id: 7,
            payload: m.as_bytes(),
        }));
    }
    tcp.write_all(&stream).unwrap();
    tcp.flush().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while !last.contains("calls 3 (answered 1, busy 1, failed 1)") {
        assert!(Instant::now() < deadline, "no summary with the three calls; last: {last}");
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
            last = line;
        }
    }
    assert!(last.starts_with("probe ") && last.contains("ASR 33.3%") && last.contains("NER 66.7%"), "{last}");

    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{api}/metrics")).unwrap().text().unwrap();
    for line in [
        "tollgate_probe_calls_total 3",
        "tollgate_probe_mirrored_datagrams_total 7",
        "tollgate_probe_hep_packets_total 2",
        "tollgate_probe_socket_drops_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    let _ = Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status();
    assert!(child.0.wait().unwrap().success());
    // The calls are in the spool as SIP call records of device span-1, for the collector.
    let out =
        Command::new(tollgate_bin()).args(["spool", "dump", "--dir"]).arg(dir.path().join("spool")).output().unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    let calls: Vec<serde_json::Value> = dump.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(calls.len(), 3, "{dump}");
    assert!(calls.iter().all(|c| c["kind"] == "sip_call" && c["device"] == "span-1"), "{dump}");
    let mut codes: Vec<u64> = calls.iter().map(|c| c["final_code"].as_u64().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, vec![200, 486, 603]);
}
