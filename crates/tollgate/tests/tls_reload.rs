//! A running role with `[tls]` rotates its certificate on SIGHUP without a restart: the
//! certificate it reports (`GET /api/v1/tls`) and its metrics change, its expiry alarm clears;
//! a broken rotated file keeps the certificate in force and counts a failure. SIGHUP never
//! ends the role.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Engine, EngineOptions, text, tollgate_bin, wait_until};
use tollgate_api::tls::TlsStatus;

fn pki(args: &[&str]) {
    let out = Command::new(tollgate_bin()).arg("pki").args(args).env_remove("TOLLGATE_CONFIG").output().unwrap();
    assert!(out.status.success(), "tollgate pki {args:?}: {:?}", text(&out));
}

fn tls(e: &Engine) -> TlsStatus {
    serde_json::from_value(e.get_json("/api/v1/tls")).expect("a TLS status")
}

fn serial_on_disk(cert: &Path) -> String {
    let out = Command::new(tollgate_bin())
        .args(["pki", "show", "--json"])
        .arg(cert)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list[0]["serial"].as_str().unwrap().to_string()
}

fn hangup(e: &Engine) {
    let pid = e.pid().expect("running").to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
}

fn expiring(e: &Engine) -> bool {
    e.alarms().active.iter().any(|a| a.def.name == "TLS_CERT_EXPIRING")
}

#[test]
fn sighup_puts_a_rotated_certificate_in_force_and_keeps_it_when_the_new_file_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let d = pki_dir.to_str().unwrap();
    pki(&["init", "--dir", d]);
    // 90 days: inside a warning window of 365 days, so the expiry alarm is raised at start.
    pki(&["issue", "--dir", d, "--role", "collector", "--host", "coll-1", "--ip", "127.0.0.1", "--validity", "90days"]);
    let cert = pki_dir.join("coll-1.crt");
    let first = serial_on_disk(&cert);
    // The file watch is set to a day: what changes below, SIGHUP did.
    let section = format!(
        "\n[tls]\nca = \"{d}/ca.crt\"\ncert = \"{d}/coll-1.crt\"\nkey = \"{d}/coll-1.key\"\n\
         reload_interval = \"1day\"\nexpiry_warning = \"365days\"\n"
    );
    let mut e = Engine::start(EngineOptions {
        node: "coll-1".into(),
        role: "collector",
        // The harness writes `[probe]` last: the `[tls]` section follows its body.
        probe: format!("hep_udp = []\nhep_tcp = []\n{section}"),
        ..EngineOptions::default()
    });

    let status = tls(&e);
    assert!(status.enabled);
    let leaf = status.certificate.clone().expect("the certificate in force");
    assert_eq!(leaf.serial, first);
    assert_eq!((leaf.role.as_deref(), leaf.host.as_deref()), (Some("collector"), Some("coll-1")));
    assert!((89..=90).contains(&leaf.days_left()), "{leaf:?}");
    assert_eq!(status.ca.len(), 1);
    assert!(expiring(&e), "TLS_CERT_EXPIRING at start: {:?}", e.alarms().active);
    let expiry = e.metric("tollgate_tls_certificate_expiry_seconds");
    assert!((89.0 * 86_400.0..=90.0 * 86_400.0).contains(&expiry), "{expiry}");
    assert_eq!(e.metric("tollgate_tls_reloads_total"), 0.0);

    // Rotation: a certificate of a year, then SIGHUP.
    pki(&["issue", "--dir", d, "--role", "collector", "--host", "coll-1", "--ip", "127.0.0.1", "--force"]);
    let second = serial_on_disk(&cert);
    assert_ne!(first, second);
    hangup(&e);
    wait_until(20, "the rotated certificate in force", || tls(&e).certificate.is_some_and(|c| c.serial == second));
    assert!(e.is_running(), "SIGHUP must not end the role");
    let status = tls(&e);
    assert_eq!((status.reloads, status.reload_failures, status.last_reload_error.as_deref()), (1, 0, None));
    assert_eq!(e.metric("tollgate_tls_reloads_total"), 1.0);
    assert!(e.metric("tollgate_tls_certificate_expiry_seconds") > 364.0 * 86_400.0);
    assert!(!expiring(&e), "the alarm clears after the rotation: {:?}", e.alarms().active);
    let history: Vec<(bool, String)> = e
        .alarms()
        .history
        .iter()
        .filter(|h| h.name == "TLS_CERT_EXPIRING")
        .map(|h| (h.raised, h.scope.clone()))
        .collect();
    assert_eq!(history, [(true, "coll-1 certificate".to_string()), (false, "coll-1 certificate".to_string())]);

    // A broken rotated file: the certificate in force stays, the failure is counted.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n").unwrap();
    hangup(&e);
    wait_until(20, "the failed reload counted", || tls(&e).reload_failures == 1);
    assert!(e.is_running(), "a bad file on SIGHUP must not end the role");
    let status = tls(&e);
    assert_eq!(status.certificate.as_ref().map(|c| c.serial.clone()), Some(second));
    assert!(status.last_reload_error.as_deref().is_some_and(|m| m.contains("coll-1.crt")), "{status:?}");
    assert_eq!(e.metric("tollgate_tls_reload_failures_total"), 1.0);
    assert_eq!(e.metric("tollgate_tls_reloads_total"), 1.0);
    e.stop();
}
