//! SIP over TLS to the engine's redirect server behind a real SBC: Kamailio with its tls module
//! (tests/e2e/kamailio-redirect-tls.cfg) relays each INVITE to `tollgate engine`'s
//! `sip_redirect.listen_tls` over TLS, verifying the engine's certificate against tollgate's CA
//! (`ca_list`, `verify_certificate = yes`, TLS 1.2 or later), and follows the engine's 302
//! (uac_redirect `get_redirects()`) to a SIPp callee. All on 127.0.124.0/24 (no other test uses
//! it).
//!
//! * `kamailio_asks_over_tls_and_follows_the_redirect`: SIPp's calls are answered at the
//!   caller, the callee's Request-URI is the 302's Contact, and the engine's records say the
//!   decision (`protocol` sip, `transport` tcp, the rule, `rcode` 302, client `kamailio`), one
//!   per call; a rejected call gets the policy's 603 at the caller over the same TLS link.

mod common;

use std::path::Path;

use common::sip::{Callee, Kamailio, call, require_root_and_peers};
use common::{Engine, EngineOptions, free_port, text};
use tollgate_tls::Role;
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest};

const NET: &str = "127.0.124";

const POLICY: &str = r#"
schema = 1
name = "sip-redirect-tls-e2e"

[[rule]]
name = "reject-robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "allow-test-call"
destination = "+12125550100"
action = "allow"
"#;

/// tollgate's CA in `dir`, with an engine certificate for `engine_ip` and one for the SBC's
/// own TLS socket; returns (CA file, engine cert, engine key, SBC cert, SBC key).
fn pki(dir: &Path, engine_ip: &str, sbc_ip: &str) -> [std::path::PathBuf; 5] {
    let ca = Ca::init(&dir.join("ca"), "sip-tls-e2e", DEFAULT_CA_VALIDITY).unwrap();
    let issue = |role: Role, host: &str, name: &str| {
        let issued = ca
            .issue(&IssueRequest {
                role,
                host: host.into(),
                // The API (the CLI's policy install) is on loopback.
                ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
                dns_names: vec![],
                validity: DEFAULT_CERT_VALIDITY,
            })
            .unwrap();
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        issued.write(&cert, &key).unwrap();
        (cert, key)
    };
    let (engine_cert, engine_key) = issue(Role::Engine, engine_ip, "engine");
    let (sbc_cert, sbc_key) = issue(Role::Operator, sbc_ip, "sbc");
    [dir.join("ca").join("ca.crt"), engine_cert, engine_key, sbc_cert, sbc_key]
}

/// Every record the engine has spooled, as JSON.
fn records(e: &Engine) -> Vec<serde_json::Value> {
    let dir = e.state.join("spool");
    let out = e.cli(&["spool", "dump", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "spool dump: {:?}", text(&out));
    text(&out).0.lines().map(|l| serde_json::from_str(l).expect("a JSON record")).collect()
}

#[test]
fn kamailio_asks_over_tls_and_follows_the_redirect() {
    require_root_and_peers();
    assert!(
        Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").exists()
            || Path::new("/usr/lib/aarch64-linux-gnu/kamailio/modules/tls.so").exists()
            || Path::new("/usr/lib/kamailio/modules/tls.so").exists(),
        "Kamailio's tls module is missing: install the Debian package kamailio-tls-modules (scripts/install-test-deps.sh)"
    );
    let (engine_ip, sbc_ip, normal_ip, caller_ip) =
        (format!("{NET}.11"), format!("{NET}.50"), format!("{NET}.60"), format!("{NET}.70"));
    let work = tempfile::tempdir().unwrap();
    let [ca, engine_cert, engine_key, sbc_cert, sbc_key] = pki(work.path(), &engine_ip, &sbc_ip);
    let policy = work.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();

    let other_sbc_ip = format!("{NET}.51");
    let extra = format!(
        r#"
[sip_redirect]
listen_tls = ["{engine_ip}:5061"]

[[sip_redirect.clients]]
name = "kamailio"
addresses = ["{sbc_ip}/32"]

[[sip_redirect.clients]]
name = "kamailio-other-ca"
addresses = ["{other_sbc_ip}/32"]

[sip_redirect.answers]
allow = {{ kind = "redirect", code = 302, contact = "{{ruri}}" }}
reject = {{ kind = "final" }}

[tls]
ca = "{ca}"
cert = "{engine_cert}"
key = "{engine_key}"
"#,
        ca = ca.display(),
        engine_cert = engine_cert.display(),
        engine_key = engine_key.display(),
    );
    let engine = Engine::start(EngineOptions {
        node: "sip-tls-engine".into(),
        role: "engine",
        enum_listen: vec![format!("{engine_ip}:{}", free_port(&engine_ip)).parse().unwrap()],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: extra,
        ..Default::default()
    });
    assert!(engine.ready.contains(&format!("sip_tls={engine_ip}:5061")), "ready line: {}", engine.ready);
    // The CLI reaches the API over HTTPS with the configuration's [tls] CA.
    let out = engine.cli(&["policy", "install", policy.to_str().unwrap(), "--api", &engine.api]);
    assert!(out.status.success(), "policy install: {:?}", text(&out));

    let tls_cfg = work.path().join("tls.cfg");
    let write_tls_cfg = |path: &Path, ca: &Path| {
        std::fs::write(
        path,
        format!(
            "[server:default]\nmethod = TLSv1.2+\ncertificate = {sbc_cert}\nprivate_key = {sbc_key}\n\
             verify_certificate = no\nrequire_certificate = no\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\nca_list = {ca}\n",
            sbc_cert = sbc_cert.display(),
            sbc_key = sbc_key.display(),
            ca = ca.display(),
        ),
        )
        .unwrap()
    };
    write_tls_cfg(&tls_cfg, &ca);
    let normal = Callee::start(&normal_ip);
    let engine_tls = format!("{engine_ip}:5061");
    let sbc = Kamailio::start_config(
        &sbc_ip,
        "kamailio-redirect-tls.cfg",
        &[
            ("@SBC_IP@", &sbc_ip),
            ("@NORMAL_IP@", &normal_ip),
            ("@ENGINE_TLS@", &engine_tls),
            ("@TLS_CFG@", tls_cfg.to_str().unwrap()),
        ],
    );

    // Allowed: the engine's 302 over TLS points at the normal route, which Kamailio follows.
    for _ in 0..2 {
        assert!(call(&caller_ip, &sbc.ip, "14155550000", "12125550100", false), "allowed call failed:\n{}", sbc.log());
    }
    assert_eq!(normal.invites(), vec![format!("sip:+12125550100@{normal_ip}:5080"); 2], "the callee reached");
    // Rejected: the policy's 603 comes back to the caller.
    assert!(call(&caller_ip, &sbc.ip, "13125550666", "12125550100", true), "603 expected:\n{}", sbc.log());
    assert_eq!(normal.invites().len(), 2, "the rejected call reached nobody");
    assert!(sbc.log().contains("over TLS: following the redirect"), "Kamailio's log:\n{}", sbc.log());

    let recs = records(&engine);
    let summary: Vec<[String; 6]> = recs
        .iter()
        .map(|r| {
            ["protocol", "transport", "client", "source", "rule", "rcode"]
                .map(|f| r[f].as_str().map_or_else(|| r[f].to_string(), String::from))
        })
        .collect();
    let row = |source: &str, rule: &str, rcode: &str| ["sip", "tcp", "kamailio", source, rule, rcode].map(String::from);
    assert_eq!(
        summary,
        vec![
            row("+14155550000", "allow-test-call", "302"),
            row("+14155550000", "allow-test-call", "302"),
            row("+13125550666", "reject-robocaller", "603"),
        ],
        "one record per call, over the TLS listener: {recs:#?}"
    );

    // An SBC trusting another CA refuses the engine's certificate: no call is asked, none
    // recorded (Kamailio's verification is in force, not skipped).
    drop(sbc);
    let other = tempfile::tempdir().unwrap();
    let [other_ca, ..] = pki(other.path(), &engine_ip, &other_sbc_ip);
    let other_cfg = other.path().join("tls.cfg");
    write_tls_cfg(&other_cfg, &other_ca);
    let untrusting = Kamailio::start_config(
        &other_sbc_ip,
        "kamailio-redirect-tls.cfg",
        &[
            ("@SBC_IP@", &other_sbc_ip),
            ("@NORMAL_IP@", &normal_ip),
            ("@ENGINE_TLS@", &engine_tls),
            ("@TLS_CFG@", other_cfg.to_str().unwrap()),
        ],
    );
    assert!(!call(&caller_ip, &untrusting.ip, "14155550000", "12125550100", false), "{}", untrusting.log());
    assert!(untrusting.log().contains("certificate verify failed"), "why it failed:\n{}", untrusting.log());
    assert_eq!(normal.invites().len(), 2, "the call reached nobody");
    assert_eq!(records(&engine).len(), 3, "nothing decided over a refused handshake");
}
