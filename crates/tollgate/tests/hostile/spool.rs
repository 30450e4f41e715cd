//! Hostile-input tests: the record spool. Records must never be lost silently: a spool full of
//! records the collector already has must not refuse new ones, and a second process must never
//! write, ship or delete the segments a running server writes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::analytics::{stored_destinations, view};
use crate::common::{
    Engine, EngineOptions, TrackedClient, free_port, metric_sample, scrape, text, tollgate_bin, wait_until,
};

/// A metric's value from the engine's /metrics (counters carry `_total`); present or a panic.
fn metric(e: &Engine, name: &str) -> u64 {
    let text = scrape(&e.api);
    [name.to_string(), format!("{name}_total")]
        .iter()
        .find_map(|n| metric_sample(&text, n))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}")) as u64
}

/// How many records of each Call-ID the collector stored (SIP dataset, any time: captures
/// carry their own dates).
fn stored_calls(e: &Engine) -> HashMap<String, u64> {
    let url = format!("{}/api/v1/export?dataset=SIP&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", e.api);
    let resp = reqwest::blocking::Client::new().get(url).bearer_auth(e.cli_token()).send().unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let csv = resp.text().unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "call_id").unwrap_or_else(|| panic!("{header:?}"));
    let mut counts = HashMap::new();
    for l in lines {
        *counts.entry(l.split(',').nth(col).unwrap().to_string()).or_default() += 1;
    }
    counts
}

/// The files under `dir` a process holds open that were deleted from under it.
fn deleted_open_files(pid: u32, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&dir) && target.ends_with("(deleted)"))
        .collect()
}

/// Sends distinct queries from `threads` clients until `stop`; returns the called numbers
/// that were answered.
fn load(server: std::net::SocketAddr, threads: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let answered = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for t in 0..threads {
                let (stop, answered) = (stop.clone(), answered.clone());
                s.spawn(move || {
                    let mut client = TrackedClient::new(server);
                    let mut n = 1_000_000 + t * 1_000_000;
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

/// Waits until the collector holds every number in `answered`, then checks that each is
/// stored exactly once.
fn every_answered_query_stored_once(e: &Engine, answered: &[String]) {
    let mut stored = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        stored = stored_destinations(e);
        if answered.iter().all(|n| stored.contains_key(n)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let missing: Vec<&String> = answered.iter().filter(|n| !stored.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered queries never reached the collector, e.g. {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<(&String, &u64)> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {:?}", &twice[..twice.len().min(5)]);
}

/// Runs a command until it exits or `secs` pass (then it is killed); the output, and whether
/// it exited by itself.
fn run_for(command: &mut Command, secs: u64) -> (Output, bool) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut exited = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !exited {
        let _ = child.kill();
    }
    (child.wait_with_output().unwrap(), exited)
}

/// A dnsperf query file of `n` NAPTR queries, each for a different called number (+1646...).
fn distinct_queries(n: u64) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    for i in 0..n {
        let number = format!("1646{:07}", 2_000_000 + i);
        let name: String = number.chars().rev().flat_map(|c| [c, '.']).collect();
        writeln!(out, "{name}e164.arpa. NAPTR").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    file
}

#[test]
fn shipped_records_never_fill_the_spool_while_the_collector_keeps_up() {
    let _g = crate::exclusive();
    // Segments as large as the limit: every lane's open segment, full of records the
    // collector already stored, used to count against the limit until restart. This
    // configuration passes `config check` (and did before the fix too).
    let e = Engine::start(EngineOptions {
        node: "spool-full".into(),
        spool: "fsync_ms = 50\nsegment_mb = 4\nmax_disk_mb = 4\n".into(),
        ..Default::default()
    });
    let check = e.cli(&["config", "check"]);
    assert!(check.status.success(), "{:?}", text(&check));
    let max_bytes = 4u64 << 20;
    assert_eq!(metric(&e, "tollgate_spool_disk_limit_bytes"), max_bytes);

    // About 15 MiB of records, several times the limit, at a rate the collector keeps up with
    // (a backlog of 4 MiB is several seconds of it).
    let queries: u64 = 40_000;
    let file = distinct_queries(queries);
    let out = Command::new("dnsperf")
        .args(["-s", &e.udp.ip().to_string(), "-p", &e.udp.port().to_string(), "-d"])
        .arg(file.path())
        .args(["-n", "1", "-Q", "1500", "-c", "2", "-t", "30"])
        .output()
        .expect("run dnsperf (Debian package dnsperf)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}");
    let completed: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries completed:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));

    assert_eq!(metric(&e, "tollgate_spool_refused"), 0, "records were refused with a healthy collector");
    assert_eq!(metric(&e, "tollgate_spool_errors"), 0);
    let written = metric(&e, "tollgate_spool_bytes");
    assert!(
        written >= 3 * max_bytes,
        "only {written} bytes of records were written; the test needs several times the limit"
    );
    // Every answered query was spooled (one answered after dnsperf gave up on it counts too).
    let spooled = metric(&e, "tollgate_spool_records");
    assert!(spooled >= completed && spooled <= queries, "{spooled} records spooled, {completed} queries answered");

    // Every spooled record reaches the collector, once.
    wait_until(120, "every record at the collector", || {
        view(&e, "ENUM", "Average CPS", "All")["total"].as_u64() >= Some(spooled)
    });
    let stored = stored_destinations(&e);
    assert_eq!(stored.len() as u64, spooled, "distinct called numbers stored");
    assert!(stored.values().all(|c| *c == 1), "a record was stored twice");
    assert_eq!(view(&e, "ENUM", "Average CPS", "All")["total"].as_u64(), Some(spooled));

    // Nothing is left to ship, and the disk holds at most one segment per lane (2 UDP
    // workers, 1 TCP listener, the probe) beyond the backlog.
    wait_until(60, "an empty backlog", || metric(&e, "tollgate_spool_unacked_bytes") == 0);
    let disk = metric(&e, "tollgate_spool_disk_bytes");
    assert!(disk <= 4 * ((4 << 20) + 4096), "{disk} bytes on disk");
}

#[test]
fn a_pcap_shipped_beside_a_running_server_leaves_the_servers_spool_alone() {
    let _g = crate::exclusive();
    // The obvious way: the probe run with the server's own configuration (so its API port
    // must be a real one for the probe to ship to).
    let e = Engine::start(EngineOptions {
        node: "spool-share".into(),
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        ..Default::default()
    });
    let server = e.pid().expect("the server runs");
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/pcap_analyze/kamailio-sip.pcap");
    let listed = e.cli(&["probe", "--pcap", pcap.to_str().unwrap(), "--csv"]);
    let call_ids: Vec<String> =
        text(&listed).0.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    let calls = call_ids.len();
    assert!(calls > 0, "{:?}", text(&listed));

    let stop = Arc::new(AtomicBool::new(false));
    let client = load(e.udp, 2, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let probe = e.cli(&["probe", "--pcap", pcap.to_str().unwrap(), "--ship", "--totals"]);
    // The server goes on answering (and recording) after the probe is done.
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    let answered = client.join().unwrap();
    assert!(answered.len() > 100, "only {} queries answered", answered.len());

    let deleted = deleted_open_files(server, &e.state.join("spool"));
    assert!(deleted.is_empty(), "the server writes into deleted files: {deleted:?}");
    every_answered_query_stored_once(&e, &answered);
    // The probe shipped its own calls, and only those.
    assert!(probe.status.success(), "{:?}", text(&probe));
    assert!(text(&probe).1.contains(&format!("shipped {calls} call records")), "{:?}", text(&probe));
    let stored = stored_calls(&e);
    for id in &call_ids {
        assert_eq!(stored.get(id), Some(&1), "call {id} of the capture: {stored:?}");
    }
    assert_eq!(metric(&e, "tollgate_spool_errors"), 0);
    let side = e.state.join("spool/side");
    let left: Vec<PathBuf> =
        std::fs::read_dir(&side).map(|rd| rd.flatten().map(|d| d.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "side spools left behind: {left:?}");
}

/// A second configuration on the same state directory with ports of its own.
fn second_config(first: &Engine, extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    let path = dir.path().join("second.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"second\"\nstate_dir = \"{}\"\n[api]\nlisten = \"127.0.0.1:{}\"\n[enum]\nlisten_udp = \
             [\"127.0.0.1:{port}\"]\nlisten_tcp = [\"127.0.0.1:{port}\"]\nudp_workers = 1\n[probe]\nhep_udp = []\nhep_tcp \
             = []\n{extra}",
            first.state.display(),
            free_port("127.0.0.1")
        ),
    )
    .unwrap();
    (dir, path)
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused_naming_the_first() {
    let e = Engine::start(EngineOptions { node: "first".into(), ..Default::default() });
    let first = e.pid().expect("the server runs");
    let (_d, second) = second_config(&e, "");
    for role in ["serve", "engine"] {
        let (out, exited) = run_for(Command::new(tollgate_bin()).arg("--config").arg(&second).arg(role), 60);
        let (stdout, stderr) = text(&out);
        assert!(exited, "a second `tollgate {role}` kept running on the same state directory:\n{stdout}\n{stderr}");
        assert!(!out.status.success(), "{stderr}");
        let want = format!("state directory {} is in use by pid {first} (tollgate serve)", e.state.display());
        assert!(stderr.contains(&want), "`tollgate {role}`: {stderr}");
    }
    // The first one keeps serving and recording.
    let mut client = TrackedClient::new(e.udp);
    assert!(client.ask(42), "the first server stopped answering");
    every_answered_query_stored_once(&e, &client.answered);
}

#[test]
fn a_second_writer_of_the_same_spool_directory_is_refused_naming_the_first() {
    let e = Engine::start(EngineOptions { node: "first".into(), ..Default::default() });
    let first = e.pid().expect("the server runs");
    // Its own state directory, but the first one's spool.
    let other = tempfile::tempdir().unwrap();
    let spool = e.state.join("spool");
    let (_d, second) = second_config(&e, &format!("[spool]\ndir = \"{}\"\n", spool.display()));
    let text_of = std::fs::read_to_string(&second).unwrap().replace(
        &format!("state_dir = \"{}\"", e.state.display()),
        &format!("state_dir = \"{}\"", other.path().display()),
    );
    std::fs::write(&second, text_of).unwrap();
    let (out, exited) = run_for(Command::new(tollgate_bin()).arg("--config").arg(&second).arg("engine"), 60);
    let (stdout, stderr) = text(&out);
    assert!(exited, "a second engine kept running on the same spool:\n{stdout}\n{stderr}");
    let want = format!("spool directory {} is in use by pid {first} (tollgate serve)", spool.display());
    assert!(!out.status.success() && stderr.contains(&want), "{stderr}");
    let mut client = TrackedClient::new(e.udp);
    assert!(client.ask(43));
    every_answered_query_stored_once(&e, &client.answered);
}

#[test]
fn config_check_refuses_spool_settings_that_cannot_work_naming_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    for (spool, want) in [
        // More backlog than any disk holds: the limit could never protect anything.
        (
            "max_disk_mb = 900000000\nsegment_mb = 64",
            "spool.max_disk_mb (900000000 MiB) plus one spool.segment_mb (64 MiB) segment for each of the 4 lanes",
        ),
        // The shipper reads a segment's unsent part into memory.
        ("segment_mb = 1000000", "spool.segment_mb: must be between 1 and 1024 (is 1000000)"),
        // MiB to bytes would overflow, and the limit would silently wrap.
        ("max_disk_mb = 17592186044416", "spool.max_disk_mb: is too large (17592186044416 MiB)"),
        ("near_full_percent = 0", "spool.near_full_percent: must be between 1 and 100 (is 0)"),
    ] {
        std::fs::write(
            &config,
            format!("[node]\nstate_dir = \"{}\"\n[enum]\nudp_workers = 2\n[spool]\n{spool}\n", dir.path().display()),
        )
        .unwrap();
        let out = Command::new(tollgate_bin()).arg("--config").arg(&config).args(["config", "check"]).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "accepted [spool] {spool}:\n{stdout}");
        assert!(stderr.contains(want), "[spool] {spool}: {stderr}");
    }
    // A configuration that fits says what it asks of this machine.
    std::fs::write(
        &config,
        format!(
            "[node]\nstate_dir = \"{}\"\n[enum]\nudp_workers = 2\n[spool]\nmax_disk_mb = 16\nsegment_mb = 4\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(tollgate_bin()).arg("--config").arg(&config).args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("4 lanes") && text(&out).0.contains("disk use at most 32 MiB"), "{:?}", text(&out));
}
