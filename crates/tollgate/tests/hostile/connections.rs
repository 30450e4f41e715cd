//! Hostile-input tests: connections. Idle connection floods against the HTTP API and HEP over
//! TCP in a process limited to 1024 descriptors (the usual systemd soft limit), slowloris, and
//! the open-file limit raised at start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::analytics::export;
use crate::common::{Engine, EngineOptions, free_port, metric_sample, wait_until};

/// Idle connections opened against each flooded listener: more than the process has
/// descriptors.
const FLOOD: usize = 1100;

/// Lets this test process hold a few thousand sockets.
fn raise_own_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if l.current.is_some_and(|soft| soft < 8192) {
        let target = l.maximum.map_or(65_536, |h| h.min(65_536));
        setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: l.maximum }).unwrap();
    }
}

/// Opens `n` TCP connections to `addr` (from several threads, each connect given 2 s) and
/// keeps those that connected.
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let threads = 20;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..n)
                        .step_by(threads)
                        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// How many of `streams` the server has not closed by `deadline` (a refusal message, if any,
/// is read and skipped).
fn still_open_at(streams: &mut [TcpStream], deadline: Instant) -> usize {
    let mut open = 0;
    let mut buf = [0u8; 1024];
    for s in streams {
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    open += 1;
                    break;
                }
                Err(_) => break, // reset: closed too
            }
        }
    }
    open
}

/// CPU time (user + system) the process `pid` used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after "pid (comm) ".
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    ticks as f64 / String::from_utf8_lossy(&hz.stdout).trim().parse::<f64>().unwrap()
}

/// The share of one CPU the process `pid` uses over `window`.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let (cpu, wall) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    (cpu_seconds(pid) - cpu) / wall.elapsed().as_secs_f64()
}

fn get(e: &Engine, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut request = client.get(format!("{}{path}", e.api));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let resp = request.send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().unwrap_or_default()))
}

/// Waits (generously) until GET `path` answers 200 and returns the body.
fn get_ok(e: &Engine, path: &str, token: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match get(e, path, token) {
            Some((200, body)) => return body,
            last => assert!(Instant::now() < deadline, "GET {path} still fails after 120 s: {last:?}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asks for `+1646<n>` for each `n`, each query given 3 s; returns the called numbers answered.
fn ask_enum(server: SocketAddr, numbers: std::ops::Range<u64>) -> (u64, Vec<String>) {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (mut sent, mut answered) = (0, Vec::new());
    for n in numbers {
        let number = format!("1646{n:07}");
        let name: String = number.chars().rev().flat_map(|c| [c, '.']).collect::<String>() + "e164.arpa.";
        let id = (n & 0xffff) as u16;
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(&name).unwrap(), RecordType::NAPTR));
        socket.send_to(&m.to_vec().unwrap(), server).unwrap();
        sent += 1;
        let mut buf = [0u8; 1500];
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            if Message::from_vec(&buf[..len]).is_ok_and(|r| r.metadata.id == id) {
                answered.push(format!("+{number}"));
                break;
            }
        }
    }
    (sent, answered)
}

/// Called numbers of the ENUM records in the collector.
fn stored_destinations(e: &Engine) -> std::collections::HashSet<String> {
    let csv = export(e, "ENUM");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Some(col) = header.iter().position(|h| *h == "destination") else { return Default::default() };
    lines.filter_map(|l| l.split(',').nth(col).map(String::from)).collect()
}

/// Sends one HEP3 SIP message over TCP to `port`.
fn send_hep(port: u16) {
    use tollgate_probe::hep::{HepPacket, encode_v3};
    let sip = "OPTIONS sip:probe@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@10.0.0.1>;tag=a\r\nTo: <sip:probe@10.0.0.2>\r\nCall-ID: hostile-hep\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let packet = encode_v3(&HepPacket {
        version: 3,
        src: "10.0.0.1:5060".parse().unwrap(),
        dst: "10.0.0.2:5060".parse().unwrap(),
        ip_protocol: 17,
        ts_us: chrono::Utc::now().timestamp_micros(),
        protocol_type: 1,
        capture_id: 1,
        payload: sip.as_bytes(),
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(&packet).unwrap();
}

/// A `serve` limited to 1024 descriptors with HEP over TCP on a free port.
fn limited_server(api_config: &str, hep_config: &str) -> (Engine, u16) {
    let hep = free_port("127.0.0.1");
    let e = Engine::start(EngineOptions {
        node: "conns".into(),
        nofile: Some((1024, 1024)),
        api_config: api_config.into(),
        probe: format!("hep_udp = []\nhep_tcp = [\"127.0.0.1:{hep}\"]\n{hep_config}"),
        ..Default::default()
    });
    (e, hep)
}

#[test]
fn idle_connection_floods_leave_the_api_hep_enum_and_records_working() {
    let _g = crate::exclusive();
    raise_own_open_file_limit();
    // The default connection limits; short idle timeouts so the test does not wait minutes.
    let (e, hep) = limited_server("idle_timeout_secs = 10\n", "hep_tcp_idle_timeout_secs = 10\n");
    let pid = e.pid().unwrap();
    let api: SocketAddr = e.api.trim_start_matches("http://").parse().unwrap();

    let mut held = flood(SocketAddr::from(([127, 0, 0, 1], hep)), FLOOD);
    held.extend(flood(api, FLOOD));
    assert!(held.len() >= FLOOD, "only {} connections were made", held.len());

    // The flood does not make the process spin (it used to: the HEP acceptor retried EMFILE
    // in a hot loop at 100% of a CPU).
    let share = cpu_share(pid, Duration::from_secs(5));
    assert!(share < 0.25, "the process used {:.0}% of a CPU while the flood held its connections", share * 100.0);

    // ENUM over UDP answers every query meanwhile, and records each one.
    let (sent, answered) = ask_enum(e.udp, 0..300);
    assert_eq!(answered.len() as u64, sent, "every query is answered during the flood");

    // The server closes every flood connection (refused at the limit, or idle), by itself.
    let open = still_open_at(&mut held, Instant::now() + Duration::from_secs(90));
    assert_eq!(open, 0, "{open} flood connections were still open 90 s later");

    // The API answers again, anonymous and authenticated.
    assert_eq!(get_ok(&e, "/healthz", None), "ok\n");
    let token = e.cli_token();
    let whoami = get_ok(&e, "/api/v1/auth", Some(&token));
    assert!(whoami.contains("\"authorized\":true"), "{whoami}");

    let metrics = get_ok(&e, "/metrics", None);
    for listener in ["api", "hep_tcp"] {
        let refused =
            metric_sample(&metrics, &format!("tollgate_connections_refused_total{{listener=\"{listener}\"}}"))
                .unwrap_or(0.0);
        let idle =
            metric_sample(&metrics, &format!("tollgate_connections_idle_closed_total{{listener=\"{listener}\"}}"))
                .unwrap_or(0.0);
        assert!(refused > 0.0, "refusals of {listener} counted:\n{metrics}");
        assert!(idle > 0.0, "idle closes of {listener} counted:\n{metrics}");
    }
    let alarms = get_ok(&e, "/api/v1/alarms", Some(&token));
    assert!(alarms.contains("\"CONNECTION_LIMIT\"") && alarms.contains("conns/api"), "{alarms}");
    assert!(alarms.contains("conns/hep_tcp"), "{alarms}");

    // HEP over TCP takes a sender again.
    send_hep(hep);
    wait_until(60, "the HEP packet counted", || {
        get(&e, "/metrics", None)
            .is_some_and(|(_, m)| metric_sample(&m, "tollgate_probe_hep_packets_total").unwrap_or(0.0) >= 1.0)
    });

    // Every answered query is stored in the collector.
    wait_until(180, "every answered query at the collector", || {
        let stored = stored_destinations(&e);
        answered.iter().all(|n| stored.contains(n))
    });
}

#[test]
fn out_of_descriptors_the_listeners_pause_instead_of_spinning_and_recover() {
    let _g = crate::exclusive();
    raise_own_open_file_limit();
    // Connection limits above the open-file limit: the process runs out of descriptors.
    let (e, hep) = limited_server(
        "max_connections = 5000\nidle_timeout_secs = 8\n",
        "hep_tcp_max_connections = 5000\nhep_tcp_idle_timeout_secs = 8\n",
    );
    let pid = e.pid().unwrap();
    let api: SocketAddr = e.api.trim_start_matches("http://").parse().unwrap();

    let mut held = flood(SocketAddr::from(([127, 0, 0, 1], hep)), FLOOD);
    held.extend(flood(api, FLOOD));
    let share = cpu_share(pid, Duration::from_secs(5));
    assert!(share < 0.25, "the process used {:.0}% of a CPU while out of descriptors", share * 100.0);
    let (sent, answered) = ask_enum(e.udp, 0..100);
    assert_eq!(answered.len() as u64, sent, "ENUM over UDP answers while the listeners wait for descriptors");

    let open = still_open_at(&mut held, Instant::now() + Duration::from_secs(120));
    assert_eq!(open, 0, "{open} flood connections were still open 120 s later");
    assert_eq!(get_ok(&e, "/healthz", None), "ok\n");
    let metrics = get_ok(&e, "/metrics", None);
    let errors =
        metric_sample(&metrics, "tollgate_connections_accept_errors_total{listener=\"hep_tcp\"}").unwrap_or(0.0);
    assert!(errors > 0.0, "the HEP listener met EMFILE and counted it:\n{metrics}");
    let alarms = get_ok(&e, "/api/v1/alarms", Some(&e.cli_token()));
    assert!(alarms.contains("\"CONNECTION_LIMIT\"") && alarms.contains("conns/hep_tcp"), "{alarms}");
}

#[test]
fn idle_and_slowloris_http_connections_are_closed_after_the_idle_timeout() {
    let e = Engine::start(EngineOptions { api_config: "idle_timeout_secs = 2\n".into(), ..Default::default() });
    let api: SocketAddr = e.api.trim_start_matches("http://").parse().unwrap();
    let deadline = || Instant::now() + Duration::from_secs(60);

    // Connected, never sends anything.
    let mut silent = TcpStream::connect(api).unwrap();
    // One request served, then idle on keep-alive.
    let mut kept = TcpStream::connect(api).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // A body announced and never sent, to a handler that reads it.
    let mut no_body = TcpStream::connect(api).unwrap();
    let token = e.cli_token();
    let head = format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n{{"
    );
    no_body.write_all(head.as_bytes()).unwrap();
    // Slowloris: headers trickling in, one byte every 500 ms, never finished.
    let slowloris = std::thread::spawn(move || {
        let mut s = TcpStream::connect(api).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(500));
            // The first write after the server closed may still go out; the next one fails.
            if s.write_all(b"a").is_err() {
                return true;
            }
        }
        false
    });

    for (what, s) in [("silent", &mut silent), ("keep-alive", &mut kept), ("unfinished body", &mut no_body)] {
        assert_eq!(still_open_at(std::slice::from_mut(s), deadline()), 0, "the {what} connection is closed");
    }
    assert!(slowloris.join().unwrap(), "the slowloris connection is closed although bytes keep coming");
    let metrics = get_ok(&e, "/metrics", None);
    let idle = metric_sample(&metrics, "tollgate_connections_idle_closed_total{listener=\"api\"}").unwrap_or(0.0);
    assert!(idle >= 4.0, "every idle close is counted:\n{metrics}");
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let e = Engine::start(EngineOptions { nofile: Some((1024, 4096)), ..Default::default() });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", e.pid().unwrap())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let values: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(values[3..5], ["4096", "4096"], "{line}");
}
