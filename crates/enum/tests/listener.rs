//! The UDP listener on real sockets: every query from many clients answered once and recorded
//! once, with the workers sharing one socket or each reading its own (`udp_reuseport`), and an
//! address another listener holds refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use prometheus_client::registry::Registry;
use tollgate_enum::metrics::{EnumMetrics, RecordsNotWritten};
use tollgate_enum::respond::fuzzing;
use tollgate_enum::server::{EnumServer, RecordSink};
use tollgate_enum::{EnumConfig, Responder};
use tollgate_records::Record;
use tollgate_records::spool::{Spool, SpoolOptions, read_all};

const POLICY: &str = r#"
schema = 1
name = "listener-test"
[[rule]]
name = "redirect"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
"#;

fn responder(udp_workers: usize, udp_reuseport: bool) -> Arc<Responder> {
    let config = EnumConfig { udp_workers, udp_reuseport, ..EnumConfig::default() };
    Arc::new(fuzzing::responder(config, POLICY, BTreeMap::new(), 1, "engine-test"))
}

fn metrics() -> Arc<EnumMetrics> {
    let mut registry = Registry::default();
    let not_written = RecordsNotWritten::register(&mut registry);
    EnumMetrics::register(&mut registry, not_written)
}

/// A NAPTR query for `+1212555DDDD` with this id.
fn query(id: u16, digits: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    let number = format!("1212555{digits:04}");
    let name: String = number.chars().rev().map(|c| format!("{c}.")).collect();
    m.add_query(Query::query(Name::from_ascii(format!("{name}e164.arpa.")).unwrap(), RecordType::NAPTR));
    m.to_vec().unwrap()
}

/// What a client asked: per (client address, called digits), how often it was sent and
/// whether it was answered.
type Asked = HashMap<(SocketAddr, String), (u32, bool)>;

/// `clients` sockets each send `per_client` queries at once, then read their answers (a query
/// lost on a busy loopback is asked again, as an SBC would). Panics on a second answer to one
/// query.
fn ask(server: SocketAddr, clients: usize, per_client: u16) -> Asked {
    let sockets: Vec<UdpSocket> = (0..clients).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let digits = |c: usize, id: u16| (c as u16 * 100 + id) % 10_000;
    let mut asked = Asked::new();
    let send = |s: &UdpSocket, c: usize, id: u16, asked: &mut Asked| {
        s.send_to(&query(id, digits(c, id)), server).unwrap();
        asked.entry((s.local_addr().unwrap(), format!("+1212555{:04}", digits(c, id)))).or_default().0 += 1;
    };
    for (c, s) in sockets.iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for id in 0..per_client {
            send(s, c, id, &mut asked);
        }
    }
    for (c, s) in sockets.iter().enumerate() {
        let mut buf = [0u8; 1500];
        let mut missing: HashSet<u16> = (0..per_client).collect();
        for _attempt in 0..3 {
            while !missing.is_empty() {
                let Ok((n, from)) = s.recv_from(&mut buf) else { break };
                assert_eq!(from, server);
                let answer = Message::from_vec(&buf[..n]).unwrap();
                assert_eq!(answer.metadata.message_type, MessageType::Response);
                let id = answer.metadata.id;
                assert!(missing.remove(&id), "client {c} got a second answer to query {id}");
                let key = (s.local_addr().unwrap(), format!("+1212555{:04}", digits(c, id)));
                asked.get_mut(&key).unwrap().1 = true;
            }
            for &id in &missing {
                send(s, c, id, &mut asked);
            }
        }
    }
    asked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_from_many_clients_is_answered_and_recorded_once_whether_workers_share_a_socket_or_not() {
    for reuseport in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let server = EnumServer::start(
            responder(3, reuseport),
            RecordSink::Spool(spool.clone()),
            metrics(),
            &["127.0.0.1:0".parse().unwrap()],
            &[],
        )
        .await
        .unwrap();
        let addr = server.udp_addrs[0];
        let asked = tokio::task::spawn_blocking(move || ask(addr, 16, 40)).await.unwrap();
        assert_eq!(asked.len(), 16 * 40);
        assert!(asked.values().all(|(_, answered)| *answered), "every query answered (udp_reuseport = {reuseport})");
        server.shutdown().await;
        // Each answer left after its record was written, and each query that arrived has one
        // record: at least one per query, at most one per time it was sent.
        let mut recorded: HashMap<(SocketAddr, String), u32> = HashMap::new();
        for r in read_all(dir.path()).unwrap() {
            let Record::EnumQuery { record, .. } = r else { panic!("not an ENUM record: {r:?}") };
            *recorded.entry((record.client_addr, record.destination.to_string())).or_default() += 1;
        }
        assert_eq!(recorded.len(), asked.len(), "a record for every query, and only for them");
        for (key, (sent, _)) in &asked {
            let n = recorded[key];
            assert!(n >= 1 && n <= *sent, "{key:?}: {n} records, sent {sent} times");
        }
        let lanes: HashSet<String> = tollgate_records::spool::segments(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().split('-').next().unwrap().to_string())
            .collect();
        assert_eq!(lanes.len(), 3, "three workers, each with its own lane: {lanes:?}");
    }
}

#[tokio::test]
async fn an_address_another_listener_holds_is_refused_with_or_without_reuseport() {
    for (first, second) in [(true, true), (true, false), (false, true)] {
        let held = EnumServer::start(
            responder(2, first),
            RecordSink::Discard,
            metrics(),
            &["127.0.0.1:0".parse().unwrap()],
            &[],
        )
        .await
        .unwrap();
        let addr = held.udp_addrs[0];
        let err = match EnumServer::start(responder(2, second), RecordSink::Discard, metrics(), &[addr], &[]).await {
            Ok(_) => panic!("a second listener bound {addr} (reuseport {first} then {second})"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&format!("cannot bind ENUM UDP listener {addr}")), "{err}");
        // The first still answers.
        let asked = tokio::task::spawn_blocking(move || ask(addr, 2, 5)).await.unwrap();
        assert!(asked.len() == 10 && asked.values().all(|(_, answered)| *answered));
        held.shutdown().await;
    }
}
