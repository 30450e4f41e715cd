//! Hostile-input tests: record ingest (issue 11 items 4 and 16). A collector that stalls on a
//! pathological batch, quarantines a retried batch twice, fills its disk with quarantined lines,
//! or stores records with fields it cannot represent truthfully.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Engine, EngineOptions, TrackedClient, free_port, text};

fn serve(node: &str, extra: &str) -> Engine {
    Engine::start(EngineOptions {
        node: node.into(),
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: extra.into(),
        ..Default::default()
    })
}

/// POSTs an NDJSON batch to `/api/v1/ingest`: status and JSON body.
fn post(e: &Engine, token: &str, body: String) -> (u16, serde_json::Value) {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .post(format!("{}/api/v1/ingest", e.api))
        .bearer_auth(token)
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or_default())
}

fn enum_line(v: u16, device: &str, destination: &str) -> String {
    serde_json::json!({
        "kind": "enum_query", "v": v, "id": ulid::Ulid::new().to_string(), "time": chrono::Utc::now().to_rfc3339(),
        "device": device, "client": "sbc-1", "client_addr": "127.0.0.1:5060", "transport": "udp",
        "source": "+13125550100", "destination": destination, "direction": "inbound", "rule": null,
        "action": "allow", "detail": null, "rcode": "NXDOMAIN", "latency_us": 40, "policy_version": 1
    })
    .to_string()
}

/// Lines kept in the quarantine directory.
fn quarantined(state: &Path) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(state.join("quarantine")) else { return Vec::new() };
    dir.filter_map(Result::ok)
        .flat_map(|f| {
            std::fs::read_to_string(f.path()).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str(&l).expect("quarantine entries are JSON"))
        .collect()
}

/// Destinations stored in the ENUM dataset (the raw records' CSV export from year 1 to 9999),
/// with their counts.
fn stored(e: &Engine) -> std::collections::HashMap<String, u64> {
    let url = format!("{}/api/v1/export?dataset=ENUM&from=0001-01-01T00%3A00%3A00Z&to=9999-12-31T23%3A59%3A59Z", e.api);
    let resp = reqwest::blocking::Client::new().get(url).bearer_auth(e.cli_token()).send().unwrap();
    assert!(resp.status().is_success(), "export: {}", resp.status());
    let csv = resp.text().unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = header.iter().position(|h| *h == "destination").expect("destination column");
    let mut counts = std::collections::HashMap::new();
    for l in lines {
        *counts.entry(l.split(',').nth(col).unwrap().to_string()).or_default() += 1;
    }
    counts
}

fn active_alarm(e: &Engine, name: &str) -> bool {
    e.alarms().active.iter().any(|a| a.def.name == name)
}

/// Write system calls the process has made so far (`syscw` of /proc/PID/io).
fn write_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("syscw: ")).and_then(|v| v.trim().parse().ok()).expect("syscw")
}

/// Two 8 MiB lines of `"` used to be quarantined with one write(2) per escaped character on
/// the async workers, stalling ENUM answers and /healthz of the whole process for 14-35 s.
#[test]
fn quarantining_huge_bad_lines_neither_stalls_answers_nor_writes_byte_by_byte() {
    let _g = crate::exclusive();
    let e = serve("ingest-stall", "");
    let token = e.ingest_token("stall");
    let pid = e.pid().unwrap();
    let before = write_syscalls(pid);
    // An ENUM client runs throughout and notes when answers arrive.
    let stop = Arc::new(AtomicBool::new(false));
    let (server, s) = (e.udp, stop.clone());
    let client = std::thread::spawn(move || {
        let mut c = TrackedClient::new(server);
        let mut times = Vec::new();
        let mut n = 0;
        while !s.load(Ordering::Relaxed) {
            n += 1;
            if c.ask(n) {
                times.push(Instant::now());
            }
        }
        times
    });
    std::thread::sleep(Duration::from_millis(500));
    let line = "\"".repeat(8 << 20);
    let posts: Vec<_> = (0..2)
        .map(|_| {
            let (api, token, body) = (e.api.clone(), token.clone(), format!("{line}\n"));
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(300))
                    .build()
                    .unwrap()
                    .post(format!("{api}/api/v1/ingest"))
                    .bearer_auth(token)
                    .body(body)
                    .send()
                    .unwrap();
                (r.status().as_u16(), r.json::<serde_json::Value>().unwrap_or_default())
            })
        })
        .collect();
    for p in posts {
        let (code, body) = p.join().unwrap();
        assert_eq!((code, body["quarantined"].as_u64()), (200, Some(1)), "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let times = client.join().unwrap();
    let writes = write_syscalls(pid) - before;
    // 32 MiB of escaped text: a buffered writer needs a few dozen write calls, not 16 million.
    // (Each of the ENUM client's answers adds a few: its spool frame, the shipper's
    // acknowledgement, the collector's database.)
    assert!(
        writes < 1_000 + times.len() as u64 * 5,
        "{writes} write system calls for {} answers: the quarantine writes unbuffered",
        times.len()
    );
    // ENUM kept answering: no silence of several seconds while the batches were quarantined.
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(times.len() > 10, "the ENUM client was answered");
    assert!(longest_gap < Duration::from_secs(5), "ENUM stopped answering for {longest_gap:?} during quarantine");
    // Each line is kept whole, escaped, and the two batches' entries do not interleave.
    let kept = quarantined(&e.state);
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|k| k["text"].as_str().map(str::len) == Some(8 << 20)), "whole lines are kept");
}

/// A batch holding a record of a newer format used to have its bad lines quarantined, then be
/// refused (409); every retry by the shipper quarantined them again.
#[test]
fn a_batch_of_a_newer_release_is_refused_before_anything_is_quarantined() {
    let e = serve("ingest-newer", "");
    let token = e.ingest_token("newer");
    let batch = format!(
        "{}\nnot json at all\n{}\n",
        enum_line(2, "engine-x", "+12125550301"),
        enum_line(9, "engine-x", "+12125550302")
    );
    for _ in 0..3 {
        let (code, body) = post(&e, &token, batch.clone());
        assert_eq!(code, 409, "{body}");
    }
    assert!(quarantined(&e.state).is_empty(), "nothing of a refused batch is quarantined");
    assert!(!stored(&e).contains_key("+12125550301"), "nothing of a refused batch is stored");
    // A new record kind this collector cannot even read is recognised by its version too.
    let unknown_kind = r#"{"kind":"h323_call","v":4,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}"#;
    let (code, body) = post(&e, &token, format!("{unknown_kind}\n"));
    assert_eq!(code, 409, "{body}");
    assert!(quarantined(&e.state).is_empty());
}

/// The quarantine used to grow without bound. Now it has a limit: a batch whose bad lines do
/// not fit is refused (it stays in the sender's spool), alarm 72007 is raised, and once an
/// operator makes room the batch is taken and the alarm cleared.
#[test]
fn a_full_quarantine_refuses_the_batch_and_raises_the_alarm_until_room_is_made() {
    let e = serve("ingest-full", "[collector]\nquarantine_max_mb = 1\n");
    let token = e.ingest_token("full");
    let big_bad = "x".repeat(700 << 10);
    let (code, body) = post(&e, &token, format!("{}\n{big_bad}\n", enum_line(2, "engine-x", "+12125550401")));
    assert_eq!((code, body["quarantined"].as_u64()), (200, Some(1)), "{body}");
    // The second one does not fit in 1 MiB.
    let batch = format!("{}\n{big_bad}\n", enum_line(2, "engine-x", "+12125550402"));
    let (code, body) = post(&e, &token, batch.clone());
    assert_eq!(code, 507, "{body}");
    assert!(body["error"].as_str().unwrap().contains("quarantine_max_mb"), "the error says what to do: {body}");
    assert!(active_alarm(&e, "QUARANTINE_FULL"));
    assert_eq!(quarantined(&e.state).len(), 1);
    assert!(!stored(&e).contains_key("+12125550402"), "a refused batch stores nothing");
    let metrics = reqwest::blocking::get(format!("{}/metrics", e.api)).unwrap().text().unwrap();
    assert!(metrics.contains("tollgate_collector_batches_refused_quarantine_full_total 1"), "{metrics}");
    // The operator moves the quarantine away; the shipper's retry is taken.
    for f in std::fs::read_dir(e.state.join("quarantine")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let (code, body) = post(&e, &token, batch);
    assert_eq!((code, body["inserted"].as_u64()), (200, Some(1)), "{body}");
    assert!(!active_alarm(&e, "QUARANTINE_FULL"));
    assert_eq!(stored(&e).get("+12125550402"), Some(&1));
}

/// Records with fields the store cannot represent truthfully used to be stored: a 1 MB device
/// name, years 1 and 9999, a policy version of 2^64-1 (read back as -1), and a device named `*`,
/// which the rollups count a second time under "all devices".
#[test]
fn records_with_fields_out_of_range_are_quarantined_not_stored() {
    let e = serve("ingest-validate", "");
    let token = e.ingest_token("validate");
    let mut year_1: serde_json::Value = serde_json::from_str(&enum_line(2, "engine-y", "+12125550503")).unwrap();
    year_1["time"] = "0001-01-01T00:00:00Z".into();
    let mut year_9999: serde_json::Value = serde_json::from_str(&enum_line(2, "engine-y", "+12125550504")).unwrap();
    year_9999["time"] = "9999-12-31T00:00:00Z".into();
    let mut huge_version: serde_json::Value = serde_json::from_str(&enum_line(2, "engine-y", "+12125550505")).unwrap();
    huge_version["policy_version"] = serde_json::json!(u64::MAX);
    let batch = [
        enum_line(2, "engine-y", "+12125550501"),
        enum_line(2, &"d".repeat(1 << 20), "+12125550502"),
        year_1.to_string(),
        year_9999.to_string(),
        huge_version.to_string(),
        enum_line(2, "*", "+12125550506"),
        enum_line(2, "ALL", "+12125550507"),
    ]
    .join("\n");
    let (code, body) = post(&e, &token, batch);
    assert_eq!(code, 200, "{body}");
    assert_eq!((body["inserted"].as_u64(), body["quarantined"].as_u64()), (Some(1), Some(6)), "{body}");
    let reasons: Vec<String> =
        quarantined(&e.state).iter().map(|k| k["reason"].as_str().unwrap().to_string()).collect();
    for field in ["device", "time", "time", "policy_version", "device", "device"] {
        assert!(reasons.iter().any(|r| r.contains(&format!("invalid record: {field}: "))), "{field} in {reasons:?}");
    }
    let all = stored(&e);
    assert_eq!(all.len(), 1, "only the valid record is stored: {all:?}");
    assert_eq!(all.get("+12125550501"), Some(&1));
    // No device called `*` or `All` appears among the devices, and nothing is counted twice.
    let devices = e.get_json("/api/v1/devices?dataset=ENUM");
    assert_eq!(devices, serde_json::json!(["engine-y"]), "{devices}");
}

/// `*` (the rollups' all-devices key) and `All` used to be accepted as a node's name.
#[test]
fn config_check_refuses_reserved_device_names() {
    let dir = tempfile::tempdir().unwrap();
    for (text_, field) in [("[node]\nname = \"*\"\n", "node.name"), ("[probe]\ndevice = \"all\"\n", "probe.device")] {
        let path = dir.path().join("t.toml");
        std::fs::write(&path, text_).unwrap();
        let out = std::process::Command::new(crate::common::tollgate_bin())
            .arg("--config")
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap();
        let (_, err) = text(&out);
        assert!(!out.status.success());
        assert!(err.contains(&format!("t.toml:2: {field}: ")) && err.contains("reserved"), "{err}");
    }
}

/// POSTs `body` to `/api/v1/ingest` with `Content-Encoding: encoding` (none when empty):
/// status, the answer's `Accept-Encoding` and its JSON body.
fn post_encoded(e: &Engine, token: &str, encoding: &str, body: Vec<u8>) -> (u16, String, serde_json::Value) {
    let mut request = reqwest::blocking::Client::new().post(format!("{}/api/v1/ingest", e.api)).bearer_auth(token);
    if !encoding.is_empty() {
        request = request.header("content-encoding", encoding);
    }
    let r = request.body(body).send().unwrap();
    let accepts = r.headers().get("accept-encoding").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (r.status().as_u16(), accepts, r.json().unwrap_or_default())
}

/// Compressed batches (issue 14): a zstd bomb, an encoding the collector does not read and a
/// truncated zstd stream are refused with an error saying why, and nothing of them is stored or
/// quarantined; a compressed batch reaching a collector that reads bodies as NDJSON (a release
/// before compression) is refused whole by its guard line, not quarantined as garbage.
#[test]
fn zstd_bombs_wrong_encodings_and_truncated_streams_are_refused_before_anything_is_stored() {
    use tollgate_records::wire;
    let e = serve("ingest-zstd", "");
    let token = e.ingest_token("zstd");
    let ndjson = |dest: &str| format!("{}\n{}\n", enum_line(2, "engine-z", dest), enum_line(2, "engine-z", dest));

    // Every answer says the collector reads zstd, and a zstd batch is stored.
    let (code, accepts, body) = post_encoded(&e, &token, "", ndjson("+12125550601").into_bytes());
    assert_eq!((code, accepts.as_str()), (200, "zstd"), "{body}");
    let packed = wire::compress(ndjson("+12125550602").as_bytes(), wire::LEVEL).unwrap();
    let (code, accepts, body) = post_encoded(&e, &token, "zstd", packed.clone());
    assert_eq!((code, accepts.as_str(), body["inserted"].as_u64()), (200, "zstd", Some(2)), "{body}");

    // 100 MiB of one line in a few kB: refused past the 64 MiB a batch may hold.
    let bomb = wire::compress(&vec![b'{'; 100 << 20], 3).unwrap();
    assert!(bomb.len() < 64 << 10);
    let (code, _, body) = post_encoded(&e, &token, "zstd", bomb);
    assert_eq!(code, 413, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("decompresses to more than 67108864 bytes"), "the error names the limit: {message}");

    // An encoding it does not read: 415, saying which it reads.
    let gzip = {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut g, ndjson("+12125550603").as_bytes()).unwrap();
        g.finish().unwrap()
    };
    let (code, accepts, body) = post_encoded(&e, &token, "gzip", gzip);
    assert_eq!(
        (code, accepts.as_str(), body["code"].as_str()),
        (415, "zstd", Some("unsupported_media_type")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("reads uncompressed (identity) or zstd bodies"), "{body}");
    let (code, _, body) = post_encoded(&e, &token, "zstd, gzip", packed.clone());
    assert_eq!(code, 415, "{body}");

    // A truncated stream: 400.
    let cut = wire::compress(ndjson("+12125550604").as_bytes(), wire::LEVEL).unwrap();
    let (code, _, body) = post_encoded(&e, &token, "zstd", cut[..cut.len() - 8].to_vec());
    assert_eq!((code, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("truncated"), "{body}");

    // A zstd body read as NDJSON (what a collector before compression does): its guard line is
    // of a format version no release reads, so the whole batch is refused, nothing quarantined.
    let guarded = wire::compress(ndjson("+12125550605").as_bytes(), wire::LEVEL).unwrap();
    let (code, _, body) = post_encoded(&e, &token, "", guarded);
    assert_eq!(code, 409, "{body}");

    assert!(quarantined(&e.state).is_empty(), "nothing refused was quarantined");
    let stored = stored(&e);
    assert_eq!((stored.get("+12125550601"), stored.get("+12125550602")), (Some(&2), Some(&2)));
    for refused in ["+12125550603", "+12125550604", "+12125550605"] {
        assert!(!stored.contains_key(refused), "{refused} was stored");
    }
}
