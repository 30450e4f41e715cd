//! The SIPp caller scenarios the end-to-end tests count calls with (`uac.xml`,
//! `probe/uac-answered.xml`, `probe/uac-final.xml`) against a peer that reorders responses the
//! way Kamailio's several UDP workers may: a 180 after the final response, and the 200
//! retransmitted after the ACK.
//!
//! A call must then still be counted successful by SIPp, neither aborted ("unexpected
//! message", a failed call) nor left waiting for a second 200 until SIPp's `-timeout` (a call
//! counted neither way, as `lab_probe` once saw: 9 of 10 calls and no failure). The tests that
//! assert on SIPp's counts (`lab_probe`, `lab_upgrade`, `multihost`, `probe_*`) rely on it.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sip::{e2e_dir, header, place_calls_at, probe_scenario, require_root_and_peers, sipp_call_counts};

const CALLER: &str = "127.0.211.1";

/// What the reordering peer received, per Call-ID: the request methods in order.
type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A UDP peer on `ip:5060` standing for a proxy and callee that reorder: each INVITE gets
/// 100, then `final_code`, then a late 180; the first ACK of an answered call gets another late
/// 180 and the 200 again (which SIPp must acknowledge again); each BYE gets 200.
struct ReorderingPeer {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReorderingPeer {
    fn start(ip: &'static str, final_code: u16) -> ReorderingPeer {
        let socket = UdpSocket::bind((ip, 5060)).expect("bind the reordering peer");
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_in, stop_in) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            // Each call's INVITE and its final response, sent again after the ACK.
            let mut finals: BTreeMap<String, (String, String)> = BTreeMap::new();
            while !stop_in.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let Some(method) = request.split(' ').next().map(str::to_string) else { continue };
                let call_id = header(&request, "Call-ID").unwrap_or_default().to_string();
                seen_in.lock().unwrap().entry(call_id.clone()).or_default().push(method.clone());
                let send = |text: &str| {
                    socket.send_to(text.as_bytes(), from).unwrap();
                };
                match method.as_str() {
                    "INVITE" => {
                        send(&response(&request, 100, "Trying", ip));
                        let last = response(&request, final_code, reason(final_code), ip);
                        send(&last);
                        send(&response(&request, 180, "Ringing", ip));
                        finals.insert(call_id, (request.clone(), last));
                    }
                    "ACK" => {
                        // Both in the INVITE's transaction (its Via branch), as a proxy
                        // passes them.
                        // Once: the ACK it brings back is not answered again.
                        if let Some((invite, last)) = finals.remove(&call_id).filter(|_| final_code == 200) {
                            send(&response(&invite, 180, "Ringing", ip));
                            send(&last);
                        }
                    }
                    "BYE" => send(&response(&request, 200, "OK", ip)),
                    _ => {}
                }
            }
        });
        ReorderingPeer { seen, stop, thread: Some(thread) }
    }

    /// The methods each call sent, by Call-ID.
    fn seen(&self) -> BTreeMap<String, Vec<String>> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ReorderingPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        486 => "Busy Here",
        _ => "Final",
    }
}

/// A response to `request`: its Via, From, Call-ID and CSeq, To with the peer's tag, and for a
/// 200 to an INVITE a Contact and an SDP answer.
fn response(request: &str, code: u16, reason: &str, peer: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", header(request, name).unwrap_or_default()));
    }
    let to = header(request, "To").unwrap_or_default();
    let to = if to.contains(";tag=") || code == 100 { to.to_string() } else { format!("{to};tag=reorder") };
    out.push_str(&format!("To: {to}\r\n"));
    let invite_answer = code == 200 && header(request, "CSeq").is_some_and(|c| c.ends_with("INVITE"));
    if invite_answer {
        let sdp =
            format!("v=0\r\no=peer 1 1 IN IP4 {peer}\r\ns=-\r\nc=IN IP4 {peer}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0 8\r\n");
        out.push_str(&format!("Contact: <sip:callee@{peer}:5060>\r\n"));
        out.push_str(&format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()));
    } else {
        out.push_str("Content-Length: 0\r\n\r\n");
    }
    out
}

/// An injection file of `calls` lines `caller;callee;`.
fn numbers(dir: &Path, calls: u64) -> std::path::PathBuf {
    let path = dir.join("numbers.csv");
    let mut csv = String::from("SEQUENTIAL\n");
    for n in 0..calls {
        csv.push_str(&format!("+1212555{n:04};+1415555{n:04};\n"));
    }
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn uac_xml_counts_answered_calls_whose_180_comes_after_the_200_and_acks_a_retransmitted_200() {
    require_root_and_peers();
    let peer = ReorderingPeer::start("127.0.211.2", 200);
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.csv");
    let out = Command::new("sipp")
        .arg("-sf")
        .arg(e2e_dir().join("uac.xml"))
        .args(["-s", "+12125550100", "-key", "from", "+13125551234"])
        .args(["-m", "5", "-r", "10", "-l", "5", "-i", CALLER, "-p", "5070", "-mp", "6070"])
        .args(["-timeout", "30", "-timeout_error", "-nostdin", "-trace_stat", "-fd", "1", "-stf"])
        .arg(&stats)
        .arg("127.0.211.2:5060")
        .current_dir(dir.path())
        .output()
        .expect("sipp (Debian package sip-tester)");
    assert!(out.status.success(), "SIPp's exit: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(sipp_call_counts(&stats), (5, 0), "SIPp's own count: every call successful");
    let seen = peer.seen();
    assert_eq!(seen.len(), 5, "{seen:?}");
    for (id, methods) in &seen {
        // The retransmitted 200 was acknowledged again; the late 180s changed nothing.
        assert_eq!(methods, &["INVITE", "ACK", "ACK", "BYE"], "call {id}");
    }
}

#[test]
fn probe_callers_count_answered_and_busy_calls_whose_180_comes_after_the_final_response() {
    require_root_and_peers();
    let dir = tempfile::tempdir().unwrap();
    let numbers = numbers(dir.path(), 4);
    for (scenario, code, ip, expected) in [
        ("uac-answered.xml", 200, "127.0.211.3", &["INVITE", "ACK", "ACK", "BYE"][..]),
        ("uac-final.xml", 486, "127.0.211.4", &["INVITE", "ACK"][..]),
    ] {
        let peer = ReorderingPeer::start(ip, code);
        let sc = probe_scenario(dir.path(), scenario, (code != 200).then_some(code));
        let run = place_calls_at(&sc, &numbers, 4, 4, 10, CALLER, 5071, 6170, ip);
        assert!(run.success, "{scenario}: {run:?}");
        assert_eq!((run.successful_calls, run.failed_calls), (4, 0), "{scenario}: SIPp's own count");
        let seen = peer.seen();
        assert_eq!(seen.len(), 4, "{scenario}: {seen:?}");
        for (id, methods) in &seen {
            assert_eq!(methods, expected, "{scenario}: call {id}");
        }
    }
}
