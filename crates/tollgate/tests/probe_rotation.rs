//! Rotated captures and the end of a capture (issue 18, "a capture rotated every 1,000 packets
//! gives the same calls as the unrotated one"): SIPp places answered, busy, cancelled,
//! unanswered and redirected calls through Kamailio, and two calls are left up, while tcpdump
//! writes one file and dumpcap (`-b packets:1000`) rotated files of the same traffic.
//!
//! - the rotated files, read as one capture (`--pcap DIR`, in time order), give exactly the
//!   calls of the single file (every field but the record's id), which are the calls SIPp
//!   placed with the outcome SIPp saw; at least one call spans a file boundary;
//! - the single file split into parts (editcap), and those parts compressed by gzip as tcpdump
//!   `-z gzip` leaves them, give every field of the single file;
//! - the calls still up at the end are reported `open` (not no_answer), outside ASR, and are
//!   not shipped to the collector unless `--finalize`, which ships them as answered.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::analytics::export;
use common::sip::{
    Callee, CallerRun, HeldCall, Kamailio, e2e_dir, place_calls_at, probe_callee, probe_scenario,
    require_root_and_peers,
};
use common::tcpdump::Tcpdump;
use common::{Engine, EngineOptions, free_port, text};

const PROXY: &str = "127.0.66.1";
const CALLEES: &str = "127.0.66.2";
const CALLERS: &str = "127.0.66.3";
/// Where Kamailio's siptrace sends HEP: nobody listens (this test reads captures only).
const NO_HEP: &str = "127.0.66.9:9060";

/// One group of calls with the same expected outcome: (disposition, final code, SIPp
/// scenario, the code it expects, calls, called number prefix).
struct Group {
    disposition: &'static str,
    final_code: u64,
    scenario: &'static str,
    code: Option<u16>,
    calls: u64,
    called: &'static str,
}

const GROUPS: &[Group] = &[
    // Answered calls carry a second of RTP each: they make the capture long enough to rotate.
    Group {
        disposition: "answered",
        final_code: 200,
        scenario: "uac-answered.xml",
        code: None,
        calls: 50,
        called: "41555501",
    },
    Group {
        disposition: "busy",
        final_code: 486,
        scenario: "uac-final.xml",
        code: Some(486),
        calls: 5,
        called: "41555502",
    },
    Group {
        disposition: "cancelled",
        final_code: 487,
        scenario: "uac-cancel.xml",
        code: None,
        calls: 3,
        called: "41555503",
    },
    Group {
        disposition: "no_answer",
        final_code: 408,
        scenario: "uac-final.xml",
        code: Some(408),
        calls: 3,
        called: "41555504",
    },
    Group {
        disposition: "redirected",
        final_code: 302,
        scenario: "uac-final.xml",
        code: Some(302),
        calls: 3,
        called: "41555505",
    },
];

/// dumpcap writing rotated files; stopped with SIGINT so the last file is complete.
struct Dumpcap {
    child: Option<Child>,
    /// What it wrote to stderr so far ("Capturing on ...", then "Packets: N" as it counts).
    said: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Dumpcap {
    /// Captures loopback packets matching `filter` into `dir/rot.pcapng`, a new file every
    /// 1,000 packets (dumpcap names them `rot_00001_YYYYMMDDhhmmss.pcapng` ...).
    fn start(dir: &Path, filter: &str) -> Dumpcap {
        let mut child = Command::new("dumpcap")
            .args(["-i", "lo", "-n", "-B", "64", "-f", filter, "-b", "packets:1000", "-w"])
            .arg(dir.join("rot.pcapng"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dumpcap (Debian package wireshark-common / tshark)");
        let mut stderr = child.stderr.take().unwrap();
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let into = said.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut buf) {
                into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let d = Dumpcap { child: Some(child), said };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !d.said.lock().unwrap().contains("Capturing on") {
            assert!(
                Instant::now() < deadline,
                "dumpcap did not start capturing within 30 s: {}",
                d.said.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// True once dumpcap has counted a packet.
    fn captured_any(&self) -> bool {
        let said = self.said.lock().unwrap();
        said.rsplit("Packets: ").next().and_then(|n| n.split_whitespace().next()).and_then(|n| n.parse::<u64>().ok())
            > Some(0)
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            common::tcpdump::interrupt(c);
        }
    }
}

impl Drop for Dumpcap {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `tollgate probe --pcap INPUTS --json` (with `extra` arguments): (call rows, totals).
fn probe_json(e: &Engine, inputs: &[&Path], extra: &[&str]) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut args = vec!["probe".to_string(), "--pcap".to_string()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap().to_string()));
    args.push("--json".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = e.cli(&args);
    assert!(out.status.success(), "{args:?}: {:?}", text(&out));
    let report: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    (report["calls"].as_array().unwrap().clone(), report["totals"].clone())
}

/// Each row without its record id (a new ULID per run), keyed by Call-ID.
fn by_call_id(rows: &[serde_json::Value]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for r in rows {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("id");
        let id = r["call_id"].as_str().unwrap().to_string();
        assert!(out.insert(id.clone(), r).is_none(), "call {id} reported twice");
    }
    out
}

/// A call row without the fields computed from RTP arrival times, which two capture
/// processes may stamp differently.
fn without_arrival_timing(row: &serde_json::Value) -> serde_json::Value {
    let mut row = row.clone();
    for field in ["rtp_jitter_ms", "mos"] {
        row.as_object_mut().unwrap().remove(field);
    }
    row
}

/// The SIP messages of a capture file (tshark): (Call-ID, request method or empty for a
/// response).
fn sip_in(file: &Path) -> BTreeSet<(String, String)> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", "sip", "-T", "fields", "-e", "sip.Call-ID", "-e", "sip.Method"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t').or(Some((l, ""))))
        .filter(|(id, _)| !id.is_empty())
        .map(|(id, method)| (id.to_string(), method.to_string()))
        .collect()
}

/// The records the collector stored for `device`: Call-ID -> disposition.
fn stored(e: &Engine, device: &str) -> BTreeMap<String, String> {
    let csv = export(e, "SIP");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (dev, id, disp) = (col("device"), col("call_id"), col("disposition"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[dev] == device)
        .map(|f| (f[id].to_string(), f[disp].to_string()))
        .collect()
}

/// Ships `inputs` as device `device` with `tollgate probe --pcap ... --ship`; returns stderr.
fn ship(e: &Engine, work: &Path, device: &str, inputs: &Path, finalize: bool) -> String {
    let token = e.ingest_token(device);
    let config = work.join(format!("{device}.toml"));
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"{device}\"\nstate_dir = \"{}\"\n[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\n",
            work.join(format!("{device}-state")).display(),
            e.api
        ),
    )
    .unwrap();
    let mut command = Command::new(common::tollgate_bin());
    command
        .arg("--config")
        .arg(&config)
        .args(["probe", "--totals", "--ship", "--device", device, "--pcap"])
        .arg(inputs);
    if finalize {
        command.arg("--finalize");
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    text(&out).1
}

#[test]
fn rotated_captures_give_the_same_calls_as_one_file_and_open_calls_are_not_shipped_without_finalize() {
    require_root_and_peers();
    for (program, package) in [("tcpdump", "tcpdump"), ("tshark", "tshark"), ("dumpcap", "wireshark-common")] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output();
        assert!(found.map(|o| o.status.success()).unwrap_or(false), "{program} is missing: apt install {package}");
    }
    let work = tempfile::tempdir().unwrap();
    let e = Engine::start(EngineOptions {
        node: "rotation".into(),
        role: "collector",
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        ..Default::default()
    });
    let _proxy = Kamailio::start_config(
        PROXY,
        "probe/proxy.cfg",
        &[("@PROXY_IP@", PROXY), ("@UAS_IP@", CALLEES), ("@HEP_ADDR@", NO_HEP), ("@HEP_VERSION@", "3")],
    );
    let _answer = Callee::start_scenario(CALLEES, 5081, &e2e_dir().join("uas.xml"), 6100);
    let _busy = probe_callee(CALLEES, work.path(), 5082, (486, "Busy Here", ""), 6200);
    let _ring = Callee::start_scenario(CALLEES, 5083, &e2e_dir().join("probe/uas-ring.xml"), 6300);
    let _redirect = probe_callee(
        CALLEES,
        work.path(),
        5084,
        (302, "Moved Temporarily", "Contact: <sip:4155559999@198.51.100.9>"),
        6400,
    );

    // The same traffic, captured at once into one file and into rotated files.
    let single = work.path().join("single.pcap");
    let rotated = work.path().join("rotated");
    std::fs::create_dir(&rotated).unwrap();
    let filter = format!("host {CALLERS}");
    let mut tcpdump = Tcpdump::start(&single, &filter);
    let mut dumpcap = Dumpcap::start(&rotated, &filter);
    // Both capture before the calls start: a datagram (not SIP) to the discard port until
    // each has recorded one.
    let warm_up = std::net::UdpSocket::bind((CALLERS, 0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&single).map(|m| m.len()).unwrap_or(0) <= 24 || !dumpcap.captured_any() {
        assert!(Instant::now() < deadline, "tcpdump and dumpcap did not both capture within 30 s");
        warm_up.send_to(b"warm-up", (CALLERS, 9)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }

    let runs: Vec<CallerRun> = std::thread::scope(|s| {
        let handles: Vec<_> = GROUPS
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let numbers = work.path().join(format!("numbers-{i}.csv"));
                let mut csv = String::from("SEQUENTIAL\n");
                for n in 0..g.calls {
                    csv.push_str(&format!("21255500{:02};{}{:02};\n", i * 10 + n as usize % 10, g.called, n));
                }
                std::fs::write(&numbers, csv).unwrap();
                let sc = probe_scenario(work.path(), g.scenario, g.code);
                let (port, media) = (5071 + i as u16, 7000 + 100 * i as u16);
                s.spawn(move || place_calls_at(&sc, &numbers, g.calls, 5, 10, CALLERS, port, media, PROXY))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Two calls answered and still up when the captures end.
    let held: Vec<HeldCall> = (0..2)
        .map(|n| HeldCall::place(CALLERS, PROXY, &format!("21255501{n:02}"), &format!("41555501{}", 90 + n)))
        .collect();
    assert!(held.iter().all(|h| h.status == 200), "held calls answered");
    std::thread::sleep(Duration::from_millis(500));
    tcpdump.stop();
    dumpcap.stop();
    // Kept for a look after a failure.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/probe-rotation");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(artifacts.join("rotated")).unwrap();
    std::fs::copy(&single, artifacts.join("single.pcap")).unwrap();
    for f in std::fs::read_dir(&rotated).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, artifacts.join("rotated").join(f.file_name().unwrap())).unwrap();
    }

    // What SIPp says happened.
    let mut expected = BTreeMap::new();
    for (g, run) in GROUPS.iter().zip(&runs) {
        assert!(run.success, "SIPp {} calls: {run:?}", g.disposition);
        assert_eq!((run.successful_calls, run.failed_calls), (g.calls, 0), "SIPp's counts of {} calls", g.disposition);
        assert_eq!(run.call_ids.len() as u64, g.calls, "{run:?}");
        for id in &run.call_ids {
            expected.insert(id.clone(), (g.disposition.to_string(), g.final_code));
        }
    }
    let finished = expected.len() as u64;
    let held_ids: BTreeSet<String> = held.iter().map(|h| h.call_id.clone()).collect();

    // The capture really rotated, and some call goes on from one file into the next.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rotated).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 3, "dumpcap -b packets:1000 wrote {} files: {files:?}", files.len());
    let per_file: Vec<BTreeSet<(String, String)>> = files.iter().map(|f| sip_in(f)).collect();
    let with = |k: usize, method: &str| -> BTreeSet<String> {
        per_file[k].iter().filter(|(_, m)| m == method).map(|(id, _)| id.clone()).collect()
    };
    // Answered calls whose INVITE is in one file and BYE in a later one.
    let spanning: Vec<(usize, String)> = (0..files.len())
        .flat_map(|k| with(k, "INVITE").into_iter().map(move |id| (k, id)))
        .filter(|(k, id)| (k + 1..files.len()).any(|j| with(j, "BYE").contains(id)))
        .collect();
    assert!(!spanning.is_empty(), "no call spans a file boundary: {per_file:?}");

    // The single file: SIPp's calls, finished, and the held calls open.
    let (rows, totals) = probe_json(&e, &[&single], &[]);
    let single_calls = by_call_id(&rows);
    let got: BTreeMap<String, (String, u64)> = single_calls
        .iter()
        .filter(|(_, r)| r["state"] == "finished")
        .map(|(id, r)| {
            (id.clone(), (r["disposition"].as_str().unwrap().to_string(), r["final_code"].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(got, expected, "the single file: every call SIPp placed, as SIPp saw it");
    let open: BTreeSet<String> =
        single_calls.iter().filter(|(_, r)| r["state"] == "open").map(|(id, _)| id.clone()).collect();
    assert_eq!(open, held_ids, "the calls still up are open");
    for id in &held_ids {
        let r = &single_calls[id];
        assert_eq!((r["disposition"].as_str(), r["final_code"].as_u64()), (Some("open"), Some(200)), "{r}");
        assert!(r["ended_at"].is_null() && r["duration_ms"].is_null(), "{r}");
    }
    assert_eq!(totals["open"].as_u64(), Some(2), "{totals}");
    let by_disposition: u64 = totals["calls"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_disposition, finished, "open calls are not counted by disposition: {totals}");
    assert_eq!(totals["calls"]["no_answer"].as_u64(), Some(3), "only the real no-answers: {totals}");
    let answered = GROUPS[0].calls as f64;
    assert!(
        (totals["asr"].as_f64().unwrap() - answered / finished as f64).abs() < 1e-9,
        "ASR over finished calls: {totals}"
    );

    // The rotated files, read as one capture: exactly the same calls. dumpcap is another
    // capture process: the kernel may stamp an RTP packet for it at another moment than for
    // tcpdump (a busy machine delays one socket), so the fields computed from RTP arrival
    // times (jitter, and MOS from it) are compared below on a split of the single file.
    let (rows, rotated_totals) = probe_json(&e, &[&rotated], &[]);
    assert_eq!(rotated_totals["files"].as_u64(), Some(files.len() as u64));
    let rotated_calls = by_call_id(&rows);
    assert_eq!(rotated_calls.len(), single_calls.len());
    for (id, r) in &single_calls {
        assert_eq!(
            rotated_calls.get(id).map(without_arrival_timing),
            Some(without_arrival_timing(r)),
            "call {id}: rotated vs single file"
        );
    }
    // The single file split into files of 500 packets (editcap): the same packets and stamps,
    // so every field is the same, RTP jitter and MOS included.
    let split = work.path().join("split");
    std::fs::create_dir(&split).unwrap();
    let out = Command::new("editcap").args(["-c", "500"]).arg(&single).arg(split.join("part.pcap")).output().unwrap();
    assert!(out.status.success(), "editcap: {:?}", text(&out));
    let parts = std::fs::read_dir(&split).unwrap().count();
    assert!(parts >= 3, "editcap -c 500 wrote {parts} files");
    let (rows, split_totals) = probe_json(&e, &[&split], &[]);
    assert_eq!(split_totals["files"].as_u64(), Some(parts as u64));
    let split_calls = by_call_id(&rows);
    assert_eq!(split_calls, single_calls, "the single file split by editcap: every field");
    // The same parts compressed as tcpdump -z gzip leaves them (every closed file through
    // gzip, the newest still plain): every field again.
    let mut closed: Vec<PathBuf> = std::fs::read_dir(&split).unwrap().map(|e| e.unwrap().path()).collect();
    closed.sort();
    closed.pop();
    let out = Command::new("gzip").args(&closed).output().expect("run gzip");
    assert!(out.status.success(), "gzip: {:?}", text(&out));
    let (rows, gzip_totals) = probe_json(&e, &[&split], &[]);
    assert_eq!(gzip_totals["files"].as_u64(), Some(parts as u64));
    assert_eq!(by_call_id(&rows), single_calls, "the split files, all but the newest gzip-compressed: every field");
    for key in ["calls", "open", "asr", "ner", "messages", "requests", "responses", "rtp_packets"] {
        assert_eq!(rotated_totals[key], totals[key], "totals {key}");
        assert_eq!(split_totals[key], totals[key], "totals {key} of the split file");
        assert_eq!(gzip_totals[key], totals[key], "totals {key} of the compressed split file");
    }
    // A glob gives the same.
    let glob = rotated.join("rot_*.pcapng");
    let (rows, _) = probe_json(&e, &[&glob], &[]);
    assert_eq!(by_call_id(&rows), rotated_calls, "--pcap 'rot_*.pcapng'");
    // One rotated file alone: the calls that go on in the next file are open, not no-answers;
    // the calls it holds to their end are as in the whole capture.
    let (rows, _) = probe_json(&e, &[&files[0]], &[]);
    let first = by_call_id(&rows);
    for (id, r) in &first {
        if r["state"] == "finished" {
            assert_eq!(r["disposition"], rotated_calls[id]["disposition"], "{r}");
        } else {
            assert_eq!((r["state"].as_str(), r["disposition"].as_str()), (Some("open"), Some("open")), "{r}");
            let later = per_file[1..].iter().any(|f| f.iter().any(|(i, _)| i == id));
            assert!(later, "{id} is open at the end of the first file and goes on in a later one");
        }
    }
    for (_, id) in spanning.iter().filter(|(k, _)| *k == 0) {
        assert_eq!(first[id]["state"], "open", "{}", first[id]);
    }
    // The table says how many calls were left open and what --finalize would do.
    let table = text(&e.cli(&["probe", "--pcap", rotated.to_str().unwrap()])).0;
    assert!(table.contains(&format!("calls     {finished} (")), "{table}");
    assert!(table.contains("open      2 (still open at the end of the capture"), "{table}");
    assert!(table.contains(&format!("files     {} read as one capture in time order", files.len())), "{table}");
    // --finalize: the held calls are closed at the end, answered so far.
    let (rows, final_totals) = probe_json(&e, &[&rotated], &["--finalize"]);
    let finalized = by_call_id(&rows);
    for id in &held_ids {
        assert_eq!(
            (finalized[id]["state"].as_str(), finalized[id]["disposition"].as_str()),
            (Some("finished"), Some("answered"))
        );
    }
    assert_eq!(
        (final_totals["open"].as_u64(), final_totals["finalized"].as_u64()),
        (Some(0), Some(2)),
        "{final_totals}"
    );

    // Shipped: without --finalize the open calls are not stored; with it they are.
    let err = ship(&e, work.path(), "rot-open", &rotated, false);
    assert!(err.contains(&format!("shipped {finished} call records")), "{err}");
    assert!(err.contains("2 calls still open at the end of the capture were not stored"), "{err}");
    let stored_open = stored(&e, "rot-open");
    let expected_dispositions: BTreeMap<String, String> =
        expected.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    assert_eq!(stored_open, expected_dispositions, "without --finalize: the finished calls only");
    let err = ship(&e, work.path(), "rot-final", &rotated, true);
    assert!(err.contains(&format!("shipped {} call records", finished + 2)), "{err}");
    let mut with_held = expected_dispositions.clone();
    for id in &held_ids {
        with_held.insert(id.clone(), "answered".into());
    }
    assert_eq!(stored(&e, "rot-final"), with_held, "with --finalize: the open calls too, answered so far");
    drop(held);
}
