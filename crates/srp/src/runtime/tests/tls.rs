//! A pair whose link is TLS: the election and the checkpoints work as on a plain link, and a
//! mate whose certificate is refused is a mate that cannot be reached, until its certificate
//! is rotated (no restart), when the pair heals into exactly one Active.

use std::net::IpAddr;

use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
use tollgate_tls::{Reloaded, Role, TlsFiles, TlsMaterial};

use super::*;
use crate::link::LinkStatistics;

/// An engine certificate of `ca` for `host` at 127.0.0.1, written to `dir`; its files, trusting
/// the CA certificate(s) in `trust`.
fn engine_files(ca: &Ca, dir: &std::path::Path, host: &str, trust: std::path::PathBuf) -> TlsFiles {
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
    TlsFiles { ca: trust, cert: Some(cert), key: Some(key) }
}

impl Running {
    async fn link_statistics(&self) -> LinkStatistics {
        match self.handle.request(SrpRequest::Show(SrpView::Statistics)).await.unwrap().data {
            SrpData::Statistics(s) => s.link,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn over_tls_the_pair_elects_replicates_and_switches_over() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::init(&dir.path().join("ca"), "pair CA", DEFAULT_CA_VALIDITY).unwrap();
    let trust = dir.path().join("ca").join("ca.crt");
    let material = |host| TlsMaterial::load(engine_files(&ca, dir.path(), host, trust.clone())).unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = run_with(config("engine-a", ChassisMode::Primary, 1, pa, pb), false, LinkSecurity::Tls(material("east-a")))
        .await;
    let b = run_with(config("engine-b", ChassisMode::Backup, 2, pb, pa), false, LinkSecurity::Tls(material("east-b")))
        .await;
    until(20, "engine-a Active, engine-b a synchronised Standby", || async {
        a.serving() && !b.serving() && b.info().await.chassis_state == State::Standby && b.info().await.ready
    })
    .await;
    a.counters.set("+12125550100", 3);
    until(10, "the counter checkpointed to the standby", || async { b.copy().await.len() == 1 }).await;
    for s in [a.link_statistics().await, b.link_statistics().await] {
        assert_eq!((s.tls_failures, s.handshake_failures, s.auth_failures), (0, 0, 0), "{s:?}");
    }

    // A manual switchover and back, then the Active gone: as on a plain link.
    let done = a.handle.request(SrpRequest::InitiateSwitchover { force: false }).await.unwrap();
    assert_eq!(done.data, SrpData::SwitchoverDone(SwitchoverDone { state: State::Standby }));
    until(10, "engine-b serves, engine-a does not", || async { b.serving() && !a.serving() }).await;
    until(10, "engine-a a synchronised Standby", || async { a.info().await.ready }).await;
    b.handle.stop().await;
    until(10, "engine-a serves again", || async { a.serving() }).await;
    assert_eq!(a.counters.get("+12125550100"), Some(3), "the state went both ways over TLS");
    a.handle.stop().await;
}

#[tokio::test]
async fn a_mate_whose_certificate_is_refused_is_unreachable_until_it_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Ca::init(&dir.path().join("ours"), "pair CA", DEFAULT_CA_VALIDITY).unwrap();
    let theirs = Ca::init(&dir.path().join("theirs"), "another CA", DEFAULT_CA_VALIDITY).unwrap();
    let our_ca = dir.path().join("ours").join("ca.crt");
    // engine-b trusts both CAs but presents a certificate of the other one.
    let both = dir.path().join("both.crt");
    let pem = [std::fs::read(&our_ca).unwrap(), std::fs::read(dir.path().join("theirs").join("ca.crt")).unwrap()];
    std::fs::write(&both, pem.concat()).unwrap();
    let a_material = TlsMaterial::load(engine_files(&ours, dir.path(), "east-a", our_ca.clone())).unwrap();
    let b_files = engine_files(&theirs, dir.path(), "east-b", both);
    let b_material = TlsMaterial::load(b_files.clone()).unwrap();

    let (pa, pb) = (free_port(), free_port());
    let a = run_with(config("engine-a", ChassisMode::Primary, 1, pa, pb), false, LinkSecurity::Tls(a_material)).await;
    let b = run_with(config("engine-b", ChassisMode::Backup, 2, pb, pa), false, LinkSecurity::Tls(b_material.clone()))
        .await;
    // The rule for a mate not heard within the dead interval (a wrong key, a cut cable): each
    // chassis serves. The refusals are counted where they happen.
    until(20, "both serve, the link refused", || async {
        a.serving()
            && b.serving()
            && a.link_statistics().await.tls_failures >= 2
            && b.link_statistics().await.tls_failures >= 2
    })
    .await;
    assert!(a.info().await.connection.is_none() && b.info().await.connection.is_none());
    assert_eq!((a.link_statistics().await.connects, b.link_statistics().await.connects), (0, 0));

    // engine-b's certificate rotated to one of the pair's CA: the next handshake succeeds, and
    // the two Actives resolve into one, as after a healed partition.
    let (cert, key) = (b_files.cert.clone().unwrap(), b_files.key.clone().unwrap());
    let issued = ours
        .issue(&IssueRequest {
            role: Role::Engine,
            host: "east-b".into(),
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            dns_names: vec![],
            validity: DEFAULT_CERT_VALIDITY,
        })
        .unwrap();
    issued.write(&cert, &key).unwrap();
    assert!(matches!(b_material.reload().unwrap(), Reloaded::Changed(_)));
    until(20, "exactly one Active, its mate a synchronised Standby", || async {
        let (ia, ib) = (a.info().await, b.info().await);
        a.serving() != b.serving()
            && ia.connection.is_some()
            && ib.connection.is_some()
            && [ia.chassis_state, ib.chassis_state].contains(&State::Active)
            && [ia.chassis_state, ib.chassis_state].contains(&State::Standby)
    })
    .await;
    a.handle.stop().await;
    b.handle.stop().await;
}
