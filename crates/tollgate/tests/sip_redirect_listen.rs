//! The SIP redirect server's listeners in a real `tollgate engine` process (issue 19): bound
//! beside the ENUM listeners from `[sip_redirect]`, counting what they read, dropping oversized
//! datagrams, closing TCP connections that break framing or idle, refusing connections beyond
//! the per-source limit, and failing the start when an address is taken, naming it. What is
//! answered (OPTIONS 200, INVITE decisions and their records, 403 for non-clients) is the
//! redirector's: those tests are at the end.
//!
//! Addresses: 127.0.193.0/24 and 127.0.194.0/24.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Engine, EngineOptions, free_port, metric_at, wait_until};

/// An engine with `[sip_redirect]` on `ip` (port 0: free ports), `limits` appended to the
/// section; returns it and its SIP UDP and TCP addresses (from the ready line).
fn engine(ip: &str, limits: &str) -> (Engine, SocketAddr, SocketAddr) {
    let sip = format!("\n[sip_redirect]\nlisten_udp = [\"{ip}:0\"]\nlisten_tcp = [\"{ip}:0\"]\n{limits}\n");
    let e = Engine::start(EngineOptions {
        node: "engine-sip".into(),
        role: "engine",
        enum_listen: vec![format!("{ip}:{}", free_port(ip)).parse().unwrap()],
        extra_config: sip,
        ..Default::default()
    });
    let field = |name: &str| -> SocketAddr {
        e.ready_field(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", e.ready))
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (udp, tcp) = (field("sip_udp"), field("sip_tcp"));
    assert_eq!((udp.ip().to_string(), tcp.ip().to_string()), (ip.to_string(), ip.to_string()));
    (e, udp, tcp)
}

fn options(call_id: &str, transport: &str) -> Vec<u8> {
    options_via(call_id, transport, "127.0.193.1:5999")
}

/// OPTIONS with `via` (the client's address: where a UDP answer goes) in its Via.
fn options_via(call_id: &str, transport: &str, via: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:tollgate@127.0.193.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:sbc@127.0.193.1>;tag=1\r\nTo: <sip:tollgate@127.0.193.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn requests(e: &Engine, method: &str, transport: &str) -> f64 {
    metric_at(&e.api, &format!("tollgate_sip_redirect_requests_total{{method=\"{method}\",transport=\"{transport}\"}}"))
}

fn counted(e: &Engine, family: &str, reason: &str) -> f64 {
    metric_at(&e.api, &format!("tollgate_sip_redirect_{family}_total{{reason=\"{reason}\"}}"))
}

/// True once the server closed the connection (EOF or reset) within `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_real_engine_reads_sip_over_udp_and_tcp_and_drops_refuses_and_closes_what_it_must() {
    let (e, udp, tcp) = engine("127.0.193.1", "max_message_bytes = 2048\ntcp_max_connections_per_source = 2\n");
    let client = UdpSocket::bind("127.0.193.1:0").unwrap();

    // UDP: read and counted; an oversized datagram dropped, counted, and the server reads on.
    client.send_to(&options("udp-1", "UDP"), udp).unwrap();
    wait_until(30, "the UDP OPTIONS read", || requests(&e, "OPTIONS", "udp") == 1.0);
    let mut big = options("udp-big", "UDP");
    big.extend(std::iter::repeat_n(b'x', 4000));
    client.send_to(&big, udp).unwrap();
    wait_until(30, "the oversized datagram counted", || counted(&e, "dropped", "oversized") == 1.0);
    client.send_to(&options("udp-2", "UDP"), udp).unwrap();
    wait_until(30, "the next datagram read", || requests(&e, "OPTIONS", "udp") == 2.0);

    // TCP: two messages in one segment, both framed.
    let mut first = TcpStream::connect(tcp).unwrap();
    first.write_all(&[options("tcp-1", "TCP"), options("tcp-2", "TCP")].concat()).unwrap();
    wait_until(30, "two TCP messages read", || requests(&e, "OPTIONS", "tcp") == 2.0);

    // A third connection from one source is refused (two allowed), and counted.
    let _second = TcpStream::connect(tcp).unwrap();
    wait_until(30, "two connections open", || {
        metric_at(&e.api, "tollgate_connections_open{listener=\"sip_redirect_tcp\"}") == 2.0
    });
    let mut third = TcpStream::connect(tcp).unwrap();
    assert!(closed_by_server(&mut third, Duration::from_secs(30)), "the third connection closed");
    wait_until(30, "the refusal counted", || counted(&e, "tcp_refused", "per_source") == 1.0);
    drop((first, _second));
    wait_until(30, "the slots given back", || {
        metric_at(&e.api, "tollgate_connections_open{listener=\"sip_redirect_tcp\"}") == 0.0
    });

    // A head that never ends is closed at max_message_bytes, before more is read.
    let mut endless = TcpStream::connect(tcp).unwrap();
    let mut head = b"INVITE sip:+12125550100@127.0.193.1 SIP/2.0\r\n".to_vec();
    while head.len() < 6000 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let _ = endless.write_all(&head);
    assert!(closed_by_server(&mut endless, Duration::from_secs(30)), "the endless head closed");
    wait_until(30, "the close counted", || counted(&e, "tcp_closed", "oversized") == 1.0);

    // A message without Content-Length on a stream closes it too (RFC 3261 18.3).
    let mut unframed = TcpStream::connect(tcp).unwrap();
    unframed.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.193.1\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut unframed, Duration::from_secs(30)), "closed");
    wait_until(30, "the close counted", || counted(&e, "tcp_closed", "no_content_length") == 1.0);
    assert_eq!(requests(&e, "INVITE", "tcp"), 0.0, "nothing of either was handled");

    // Through all of it the server went on reading.
    client.send_to(&options("udp-3", "UDP"), udp).unwrap();
    wait_until(30, "still reading UDP", || requests(&e, "OPTIONS", "udp") == 3.0);
    let mut again = TcpStream::connect(tcp).unwrap();
    again.write_all(&options("tcp-3", "TCP")).unwrap();
    wait_until(30, "still reading TCP", || requests(&e, "OPTIONS", "tcp") == 3.0);
}

#[test]
fn silent_and_slow_tcp_clients_are_closed_after_the_idle_timeout() {
    let (e, _udp, tcp) = engine("127.0.193.2", "tcp_idle_timeout_secs = 1\n");
    let mut silent = TcpStream::connect(tcp).unwrap();
    let mut slow = TcpStream::connect(tcp).unwrap();
    let message = options("slow", "TCP");
    // One byte every 200 ms: bytes keep coming, a whole message not within the second.
    let trickle = std::thread::spawn(move || {
        for b in &message {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        slow
    });
    assert!(closed_by_server(&mut silent, Duration::from_secs(30)), "the silent client closed");
    let mut slow = trickle.join().unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(30)), "the slow client closed");
    wait_until(30, "both idle closes counted", || counted(&e, "tcp_closed", "idle") == 2.0);
    assert_eq!(metric_at(&e.api, "tollgate_connections_idle_closed_total{listener=\"sip_redirect_tcp\"}"), 2.0);
    assert_eq!(requests(&e, "OPTIONS", "tcp"), 0.0, "the slow message never completed in time");
}

#[test]
fn an_engine_whose_sip_address_is_taken_fails_at_start_naming_it() {
    let taken = UdpSocket::bind("127.0.193.3:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"engine-sip\"\nstate_dir = \"{}\"\n[api]\nlisten = \"127.0.193.3:0\"\n\
             [enum]\nlisten_udp = [\"127.0.193.3:0\"]\nlisten_tcp = []\n\
             [sip_redirect]\nlisten_udp = [\"{addr}\"]\n[probe]\nhep_udp = []\nhep_tcp = []\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(common::tollgate_bin())
        .arg("--config")
        .arg(&config)
        .arg("engine")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the engine did not exit with its SIP address taken");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains(&format!("cannot bind SIP redirect UDP listener {addr}")), "{stderr}");
    drop(taken);
}

// ---------------------------------------------------------------------------------------------
// The answers, through the redirector's `handle`.

/// Reads one SIP response from a UDP socket.
fn udp_answer(socket: &UdpSocket) -> Option<Vec<u8>> {
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 65_535];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// Reads one SIP response (head and Content-Length body) from a stream.
fn tcp_answer(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let body: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + body {
                return got[..end + 4 + body].to_vec();
            }
        }
        let n = stream.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

fn invite(call_id: &str, from: &str, to: &str, via_host: &str) -> Vec<u8> {
    format!(
        "INVITE sip:{to}@127.0.194.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {via_host};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:{from}@127.0.194.1>;tag=a1\r\nTo: <sip:{to}@127.0.194.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:{from}@{via_host}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn options_are_answered_200_and_an_invite_decided_once_however_often_retransmitted() {
    let clients = "[[sip_redirect.clients]]\nname = \"sbc-test\"\naddresses = [\"127.0.194.1/32\", \"127.0.0.1/32\"]\n";
    let (e, udp, tcp) = engine("127.0.194.1", clients);
    let client = UdpSocket::bind("127.0.194.1:0").unwrap();
    let via = client.local_addr().unwrap().to_string();

    client.send_to(&options_via("opt-udp", "UDP", &via), udp).unwrap();
    let answer = String::from_utf8(udp_answer(&client).expect("an OPTIONS answer")).unwrap();
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
    assert!(answer.contains("Call-ID: opt-udp"), "{answer}");

    let mut stream = TcpStream::connect(tcp).unwrap();
    stream.write_all(&options("opt-tcp", "TCP")).unwrap();
    let answer = String::from_utf8(tcp_answer(&mut stream)).unwrap();
    assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");

    let records = || metric_at(&e.api, "tollgate_spool_records_total");
    let before = records();
    let request = invite("inv-1", "+14155550100", "+12125550100", &via);
    client.send_to(&request, udp).unwrap();
    let first = udp_answer(&client).expect("an INVITE answer");
    let code = String::from_utf8_lossy(&first[8..11]).to_string();
    assert!(code.starts_with('3') || code.starts_with('4') || code.starts_with('6'), "a final answer: {code}");
    client.send_to(&request, udp).unwrap();
    assert_eq!(udp_answer(&client).expect("the retransmission's answer"), first, "identical bytes");
    wait_until(30, "one record", || records() == before + 1.0);
    wait_until(30, "the retransmission counted", || {
        metric_at(&e.api, "tollgate_sip_redirect_retransmissions_total") == 1.0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(records(), before + 1.0, "no second record for the retransmission");

    // From an address outside every client: 403, no record.
    let stranger = UdpSocket::bind("127.0.194.9:0").unwrap();
    let via = stranger.local_addr().unwrap().to_string();
    stranger.send_to(&invite("inv-2", "+14155550100", "+12125550100", &via), udp).unwrap();
    let answer = String::from_utf8(udp_answer(&stranger).expect("a 403")).unwrap();
    assert!(answer.starts_with("SIP/2.0 403 "), "{answer}");
    assert_eq!(metric_at(&e.api, "tollgate_sip_redirect_forbidden_total"), 1.0);
    assert_eq!(records(), before + 1.0);
}
