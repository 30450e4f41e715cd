//! The SIP redirect server's listeners on real sockets (loopback): what they accept, frame,
//! drop, refuse and close, seen in their counters and on the client's socket. What is answered
//! is the redirector's (tested with it); these tests hold for any answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tollgate_enum::server::RecordSink;
use tollgate_enum::{EnumConfig, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::{CompiledPolicy, InstalledPolicy};
use tollgate_sip_redirect::config::ClientConfig;
use tollgate_sip_redirect::metrics::{ReasonLabels, RedirectMetrics};
use tollgate_sip_redirect::server::RedirectServer;
use tollgate_sip_redirect::{RedirectConfig, Redirector};

mod common;
use common::{closed_by_server, requests, until};

const OPTIONS: &[u8] = b"OPTIONS sip:tollgate@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-listen-1\r\n\
From: <sip:sbc@127.0.0.1>;tag=1\r\nTo: <sip:tollgate@127.0.0.1>\r\n\
Call-ID: listen-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

struct Running {
    server: RedirectServer,
    metrics: Arc<RedirectMetrics>,
}

async fn start(config: RedirectConfig) -> Running {
    let policy = Arc::new(InstalledPolicy::new(None, CompiledPolicy::allow_all()));
    let responder = Arc::new(Responder::new(EnumConfig::default(), DialingPlan::nanp(), policy, "listen-test"));
    let metrics = RedirectMetrics::unregistered();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let redirector = Arc::new(Redirector::new(config, responder));
    let server = RedirectServer::start(redirector, RecordSink::Discard, metrics.clone(), &[any], &[any]).await.unwrap();
    Running { server, metrics }
}

fn reason(
    family: &prometheus_client::metrics::family::Family<ReasonLabels, prometheus_client::metrics::counter::Counter>,
    reason: &'static str,
) -> u64 {
    family.get_or_create(&ReasonLabels { reason }).get()
}

#[tokio::test]
async fn an_oversized_datagram_is_dropped_and_counted_and_the_next_one_is_read() {
    let run = start(RedirectConfig { max_message_bytes: 2048, ..Default::default() }).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = run.server.udp_addrs[0];
    let mut big = OPTIONS.to_vec();
    big.extend(std::iter::repeat_n(b'x', 3000));
    client.send_to(&big, to).await.unwrap();
    client.send_to(OPTIONS, to).await.unwrap();
    let m = &run.metrics;
    until("the small datagram handled", || requests(m, "OPTIONS", "udp") == 1).await;
    assert_eq!(reason(&m.dropped, "oversized"), 1, "the large one dropped, counted, never handled");
    run.server.shutdown().await;
}

#[tokio::test]
async fn tcp_messages_are_framed_by_content_length_whatever_the_segments() {
    let run = start(RedirectConfig::default()).await;
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    // Two messages and a keepalive in one write, then a third in two pieces.
    stream.write_all(&[OPTIONS, &b"\r\n"[..], OPTIONS].concat()).await.unwrap();
    stream.write_all(&OPTIONS[..30]).await.unwrap();
    let m = run.metrics.clone();
    until("two messages framed", || requests(&m, "OPTIONS", "tcp") == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(requests(&m, "OPTIONS", "tcp"), 2, "half a message is not a message");
    stream.write_all(&OPTIONS[30..]).await.unwrap();
    until("the third message framed", || requests(&m, "OPTIONS", "tcp") == 3).await;
    assert_eq!(m.tcp.open.get(), 1, "the connection stays open");
    run.server.shutdown().await;
}

#[tokio::test]
async fn a_head_without_its_end_is_closed_at_max_message_bytes_and_counted() {
    let run = start(RedirectConfig { max_message_bytes: 2048, ..Default::default() }).await;
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    let mut head = b"INVITE sip:1@x SIP/2.0\r\n".to_vec();
    while head.len() <= 2048 + 100 {
        head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    // The server may close before it has read everything: a failed write is fine.
    let _ = stream.write_all(&head).await;
    assert!(closed_by_server(&mut stream, Duration::from_secs(30)).await, "closed");
    let m = &run.metrics;
    until("the close counted", || reason(&m.tcp_closed, "oversized") == 1).await;
    assert_eq!(requests(m, "INVITE", "tcp"), 0, "nothing handled");
    run.server.shutdown().await;
}

#[tokio::test]
async fn a_message_without_content_length_closes_the_connection() {
    let run = start(RedirectConfig::default()).await;
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    stream.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1\r\n\r\n").await.unwrap();
    assert!(closed_by_server(&mut stream, Duration::from_secs(30)).await, "closed");
    let m = &run.metrics;
    until("the close counted", || reason(&m.tcp_closed, "no_content_length") == 1).await;
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    stream.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n").await.unwrap();
    assert!(closed_by_server(&mut stream, Duration::from_secs(30)).await, "not SIP: closed");
    until("the close counted", || {
        reason(&m.tcp_closed, "bad_content_length")
            + reason(&m.tcp_closed, "no_content_length")
            + reason(&m.tcp_closed, "not_sip")
            == 2
    })
    .await;
    run.server.shutdown().await;
}

#[tokio::test]
async fn silent_and_slow_clients_are_closed_after_the_idle_timeout() {
    let run = start(RedirectConfig { tcp_idle_timeout_secs: 1, ..Default::default() }).await;
    let addr = run.server.tcp_addrs[0];
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // One byte every 200 ms: bytes keep arriving, a whole message never does within 1 s.
    let trickle = tokio::spawn(async move {
        for b in OPTIONS.iter() {
            if slow.write_all(&[*b]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow
    });
    assert!(closed_by_server(&mut silent, Duration::from_secs(30)).await, "the silent one closed");
    let mut slow = trickle.await.unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(30)).await, "the slow one closed");
    let m = &run.metrics;
    until("both closes counted", || reason(&m.tcp_closed, "idle") == 2).await;
    assert_eq!(m.tcp.idle_closed.get(), 2);
    assert_eq!(requests(m, "OPTIONS", "tcp"), 0, "the slow message never completed in time");
    until("no connection left open", || m.tcp.open.get() == 0).await;
    run.server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_per_source_limit_are_refused_and_counted() {
    let run = start(RedirectConfig { tcp_max_connections_per_source: 2, ..Default::default() }).await;
    let addr = run.server.tcp_addrs[0];
    let m = run.metrics.clone();
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    until("two served", || m.tcp.open.get() == 2).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut third, Duration::from_secs(30)).await, "the third refused");
    let refused = || m.tcp_refused.get_or_create(&ReasonLabels { reason: "per_source" }).get();
    assert_eq!(refused(), 1);
    // A slot given back is a slot to take again.
    drop(first);
    until("the first one's slot given back", || m.tcp.open.get() == 1).await;
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth.write_all(OPTIONS).await.unwrap();
    until("the fourth served", || requests(&m, "OPTIONS", "tcp") == 1).await;
    assert_eq!(refused(), 1);
    run.server.shutdown().await;
}

/// A configuration whose only client is not this host: every test connection is a stranger's.
fn strangers_only(answer_strangers: bool) -> RedirectConfig {
    let client = ClientConfig::new("elsewhere", vec!["192.0.2.0/24".parse().unwrap()]);
    RedirectConfig { clients: vec![client], answer_strangers, ..Default::default() }
}

#[tokio::test]
async fn a_strangers_tcp_connection_is_closed_at_accept_and_counted() {
    let run = start(strangers_only(false)).await;
    let m = run.metrics.clone();
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    // The server may close before it has read anything: a failed write is fine.
    let _ = stream.write_all(OPTIONS).await;
    assert!(closed_by_server(&mut stream, Duration::from_secs(30)).await, "closed");
    until("the refusal counted", || reason(&m.tcp_refused, "not_client") == 1).await;
    assert_eq!(requests(&m, "OPTIONS", "tcp"), 0, "nothing read, nothing handled");
    until("no connection left open", || m.tcp.open.get() == 0).await;
    // Over UDP the stranger's request is dropped and counted, with no answer.
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(OPTIONS, run.server.udp_addrs[0]).await.unwrap();
    until("the datagram handled", || requests(&m, "OPTIONS", "udp") == 1).await;
    assert_eq!(m.forbidden.get(), 1);
    let mut buf = [0u8; 2048];
    let answer = tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "no answer to a stranger over UDP");
    run.server.shutdown().await;
}

#[tokio::test]
async fn with_answer_strangers_a_tcp_stranger_gets_403_then_the_connection_is_closed() {
    let run = start(strangers_only(true)).await;
    let m = run.metrics.clone();
    let mut stream = TcpStream::connect(run.server.tcp_addrs[0]).await.unwrap();
    stream.write_all(OPTIONS).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "closed by the server");
    assert!(got.starts_with(b"SIP/2.0 403 Forbidden\r\n"), "{}", String::from_utf8_lossy(&got));
    until("the close counted", || reason(&m.tcp_closed, "not_client") == 1).await;
    assert_eq!(reason(&m.tcp_refused, "not_client"), 0);
    run.server.shutdown().await;
}

#[tokio::test]
async fn an_address_in_use_fails_the_start_naming_it() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let policy = Arc::new(InstalledPolicy::new(None, CompiledPolicy::allow_all()));
    let responder = Arc::new(Responder::new(EnumConfig::default(), DialingPlan::nanp(), policy, "t"));
    let redirector = Arc::new(Redirector::new(RedirectConfig::default(), responder));
    let e = RedirectServer::start(redirector, RecordSink::Discard, RedirectMetrics::unregistered(), &[addr], &[])
        .await
        .err()
        .expect("address in use");
    assert!(e.to_string().starts_with(&format!("cannot bind SIP redirect UDP listener {addr}")), "{e}");
}

/// An INVITE from the loopback client, its own Call-ID and branch per `n`.
fn invite(n: u32) -> Vec<u8> {
    format!(
        "INVITE sip:+1212555{n:04}@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bK-evict-{n}\r\n\
         From: <sip:+13125550100@127.0.0.1>;tag=1\r\nTo: <sip:+1212555{n:04}@127.0.0.1>\r\n\
         Call-ID: evict-{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn answers_forgotten_before_their_window_ended_are_counted() {
    // A window of 2 answers: the third INVITE pushes the first out, and so on.
    let run = start(RedirectConfig { retransmission_entries: 2, ..Default::default() }).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = run.server.udp_addrs[0];
    let mut buf = [0u8; 4096];
    for n in 0..5 {
        client.send_to(&invite(n), to).await.unwrap();
        let (len, _) =
            tokio::time::timeout(Duration::from_secs(30), client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..len].starts_with(b"SIP/2.0 302"), "{}", String::from_utf8_lossy(&buf[..len]));
    }
    let m = &run.metrics;
    until("5 INVITEs counted", || requests(m, "INVITE", "udp") == 5).await;
    assert_eq!(m.retransmissions_evicted.get(), 3, "5 answers through a window of 2: 3 forgotten");
    run.server.shutdown().await;
}
