//! SIP over TLS (`sip_redirect.listen_tls`) on real sockets: a rustls client trusting only
//! tollgate's CA (as an SBC configured with it) gets OPTIONS and INVITE answered over TLS 1.3
//! and 1.2, with the decision spooled in the `sip_tls0` lane; clients that never finish the
//! handshake, or speak plain SIP to the TLS port, are closed and counted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_enum::server::RecordSink;
use tollgate_enum::{EnumConfig, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::{CompiledPolicy, InstalledPolicy};
use tollgate_records::spool::{Spool, SpoolOptions, read_all, segments};
use tollgate_records::{Protocol, Record, Transport};
use tollgate_sip_redirect::metrics::{ReasonLabels, RedirectMetrics};
use tollgate_sip_redirect::server::{RedirectServer, TlsListeners};
use tollgate_sip_redirect::{RedirectConfig, Redirector};
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest};
use tollgate_tls::rustls::pki_types::ServerName;
use tollgate_tls::rustls::pki_types::pem::PemObject;
use tollgate_tls::rustls::{self, ClientConfig, RootCertStore};
use tollgate_tls::tokio_rustls::{TlsAcceptor, TlsConnector};
use tollgate_tls::{Role, TlsFiles, TlsMaterial, Versions, server_config_without_client_auth};

mod common;
use common::{closed_by_server, requests, until};

const OPTIONS: &[u8] = b"OPTIONS sip:tollgate@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-1\r\n\
From: <sip:sbc@127.0.0.1>;tag=1\r\nTo: <sip:tollgate@127.0.0.1>\r\n\
Call-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

const INVITE: &[u8] = b"INVITE sip:+12125550123@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls-2\r\n\
From: <sip:+13125550100@127.0.0.1>;tag=2\r\nTo: <sip:+12125550123@127.0.0.1>\r\n\
Call-ID: tls-2\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
Contact: <sip:sbc@127.0.0.1:5999;transport=tls>\r\nContent-Length: 0\r\n\r\n";

struct Running {
    server: RedirectServer,
    metrics: Arc<RedirectMetrics>,
    /// The CA's certificate, PEM: what clients trust.
    ca_pem: String,
    spool_dir: tempfile::TempDir,
    /// The server's material (to reload) and where its CA and files are.
    material: TlsMaterial,
    pki: tempfile::TempDir,
}

/// The TLS material of an engine certificate for 127.0.0.1 from a fresh CA in `dir`.
fn material(dir: &Path) -> (TlsMaterial, String) {
    let ca = Ca::init(&dir.join("ca"), "sip-tls-test", DEFAULT_CA_VALIDITY).unwrap();
    let issued = ca
        .issue(&IssueRequest {
            role: Role::Engine,
            host: "127.0.0.1".into(),
            ips: vec![],
            dns_names: vec!["engine.test".into()],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let (cert, key) = (dir.join("engine.crt"), dir.join("engine.key"));
    issued.write(&cert, &key).unwrap();
    let files = TlsFiles { ca: dir.join("ca").join("ca.crt"), cert: Some(cert), key: Some(key) };
    (TlsMaterial::load(files).unwrap(), ca.cert_pem().to_string())
}

async fn start(config: RedirectConfig) -> Running {
    let pki = tempfile::tempdir().unwrap();
    let (material, ca_pem) = material(pki.path());
    let server_config = server_config_without_client_auth(&material, Versions::Tls12And13, &[]).unwrap();
    let tls = TlsListeners { addrs: vec!["127.0.0.1:0".parse().unwrap()], acceptor: TlsAcceptor::from(server_config) };
    let policy = Arc::new(InstalledPolicy::new(None, CompiledPolicy::allow_all()));
    let responder = Arc::new(Responder::new(EnumConfig::default(), DialingPlan::nanp(), policy, "tls-test"));
    let metrics = RedirectMetrics::unregistered();
    let redirector = Arc::new(Redirector::new(config, responder));
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(spool_dir.path(), SpoolOptions::default()).unwrap();
    let server =
        RedirectServer::start_with_tls(redirector, RecordSink::Spool(spool), metrics.clone(), &[], &[], Some(&tls))
            .await
            .unwrap();
    assert!(server.tcp_addrs.is_empty() && server.udp_addrs.is_empty(), "only the TLS listener");
    Running { server, metrics, ca_pem, spool_dir, material, pki }
}

/// A client trusting only the CA (no client certificate, as an SBC with its own PKI).
fn connector(ca_pem: &str, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Reads one SIP response (head and Content-Length body) from `stream`.
async fn response<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length:").or_else(|| l.strip_prefix("l:")))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if got.len() >= end + 4 + length {
                    return String::from_utf8_lossy(&got[..end + 4 + length]).to_string();
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("a response within 60 s")
}

fn reason(m: &RedirectMetrics, reason: &'static str) -> u64 {
    m.tcp_closed.get_or_create(&ReasonLabels { reason }).get()
}

#[tokio::test]
async fn options_and_invite_are_answered_over_tls_1_3_and_1_2_and_the_decision_is_spooled() {
    let run = start(RedirectConfig::default()).await;
    let addr: SocketAddr = run.server.tls_addrs[0];
    let versions: [&[&'static rustls::SupportedProtocolVersion]; 2] =
        [&[&rustls::version::TLS13], &[&rustls::version::TLS12]];
    for (i, version) in versions.into_iter().enumerate() {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("engine.test").unwrap();
        let mut tls = connector(&run.ca_pem, version).connect(name, tcp).await.expect("handshake");
        let spoken = tls.get_ref().1.protocol_version().unwrap();
        assert_eq!(spoken, version[0].version, "the version the client asked for");
        tls.write_all(OPTIONS).await.unwrap();
        let options = response(&mut tls).await;
        assert!(options.starts_with("SIP/2.0 200"), "{options}");
        assert!(options.contains("Call-ID: tls-1"), "{options}");
        // A new Call-ID per version: a second INVITE of the same transaction would be its
        // retransmission.
        let invite = String::from_utf8_lossy(INVITE).replace("tls-2", &format!("tls-2-{i}"));
        tls.write_all(invite.as_bytes()).await.unwrap();
        let answer = response(&mut tls).await;
        assert!(answer.starts_with("SIP/2.0 302"), "{answer}");
        assert!(answer.contains("<sip:+12125550123@127.0.0.1>"), "the target as dialled: {answer}");
        assert!(answer.contains(&format!("branch=z9hG4bK-tls-2-{i}")), "the request's Via: {answer}");
    }
    let m = &run.metrics;
    assert_eq!(requests(m, "OPTIONS", "tls"), 2);
    assert_eq!(requests(m, "INVITE", "tls"), 2);
    assert_eq!(requests(m, "INVITE", "tcp"), 0, "counted as TLS, not TCP");
    assert_eq!(m.tls.accepted.get(), 2, "connections counted under the TLS listener");
    assert_eq!(m.tcp.accepted.get(), 0, "not under the TCP listener");
    run.server.shutdown().await;
    let records = read_all(run.spool_dir.path()).unwrap();
    assert_eq!(records.len(), 2, "one record per INVITE: {records:?}");
    for r in records {
        let Record::EnumQuery { record, .. } = r else { panic!("not a decision record: {r:?}") };
        assert_eq!(record.protocol, Protocol::Sip);
        assert_eq!(record.transport, Transport::Tcp, "records name the IP protocol");
        assert_eq!(record.action, "allow");
        assert_eq!(record.destination.to_string(), "+12125550123");
    }
    let lanes: Vec<String> = segments(run.spool_dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().split('-').next().unwrap().to_string())
        .collect();
    assert!(lanes.iter().all(|l| l == "sip_tls0"), "the TLS listener's own lane: {lanes:?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed_at_the_idle_timeout_and_counted() {
    let run = start(RedirectConfig { tcp_idle_timeout_secs: 1, ..Default::default() }).await;
    let mut stream = TcpStream::connect(run.server.tls_addrs[0]).await.unwrap();
    // The first bytes of a ClientHello record header, then nothing.
    stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(closed_by_server(&mut stream, Duration::from_secs(60)).await, "closed by the server");
    let m = &run.metrics;
    until("the close counted", || reason(m, "handshake_timeout") == 1).await;
    assert_eq!(reason(m, "handshake_failed"), 0);
    assert_eq!(m.tls.accepted.get(), 1);
    until("the connection's slot freed", || m.tls.open.get() == 0).await;
    assert_eq!((m.tls.idle_closed.get(), m.tcp.idle_closed.get()), (1, 0), "closed idle, counted as TLS");
    run.server.shutdown().await;
}

#[tokio::test]
async fn plain_sip_to_the_tls_port_is_closed_counted_and_not_handled() {
    let run = start(RedirectConfig::default()).await;
    let mut stream = TcpStream::connect(run.server.tls_addrs[0]).await.unwrap();
    stream.write_all(OPTIONS).await.unwrap();
    assert!(closed_by_server(&mut stream, Duration::from_secs(60)).await, "closed by the server");
    let m = &run.metrics;
    until("the close counted", || reason(m, "handshake_failed") == 1).await;
    assert_eq!(requests(m, "OPTIONS", "tls") + requests(m, "OPTIONS", "tcp"), 0, "nothing handled");
    // The listener keeps serving TLS clients after it.
    let tcp = TcpStream::connect(run.server.tls_addrs[0]).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector(&run.ca_pem, rustls::DEFAULT_VERSIONS).connect(name, tcp).await.expect("handshake");
    tls.write_all(OPTIONS).await.unwrap();
    assert!(response(&mut tls).await.starts_with("SIP/2.0 200"));
    run.server.shutdown().await;
}

#[tokio::test]
async fn a_client_not_trusting_the_certificate_fails_the_handshake_and_is_counted() {
    let run = start(RedirectConfig::default()).await;
    let other = tempfile::tempdir().unwrap();
    let (_, other_ca) = material(other.path());
    let tcp = TcpStream::connect(run.server.tls_addrs[0]).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let refused = connector(&other_ca, rustls::DEFAULT_VERSIONS).connect(name, tcp).await;
    assert!(refused.is_err(), "a certificate of another CA is refused by the client");
    let m = &run.metrics;
    until("the failed handshake counted", || reason(m, "handshake_failed") == 1).await;
    assert_eq!(m.tls.tls_failed.get(), 1, "tollgate_connections_tls_failed_total{{listener=\"sip_redirect_tls\"}}");
    run.server.shutdown().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_presented_to_the_next_handshake() {
    let run = start(RedirectConfig::default()).await;
    let addr = run.server.tls_addrs[0];
    let connect = |name: &'static str| {
        let connector = connector(&run.ca_pem, rustls::DEFAULT_VERSIONS);
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector.connect(ServerName::try_from(name).unwrap(), tcp).await
        }
    };
    assert!(connect("rotated.test").await.is_err(), "the first certificate does not name rotated.test");
    // A new certificate of the same CA naming rotated.test, written where [tls] points.
    let ca = Ca::load(&run.pki.path().join("ca")).unwrap();
    let issued = ca
        .issue(&IssueRequest {
            role: Role::Engine,
            host: "127.0.0.1".into(),
            ips: vec![],
            dns_names: vec!["rotated.test".into()],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    issued.write(&run.pki.path().join("engine.crt"), &run.pki.path().join("engine.key")).unwrap();
    assert!(matches!(run.material.reload().unwrap(), tollgate_tls::Reloaded::Changed(_)));
    let mut tls = connect("rotated.test").await.expect("the rotated certificate, no restart");
    tls.write_all(OPTIONS).await.unwrap();
    assert!(response(&mut tls).await.starts_with("SIP/2.0 200"));
    run.server.shutdown().await;
}
