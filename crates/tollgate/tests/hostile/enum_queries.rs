//! Hostile-input tests: the ENUM engine (issue 11 items 3, 5, 6, 9 and 15), with real
//! processes, sockets, dig and Kamailio.
//!
//! * a frozen engine's late answers are recorded as stale, with their real latency (item 5);
//! * a full spool logs a handful of lines that count every refused record (item 6);
//! * a spool that cannot write is counted and alarmed while queries are still answered, and
//!   an ENUM TCP listener out of descriptors pauses instead of logging each attempt (item 3);
//! * one source cannot hold the TCP listener, and no connection lives forever (item 9);
//! * callers of any country in the `src-` label are read as E.164 digits, by dig and through
//!   Kamailio (item 15).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::common::{self, Engine, EngineOptions, free_port, metric_at, temp_file, text, wait_until};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A NAPTR query for `name` with id `id`.
fn naptr_query(name: &str, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::NAPTR));
    m.to_vec().unwrap()
}

/// The ENUM name of `+1646<n>` (n < 10^7), distinct per n.
fn numbered_name(n: u64) -> String {
    let number = format!("1646{n:07}");
    number.chars().rev().flat_map(|c| [c, '.']).collect::<String>() + "e164.arpa."
}

/// Sends queries for `+1646<first..first+count>` in windows of 100, reading the answers of
/// each window; returns how many were answered.
fn flood(server: SocketAddr, first: u64, count: u64) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    let mut n = first;
    while n < first + count {
        let window = (first + count - n).min(100);
        for i in n..n + window {
            socket.send_to(&naptr_query(&numbered_name(i), (i & 0xffff) as u16), server).unwrap();
        }
        let mut got = 0;
        while got < window && socket.recv_from(&mut buf).is_ok() {
            got += 1;
        }
        answered += got;
        n += window;
    }
    answered
}

fn signal(pid: i32, sig: &str) {
    assert!(Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap().success());
}

/// Waits until every thread of `pid` is stopped (a signal is delivered asynchronously).
fn wait_stopped(pid: i32) {
    wait_until(30, "every thread of the engine stopped", || {
        std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'))
        })
    });
}

/// A tollgate process started from a complete configuration, with its stderr in a file (the
/// harness's `Engine` writes most of the configuration itself and shares stderr).
struct Proc {
    child: Child,
    dir: tempfile::TempDir,
    stderr: PathBuf,
    udp: SocketAddr,
    tcp: SocketAddr,
    api: String,
}

impl Proc {
    /// Starts `tollgate <role>` with the configuration `config(dir)` (dir: a fresh directory for
    /// state), inside `wrap(dir)` (a shell line run by `sh -c` that ends with `exec "$@"`) if
    /// given.
    fn start(role: &str, config: impl FnOnce(&Path) -> String, wrap: Option<fn(&Path) -> String>) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("tollgate.toml");
        std::fs::write(&config_path, config(dir.path())).unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut command = match wrap.map(|w| w(dir.path())) {
            Some(line) => {
                let mut c = Command::new("sh");
                c.args(["-c", &line, "sh"]).arg(common::tollgate_bin());
                c
            }
            None => Command::new(common::tollgate_bin()),
        };
        let mut child = command
            .arg("--config")
            .arg(&config_path)
            .args(["--log", "warn", role])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start tollgate");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("tollgate ready:") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("tollgate did not become ready: {}", std::fs::read_to_string(&stderr).unwrap_or_default())
        });
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .split(',')
                .next()
                .unwrap()
                .to_string()
        };
        Proc {
            udp: field("enum_udp").parse().unwrap(),
            tcp: field("enum_tcp").parse().unwrap(),
            api: field("api"),
            child,
            dir,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn metric(&self, series: &str) -> f64 {
        metric_at(&self.api, series)
    }

    /// Active alarms (names) through the API, with the CLI token of the state directory.
    fn active_alarms(&self) -> Vec<String> {
        let token = std::fs::read_to_string(self.dir.path().join("state/cli-token")).unwrap();
        let v: serde_json::Value = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/alarms", self.api))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["active"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["def"]["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The common head of a configuration: node, state, API on a free port, ENUM on `enum_port`.
fn config_head(dir: &Path, enum_port: u16, enum_extra: &str) -> String {
    format!(
        "[node]\nname = \"enum-hostile\"\nstate_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[enum]\nlisten_udp = [\"127.0.0.1:{enum_port}\"]\nlisten_tcp = [\"127.0.0.1:{enum_port}\"]\nudp_workers = 1\n{enum_extra}\n\n[probe]\nhep_udp = []\nhep_tcp = []\n",
        dir.join("state").display()
    )
}

/// The first lines of a log, for failure messages.
fn head(log: &str) -> String {
    log.lines().take(10).collect::<Vec<_>>().join("\n")
}

/// `text` without terminal colour codes (the log writes them).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines of `log` that contain `needle` (any case), with the `left_out=N` count each carries.
fn throttled_lines(log: &str, needle: &str) -> Vec<u64> {
    let needle = needle.to_lowercase();
    strip_ansi(log)
        .lines()
        .filter(|l| l.to_lowercase().contains(&needle))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("left_out="))
                .map(|n| n.trim_end_matches(',').parse().unwrap())
                .unwrap_or(0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Item 5: stale answers

#[test]
fn a_frozen_engines_late_answers_are_recorded_as_stale_with_their_real_latency() {
    let _g = crate::exclusive();
    let e = Engine::start(EngineOptions {
        node: "enum-frozen".into(),
        extra_config: "stale_after_ms = 500\n".into(),
        ..Default::default()
    });
    let pid = e.pid().expect("the engine runs") as i32;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    // Frozen: the kernel queues the queries; nobody reads them.
    signal(pid, "STOP");
    wait_stopped(pid);
    const FROZEN: u64 = 20;
    for i in 0..FROZEN {
        socket.send_to(&naptr_query(&numbered_name(i), i as u16), e.udp).unwrap();
    }
    let last_sent = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let frozen_for = last_sent.elapsed();
    signal(pid, "CONT");
    let mut buf = [0u8; 1500];
    for _ in 0..FROZEN {
        socket.recv_from(&mut buf).expect("every queued query is answered after the freeze");
    }

    // Every record reaches the engine's own collector.
    let stale_column = |csv: &str| -> Vec<(String, u64, bool)> {
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} column"));
        let (dest, latency, stale) = (col("destination"), col("latency_us"), col("stale"));
        lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[dest].to_string(), f[latency].parse().unwrap(), f[stale] == "1")
            })
            .collect()
    };
    let mut rows = Vec::new();
    wait_until(60, "the frozen queries' records in the collector", || {
        rows = stale_column(&common::analytics::export(&e, "ENUM"));
        rows.len() as u64 >= FROZEN
    });
    for (dest, latency_us, stale) in &rows {
        assert!(*stale, "{dest}: answered {latency_us} us after the kernel received it, but not marked stale");
        assert!(
            *latency_us as u128 >= frozen_for.as_micros() - 1_000,
            "{dest}: latency {latency_us} us, but the engine was frozen for {frozen_for:?} after it arrived"
        );
    }
    let stale_records = rows.iter().filter(|r| r.2).count() as u64;

    // The metric and the Actions by Rule view count exactly the stale records.
    assert_eq!(metric_at(&e.api, "tollgate_enum_stale_answers_total") as u64, stale_records);
    let view = common::analytics::view(&e, "ENUM", "Actions by Rule", "All");
    let stale_in_view: u64 = view["summary"].as_array().unwrap().iter().map(|r| r["stale"].as_u64().unwrap()).sum();
    assert_eq!(stale_in_view, stale_records, "{view}");
    wait_until(10, "alarm 72009 STALE_ANSWERS", || e.alarms().active.iter().any(|a| a.def.name == "STALE_ANSWERS"));
}

// ---------------------------------------------------------------------------------------------
// Item 6: a full spool does not flood the log

#[test]
fn a_full_spool_logs_a_handful_of_lines_that_count_every_refused_record() {
    let _g = crate::exclusive();
    let closed = free_port("127.0.0.1");
    let port = free_port("127.0.0.1");
    let p = Proc::start(
        "engine",
        |dir| {
            config_head(dir, port, "")
                + &format!(
                    "[spool]\nsegment_mb = 1\nmax_disk_mb = 3\nfsync_ms = 50\n\n[shipper]\ncollector = \"http://127.0.0.1:{closed}\"\ntoken = \"nobody-listens\"\n"
                )
        },
        None,
    );
    // About 3 MiB of records fit; the rest are refused (and still answered).
    let sent = 16_000;
    let answered = flood(p.udp, 0, sent);
    assert!(answered > sent * 9 / 10, "answered {answered} of {sent}");
    let refused = p.metric("tollgate_spool_refused_total");
    assert!(refused > 3_000.0, "the spool refused {refused}");
    // After the log interval (10 s), one more refusal writes the line that reports the rest.
    std::thread::sleep(Duration::from_secs(11));
    flood(p.udp, sent, 1);

    let log = p.stderr();
    let lines = throttled_lines(&log, "cannot write ENUM record");
    assert!(!lines.is_empty() && lines.len() <= 8, "{} lines about refused records:\n{}", lines.len(), head(&log));
    let counted: u64 = lines.iter().map(|left_out| 1 + left_out).sum();
    let refused = p.metric("tollgate_spool_refused_total") as u64;
    assert_eq!(counted, refused, "the lines account for every refused record:\n{}", head(&log));
    assert_eq!(p.metric(r#"tollgate_records_not_written_total{dataset="ENUM",reason="spool_full"}"#) as u64, refused);
}

// ---------------------------------------------------------------------------------------------
// Item 3 (ENUM part): records that cannot be written are counted and alarmed; EMFILE pauses

#[test]
fn answers_whose_record_could_not_be_written_are_counted_and_raise_an_alarm() {
    let _g = crate::exclusive();
    let port = free_port("127.0.0.1");
    // The spool on a 64 MiB file system of its own (a private mount namespace), which other
    // data has all but filled: every write soon fails with ENOSPC, far below the spool's own
    // limit (which fits the file system, so the configuration is accepted).
    let p = Proc::start(
        "engine",
        |dir| {
            std::fs::create_dir_all(dir.join("small")).unwrap();
            config_head(dir, port, "")
                + &format!(
                    "[spool]\ndir = \"{}\"\nsegment_mb = 1\nmax_disk_mb = 16\nfsync_ms = 50\n",
                    dir.join("small").display()
                )
        },
        Some(|dir| {
            format!(
                "exec unshare -m sh -c 'mount -t tmpfs -o size=64m tmpfs {0} && head -c 62m /dev/zero > {0}/other-data && exec \"$@\"' sh \"$@\"",
                dir.join("small").display()
            )
        }),
    );
    let sent = 12_000;
    let answered = flood(p.udp, 0, sent);
    assert!(answered > sent * 9 / 10, "queries are still answered: {answered} of {sent}");
    let written = p.metric("tollgate_spool_records_total");
    let lost = p.metric(r#"tollgate_records_not_written_total{dataset="ENUM",reason="io_error"}"#);
    assert!(lost > 1_000.0, "records not written: {lost} ({written} written)\n{}", p.stderr());
    assert_eq!(p.metric("tollgate_spool_refused_total"), 0.0, "not the spool's own limit");
    wait_until(10, "alarm 72006 RECORDS_NOT_WRITTEN", || p.active_alarms().iter().any(|a| a == "RECORDS_NOT_WRITTEN"));
    let log = p.stderr();
    let lines = throttled_lines(&log, "cannot write ENUM record");
    assert!(!lines.is_empty() && lines.len() <= 5, "{} lines:\n{}", lines.len(), head(&log));
}

#[test]
fn an_enum_tcp_listener_out_of_descriptors_pauses_and_recovers() {
    let _g = crate::exclusive();
    let port = free_port("127.0.0.1");
    // 64 descriptors: a few dozen connections exhaust them, below the connection limits (from
    // several source addresses, under the per-source limit).
    let p = Proc::start(
        "engine",
        |dir| config_head(dir, port, "tcp_idle_timeout_secs = 60\n"),
        Some(|_| "exec prlimit --nofile=64:64 \"$@\"".to_string()),
    );
    let mut held = Vec::new();
    for i in 0..96 {
        if let Some(s) = connect_from(p.tcp, Some(&format!("127.0.0.{}", 10 + i / 12))) {
            held.push(s);
        }
    }
    let pid = p.child.id();
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<u64> =
            stat.rsplit(')').next().unwrap().split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
        fields[0] + fields[1]
    };
    let before = cpu();
    std::thread::sleep(Duration::from_secs(5));
    let ticks = cpu() - before;
    assert!(ticks < 250, "the listener spun: {ticks} ticks of CPU in 5 s");
    let log = p.stderr();
    let lines = throttled_lines(&log, "TCP accept");
    assert!(!lines.is_empty() && lines.len() <= 3, "{} lines about failed accepts:\n{}", lines.len(), head(&log));
    // Descriptors come back: the listener serves again (and so does the API, to read metrics).
    drop(held);
    wait_until(30, "a TCP query answered after the descriptors came back", || tcp_ask(p.tcp, None, 7).is_some());
    assert!(p.metric("tollgate_enum_tcp_accept_errors_total") > 0.0, "accepts failed: {}", p.stderr());
}

// ---------------------------------------------------------------------------------------------
// Item 9: per-source limits and the maximum connection lifetime

/// Sends one query over `stream`; the answer's id, or None if the connection is closed.
fn tcp_query(stream: &mut TcpStream, id: u16) -> Option<u16> {
    let q = naptr_query(&numbered_name(u64::from(id)), id);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).ok()?;
    Some(u16::from_be_bytes([answer[0], answer[1]]))
}

/// A fresh connection from `source` (an address of 127/8, or any) asking one query.
fn tcp_ask(server: SocketAddr, source: Option<&str>, id: u16) -> Option<u16> {
    let mut s = connect_from(server, source)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp_query(&mut s, id)
}

fn connect_from(server: SocketAddr, source: Option<&str>) -> Option<TcpStream> {
    match source {
        None => TcpStream::connect_timeout(&server, Duration::from_secs(5)).ok(),
        Some(ip) => {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            socket.bind(&format!("{ip}:0").parse::<SocketAddr>().unwrap().into()).ok()?;
            socket.connect_timeout(&server.into(), Duration::from_secs(5)).ok()?;
            Some(socket.into())
        }
    }
}

/// True when the server closes `stream` within `within` (EOF or reset), false if it stays open.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn one_source_cannot_hold_every_enum_tcp_slot() {
    let _g = crate::exclusive();
    // The default limits: 16 connections per source address (idle ones kept for a minute).
    let e = Engine::start(EngineOptions {
        node: "enum-tcp-limits".into(),
        role: "engine",
        extra_config: "tcp_idle_timeout_secs = 60\n".into(),
        ..Default::default()
    });
    // One client takes its sixteen slots, one query on each.
    let mut mine: Vec<TcpStream> = (0..16).map(|_| connect_from(e.tcp, Some("127.0.0.2")).unwrap()).collect();
    for (i, s) in mine.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(tcp_query(s, i as u16 + 1), Some(i as u16 + 1), "connection {i} is served");
    }
    // One more from the same address is closed at once; the sixteen stay open.
    let mut extra = connect_from(e.tcp, Some("127.0.0.2")).unwrap();
    assert!(closed_by_server(&mut extra, Duration::from_secs(5)), "the 17th connection from one source is refused");
    assert!(!closed_by_server(&mut mine[0], Duration::from_millis(300)), "the first sixteen stay open");
    // Another client is still served, and so is the first one on its open connections.
    assert_eq!(tcp_ask(e.tcp, Some("127.0.0.3"), 77), Some(77), "another source is served");
    assert_eq!(tcp_query(&mut mine[15], 99), Some(99));
    assert_eq!(metric_at(&e.api, r#"tollgate_enum_tcp_refused_total{reason="per_source"}"#), 1.0);
}

#[test]
fn the_enum_tcp_listener_keeps_a_total_cap_across_sources() {
    let e = Engine::start(EngineOptions {
        node: "enum-tcp-cap".into(),
        role: "engine",
        extra_config: "tcp_max_connections = 8\ntcp_max_connections_per_source = 4\ntcp_idle_timeout_secs = 60\n"
            .into(),
        ..Default::default()
    });
    let held: Vec<TcpStream> =
        (0..8).map(|i| connect_from(e.tcp, Some(&format!("127.0.0.{}", 2 + i / 4))).unwrap()).collect();
    wait_until(10, "eight connections open", || metric_at(&e.api, "tollgate_enum_tcp_connections") >= 8.0);
    let mut ninth = connect_from(e.tcp, Some("127.0.0.5")).unwrap();
    assert!(closed_by_server(&mut ninth, Duration::from_secs(10)), "the listener holds at most 8");
    assert_eq!(metric_at(&e.api, r#"tollgate_enum_tcp_refused_total{reason="limit"}"#), 1.0);
    drop(held);
    wait_until(10, "a query answered once the slots are free", || tcp_ask(e.tcp, Some("127.0.0.5"), 5) == Some(5));
}

#[test]
fn a_busy_enum_tcp_connection_is_closed_after_its_maximum_lifetime() {
    let e = Engine::start(EngineOptions {
        node: "enum-tcp-lifetime".into(),
        role: "engine",
        extra_config: "tcp_idle_timeout_secs = 30\ntcp_max_connection_secs = 3\n".into(),
        ..Default::default()
    });
    let mut s = connect_from(e.tcp, None).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let opened = Instant::now();
    // One query a second, well within the idle timeout: only the lifetime can end it.
    let mut answered = 0u16;
    while opened.elapsed() < Duration::from_secs(40) {
        match tcp_query(&mut s, answered + 1) {
            Some(_) => answered += 1,
            None => break,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let lived = opened.elapsed();
    assert!(lived < Duration::from_secs(40), "the connection was never closed ({answered} queries answered)");
    assert!(lived >= Duration::from_secs(3), "closed before its lifetime: {lived:?}");
    assert!(answered >= 2, "answered {answered}");
    assert_eq!(metric_at(&e.api, "tollgate_enum_tcp_lifetime_closed_total"), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Item 15: callers of any country in the src- label

const LISTED: [(&str, &str); 4] = [
    ("442079460000", "UK, +44 20 7946 0000"),
    ("4512345678", "Denmark, +45 12345678"),
    ("493012345678", "Germany, +49 30 12345678"),
    ("13125550666", "US, +1 312 555 0666"),
];

fn install_international_list(e: &Engine) -> tempfile::TempDir {
    let (dir, policy) = temp_file(
        "intl.toml",
        "schema = 1\nname = \"intl\"\n[lists]\nrobocallers = \"robocallers.txt\"\n[[rule]]\nname = \"reject-robocallers\"\nsource = \"list:robocallers\"\naction = \"terminate\"\ncause = 603\n",
    );
    let list: String = LISTED.iter().map(|(digits, what)| format!("+{digits}   # {what}\n")).collect();
    std::fs::write(dir.path().join("robocallers.txt"), list).unwrap();
    let out = e.cli(&["policy", "install", policy.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "{:?}", text(&out));
    dir
}

/// The records the engine's spool holds: (source, destination, rule).
fn spooled(e: &Engine) -> Vec<(String, String, String)> {
    let dir = e.state.join("spool");
    let out = e.cli(&["spool", "dump", "--dir", dir.to_str().unwrap()]);
    text(&out)
        .0
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            (s("source"), s("destination"), s("rule"))
        })
        .collect()
}

#[test]
fn listed_callers_of_any_country_are_rejected_by_their_e164_digits() {
    let e = Engine::start(EngineOptions { node: "enum-intl".into(), role: "engine", ..Default::default() });
    let _policy = install_international_list(&e);
    let mut expected = Vec::new();
    for (digits, what) in LISTED {
        let name = format!("0.0.1.0.5.5.5.2.1.2.1.src-{digits}.e164.arpa.");
        let answer = e.dig(&["+short", "NAPTR", &name]);
        assert_eq!(
            answer.trim(),
            r#"100 10 "u" "E2U+sip" "!^.*$!sip:603@reject.tollgate.invalid!" ."#,
            "a listed caller from {what} is rejected"
        );
        expected.push((format!("+{digits}"), "+12125550100".to_string(), "reject-robocallers".to_string()));
    }
    // A caller from elsewhere is allowed and recorded with its own number.
    assert_eq!(e.dig(&["+short", "NAPTR", "0.0.1.0.5.5.5.2.1.2.1.src-33123456789.e164.arpa."]).trim(), "");
    expected.push(("+33123456789".into(), "+12125550100".into(), "-".into()));
    wait_until(10, "the records in the spool", || spooled(&e).len() >= expected.len());
    let mut got = spooled(&e);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn international_callers_through_kamailio_are_decided_by_their_e164_number() {
    use crate::common::sip::{Callee, Kamailio, call, require_root_and_peers};
    require_root_and_peers();
    let net = "127.0.71";
    let e = Engine::start(EngineOptions {
        node: "enum-intl-sbc".into(),
        role: "engine",
        enum_listen: vec!["127.0.53.31:53".parse().unwrap()],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: "[[enum.devices]]\nname = \"kamailio-sbc\"\naddresses = [\"127.0.0.0/8\"]\n".into(),
        ..Default::default()
    });
    let _policy = install_international_list(&e);
    let normal = Callee::start(&format!("{net}.20"));
    let sbc = Kamailio::start(&format!("{net}.1"), &format!("{net}.20"), &["127.0.53.31"], false);
    let caller = format!("{net}.10");
    for (digits, what) in LISTED {
        assert!(call(&caller, &sbc.ip, digits, "12125550100", true), "{what}: 603 expected:\n{}", sbc.log());
    }
    // Unlisted callers of other countries reach the dialled number.
    for digits in ["33123456789", "4512345679"] {
        assert!(call(&caller, &sbc.ip, digits, "12125550100", false), "{digits}: call failed:\n{}", sbc.log());
    }
    assert_eq!(normal.invites().len(), 2, "only the unlisted callers were put through");
    let mut got = spooled(&e);
    got.sort();
    let mut expected: Vec<(String, String, String)> = LISTED
        .iter()
        .map(|(d, _)| (format!("+{d}"), "+12125550100".to_string(), "reject-robocallers".to_string()))
        .chain(["33123456789", "4512345679"].iter().map(|d| (format!("+{d}"), "+12125550100".into(), "-".into())))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
}
