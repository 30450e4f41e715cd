//! The SRP link in TLS over real TCP on 127.0.0.1: checkpoints replicate inside TLS 1.3 with
//! mutual engine certificates; a recording proxy between the two links shows that a caller's
//! number in a checkpoint does not cross in clear (and that it does on a plain link, so the
//! check can fail); a mate with a certificate of another CA, of role manager, or with none, or
//! speaking plain TCP, is refused, counted, and never connected, in both directions.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tollgate_srp::checkpoint::{Checkpointer, ReceiveOutcome};
use tollgate_srp::compress::Compression;
use tollgate_srp::config::{ChassisMode, SrpConfig};
use tollgate_srp::link::{Link, LinkConfig, LinkEvent, LinkRole, LinkStatistics};
use tollgate_srp::link_tls::{LinkSecurity, LinkTls};
use tollgate_srp::message::Message;
use tollgate_srp::session::SessionStore;
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
use tollgate_tls::rustls::pki_types::ServerName;
use tollgate_tls::{Role, TlsFiles, TlsMaterial};

const KEY: &[u8] = b"0123456789abcdef-shared";
const WAIT: Duration = Duration::from_secs(10);
/// The caller whose number the checkpoint carries.
const CALLER: &str = "+13125550199";

/// A CA in a temporary directory, issuing certificates for 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(&dir.path().join("ca"), name, DEFAULT_CA_VALIDITY).unwrap();
        Pki { dir, ca }
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca").join("ca.crt")
    }

    /// The material of a certificate of `role` for `host` (IP SAN 127.0.0.1) of this CA.
    fn material(&self, role: Role, host: &str) -> TlsMaterial {
        self.material_at(role, host, IpAddr::from([127, 0, 0, 1]))
    }

    /// The material of a certificate of `role` for `host` at `ip`, of this CA.
    fn material_at(&self, role: Role, host: &str, ip: IpAddr) -> TlsMaterial {
        let issued = self
            .ca
            .issue(&IssueRequest {
                role,
                host: host.into(),
                ips: vec![ip],
                dns_names: vec![],
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let (cert, key) = issued_paths(self.dir.path(), host);
        issued.write(&cert, &key).unwrap();
        TlsMaterial::load(TlsFiles { ca: self.ca_file(), cert: Some(cert), key: Some(key) }).unwrap()
    }

    /// Material that trusts this CA and presents no certificate.
    fn anonymous(&self) -> TlsMaterial {
        TlsMaterial::load(TlsFiles { ca: self.ca_file(), cert: None, key: None }).unwrap()
    }

    /// This CA's engine certificate for `host`, in material that also trusts `other`'s CA (a
    /// certificate of one CA does not load against another's: an impostor trusting both).
    fn impostor(&self, host: &str, other: &Pki) -> TlsMaterial {
        let own = self.material(Role::Engine, host);
        let both = self.dir.path().join("both-cas.crt");
        let pem = [std::fs::read(self.ca_file()).unwrap(), std::fs::read(other.ca_file()).unwrap()].concat();
        std::fs::write(&both, pem).unwrap();
        TlsMaterial::load(TlsFiles { ca: both, ..own.files().clone() }).unwrap()
    }
}

fn link_config(node: &str, role: LinkRole, peer: SocketAddr, tls: Option<&TlsMaterial>) -> LinkConfig {
    let mut c = LinkConfig {
        node_id: node.into(),
        bind_address: "127.0.0.1:0".parse().unwrap(),
        peer_address: peer,
        shared_key: KEY.to_vec(),
        // LZ4 keeps a string's first occurrence as literal bytes: a plain link shows it.
        compression: Compression::Lz4,
        config_digest: "same".into(),
        hello_interval: Duration::from_millis(50),
        dead_interval: Duration::from_secs(2),
        role,
        tls: None,
    };
    c.tls = tls.map(|m| LinkTls::new(m, peer).unwrap());
    c
}

/// A TCP proxy in front of `to` that records every byte crossing it, both ways.
async fn recording_proxy(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(to).await else { continue };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, record.clone()));
            tokio::spawn(pump(sr, cw, record.clone()));
        }
    });
    (addr, seen)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn next_matching(rx: &mut mpsc::Receiver<LinkEvent>, what: &str, pred: impl Fn(&LinkEvent) -> bool) -> LinkEvent {
    let fut = async {
        loop {
            match rx.recv().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("link closed while waiting for {what}"),
            }
        }
    };
    timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn srp_config() -> SrpConfig {
    SrpConfig::new(
        "n-a",
        "127.0.0.1:7501".parse().unwrap(),
        "127.0.0.1:7502".parse().unwrap(),
        std::str::from_utf8(KEY).unwrap(),
        ChassisMode::Primary,
        1,
    )
}

/// A standby (acceptor) and an active (dialer, through the recording proxy), `tls` on both or
/// neither; replicates a full checkpoint and a micro-checkpoint holding [`CALLER`]; returns what
/// crossed the proxy.
async fn replicate_through_proxy(tls: Option<(&TlsMaterial, &TlsMaterial)>) -> Vec<u8> {
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (standby_link, mut se) =
        Link::start(link_config("n-standby", LinkRole::Accept, unused, tls.map(|t| t.0))).await.unwrap();
    let (proxy, seen) = recording_proxy(standby_link.local_addr().unwrap()).await;
    let (active_link, mut ae) =
        Link::start(link_config("n-active", LinkRole::Dial, proxy, tls.map(|t| t.1))).await.unwrap();
    next_matching(&mut se, "the standby connected", |e| matches!(e, LinkEvent::Connected(_))).await;
    next_matching(&mut ae, "the active connected", |e| matches!(e, LinkEvent::Connected(_))).await;

    let cfg = srp_config();
    let (mut active, mut standby) = (Checkpointer::new(&cfg), Checkpointer::new(&cfg));
    let (mut a_store, mut s_store) = (SessionStore::new(), SessionStore::new());
    let now = Instant::now();
    active.on_connected(now);
    standby.on_connected(now);
    a_store.upsert_json(1, "velocity/robocall/+12125550100", &serde_json::json!({ "calls": 1 }), now).unwrap();
    for cp in active.full_checkpoint(&mut a_store, now) {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    loop {
        let LinkEvent::Checkpoint(cp) =
            next_matching(&mut se, "a checkpoint", |e| matches!(e, LinkEvent::Checkpoint(_))).await
        else {
            unreachable!()
        };
        let r = standby.receive(&mut s_store, cp, Instant::now());
        assert!(r.nack.is_none(), "{r:?}");
        if matches!(r.outcome, ReceiveOutcome::FullApplied { .. }) {
            break;
        }
    }
    let counter = serde_json::json!({ "rule": "robocall", "source": CALLER, "calls": 3 });
    a_store.upsert_json(1, &format!("velocity/robocall/{CALLER}"), &counter, now).unwrap();
    for cp in active.micro_checkpoints(&mut a_store, now) {
        active_link.send(Message::Checkpoint(cp)).await.unwrap();
    }
    let LinkEvent::Checkpoint(cp) =
        next_matching(&mut se, "the micro-checkpoint", |e| matches!(e, LinkEvent::Checkpoint(_))).await
    else {
        unreachable!()
    };
    let r = standby.receive(&mut s_store, cp, Instant::now());
    assert!(matches!(r.outcome, ReceiveOutcome::MicroApplied { .. }), "{r:?}");
    assert_eq!(
        s_store.get_json::<serde_json::Value>(&format!("velocity/robocall/{CALLER}")).unwrap(),
        Some(counter),
        "the standby holds the caller's counter"
    );
    let stats = standby_link.statistics();
    assert_eq!((stats.handshake_failures, stats.tls_failures, stats.auth_failures), (0, 0, 0), "{stats:?}");
    standby_link.shutdown().await;
    active_link.shutdown().await;
    let bytes = seen.lock().unwrap();
    bytes.clone()
}

#[tokio::test]
async fn checkpoints_replicate_in_tls_and_no_callers_number_crosses_in_clear() {
    let pki = Pki::new("pair CA");
    let east_a = pki.material(Role::Engine, "east-a");
    let east_b = pki.material(Role::Engine, "east-b");
    let digits = CALLER.trim_start_matches('+').as_bytes();

    // The control: on a plain link, the number is there for anyone on the path.
    let plain = replicate_through_proxy(None).await;
    assert!(contains(&plain, digits), "a plain link shows the caller's number ({} bytes seen)", plain.len());
    assert!(contains(&plain, b"n-standby"), "and the node ids of the handshake");

    let encrypted = replicate_through_proxy(Some((&east_a, &east_b))).await;
    assert!(encrypted.len() > 1000, "the checkpoints crossed the proxy ({} bytes)", encrypted.len());
    assert_eq!(encrypted[0], 0x16, "the link starts with a TLS handshake record");
    assert!(!contains(&encrypted, digits), "the caller's number crossed in clear");
    assert!(!contains(&encrypted, b"n-standby") && !contains(&encrypted, b"n-active"), "node ids in clear");
    assert!(!contains(&encrypted, b"velocity"), "session keys in clear");
    assert!(!contains(&encrypted, b"east-a") && !contains(&encrypted, b"east-b"), "certificates in clear");
}

/// Waits until `stats()` shows `n` failed TLS handshakes.
async fn tls_failures(what: &str, n: u64, stats: impl Fn() -> LinkStatistics) -> LinkStatistics {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = stats();
        if s.tls_failures >= n {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {n} TLS failures of {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_acceptor_refuses_a_dialer_of_another_ca_of_another_role_without_a_certificate_or_in_plain_text() {
    let ours = Pki::new("pair CA");
    let theirs = Pki::new("another CA");
    let acceptor_material = ours.material(Role::Engine, "east-b");
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (acceptor, mut acceptor_events) =
        Link::start(link_config("n-acceptor", LinkRole::Accept, unused, Some(&acceptor_material))).await.unwrap();
    let addr = acceptor.local_addr().unwrap();

    // A dialer that presents another CA's engine certificate.
    let foreign = theirs.impostor("east-x", &ours);
    let manager = ours.material(Role::Manager, "mgr-a");
    let anonymous = ours.anonymous();
    let cases: [(&str, Option<&TlsMaterial>); 4] = [
        ("a certificate of another CA", Some(&foreign)),
        ("a certificate of role manager", Some(&manager)),
        ("no certificate", Some(&anonymous)),
        ("plain TCP", None),
    ];
    let mut expected = 0;
    for (what, material) in cases {
        let (dialer, _dialer_events) =
            Link::start(link_config("n-dialer", LinkRole::Dial, addr, material)).await.unwrap();
        expected += 2;
        let s = tls_failures(what, expected, || acceptor.statistics()).await;
        assert!(s.handshake_failures >= s.tls_failures, "TLS failures are handshake failures: {s:?}");
        assert_eq!(s.connects, 0, "{what}: the acceptor never connected: {s:?}");
        assert!(!acceptor.is_connected() && !dialer.is_connected(), "{what}");
        let d = dialer.statistics();
        assert!(d.handshake_failures >= 1 && d.connects == 0, "{what}: the dialer counts its failure: {d:?}");
        if material.is_some() {
            assert!(d.tls_failures >= 1, "{what}: the dialer sees the mate's TLS refusal: {d:?}");
        }
        dialer.shutdown().await;
        expected = acceptor.statistics().tls_failures;
    }

    // The same acceptor takes an engine of its CA: the refusals were about the certificates.
    let good = ours.material(Role::Engine, "east-a");
    let (dialer, mut dialer_events) =
        Link::start(link_config("n-dialer", LinkRole::Dial, addr, Some(&good))).await.unwrap();
    next_matching(&mut acceptor_events, "the engine connected", |e| matches!(e, LinkEvent::Connected(_))).await;
    next_matching(&mut dialer_events, "connected to the engine", |e| matches!(e, LinkEvent::Connected(_))).await;
    assert_eq!(acceptor.statistics().connects, 1);
    dialer.shutdown().await;
    acceptor.shutdown().await;
}

#[tokio::test]
async fn a_dialer_refuses_an_acceptor_of_another_ca_of_another_role_or_not_named_for_the_mates_address() {
    let ours = Pki::new("pair CA");
    let theirs = Pki::new("another CA");
    let dialer_material = ours.material(Role::Engine, "east-a");
    let foreign = theirs.impostor("east-x", &ours);
    let manager = ours.material(Role::Manager, "mgr-b");
    // An engine of our CA, but for another address than the one the dialer calls.
    let elsewhere = ours.material_at(Role::Engine, "east-far", IpAddr::from([192, 0, 2, 7]));
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for (what, material) in
        [("another CA", &foreign), ("role manager", &manager), ("a certificate for another address", &elsewhere)]
    {
        let (acceptor, _ae) =
            Link::start(link_config("n-acceptor", LinkRole::Accept, unused, Some(material))).await.unwrap();
        let addr = acceptor.local_addr().unwrap();
        let (dialer, _de) =
            Link::start(link_config("n-dialer", LinkRole::Dial, addr, Some(&dialer_material))).await.unwrap();
        let d = tls_failures(what, 2, || dialer.statistics()).await;
        assert_eq!(d.connects, 0, "{what}: {d:?}");
        assert!(!dialer.is_connected() && !acceptor.is_connected(), "{what}");
        assert_eq!(acceptor.statistics().connects, 0, "{what}");
        dialer.shutdown().await;
        acceptor.shutdown().await;
    }
}

#[test]
fn plain_text_is_for_loopback_pairs_unless_the_operator_allows_it() {
    let (lo_a, lo_b): (SocketAddr, SocketAddr) = ("127.0.0.1:7501".parse().unwrap(), "127.0.0.2:7501".parse().unwrap());
    let (net_a, net_b): (SocketAddr, SocketAddr) =
        ("10.0.0.11:7501".parse().unwrap(), "10.0.0.12:7501".parse().unwrap());
    let strict = LinkSecurity::Plain { allow_plaintext: false };
    assert!(strict.check(lo_a, lo_b).unwrap().is_none(), "loopback pairs stay plain");
    let refused = strict.check(net_a, net_b).unwrap_err().to_string();
    assert!(refused.starts_with("srp.bind_address = 10.0.0.11:7501 is not a loopback address"), "{refused}");
    let refused = strict.check(lo_a, net_b).unwrap_err().to_string();
    assert!(refused.starts_with("srp.peer_address = 10.0.0.12:7501"), "{refused}");
    assert!(LinkSecurity::Plain { allow_plaintext: true }.check(net_a, net_b).unwrap().is_none());

    let pki = Pki::new("pair CA");
    let tls = LinkSecurity::Tls(pki.material(Role::Engine, "east-a")).check(net_a, net_b).unwrap().unwrap();
    assert_eq!(tls.server_name(), &ServerName::IpAddress(net_b.ip().into()), "the mate is verified by its address");
}
