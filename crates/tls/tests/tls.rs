//! The CA, the material and the role rules, through real TLS handshakes on loopback.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
use tollgate_tls::rustls::pki_types::ServerName;
use tollgate_tls::tokio_rustls::{TlsAcceptor, TlsConnector};
use tollgate_tls::{
    ClientPolicy, PeerIdentity, Reloaded, Role, RoleSet, TlsFiles, TlsMaterial, Versions, client_config, server_config,
};

fn issue(ca: &Ca, dir: &Path, role: Role, host: &str) -> TlsFiles {
    let issued = ca
        .issue(&IssueRequest {
            role,
            host: host.into(),
            ips: vec!["127.0.0.1".parse().unwrap()],
            dns_names: vec![],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    let (cert, key) = issued_paths(dir, host);
    issued.write(&cert, &key).unwrap();
    TlsFiles { ca: dir.join("ca.crt"), cert: Some(cert), key: Some(key) }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A TLS echo server: answers each connection with the peer's role, then closes.
async fn serve(material: &TlsMaterial, policy: ClientPolicy) -> SocketAddr {
    let config = server_config(material, policy, Versions::Tls13, &[]).unwrap();
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let peer = PeerIdentity::from_chain(tls.get_ref().1.peer_certificates());
                    let said = peer.map_or("anonymous".to_string(), |p| format!("{:?}@{:?}", p.role, p.host));
                    let _ = tls.write_all(said.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Connects as `client` expecting a server of `servers`, named `name`; what the server said
/// about us, or the error.
async fn call(client: &TlsMaterial, servers: RoleSet, addr: SocketAddr, name: &str) -> Result<String, String> {
    let config = client_config(client, servers, Versions::Tls13, &[]).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut tls = TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let mut said = String::new();
    // TLS 1.3: a refused client certificate shows on the first read.
    tls.read_to_string(&mut said).await.map_err(|e| e.to_string())?;
    Ok(said)
}

#[test]
fn the_ca_writes_its_key_owner_only_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let ca = Ca::init(&pki, "tollgate test CA", DEFAULT_CA_VALIDITY).unwrap();
    assert!(ca.info().is_ca);
    assert_eq!(mode(&pki.join("ca.key")), 0o600);
    assert_eq!(mode(&pki.join("ca.crt")), 0o644);
    assert_eq!(mode(&pki), 0o700);
    let again = Ca::init(&pki, "another", DEFAULT_CA_VALIDITY).unwrap_err();
    assert!(again.to_string().contains("never overwritten"), "{again}");
    assert_eq!(Ca::load(&pki).unwrap().info().sha256_fingerprint, ca.info().sha256_fingerprint);

    let files = issue(&ca, &pki, Role::Engine, "east-a");
    assert_eq!(mode(files.key.as_ref().unwrap()), 0o600);
    let info = tollgate_tls::pki::describe_file(files.cert.as_ref().unwrap()).unwrap().remove(0);
    assert_eq!(info.role, Some(Role::Engine));
    assert_eq!(info.common_name.as_deref(), Some("east-a"));
    assert_eq!(info.dns_names, ["east-a"]);
    assert_eq!(info.ip_addresses, ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert!(!info.is_ca);
    assert_eq!(info.issuer, ca.info().subject);
}

#[test]
fn material_that_does_not_fit_together_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::init(&dir.path().join("ours"), "ours", DEFAULT_CA_VALIDITY).unwrap();
    let theirs = Ca::init(&dir.path().join("theirs"), "theirs", DEFAULT_CA_VALIDITY).unwrap();
    let good = issue(&ours, &dir.path().join("ours"), Role::Engine, "east-a");
    let foreign = issue(&theirs, &dir.path().join("theirs"), Role::Engine, "east-b");

    let wrong_ca = TlsFiles { ca: good.ca.clone(), ..foreign.clone() };
    let e = TlsMaterial::load(wrong_ca).unwrap_err().to_string();
    assert!(e.contains("east-b.crt") && e.contains("not one of the CA"), "{e}");

    let wrong_key = TlsFiles { key: foreign.key.clone(), ..good.clone() };
    let e = TlsMaterial::load(wrong_key).unwrap_err().to_string();
    assert!(e.contains("is not the key of"), "{e}");

    let not_a_ca = TlsFiles { ca: good.cert.clone().unwrap(), ..good.clone() };
    let e = TlsMaterial::load(not_a_ca).unwrap_err().to_string();
    assert!(e.contains("is not a CA certificate"), "{e}");

    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let empty = TlsFiles { cert: Some(dir.path().join("empty.pem")), ..good.clone() };
    let e = TlsMaterial::load(empty).unwrap_err().to_string();
    assert!(e.contains("empty.pem: holds no certificate"), "{e}");

    let missing = TlsFiles { key: None, ..good };
    assert!(TlsMaterial::load(missing).is_err());
}

#[tokio::test]
async fn a_link_accepts_only_certificates_of_its_ca_naming_an_accepted_role() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let ca = Ca::init(&pki, "ours", DEFAULT_CA_VALIDITY).unwrap();
    let other = Ca::init(&dir.path().join("other"), "other", DEFAULT_CA_VALIDITY).unwrap();
    let agent = TlsMaterial::load(issue(&ca, &pki, Role::Engine, "east-a")).unwrap();
    let manager = TlsMaterial::load(issue(&ca, &pki, Role::Manager, "mgr-a")).unwrap();
    let engine_b = TlsMaterial::load(issue(&ca, &pki, Role::Engine, "east-b")).unwrap();
    let stranger_files = issue(&other, &dir.path().join("other"), Role::Manager, "mgr-x");
    let stranger = TlsMaterial::load(stranger_files.clone()).unwrap();
    // A client that trusts our CA but has no certificate of its own.
    let anonymous = TlsMaterial::load(TlsFiles { ca: pki.join("ca.crt"), cert: None, key: None }).unwrap();
    // A client of our CA presenting the other CA's certificate.
    let impostor = TlsMaterial::load(TlsFiles { ca: pki.join("ca.crt"), ..stranger_files }).unwrap_err();
    assert!(impostor.to_string().contains("not one of the CA"));

    // The agent's listener: managers only, certificate required.
    let addr = serve(&agent, ClientPolicy::only(RoleSet::of(&[Role::Manager]))).await;
    let said = call(&manager, RoleSet::of(&[Role::Engine]), addr, "east-a").await.unwrap();
    assert_eq!(said, "Some(Manager)@Some(\"mgr-a\")");
    let e = call(&engine_b, RoleSet::of(&[Role::Engine]), addr, "east-a").await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "an engine calling an agent: {e}");
    let e = call(&anonymous, RoleSet::of(&[Role::Engine]), addr, "east-a").await.unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "no certificate: {e}");
    let e = call(&stranger, RoleSet::ANY, addr, "east-a").await.unwrap_err();
    assert!(e.contains("UnknownIssuer") || e.contains("issuer"), "another CA's client: {e}");
    // The client's own checks: the server's name and role.
    let e = call(&manager, RoleSet::of(&[Role::Engine]), addr, "east-b").await.unwrap_err();
    assert!(e.contains("NotValidForName") || e.contains("name"), "wrong host: {e}");
    let e = call(&manager, RoleSet::of(&[Role::Collector]), addr, "east-a").await.unwrap_err();
    assert!(e.contains("names role 'engine'; this link accepts only collector"), "wrong server role: {e}");

    // A listener for people and machines: no certificate is let through, a foreign one is not.
    let addr = serve(&agent, ClientPolicy::OPTIONAL).await;
    assert_eq!(call(&anonymous, RoleSet::ANY, addr, "127.0.0.1").await.unwrap(), "anonymous");
    assert_eq!(call(&engine_b, RoleSet::ANY, addr, "east-a").await.unwrap(), "Some(Engine)@Some(\"east-b\")");
    assert!(call(&stranger, RoleSet::ANY, addr, "east-a").await.is_err());
}

#[tokio::test]
async fn a_rotated_certificate_is_presented_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let ca = Ca::init(&pki, "ours", DEFAULT_CA_VALIDITY).unwrap();
    let server_files = issue(&ca, &pki, Role::Collector, "coll-a");
    let server = TlsMaterial::load(server_files.clone()).unwrap();
    let client = TlsMaterial::load(issue(&ca, &pki, Role::Engine, "east-a")).unwrap();
    let first_serial = server.leaf().unwrap().serial;
    let addr = serve(&server, ClientPolicy::OPTIONAL).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));

    // What the client sees of the server's certificate.
    let serial_seen = |seen: Arc<std::sync::Mutex<Vec<String>>>| {
        let client = client.clone();
        async move {
            let config = client_config(&client, RoleSet::ANY, Versions::Tls13, &[]).unwrap();
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tls = TlsConnector::from(config).connect(ServerName::try_from("coll-a").unwrap(), tcp).await.unwrap();
            let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            let serial = tollgate_tls::CertInfo::from_der(&cert).unwrap().serial;
            seen.lock().unwrap().push(serial.clone());
            serial
        }
    };
    assert_eq!(serial_seen(seen.clone()).await, first_serial);
    assert_eq!(server.reload().unwrap(), Reloaded::Unchanged);

    // A half-done rotation (the new key written, the certificate not yet): refused, the old
    // material stays in force.
    let next = ca
        .issue(&IssueRequest {
            role: Role::Collector,
            host: "coll-a".into(),
            ips: vec![],
            dns_names: vec![],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    std::fs::write(server_files.key.as_ref().unwrap(), &next.key_pem).unwrap();
    assert!(server.reload().unwrap_err().to_string().contains("is not the key of"));
    assert_eq!(server.reload_failures(), 1);
    assert_eq!(serial_seen(seen.clone()).await, first_serial);

    // The rotation completes; the watcher picks it up on its own.
    let _watch = server.spawn_watch(Duration::from_millis(100));
    next.write(server_files.cert.as_ref().unwrap(), server_files.key.as_ref().unwrap()).unwrap();
    let new_serial = next.info.serial.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.leaf().unwrap().serial != new_serial {
        assert!(tokio::time::Instant::now() < deadline, "the watcher did not reload the rotated certificate");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(serial_seen(seen).await, new_serial);
    assert_eq!(server.reloads(), 1);
}
