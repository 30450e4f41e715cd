//! Records from engines to the collector, with real traffic (dnsperf), on SQLite and on
//! PostgreSQL: the Analytics views of seed 002's FST B1 match what was sent; an engine killed
//! with SIGKILL under load and a collector stopped under load lose nothing and duplicate
//! nothing; records of both releases are stored, and a batch of a newer format is refused whole;
//! two collectors on one PostgreSQL share an engine's batches and one of them killed loses and
//! duplicates nothing; records a collector refuses as of a newer format wait in the engine's
//! spool while its other records ship.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::analytics::{check_average_cps, export, rows, stored_destinations, top10, view};
use common::{Engine, EngineOptions, PgDb, TrackedClient, free_port, temp_file, text, wait_until};

const POLICY: &str = r#"
schema = 1
name = "fst-b1"
[[internal]]
name = "office"
prefix = "+1212555"
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
"#;

fn collector(node: &str, store: Option<&str>) -> Engine {
    let extra = store.map(|s| format!("[collector]\nstore = \"{s}\"\n")).unwrap_or_default();
    Engine::start(EngineOptions {
        node: node.into(),
        role: "collector",
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: extra,
        ..Default::default()
    })
}

fn engine(node: &str, collector: &Engine, token: &str) -> Engine {
    let e = Engine::start(EngineOptions {
        node: node.into(),
        role: "engine",
        extra_config: format!(
            "[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\nbatch_records = 500\n",
            collector.api
        ),
        ..Default::default()
    });
    let (_d, p) = temp_file("fst-b1.toml", POLICY);
    let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    e
}

/// What one engine is sent, and its expected analytics.
struct Sent {
    file: tempfile::NamedTempFile,
    count: u64,
}

/// A dnsperf query file: calling numbers skewed over 30 callers (some internal), called numbers
/// over 12 internal numbers; every 9th query without a calling number.
fn traffic(
    seed: u64,
    n: u64,
    sources: &mut BTreeMap<(String, String), u64>,
    dests: &mut BTreeMap<(String, String), u64>,
) -> Sent {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut x = seed;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % 1000) as f64 / 1000.0;
        let caller = (30.0 * k * k * k) as u64; // skewed towards small indexes
        let src = if caller < 3 { format!("1212555{:04}", 9000 + caller) } else { format!("1415555{:04}", caller) };
        let dst = format!("1212555{:04}", 100 + (x >> 20) % 12);
        let rev: String = dst.chars().rev().flat_map(|c| [c, '.']).collect();
        let (name, source, direction) = if i % 9 == 0 {
            (format!("{rev}e164.arpa."), "(unknown)".to_string(), "inbound")
        } else {
            let dir = if src.starts_with("1212555") { "internal" } else { "inbound" };
            (format!("{rev}src-{src}.e164.arpa."), format!("+{src}"), dir)
        };
        writeln!(file, "{name} NAPTR").unwrap();
        *sources.entry((source, direction.to_string())).or_default() += 1;
        *dests.entry((format!("+{dst}"), direction.to_string())).or_default() += 1;
    }
    file.flush().unwrap();
    Sent { file, count: n }
}

fn dnsperf(e: &Engine, sent: &Sent) {
    let out = Command::new("dnsperf")
        .args(["-s", &e.udp.ip().to_string(), "-p", &e.udp.port().to_string(), "-d"])
        .arg(sent.file.path())
        .args(["-n", "1", "-Q", "400", "-c", "2"])
        .output()
        .expect("run dnsperf (Debian package dnsperf)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains(&format!("Queries sent:         {}", sent.count)), "{report}");
    assert!(report.contains(&format!("Queries completed:    {}", sent.count)), "{report}");
    assert!(report.contains("Queries lost:         0"), "{report}");
}

fn fst_b1(store: Option<&str>) {
    let c = collector("collector", store);
    let token = c.ingest_token("engines");
    let e1 = engine("enum-1", &c, &token);
    let e2 = engine("enum-2", &c, &token);
    let (mut sources, mut dests) = (BTreeMap::new(), BTreeMap::new());
    let s1 = traffic(0x9e3779b97f4a7c15, 700, &mut sources, &mut dests);
    let s2 = traffic(0x2545f4914f6cdd1d, 350, &mut sources, &mut dests);
    std::thread::scope(|s| {
        s.spawn(|| dnsperf(&e1, &s1));
        s.spawn(|| dnsperf(&e2, &s2));
    });
    let total = s1.count + s2.count;
    wait_until(60, "every record at the collector", || {
        view(&c, "ENUM", "Average CPS", "All")["total"].as_u64() == Some(total)
    });

    // ENUM / Average CPS / Hour / each device.
    for (device, sent) in [("enum-1", &s1), ("enum-2", &s2)] {
        check_average_cps(&c, "ENUM", device, sent.count);
    }
    // ENUM / Top 10 Source / Hour / All, and ENUM / Top 10 Destination / Hour / All: numbers
    // normalised, direction shown, counts as sent.
    assert_eq!(rows(&view(&c, "ENUM", "Top 10 Source", "All")), top10(&sources));
    assert_eq!(rows(&view(&c, "ENUM", "Top 10 Destination", "All")), top10(&dests));
    // The intercept rule decided every query for +12125550111.
    let actions = rows(&view(&c, "ENUM", "Actions by Rule", "All"));
    let intercepted: u64 = dests.iter().filter(|((n, _), _)| n == "+12125550111").map(|(_, c)| c).sum();
    assert!(actions.contains(&("intercept".into(), "terminate".into(), intercepted)), "{actions:?}");
    // Raw export has every record.
    let csv = export(&c, "ENUM");
    assert_eq!(csv.lines().count() as u64, total + 1);
}

#[test]
fn fst_b1_analytics_match_dnsperf_traffic_on_sqlite() {
    fst_b1(None);
}

#[test]
fn fst_b1_analytics_match_dnsperf_traffic_on_postgres() {
    let db = PgDb::create();
    fst_b1(Some(&db.url));
}

/// Sends distinct queries from `threads` clients until `stop`; returns the answered numbers.
fn load(e: &Engine, threads: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let server = e.udp;
    std::thread::spawn(move || {
        let answered = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for t in 0..threads {
                let (stop, answered) = (stop.clone(), answered.clone());
                s.spawn(move || {
                    let mut client = TrackedClient::new(server);
                    let mut n = t * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        client.ask(n);
                        n += 1;
                    }
                    answered.lock().unwrap().extend(client.answered);
                });
            }
        });
        Arc::try_unwrap(answered).unwrap().into_inner().unwrap()
    })
}

#[test]
fn engine_killed_under_load_loses_and_duplicates_nothing() {
    let c = collector("collector", None);
    let token = c.ingest_token("engines");
    let mut e = engine("enum-kill", &c, &token);
    let stop = Arc::new(AtomicBool::new(false));
    let client = load(&e, 3, stop.clone());
    std::thread::sleep(Duration::from_millis(2500));
    e.kill(); // SIGKILL in the middle of the load
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let answered = client.join().unwrap();
    assert!(answered.len() > 1000, "the load answered only {} queries", answered.len());
    e.start_again();
    wait_until(60, "every answered query at the collector", || {
        let stored = stored_destinations(&c);
        answered.iter().all(|n| stored.contains_key(n))
    });
    let stored = stored_destinations(&c);
    for n in &answered {
        assert_eq!(stored[n], 1, "{n} is stored {} times", stored[n]);
    }
    assert!(stored.values().all(|&k| k == 1), "no record is stored twice");
}

#[test]
fn collector_stopped_under_load_gets_the_backlog_exactly_once() {
    let mut c = collector("collector", None);
    let token = c.ingest_token("engines");
    let e = engine("enum-outage", &c, &token);
    let stop = Arc::new(AtomicBool::new(false));
    let client = load(&e, 2, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    c.kill();
    // While the collector is down the engine keeps answering, keeps its records and says so.
    wait_until(20, "COLLECTOR_UNREACHABLE raised on the engine", || {
        e.alarms().active.iter().any(|a| a.def.name == "COLLECTOR_UNREACHABLE")
    });
    let backlog = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    c.start_again();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let answered = client.join().unwrap();
    assert!(answered.len() > 1000, "only {} answered", answered.len());
    // What the engine answered, by its own count: one spool record per answer sent. The
    // client's count is only a lower bound (it gives up on an answer after 300 ms, and on a
    // loaded machine an answer that did leave may come later).
    let written = e.metric("tollgate_spool_records_total") as usize;
    assert!(written >= answered.len(), "the engine wrote {written} records for {} answers seen", answered.len());
    // A query still in the engine's socket buffer when the client stopped may be answered
    // (and written) after the count above: the count is read again until the collector
    // holds exactly what it says.
    wait_until(60, "the backlog at the collector", || {
        let stored = stored_destinations(&c);
        stored.len() == e.metric("tollgate_spool_records_total") as usize
            && answered.iter().all(|n| stored.contains_key(n))
    });
    let stored = stored_destinations(&c);
    let written = e.metric("tollgate_spool_records_total") as usize;
    assert!(stored.values().all(|&k| k == 1), "no record is stored twice");
    assert_eq!(stored.len(), written, "every record the engine wrote is stored, and nothing else");
    wait_until(20, "COLLECTOR_UNREACHABLE cleared", || {
        e.alarms().active.iter().all(|a| a.def.name != "COLLECTOR_UNREACHABLE")
    });
    let events: Vec<(bool, String)> = e
        .alarms()
        .history
        .into_iter()
        .filter(|h| h.name == "COLLECTOR_UNREACHABLE")
        .map(|h| (h.raised, h.name))
        .collect();
    assert_eq!(events.first().map(|e| e.0), Some(true));
    assert_eq!(events.last().map(|e| e.0), Some(false));
    assert!(backlog.elapsed() > Duration::from_secs(2));
}

/// An engine shipping to several collectors (`[shipper] collectors`).
fn engine_to_many(node: &str, collectors: &[&Engine], token: &str) -> Engine {
    let urls: Vec<String> = collectors.iter().map(|c| format!("\"{}\"", c.api)).collect();
    let e = Engine::start(EngineOptions {
        node: node.into(),
        role: "engine",
        extra_config: format!(
            "[shipper]\ncollectors = [{}]\ntoken = \"{token}\"\nbatch_records = 200\nin_flight = 2\n",
            urls.join(", ")
        ),
        ..Default::default()
    });
    let (_d, p) = temp_file("fst-b1.toml", POLICY);
    let out = e.cli(&["policy", "install", p.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    e
}

/// Scale-out (issue 14): two collector processes on one PostgreSQL, one engine listing both.
/// Both take batches; one is killed with SIGKILL under load and its batches go to the other;
/// afterwards every record the engine wrote is stored exactly once.
#[test]
fn two_collectors_on_one_postgres_share_batches_and_one_killed_loses_and_duplicates_nothing() {
    let db = PgDb::create();
    let c1 = collector("collector-1", Some(&db.url));
    let mut c2 = collector("collector-2", Some(&db.url));
    // The collectors of a deployment accept the same ingest tokens: c2 takes c1's user database.
    let token = c1.ingest_token("engines");
    for file in ["users.json", "cli-token"] {
        std::fs::copy(c1.state.join(file), c2.state.join(file)).unwrap();
    }
    let e = engine_to_many("enum-spread", &[&c1, &c2], &token);
    let batches = |c: &Engine| c.metric("tollgate_collector_batches_total");
    let stop = Arc::new(AtomicBool::new(false));
    let client = load(&e, 2, stop.clone());
    wait_until(60, "both collectors took batches", || batches(&c1) > 0.0 && batches(&c2) > 0.0);
    let c2_batches = batches(&c2);
    c2.kill(); // SIGKILL in the middle of the load: its batches in flight are re-sent to c1
    let c1_at_kill = batches(&c1);
    std::thread::sleep(Duration::from_millis(2000));
    stop.store(true, Ordering::Relaxed);
    let answered = client.join().unwrap();
    assert!(answered.len() > 1000, "only {} answered", answered.len());
    let written = e.metric("tollgate_spool_records_total") as usize;
    assert!(written >= answered.len(), "the engine wrote {written} records for {} answers seen", answered.len());
    wait_until(60, "every record in the store", || {
        let stored = stored_destinations(&c1);
        stored.len() >= written && answered.iter().all(|n| stored.contains_key(n))
    });
    let stored = stored_destinations(&c1);
    assert!(stored.values().all(|&k| k == 1), "no record is stored twice");
    assert_eq!(stored.len(), written, "every record the engine wrote is stored, and nothing else");
    assert!(batches(&c1) > c1_at_kill, "c1 took the batches after c2 was killed");
    assert!(c2_batches > 0.0);
    assert!(
        e.alarms().active.iter().all(|a| a.def.name != "COLLECTOR_UNREACHABLE"),
        "one collector down of two is not an unreachable collector"
    );
}

/// A record line as a release writes it: an ENUM query (format version `v`) to `destination`.
fn enum_line(v: u16, id: &str, destination: &str) -> String {
    serde_json::json!({
        "kind": "enum_query", "v": v, "id": id, "time": chrono::Utc::now().to_rfc3339(),
        "device": "engine-old", "client": "sbc-1", "client_addr": "127.0.0.1:5060", "transport": "udp",
        "source": "+13125550100", "destination": destination, "direction": "inbound", "rule": null,
        "action": "allow", "detail": null, "rcode": "NXDOMAIN", "latency_us": 40, "policy_version": 1
    })
    .to_string()
}

#[test]
fn records_of_both_releases_are_stored_and_a_newer_format_waits_in_the_spool() {
    let c = collector("collector-mixed", None);
    let token = c.ingest_token("mixed-versions");
    let post = |body: String| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/ingest", c.api))
            .bearer_auth(&token)
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    // A release-1 SIP call record (no RTP fields) and a release-2 ENUM record, one batch.
    let sip_v1 = format!(
        r#"{{"kind":"sip_call","v":1,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","time":"{}","device":"probe-old","call_id":"a@b","source":"+13125550100","destination":"+12125550100","direction":"inbound","disposition":"answered","final_code":200,"pdd_ms":120,"duration_ms":5000,"answered_at":null,"ended_at":null}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let enum_v2 = enum_line(2, "01ARZ3NDEKTSV4RRFFQ69G5FB0", "+12125550101");
    // And a decision of an engine's SIP redirect server (issue 19): an ENUM-dataset record of
    // protocol sip, its answer a SIP status.
    let mut over_sip: serde_json::Value =
        serde_json::from_str(&enum_line(3, "01ARZ3NDEKTSV4RRFFQ69G5FBS", "+12125550109")).unwrap();
    over_sip["protocol"] = "sip".into();
    over_sip["rcode"] = "302".into();
    over_sip["transport"] = "tcp".into();
    let (code, body) = post(format!("{sip_v1}\n{enum_v2}\n{over_sip}\n"));
    assert_eq!(code, 200, "{body}");
    let stored: tollgate_api::web::Ingested = serde_json::from_value(body.clone()).unwrap();
    assert_eq!((stored.inserted, stored.quarantined), (3, 0), "{body}");
    let csv = export(&c, "ENUM");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"protocol"), "the protocol is the export's last column: {csv}");
    let protocol_of = |id: &str| csv.lines().find(|l| l.starts_with(id)).and_then(|l| l.rsplit(',').next());
    assert_eq!(protocol_of("01ARZ3NDEKTSV4RRFFQ69G5FBS"), Some("sip"), "{csv}");
    assert_eq!(protocol_of("01ARZ3NDEKTSV4RRFFQ69G5FB0"), Some("enum"), "{csv}");
    // The export selects one protocol's decisions; a protocol it does not know, or one asked of
    // the SIP dataset, is refused naming it.
    let export_of = |query: &str| {
        let from = (chrono::Utc::now() - chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M");
        let to = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M");
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/export?from={from}&to={to}&{query}", c.api))
            .bearer_auth(c.cli_token())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (code, sip_only) = export_of("dataset=ENUM&protocol=sip");
    assert_eq!(code, 200, "{sip_only}");
    let ids: Vec<&str> = sip_only.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert_eq!(ids, vec!["01ARZ3NDEKTSV4RRFFQ69G5FBS"], "{sip_only}");
    let (code, enum_only) = export_of("protocol=ENUM");
    assert_eq!(code, 200, "{enum_only}");
    assert!(
        enum_only.lines().skip(1).all(|l| l.ends_with(",enum")) && enum_only.contains("01ARZ3NDEKTSV4RRFFQ69G5FB0")
    );
    let (code, refused) = export_of("protocol=h323");
    assert!(code == 400 && refused.contains("unknown protocol") && refused.contains("h323"), "{code} {refused}");
    let (code, refused) = export_of("dataset=SIP&protocol=sip");
    assert!(code == 400 && refused.contains("dataset ENUM"), "{code} {refused}");
    // The Analytics page links the raw records of each protocol; the SIP link downloads the
    // SIP decision alone.
    let get = |path: &str| {
        let r =
            reqwest::blocking::Client::new().get(format!("{}{path}", c.api)).bearer_auth(c.cli_token()).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.text().unwrap()
    };
    let html = get("/analytics?dataset=ENUM&view=Average+CPS&grouping=Hour&range=24h");
    let raw_links: Vec<String> = html
        .split("href=\"")
        .filter(|h| h.starts_with("/export.csv?"))
        .map(|h| h[..h.find('"').unwrap()].replace("&amp;", "&"))
        .collect();
    assert_eq!(raw_links.len(), 3, "all, ENUM only, SIP only: {raw_links:?}");
    let sip_link = raw_links.iter().find(|l| l.ends_with("&protocol=sip")).expect("a SIP-only link");
    let sip_only = get(sip_link);
    let ids: Vec<&str> = sip_only.lines().skip(1).filter_map(|l| l.split(',').next()).collect();
    assert_eq!(ids, vec!["01ARZ3NDEKTSV4RRFFQ69G5FBS"], "{sip_link}: {sip_only}");
    // A batch holding a record of a newer format (a collector not yet upgraded): refused whole,
    // so the shipper keeps it in its spool; nothing of it is stored.
    let newer = format!(
        "{}\n{}\n",
        enum_line(2, "01ARZ3NDEKTSV4RRFFQ69G5FB1", "+12125550102"),
        enum_line(4, "01ARZ3NDEKTSV4RRFFQ69G5FB2", "+12125550103")
    );
    let (code, body) = post(newer);
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("format version 4 come from a newer release"), "{body}");
    let stored = stored_destinations(&c);
    assert_eq!(stored.get("+12125550101"), Some(&1), "{stored:?}");
    assert!(!stored.contains_key("+12125550102") && !stored.contains_key("+12125550103"), "{stored:?}");
    assert!(export(&c, "SIP").contains("probe-old"), "the release-1 SIP record is stored");
}

#[test]
fn records_refused_as_newer_wait_in_their_lane_while_the_engine_ships_the_others() {
    use tollgate_records::spool::{Spool, SpoolOptions};
    use tollgate_records::{EnumQueryRecord, Protocol, Record, Transport};
    let c = collector("collector-older", None);
    let token = c.ingest_token("engine-newer");
    // The spool an engine left: its SIP redirect server's lane holds decisions of a format this
    // collector does not read (4 here, since this release reads 3: the situation of format-3
    // decisions and a collector of the previous release), and it sorts before the ENUM lane.
    let spool_dir = tempfile::tempdir().unwrap();
    let decision = |i: u16, v: u16| Record::EnumQuery {
        v,
        record: EnumQueryRecord {
            id: ulid::Ulid::new(),
            time: chrono::Utc::now(),
            device: "engine-newer".into(),
            client: "sbc-1".into(),
            client_addr: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            source: None,
            destination: format!("+1212555{:04}", 7000 + i).parse().unwrap(),
            direction: "inbound".into(),
            rule: None,
            action: "allow".into(),
            detail: None,
            rcode: if v > 2 { "302" } else { "NXDOMAIN" }.into(),
            fail_open: false,
            latency_us: 40,
            stale: false,
            policy_version: None,
            protocol: if v > 2 { Protocol::Sip } else { Protocol::Enum },
        },
    };
    {
        let spool = Spool::open(spool_dir.path(), SpoolOptions::default()).unwrap();
        let mut sip = spool.lane("sip_udp0_0").unwrap();
        (0..5).for_each(|i| sip.append(&decision(i, 4)).unwrap());
        let mut enum_lane = spool.lane("udp0_0").unwrap();
        (5..25).for_each(|i| enum_lane.append(&decision(i, 2)).unwrap());
    }
    let e = Engine::start(EngineOptions {
        node: "engine-newer".into(),
        role: "engine",
        spool: format!("fsync_ms = 50\ndir = \"{}\"\n", spool_dir.path().display()),
        extra_config: format!("[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\nbatch_records = 4\n", c.api),
        ..Default::default()
    });
    let enum_destinations: Vec<String> = (5..25).map(|i| format!("+1212555{:04}", 7000 + i)).collect();
    wait_until(120, "the ENUM records behind the refused lane stored", || {
        let stored = stored_destinations(&c);
        enum_destinations.iter().all(|d| stored.get(d) == Some(&1))
    });
    wait_until(60, "the refusal counted", || e.metric("tollgate_shipper_refused_newer_total") >= 1.0);
    let stored = stored_destinations(&c);
    assert!((0..5).all(|i| !stored.contains_key(&format!("+1212555{:04}", 7000 + i))), "{stored:?}");
    assert_eq!(e.metric("tollgate_shipper_connected"), 1.0, "the collector answered");
    assert_eq!(e.metric("tollgate_shipper_holding_newer"), 1.0);
    assert_eq!(e.metric("tollgate_shipper_failures_total"), 0.0, "a refusal is not a failed delivery");
    assert!(
        e.alarms().active.iter().all(|a| a.def.name != "COLLECTOR_UNREACHABLE"),
        "a collector refusing newer records is not unreachable: {:?}",
        e.alarms().active
    );
}
