//! The SIP probe end to end (issue 4): SIPp places a mix of calls (answered with RTP, busy,
//! cancelled, no answer, redirected) through Kamailio while tcpdump captures the caller's side.
//!
//! - `tollgate probe --pcap` on that file reports every call SIPp placed, with the outcome SIPp
//!   saw, and per-method / per-code message counts equal to `tshark -z sip,stat`;
//! - the same calls reach a running tollgate live, as HEP3 from Kamailio's siptrace module, with
//!   the same outcomes and numbers (HEP carries both legs of the proxy);
//! - seed 002's FST C2: SIP / Average CPS / Hour / each device, SIP / Top 10 Source / Hour / All
//!   and SIP / Top 10 Destination / Hour / All match what was sent.
//!
//! The whole run is made twice, with siptrace sending HEP3 and HEP2. The captures are kept as
//! target/test-artifacts/probe-calls-hep{3,2}.pcap.

mod common;

use std::collections::BTreeMap;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::analytics::{check_average_cps, export, rows, top10, view};
use common::sip::{
    Callee, CallerRun, Kamailio, e2e_dir, place_calls, probe_callee, probe_scenario, require_root_and_peers,
};
use common::tcpdump::Tcpdump;
use common::tshark;
use common::{Engine, EngineOptions, free_port, text};

/// The addresses of one run: proxy `.1`, callees `.2`, callers `.3` of a 127.0.x network.
#[derive(Clone, Copy)]
struct Net {
    proxy: &'static str,
    callees: &'static str,
    callers: &'static str,
}

const HEP3_NET: Net = Net { proxy: "127.0.54.1", callees: "127.0.54.2", callers: "127.0.54.3" };
const HEP2_NET: Net = Net { proxy: "127.0.55.1", callees: "127.0.55.2", callers: "127.0.55.3" };

/// One group of calls with the same expected outcome.
struct Group {
    disposition: &'static str,
    final_code: u16,
    scenario: &'static str,
    code: Option<u16>,
    /// (caller, callee) as dialled: national numbers.
    calls: &'static [(&'static str, &'static str)],
}

const GROUPS: &[Group] = &[
    Group {
        disposition: "answered",
        final_code: 200,
        scenario: "uac-answered.xml",
        code: None,
        calls: &[
            ("2125550001", "4155550101"),
            ("2125550001", "4155550101"),
            ("2125550001", "4155550102"),
            ("2125550002", "4155550101"),
            ("2125550002", "4155550102"),
            ("2125550003", "4155550103"),
        ],
    },
    Group {
        disposition: "busy",
        final_code: 486,
        scenario: "uac-final.xml",
        code: Some(486),
        calls: &[("2125550001", "4155550201"), ("2125550004", "4155550202"), ("2125550004", "4155550201")],
    },
    Group {
        disposition: "cancelled",
        final_code: 487,
        scenario: "uac-cancel.xml",
        code: None,
        calls: &[("2125550002", "4155550301"), ("2125550005", "4155550301")],
    },
    Group {
        disposition: "no_answer",
        final_code: 408,
        scenario: "uac-final.xml",
        code: Some(408),
        calls: &[("2125550001", "4155550401"), ("2125550003", "4155550402")],
    },
    Group {
        disposition: "redirected",
        final_code: 302,
        scenario: "uac-final.xml",
        code: Some(302),
        calls: &[("2125550005", "4155550501"), ("2125550006", "4155550501")],
    },
];

/// A call as the probe reported it: (call-id) -> (disposition, final code, source, destination,
/// direction).
type Calls = BTreeMap<String, (String, u64, String, String, String)>;

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
                    c["direction"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn calls_from_csv(csv: &str, device: &str) -> Calls {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (dev, id, disp, code, src, dst, dir) = (
        col("device"),
        col("call_id"),
        col("disposition"),
        col("final_code"),
        col("source"),
        col("destination"),
        col("direction"),
    );
    let mut calls = Calls::new();
    for f in lines.map(|l| l.split(',').collect::<Vec<_>>()).filter(|f| f[dev] == device) {
        let call = (f[disp].to_string(), f[code].parse().unwrap_or(0), f[src].into(), f[dst].into(), f[dir].into());
        assert!(calls.insert(f[id].to_string(), call).is_none(), "two records of call {}:\n{csv}", f[id]);
    }
    calls
}

#[test]
fn sipp_calls_through_kamailio_match_in_pcap_live_hep3_and_analytics() {
    run(HEP3_NET, 3);
}

#[test]
fn the_same_calls_match_over_hep2() {
    run(HEP2_NET, 2);
}

fn run(net: Net, hep_version: u8) {
    require_root_and_peers();
    for (program, package) in [("tcpdump", "tcpdump"), ("tshark", "tshark")] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output();
        assert!(found.map(|o| o.status.success()).unwrap_or(false), "{program} is missing: apt install {package}");
    }
    let work = tempfile::tempdir().unwrap();

    // tollgate (engine, probe, collector) listening for HEP from Kamailio.
    let e = Engine::start(EngineOptions {
        node: "hep-probe".into(),
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        probe: "hep_udp = [\"127.0.0.1:0\"]\nhep_tcp = []\ninternal = [\"+1212555*\"]\n".into(),
        ..Default::default()
    });
    let hep = e.ready_field("hep_udp").expect("the ready line names the HEP port");
    let version = hep_version.to_string();
    let _proxy = Kamailio::start_config(
        net.proxy,
        "probe/proxy.cfg",
        &[("@PROXY_IP@", net.proxy), ("@UAS_IP@", net.callees), ("@HEP_ADDR@", &hep), ("@HEP_VERSION@", &version)],
    );
    let _answer = Callee::start_scenario(net.callees, 5081, &e2e_dir().join("uas.xml"), 6100);
    let _busy = probe_callee(net.callees, work.path(), 5082, (486, "Busy Here", ""), 6200);
    let _ring = Callee::start_scenario(net.callees, 5083, &e2e_dir().join("probe/uas-ring.xml"), 6300);
    let _redirect = probe_callee(
        net.callees,
        work.path(),
        5084,
        (302, "Moved Temporarily", "Contact: <sip:4155559999@198.51.100.9>"),
        6400,
    );

    // The calls, all groups at once, captured on the callers' side.
    let pcap = work.path().join("calls.pcap");
    let mut capture = Tcpdump::start(&pcap, &format!("host {}", net.callers));
    let runs: Vec<CallerRun> = std::thread::scope(|s| {
        let handles: Vec<_> = GROUPS
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let numbers = work.path().join(format!("numbers-{i}.csv"));
                let mut csv = String::from("SEQUENTIAL\n");
                for (from, to) in g.calls {
                    csv.push_str(&format!("{from};{to};\n"));
                }
                std::fs::write(&numbers, csv).unwrap();
                let sc = probe_scenario(work.path(), g.scenario, g.code);
                let port = 5071 + i as u16;
                let media = 7000 + 100 * i as u16;
                // Answered calls one at a time: SIPp's callee uses one media port for all calls,
                // so concurrent calls' RTP could not be told apart (a real phone's could).
                let concurrent = if g.disposition == "answered" { 1 } else { 10 };
                s.spawn(move || {
                    place_calls(&sc, &numbers, g.calls.len() as u64, concurrent, net.callers, port, media, net.proxy)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::thread::sleep(Duration::from_millis(500));
    capture.stop();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&pcap, artifacts.join(format!("probe-calls-hep{hep_version}.pcap"))).unwrap();

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
                (g.disposition.into(), g.final_code.into(), format!("+1{from}"), format!("+1{to}"), "outbound".into()),
            );
        }
    }
    let total = expected.len() as u64;

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
    assert!((totals["asr"].as_f64().unwrap() - 6.0 / 15.0).abs() < 1e-9, "{totals}");
    // Answered calls carried RTP (SIPp's G.711 sample, 50 packets/s, for one second), nothing
    // lost, so a MOS near the E-model's 4.41 for G.711; unanswered calls had none.
    for r in records {
        if r["disposition"] == "answered" {
            assert!(r["rtp_packets"].as_u64().unwrap_or(0) >= 25, "RTP of {r}");
            assert_eq!(r["rtp_lost"].as_u64(), Some(0), "{r}");
            assert!(r["pdd_ms"].as_u64().is_some() && r["duration_ms"].as_u64().unwrap_or(0) >= 900, "{r}");
            let mos = r["mos"].as_f64().unwrap_or(0.0);
            assert!(mos > 4.0 && mos <= 4.5, "clean RTP, a high MOS: {r}");
        } else {
            assert!(r["rtp_packets"].is_null() && r["duration_ms"].is_null() && r["mos"].is_null(), "{r}");
        }
    }
    assert_eq!(totals["poor_quality_calls"].as_u64(), Some(0), "{totals}");
    assert_eq!(totals["rtp_unattributed"].as_u64(), Some(0), "{totals}");
    // The answered calls follow one another on the same media ports, and SIPp replays one
    // recording in each: the same SSRC and sequence numbers every call. Each call still gets
    // its own packets (counted above: at least 25 each, the sum below equal to tshark's).
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", "udp.port==6100,rtp", "-Y", "udp.dstport == 6100", "-T", "fields", "-e", "rtp.ssrc"])
        .output()
        .unwrap();
    let ssrcs: std::collections::BTreeSet<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC reused by every answered call: {ssrcs:?}");
    // Every packet tshark sees towards the callee's media port is counted: in some call, or as
    // in flight when its call's BYE passed.
    let rtp_sum: u64 = records.iter().filter_map(|r| r["rtp_packets"].as_u64()).sum();
    let late = totals["rtp_after_end"].as_u64().unwrap();
    let out = Command::new("tshark").arg("-r").arg(&pcap).args(["-Y", "udp.dstport == 6100"]).output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    assert_eq!(rtp_sum + late, seen, "RTP packets, tollgate ({rtp_sum} in calls + {late} late) vs tshark");
    assert!(late * 20 <= seen, "only packets in flight at a BYE are late: {late} of {seen}");
    // The same file through tshark: the same messages per method and per code.
    let (requests, responses) = tshark::sip_stat(&pcap);
    assert_eq!(tshark::counts(&totals["requests"]), requests, "requests, tollgate vs tshark");
    assert_eq!(tshark::counts(&totals["responses"]), responses, "responses, tollgate vs tshark");
    assert_eq!(requests.get("INVITE"), Some(&total), "one INVITE per call on the caller's side");

    // The table and CSV outputs show the same calls.
    let table = text(&e.cli(&["probe", "--pcap", pcap.to_str().unwrap()])).0;
    assert!(table.contains(&format!("calls     {total} (")), "{table}");
    assert!(table.contains("ASR       40.0%"), "{table}");
    let csv = text(&e.cli(&["probe", "--pcap", pcap.to_str().unwrap(), "--csv"])).0;
    assert_eq!(csv.lines().count() as u64, total + 1, "{csv}");

    // Live: the same calls reached the running probe as HEP3 from Kamailio's siptrace.
    let deadline = Instant::now() + Duration::from_secs(20);
    while view(&e, "SIP", "Average CPS", "hep-probe")["total"].as_u64() != Some(total) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let live = calls_from_csv(&export(&e, "SIP"), "hep-probe");
    assert_eq!(live, expected, "live HEP: the same calls with the same outcomes");

    let metrics = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", e.api))
        .bearer_auth(e.cli_token())
        .send()
        .unwrap()
        .text()
        .unwrap();
    let hep_packets: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_probe_hep_packets_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let caller_side: u64 = requests.values().sum::<u64>() + responses.values().sum::<u64>();
    assert!(hep_packets > caller_side, "HEP carries both legs: {hep_packets} packets\n{metrics}");
    assert!(
        metrics.lines().any(|l| l == "tollgate_probe_poor_quality_calls_total 0"),
        "the poor-quality counter is exported (HEP carries no RTP: none)\n{metrics}"
    );

    // The capture file shipped as a second device, `tap-1`.
    let token = e.ingest_token("tap");
    let tap_config = work.path().join("tap.toml");
    std::fs::write(
        &tap_config,
        format!(
            "[node]\nname = \"tap-1\"\nstate_dir = \"{}\"\n[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\n",
            work.path().join("tap-state").display(),
            e.api
        ),
    )
    .unwrap();
    let out = Command::new(common::tollgate_bin())
        .arg("--config")
        .arg(&tap_config)
        .args(["probe", "--pcap", pcap.to_str().unwrap(), "--ship", "--device", "tap-1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).1.contains(&format!("shipped {total} call records")), "{:?}", text(&out));
    // The shipped records keep their MOS in the store (hundredths), only for answered calls.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut shipped = export(&e, "SIP");
    while shipped.lines().filter(|l| l.contains(",tap-1,")).count() < total as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        shipped = export(&e, "SIP");
    }
    let header: Vec<&str> = shipped.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (dev, disp, mos) = (col("device"), col("disposition"), col("mos_x100"));
    let tap: Vec<Vec<&str>> =
        shipped.lines().skip(1).map(|l| l.split(',').collect::<Vec<_>>()).filter(|f| f[dev] == "tap-1").collect();
    assert_eq!(tap.len() as u64, total, "{shipped}");
    for f in &tap {
        match f[disp] {
            "answered" => assert!(f[mos].parse::<u32>().is_ok_and(|m| m > 400 && m <= 450), "{f:?}"),
            _ => assert_eq!(f[mos], "", "{f:?}"),
        }
    }

    // FST C2. SIP / Average CPS / Hour / each device.
    check_average_cps(&e, "SIP", "hep-probe", total);
    check_average_cps(&e, "SIP", "tap-1", total);
    // SIP / Top 10 Source / Hour / All and Top 10 Destination: each call counted once per device.
    let (mut sources, mut destinations) = (BTreeMap::new(), BTreeMap::new());
    for (_, _, src, dst, dir) in expected.values() {
        *sources.entry((src.clone(), dir.clone())).or_default() += 2;
        *destinations.entry((dst.clone(), dir.clone())).or_default() += 2;
    }
    assert_eq!(rows(&view(&e, "SIP", "Top 10 Source", "All")), top10(&sources));
    assert_eq!(rows(&view(&e, "SIP", "Top 10 Destination", "All")), top10(&destinations));
}
