//! What TLS adds to a link (re)connection: the time from starting a dialer to both links
//! reporting the connection up (TCP connect, the TLS 1.3 handshake with mutual certificates
//! when on, and SRP's HMAC handshake), plain and TLS alternating, on 127.0.0.1. This is the
//! part of a reconnection after a failure that TLS changes. Prints a Markdown table.
//!
//! `cargo bench -p tollgate-srp --bench link_connect -- [RUNS]` (default 200).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tollgate_srp::compress::Compression;
use tollgate_srp::link::{Link, LinkConfig, LinkEvent, LinkRole};
use tollgate_srp::link_tls::LinkTls;
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
use tollgate_tls::{Role, TlsFiles, TlsMaterial};

fn config(node: &str, role: LinkRole, peer: SocketAddr, tls: Option<&TlsMaterial>) -> LinkConfig {
    let mut c = LinkConfig::from_config(&tollgate_srp::SrpConfig::new(
        node,
        "127.0.0.1:0".parse().unwrap(),
        peer,
        "tollgate-srp-bench-key-0123456789",
        tollgate_srp::ChassisMode::Primary,
        1,
    ));
    (c.role, c.compression, c.hello_interval, c.dead_interval) =
        (role, Compression::Zlib, Duration::from_millis(100), Duration::from_millis(300));
    c.tls = tls.map(|m| LinkTls::new(m, peer).expect("TLS configuration"));
    c
}

async fn up(rx: &mut mpsc::Receiver<LinkEvent>) {
    while let Some(e) = rx.recv().await {
        if matches!(e, LinkEvent::Connected(_)) {
            return;
        }
    }
    panic!("link closed before connecting");
}

/// Starts an acceptor and a dialer; the time until both are connected.
async fn connect_once(acceptor_tls: Option<&TlsMaterial>, dialer_tls: Option<&TlsMaterial>) -> Duration {
    let unused: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (a, mut ae) = Link::start(config("n-acceptor", LinkRole::Accept, unused, acceptor_tls)).await.unwrap();
    let addr = a.local_addr().unwrap();
    let started = Instant::now();
    let (d, mut de) = Link::start(config("n-dialer", LinkRole::Dial, addr, dialer_tls)).await.unwrap();
    up(&mut de).await;
    up(&mut ae).await;
    let took = started.elapsed();
    d.shutdown().await;
    a.shutdown().await;
    took
}

fn material(ca: &Ca, dir: &std::path::Path, host: &str) -> TlsMaterial {
    let issued = ca
        .issue(&IssueRequest {
            role: Role::Engine,
            host: host.into(),
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            dns_names: vec![],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let (cert, key) = issued_paths(dir, host);
    issued.write(&cert, &key).unwrap();
    TlsMaterial::load(TlsFiles { ca: dir.join("ca").join("ca.crt"), cert: Some(cert), key: Some(key) }).unwrap()
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(&dir.path().join("ca"), "bench CA", DEFAULT_CA_VALIDITY).unwrap();
    let (east_a, east_b) = (material(&ca, dir.path(), "east-a"), material(&ca, dir.path(), "east-b"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..runs {
            plain.push(connect_once(None, None).await);
            tls.push(connect_once(Some(&east_b), Some(&east_a)).await);
        }
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("\n| link | connections | connected median (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|");
    for (name, times) in [("plain TCP", &mut plain), ("TLS 1.3", &mut tls)] {
        times.sort();
        println!(
            "| {name} | {runs} | {:.2} | {:.2} | {:.2} |",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 99 / 100]),
            ms(*times.last().unwrap())
        );
    }
}
