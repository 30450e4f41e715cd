//! Call ladders end to end (issue 18, item 6): SIPp places answered and busy calls through
//! Kamailio while tcpdump captures both legs at the proxy and Kamailio's siptrace mirrors
//! every message to a running tollgate as HEP3.
//!
//! - `tollgate probe --pcap F --call ID --json`: the call's messages are tshark's view of
//!   that call (`-Y 'sip.Call-ID == "ID"'`): the same count, order, capture times, hosts,
//!   methods and status codes; the ladder text has the hosts as columns in order of
//!   appearance and one arrow per message labelled as tshark names it; the call's record
//!   follows; an unknown Call-ID is an error saying how many calls the file held.
//! - `GET /api/v1/probe/calls/{call_id}/messages` on the running tollgate: 401 without a
//!   credential, 403 with an ingest token, 404 `not_found` for a Call-ID never seen; for a
//!   viewer, the messages Kamailio sent as HEP, which are those tshark saw on the wire.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sip::{Callee, Kamailio, e2e_dir, place_calls, require_root_and_peers};
use common::tcpdump::Tcpdump;
use common::{Engine, EngineOptions, free_port, text};

const PROXY: &str = "127.0.147.1";
const CALLEES: &str = "127.0.147.2";
const CALLERS: &str = "127.0.147.3";

/// A message as compared: capture time (µs), sender, receiver, method of a request or status
/// code of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    time_us: i64,
    src: String,
    dst: String,
    what: String,
}

/// `1765090000.123456000` (tshark's frame.time_epoch) in µs.
fn epoch_us(s: &str) -> i64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac: String = format!("{frac:0<6}").chars().take(6).collect();
    secs.parse::<i64>().unwrap() * 1_000_000 + frac.parse::<i64>().unwrap()
}

/// tshark's view of one call in `pcap`, in capture order.
fn tshark_call(pcap: &Path, call_id: &str) -> Vec<Seen> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", &format!("sip.Call-ID == \"{call_id}\"")])
        .args(["-T", "fields", "-E", "separator=/t"])
        .args(["-e", "frame.time_epoch", "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport"])
        .args(["-e", "sip.Method", "-e", "sip.Status-Code"])
        .output()
        .expect("run tshark (Debian package tshark)");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 7, "one SIP message per frame: {l}");
            Seen {
                time_us: epoch_us(f[0]),
                src: format!("{}:{}", f[1], f[2]),
                dst: format!("{}:{}", f[3], f[4]),
                what: if f[6].is_empty() { f[5].to_string() } else { f[6].to_string() },
            }
        })
        .collect()
}

/// The messages of the API's (and `--call --json`'s) answer.
fn seen_of(call: &tollgate_api::probe::CallMessages) -> Vec<Seen> {
    call.messages
        .iter()
        .map(|m| Seen {
            time_us: m.time.timestamp_micros(),
            src: m.src.clone(),
            dst: m.dst.clone(),
            what: match (&m.method, m.status) {
                (Some(method), None) => method.clone(),
                (None, Some(code)) => code.to_string(),
                other => panic!("a message is a request or a response: {other:?} {m:?}"),
            },
        })
        .collect()
}

fn without_time(v: &[Seen]) -> Vec<(String, String, String)> {
    v.iter().map(|s| (s.src.clone(), s.dst.clone(), s.what.clone())).collect()
}

#[test]
fn a_calls_ladder_from_a_capture_and_from_the_running_probe_matches_tshark() {
    require_root_and_peers();
    let work = tempfile::tempdir().unwrap();

    let e = Engine::start(EngineOptions {
        node: "ladder-probe".into(),
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        probe: "hep_udp = [\"127.0.0.1:0\"]\nhep_tcp = []\ninternal = [\"+1212555*\"]\nladder_calls = 100\n".into(),
        ..Default::default()
    });
    let hep = e.ready_field("hep_udp").expect("the ready line names the HEP port");
    let _proxy = Kamailio::start_config(
        PROXY,
        "probe/proxy.cfg",
        &[("@PROXY_IP@", PROXY), ("@UAS_IP@", CALLEES), ("@HEP_ADDR@", &hep), ("@HEP_VERSION@", "3")],
    );
    let _answer = Callee::start_scenario(CALLEES, 5081, &e2e_dir().join("uas.xml"), 6100);
    let busy_scenario = work.path().join("uas-486.xml");
    std::fs::write(
        &busy_scenario,
        std::fs::read_to_string(e2e_dir().join("probe/uas-final.xml"))
            .unwrap()
            .replace("@CODE@", "486")
            .replace("@REASON@", "Busy Here")
            .replace("@EXTRA@", ""),
    )
    .unwrap();
    let _busy = Callee::start_scenario(CALLEES, 5082, &busy_scenario, 6200);

    // Both legs, at the proxy.
    let pcap = work.path().join("calls.pcap");
    let mut capture = Tcpdump::start(&pcap, &format!("host {PROXY}"));
    let mut call_ids = Vec::new();
    for (scenario, code, to, port) in
        [("uac-answered.xml", None, "4155550101", 5071), ("uac-final.xml", Some("486"), "4155550201", 5072)]
    {
        let text = std::fs::read_to_string(e2e_dir().join("probe").join(scenario)).unwrap();
        let sc = work.path().join(scenario);
        std::fs::write(&sc, code.map_or(text.clone(), |c| text.replace("@CODE@", c))).unwrap();
        let numbers = work.path().join(format!("numbers-{port}.csv"));
        std::fs::write(&numbers, format!("SEQUENTIAL\n2125550001;{to};\n")).unwrap();
        let run = place_calls(&sc, &numbers, 1, 1, CALLERS, port, 7000 + port, PROXY);
        assert!(run.success && run.successful_calls == 1 && run.call_ids.len() == 1, "SIPp {scenario}: {run:?}");
        call_ids.push(run.call_ids[0].clone());
    }
    std::thread::sleep(Duration::from_millis(500));
    capture.stop();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&pcap, artifacts.join("probe-ladder.pcap")).unwrap();
    let file = pcap.to_str().unwrap();

    for (call_id, final_code, disposition) in [(&call_ids[0], "200", "answered"), (&call_ids[1], "486", "busy")] {
        let wire = tshark_call(&pcap, call_id);
        assert!(wire.iter().any(|s| s.what == final_code), "tshark sees the {final_code}: {wire:?}");

        // The messages, as `--call --json` prints them: exactly tshark's.
        let out = e.cli(&["probe", "--pcap", file, "--call", call_id, "--json"]);
        assert!(out.status.success(), "{:?}", text(&out));
        let json: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
        let call: tollgate_api::probe::CallMessages = serde_json::from_value(json["call"].clone()).unwrap();
        assert_eq!(&call.call_id, call_id);
        assert!(!call.open, "the call ended");
        assert_eq!(seen_of(&call), wire, "call {call_id}: tollgate's messages vs tshark's");
        assert!(
            call.messages.iter().all(|m| m.transport == "udp" && !m.truncated && m.text.contains(call_id.as_str()))
        );
        assert_eq!(json["record"]["disposition"], disposition, "{json}");
        assert_eq!(json["record"]["call_id"], call_id.as_str(), "{json}");

        // The ladder: hosts as columns in order of appearance, one arrow per message, labelled
        // with tshark's method or code, in tshark's order; then the record.
        let out = e.cli(&["probe", "--pcap", file, "--call", call_id]);
        assert!(out.status.success(), "{:?}", text(&out));
        let ladder = text(&out).0;
        let lines: Vec<&str> = ladder.lines().collect();
        let mut hosts: Vec<&str> = Vec::new();
        for s in &wire {
            for h in [s.src.as_str(), s.dst.as_str()] {
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
        assert_eq!(hosts.len(), 3, "caller, proxy, callee: {hosts:?}");
        let header = lines.iter().find(|l| l.starts_with("time (UTC)")).expect("a header line");
        // Each column's middle: where its name is centred.
        let at: Vec<usize> =
            hosts.iter().map(|h| header.find(h).unwrap_or_else(|| panic!("{h} in {header}")) + h.len() / 2).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "columns in order of appearance: {header}");
        let arrows: Vec<&str> = lines.iter().copied().filter(|l| l.contains("->|") || l.contains("|<-")).collect();
        assert_eq!(arrows.len(), wire.len(), "one arrow per message:\n{ladder}");
        for (row, s) in arrows.iter().zip(&wire) {
            assert!(row.contains(&s.what), "row for {s:?}: {row}\n{ladder}");
            // The arrow spans the sender's and receiver's columns.
            let (from, to) =
                (hosts.iter().position(|h| *h == s.src).unwrap(), hosts.iter().position(|h| *h == s.dst).unwrap());
            let ends = (
                row.find("|-").or_else(|| row.find("|<")).unwrap(),
                row.rfind("-|").or_else(|| row.rfind(">|")).unwrap(),
            );
            let (lo, hi) = (from.min(to), from.max(to));
            let near = |col: usize, x: usize| (0..hosts.len()).min_by_key(|i| at[*i].abs_diff(x)).unwrap() == col;
            assert!(near(lo, ends.0) && near(hi, ends.1), "arrow of {s:?} between the right columns: {row}\n{ladder}");
        }
        assert!(
            lines.iter().any(|l| l.starts_with(&call_id[..call_id.len().min(36)]) && l.contains(disposition)),
            "{ladder}"
        );
    }

    // An unknown Call-ID: a clear error naming the file's calls.
    let out = e.cli(&["probe", "--pcap", file, "--call", "no-such-call@127.0.147.3"]);
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(
        err.contains("no SIP message has Call-ID \"no-such-call@127.0.147.3\"") && err.contains("held 2 calls"),
        "{err}"
    );

    // The running probe's route.
    let http = e.http();
    let viewer = {
        let out = e.cli(&["token", "create", "ladder-viewer", "--role", "viewer"]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.trim().to_string()
    };
    let ingest = e.ingest_token("ladder-ingest");
    let url = |id: &str| format!("{}{}", e.api, tollgate_api::probe::call_messages_path(id));
    let code = |resp: reqwest::blocking::Response| resp.json::<tollgate_api::ErrorBody>().unwrap().code;
    let busy = &call_ids[1];
    let resp = http.get(url(busy)).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(code(resp), tollgate_api::ErrorCode::Unauthenticated);
    let resp = http.get(url(busy)).bearer_auth(&ingest).send().unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(code(resp), tollgate_api::ErrorCode::Forbidden);
    let resp = http.get(url("no-such-call@127.0.147.3")).bearer_auth(&viewer).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(code(resp), tollgate_api::ErrorCode::NotFound);

    for call_id in &call_ids {
        let wire = tshark_call(&pcap, call_id);
        // HEP arrives while the calls end: wait until the probe holds the call, ended.
        let deadline = Instant::now() + Duration::from_secs(30);
        let call = loop {
            let resp = http.get(url(call_id)).bearer_auth(&viewer).send().unwrap();
            if resp.status() == 200 {
                let call: tollgate_api::probe::CallMessages = resp.json().unwrap();
                if !call.open && call.messages.len() >= wire.len() || Instant::now() > deadline {
                    break call;
                }
            } else {
                assert_eq!(resp.status(), 404, "only 404 before the call arrives");
                assert!(Instant::now() < deadline, "the probe never held call {call_id}");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(&call.call_id, call_id);
        assert!(!call.open, "{call:?}");
        // Kamailio stamps each HEP copy with its own clock when it traces it (a forwarded
        // INVITE may be stamped after the 180 that answers it), so the order is its clocks'
        // (the probe keeps messages in time order) and the messages are compared as a set:
        // each one that went from whom to whom, as many times as on the wire.
        let held = seen_of(&call);
        assert!(held.windows(2).all(|w| w[0].time_us <= w[1].time_us), "in time order: {held:?}");
        let (mut held, mut wire) = (without_time(&held), without_time(&wire));
        held.sort();
        wire.sort();
        assert_eq!(held, wire, "call {call_id}: HEP vs tshark");
    }
}
