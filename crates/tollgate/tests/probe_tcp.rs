//! SIP over TCP end to end (issue 18): SIPp callers in a network namespace place a mix of
//! calls (answered with RTP, busy, cancelled, no answer, redirected) over TCP through Kamailio,
//! which relays them to SIPp callees over TCP; the callers reach Kamailio over a veth pair
//! with a 576-byte MTU and one segment per packet (`gso_max_segs 1`), so SIP messages (with
//! large SDP bodies) are cut across TCP segments as on a real link. tcpdump captures the
//! callers' side of the veth.
//!
//! - tshark confirms that SIP messages were built from several segments;
//! - `tollgate probe --pcap` on that file reports exactly the calls SIPp placed, with the
//!   outcome SIPp saw, and per-method / per-code message counts equal to `tshark -z sip,stat`
//!   (which reassembles TCP too), with nothing dropped by the reassembly;
//! - built with `--features live-capture`, a running tollgate capturing the same veth through
//!   libpcap (`[probe] interface`, a BPF `filter` on the callers' address) records the same
//!   calls.
//!
//! Needs root (namespaces, Kamailio, tcpdump). The capture is kept as
//! target/test-artifacts/probe-tcp.pcap.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
#[cfg(feature = "live-capture")]
use std::time::{Duration, Instant};

#[cfg(feature = "live-capture")]
use common::analytics::{export, view};
use common::netns::{ip, kill_namespace_processes};
use common::sip::{Callee, CallerRun, Kamailio, e2e_dir, place_calls_over, require_root_and_peers};
use common::tcpdump::Tcpdump;
use common::tshark;
use common::{Engine, EngineOptions, free_port, text};

/// Proxy `.1` and callees `.2` on the root side of the veth, callers `.3` in the namespace.
const PROXY: &str = "172.31.164.1";
const CALLEES: &str = "172.31.164.2";
const CALLERS: &str = "172.31.164.3";

/// One group of calls with the same expected outcome.
struct Group {
    disposition: &'static str,
    final_code: u16,
    scenario: &'static str,
    code: Option<u16>,
    /// SIPp's transport mode: `t1` one connection for the group, `tn` one per call.
    transport: &'static str,
    /// (caller, callee) as dialled: national numbers.
    calls: &'static [(&'static str, &'static str)],
}

const GROUPS: &[Group] = &[
    Group {
        disposition: "answered",
        final_code: 200,
        scenario: "uac-answered.xml",
        code: None,
        transport: "tn",
        calls: &[("2125550001", "4155550101"), ("2125550002", "4155550102"), ("2125550003", "4155550103")],
    },
    Group {
        disposition: "busy",
        final_code: 486,
        scenario: "uac-final.xml",
        code: Some(486),
        transport: "t1",
        calls: &[
            ("2125550001", "4155550201"),
            ("2125550004", "4155550202"),
            ("2125550004", "4155550201"),
            ("2125550005", "4155550203"),
            ("2125550006", "4155550204"),
            ("2125550007", "4155550205"),
            ("2125550008", "4155550206"),
            ("2125550009", "4155550207"),
        ],
    },
    Group {
        disposition: "cancelled",
        final_code: 487,
        scenario: "uac-cancel.xml",
        code: None,
        transport: "t1",
        calls: &[("2125550002", "4155550301"), ("2125550005", "4155550301")],
    },
    Group {
        disposition: "no_answer",
        final_code: 408,
        scenario: "uac-final.xml",
        code: Some(408),
        transport: "t1",
        calls: &[("2125550001", "4155550401"), ("2125550003", "4155550402")],
    },
    Group {
        disposition: "redirected",
        final_code: 302,
        scenario: "uac-final.xml",
        code: Some(302),
        transport: "tn",
        calls: &[("2125550005", "4155550501"), ("2125550006", "4155550501")],
    },
];

/// The callers' namespace and the veth pair to it (`<ns>r` in the root namespace, `<ns>c` in
/// the namespace), both ends with a 576-byte MTU and no segmentation offload, so the capture
/// sees the segments as a real link carries them. Removed on drop, with the processes in it.
struct Wire {
    ns: String,
}

impl Wire {
    fn create() -> Wire {
        let ns = format!("tgtcp{}", std::process::id());
        let (root, inner) = (format!("{ns}r"), format!("{ns}c"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = Command::new("ip").args(["link", "del", &root]).output();
        let wire = Wire { ns: ns.clone() };
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &root, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &ns]);
        ip(&["addr", "add", &format!("{PROXY}/24"), "dev", &root]);
        ip(&["addr", "add", &format!("{CALLEES}/24"), "dev", &root]);
        ip(&["link", "set", &root, "mtu", "576", "gso_max_segs", "1", "up"]);
        let inside = |args: &[&str]| ip(&[&["netns", "exec", ns.as_str(), "ip"], args].concat());
        inside(&["addr", "add", &format!("{CALLERS}/24"), "dev", &inner]);
        inside(&["link", "set", &inner, "mtu", "576", "gso_max_segs", "1", "up"]);
        inside(&["link", "set", "lo", "up"]);
        wire
    }

    /// The veth end in the root namespace (where the proxy is, and the capture).
    fn interface(&self) -> String {
        format!("{}r", self.ns)
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        kill_namespace_processes(&self.ns);
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip").args(["link", "del", &self.interface()]).output();
    }
}

/// `text` with 40 extra SDP attribute lines after each `a=rtpmap` line: bodies of about 3 KB,
/// so INVITEs and answers span several segments.
fn padded(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with("a=rtpmap:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            for i in 0..40 {
                out.push_str(&format!("{indent}a=x-tollgate-padding-{i:02}:{}\n", "p".repeat(48)));
            }
        }
    }
    out
}

/// A scenario from the e2e directory, padded, `@CODE@` filled, written to `dir`.
fn scenario(dir: &Path, name: &str, code: Option<u16>, replace: &[(&str, &str)]) -> PathBuf {
    let mut text = padded(&std::fs::read_to_string(e2e_dir().join(name)).unwrap());
    if let Some(c) = code {
        text = text.replace("@CODE@", &c.to_string());
    }
    for (marker, value) in replace {
        text = text.replace(marker, value);
    }
    let file = Path::new(name).file_name().unwrap().to_string_lossy().into_owned();
    let path = dir.join(format!("{}-{file}", code.unwrap_or(0)));
    std::fs::write(&path, text).unwrap();
    path
}

/// A call as reported: call-id -> (disposition, final code, source, destination).
type Calls = BTreeMap<String, (String, u64, String, String)>;

fn calls_from_json(records: &[serde_json::Value]) -> Calls {
    records
        .iter()
        .map(|c| {
            (
                c["call_id"].as_str().unwrap().to_string(),
                (
                    c["disposition"].as_str().unwrap().to_string(),
                    c["final_code"].as_u64().unwrap_or(0),
                    c["source"].as_str().unwrap_or("-").to_string(),
                    c["destination"].as_str().unwrap_or("-").to_string(),
                ),
            )
        })
        .collect()
}

#[cfg(feature = "live-capture")]
fn calls_from_csv(csv: &str, device: &str) -> Calls {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (dev, id, disp, code, src, dst) =
        (col("device"), col("call_id"), col("disposition"), col("final_code"), col("source"), col("destination"));
    let mut calls = Calls::new();
    for f in lines.map(|l| l.split(',').collect::<Vec<_>>()).filter(|f| f[dev] == device) {
        let call = (f[disp].to_string(), f[code].parse().unwrap_or(0), f[src].into(), f[dst].into());
        assert!(calls.insert(f[id].to_string(), call).is_none(), "two records of call {}:\n{csv}", f[id]);
    }
    calls
}

#[test]
fn sipp_calls_over_tcp_through_kamailio_match_in_pcap_and_live() {
    require_root_and_peers();
    for (program, package) in [("tcpdump", "tcpdump"), ("tshark", "tshark")] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output();
        assert!(found.map(|o| o.status.success()).unwrap_or(false), "{program} is missing: apt install {package}");
    }
    let work = tempfile::tempdir().unwrap();
    let wire = Wire::create();

    // A running tollgate capturing the callers' side of the veth through libpcap.
    let probe = if cfg!(feature = "live-capture") {
        let interface = wire.interface();
        format!("interface = \"{interface}\"\nfilter = \"host {CALLERS}\"\ninternal = [\"+1212555*\"]\n")
    } else {
        "internal = [\"+1212555*\"]\n".to_string()
    };
    let e = Engine::start(EngineOptions {
        node: "tcp-live".into(),
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        probe,
        ..Default::default()
    });

    let _proxy = Kamailio::start_config(PROXY, "probe/proxy-tcp.cfg", &[("@PROXY_IP@", PROXY), ("@UAS_IP@", CALLEES)]);
    let dir = work.path();
    let _answer = Callee::start_tcp(CALLEES, 5081, &scenario(dir, "uas.xml", None, &[]), 6100);
    // Every header line filled: an empty line would end the head before Content-Length, which
    // TCP needs (Kamailio refuses such a message; over UDP it passes).
    let busy = [("@CODE@", "486"), ("@REASON@", "Busy Here"), ("@EXTRA@", "Subject: busy")];
    let _busy = Callee::start_tcp(CALLEES, 5082, &scenario(dir, "probe/uas-final.xml", Some(486), &busy), 6200);
    let _ring = Callee::start_tcp(CALLEES, 5083, &scenario(dir, "probe/uas-ring.xml", None, &[]), 6300);
    let moved =
        [("@CODE@", "302"), ("@REASON@", "Moved Temporarily"), ("@EXTRA@", "Contact: <sip:4155559999@198.51.100.9>")];
    let _redirect = Callee::start_tcp(CALLEES, 5084, &scenario(dir, "probe/uas-final.xml", Some(302), &moved), 6400);

    // The calls, all groups at once, captured on the callers' side.
    let pcap = dir.join("calls.pcap");
    let mut capture = Tcpdump::start_on(None, &wire.interface(), &pcap, &format!("host {CALLERS}"));
    let runs: Vec<CallerRun> = std::thread::scope(|s| {
        let handles: Vec<_> = GROUPS
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let numbers = dir.join(format!("numbers-{i}.csv"));
                let mut csv = String::from("SEQUENTIAL\n");
                for (from, to) in g.calls {
                    csv.push_str(&format!("{from};{to};\n"));
                }
                std::fs::write(&numbers, csv).unwrap();
                let sc = scenario(dir, &format!("probe/{}", g.scenario), g.code, &[]);
                let port = 5071 + i as u16;
                let media = 7000 + 100 * i as u16;
                // Answered calls one at a time: SIPp's callee uses one media port for all calls.
                let (concurrent, rate) = if g.disposition == "answered" { (1, 5) } else { (10, 10) };
                let ns = wire.ns.as_str();
                s.spawn(move || {
                    let n = g.calls.len() as u64;
                    place_calls_over(
                        Some(ns),
                        g.transport,
                        &sc,
                        &numbers,
                        n,
                        concurrent,
                        rate,
                        CALLERS,
                        port,
                        media,
                        PROXY,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    capture.stop();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&pcap, artifacts.join("probe-tcp.pcap")).unwrap();

    // What SIPp says happened.
    let mut expected = Calls::new();
    for (g, run) in GROUPS.iter().zip(&runs) {
        assert!(run.success, "SIPp {} calls: {run:?}", g.disposition);
        assert_eq!(run.successful_calls, g.calls.len() as u64, "SIPp's count of {} calls", g.disposition);
        assert_eq!(run.failed_calls, 0);
        assert_eq!(run.call_ids.len(), g.calls.len(), "{run:?}");
        for (id, (from, to)) in run.call_ids.iter().zip(g.calls) {
            expected.insert(
                id.clone(),
                (g.disposition.into(), g.final_code.into(), format!("+1{from}"), format!("+1{to}")),
            );
        }
    }
    let total = expected.len() as u64;

    // The traffic is what this test is about: SIP on TCP, messages cut across segments.
    assert_eq!(tshark::output(&pcap, &["-Y", "udp && sip"]).lines().count(), 0, "no SIP over UDP on the callers' side");
    let spanning = tshark::output(&pcap, &["-Y", "sip && tcp.segment.count > 1"]).lines().count();
    assert!(spanning >= GROUPS.len(), "SIP messages reassembled from several TCP segments: {spanning}");
    let shared = tshark::output(&pcap, &["-Y", "count(sip.Call-ID) > 1"]).lines().count();
    eprintln!("{spanning} SIP messages span TCP segments; {shared} frames hold more than one message");

    // The capture file through `tollgate probe --pcap --json`.
    let out = e.cli(&["probe", "--pcap", pcap.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let report: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let records = report["calls"].as_array().unwrap();
    assert_eq!(calls_from_json(records), expected, "pcap: every call SIPp placed, as SIPp saw it");
    let totals = &report["totals"];
    let by_disposition = tshark::counts(&totals["calls"]);
    for g in GROUPS {
        assert_eq!(by_disposition.get(g.disposition), Some(&(g.calls.len() as u64)), "{totals}");
    }
    for r in records.iter().filter(|r| r["disposition"] == "answered") {
        assert!(r["rtp_packets"].as_u64().unwrap_or(0) >= 25, "RTP of {r}");
    }
    // The same messages as tshark, per method and per code.
    let (requests, responses) = tshark::sip_stat(&pcap);
    assert_eq!(tshark::counts(&totals["requests"]), requests, "requests, tollgate vs tshark");
    assert_eq!(tshark::counts(&totals["responses"]), responses, "responses, tollgate vs tshark");
    assert_eq!(requests.get("INVITE"), Some(&total), "one INVITE per call on the callers' side");
    // Every message came whole out of the reassembly; nothing was dropped or skipped.
    let tcp = &totals["tcp"];
    let messages = requests.values().sum::<u64>() + responses.values().sum::<u64>();
    assert_eq!(tcp["messages"].as_u64(), Some(messages), "{tcp}");
    assert_eq!(totals["malformed"].as_u64(), Some(0), "{totals}");
    for zero in ["gaps", "resyncs", "bytes_dropped", "no_content_length", "oversized", "evicted"] {
        assert_eq!(tcp[zero].as_u64(), Some(0), "{zero}: {tcp}");
    }
    // Each `tn` call and each `t1` group opened a connection to the proxy: two flows each.
    let connections: u64 = GROUPS.iter().map(|g| if g.transport == "tn" { g.calls.len() as u64 } else { 1 }).sum();
    assert_eq!(tcp["flows"].as_u64(), Some(2 * connections), "{tcp}");

    // The reassembly bounds are the operator's: with `probe.tcp_max_flow_kb = 1` the padded
    // INVITEs (over 3 KiB) are too large for a flow, dropped and counted, not delivered cut.
    let (_dir, small) = common::temp_file("small-flows.toml", "[probe]\ntcp_max_flow_kb = 1\n");
    let out = Command::new(common::tollgate_bin())
        .arg("--config")
        .arg(&small)
        .args(["probe", "--pcap", pcap.to_str().unwrap(), "--json", "--totals"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let bounded: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let tcp = &bounded["tcp"];
    assert!(tcp["oversized"].as_u64().unwrap_or(0) >= total, "every padded INVITE is oversized: {tcp}");
    assert!(tcp["bytes_dropped"].as_u64().unwrap_or(0) > 0, "{tcp}");
    assert!(tcp["messages"].as_u64().unwrap_or(u64::MAX) < messages, "{tcp}");

    // Live: the running probe captured the same traffic from `lo` and recorded the same calls.
    #[cfg(feature = "live-capture")]
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while view(&e, "SIP", "Average CPS", "tcp-live")["total"].as_u64() != Some(total) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let live = calls_from_csv(&export(&e, "SIP"), "tcp-live");
        let drops = e.metric("tollgate_probe_kernel_drops_total");
        if live != expected || drops > 0.0 {
            let metrics = common::scrape(&e.api);
            let probe: Vec<&str> = metrics.lines().filter(|l| l.starts_with("tollgate_probe_")).collect();
            eprintln!("the live probe's metrics:\n{}", probe.join("\n"));
        }
        assert_eq!(drops, 0.0, "libpcap dropped packets (the live probe cannot see what it was not given)");
        assert_eq!(live, expected, "live capture: the same calls with the same outcomes");
        let metric = |name: &str| e.metric(name);
        assert_eq!(metric("tollgate_probe_tcp_messages_total"), messages as f64, "live: every message reassembled");
        assert_eq!(metric("tollgate_probe_tcp_bytes_dropped_total"), 0.0);
    }
}
