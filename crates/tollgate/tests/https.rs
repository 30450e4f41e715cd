//! HTTPS on every HTTP link, with real processes and certificates of a CA made here with
//! `tollgate_tls::pki`: a collector and an engine with `[tls]` (the API answers over HTTPS to
//! clients of the CA, the engine's records reach the collector over TLS, plain HTTP and a
//! certificate of another CA are refused), an agent that accepts only managers, the rule that
//! a non-loopback listener without `[tls]` does not start, and a certificate rotated on disk
//! that the running server presents to the next connection without a restart.
//!
//! Run under the e2e lock: `flock /tmp/tollgate-e2e.lock cargo test -p tollgate --test https`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Engine, EngineOptions, free_port, temp_file, text, tollgate_bin, wait_until};
use tollgate_api::BlockingClient;
use tollgate_tls::pki::{Ca, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, IssueRequest, issued_paths};
use tollgate_tls::{CertInfo, Role, RoleSet, TlsFiles, TlsMaterial, Versions, client_config};

const POLICY: &str = r#"
schema = 1
name = "tls"
[[internal]]
name = "office"
prefix = "+1212555"
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
"#;

/// The deployment's CA and another one, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    other: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::init(&dir.path().join("ca"), "tollgate test CA", DEFAULT_CA_VALIDITY).unwrap();
        let other = Ca::init(&dir.path().join("other"), "another CA", DEFAULT_CA_VALIDITY).unwrap();
        Pki { dir, ca, other }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca/ca.crt")
    }

    /// Issues a certificate of `role` for `host` (reached at 127.0.0.1) into `pki/<host>.*`.
    fn issue(&self, role: Role, host: &str) -> TlsFiles {
        issue_into(&self.ca, &self.dir.path().join("ca"), role, host)
    }

    /// A certificate of the other CA; the file of CAs it carries holds both CAs, so the client
    /// trusts our servers and only the server's check of the client's certificate is tested.
    fn stranger(&self, role: Role, host: &str) -> TlsFiles {
        let mut files = issue_into(&self.other, &self.dir.path().join("other"), role, host);
        let both = self.dir.path().join("both-cas.crt");
        let text = std::fs::read_to_string(self.ca_file()).unwrap()
            + &std::fs::read_to_string(self.dir.path().join("other/ca.crt")).unwrap();
        std::fs::write(&both, text).unwrap();
        files.ca = both;
        files
    }

    /// The `[tls]` section presenting `files`.
    fn section(&self, files: &TlsFiles) -> String {
        format!(
            "\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nreload_interval = \"1s\"\n",
            self.ca_file().display(),
            files.cert.as_ref().unwrap().display(),
            files.key.as_ref().unwrap().display()
        )
    }
}

fn issue_into(ca: &Ca, dir: &Path, role: Role, host: &str) -> TlsFiles {
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

/// A client of `base` presenting `files`' certificate (none: verify-only), expecting a server
/// certificate of any server role.
fn client(files: TlsFiles, base: &str, token: Option<&str>) -> BlockingClient {
    let material = TlsMaterial::load(files).unwrap();
    let tls = client_config(&material, RoleSet::SERVERS, Versions::Tls12And13, &[b"http/1.1"]).unwrap();
    BlockingClient::with_tls(base, token.map(String::from), Duration::from_secs(20), Some(&tls)).unwrap()
}

/// A metric's value at `/metrics` (summed over label sets), read over HTTPS.
fn metric(api: &BlockingClient, name: &str) -> f64 {
    let text = api.get_text("/metrics").unwrap();
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The certificate a TLS server at `addr` presents to a new connection.
fn presented(addr: &str, trust: &Path) -> CertInfo {
    let material = TlsMaterial::load(TlsFiles { ca: trust.to_path_buf(), cert: None, key: None }).unwrap();
    let config = client_config(&material, RoleSet::SERVERS, Versions::Tls12And13, &[]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = tollgate_tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tollgate_tls::tokio_rustls::TlsConnector::from(Arc::clone(&config)).connect(name, tcp).await.unwrap();
        let chain = tls.get_ref().1.peer_certificates().unwrap();
        CertInfo::from_der(&chain[0]).unwrap()
    })
}

fn tls_collector(pki: &Pki, files: &TlsFiles) -> Engine {
    Engine::start(EngineOptions {
        node: "collector-a".into(),
        role: "collector",
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: pki.section(files),
        ..Default::default()
    })
}

#[test]
fn engine_and_collector_speak_https_and_refuse_what_is_not_of_the_ca() {
    let pki = Pki::new();
    let collector_files = pki.issue(Role::Collector, "collector-a");
    let collector = tls_collector(&pki, &collector_files);
    assert!(collector.api.starts_with("https://127.0.0.1:"), "{}", collector.ready);
    // The CLI, through the configuration's [tls], speaks HTTPS to it.
    let token = collector.ingest_token("engine-a");

    let engine_files = pki.issue(Role::Engine, "engine-a");
    let engine = Engine::start(EngineOptions {
        node: "engine-a".into(),
        role: "engine",
        extra_config: format!(
            "{}\n[shipper]\ncollector = \"{}\"\ntoken = \"{token}\"\nbatch_records = 10\n",
            pki.section(&engine_files),
            collector.api
        ),
        ..Default::default()
    });
    assert!(engine.api.starts_with("https://"), "{}", engine.ready);
    let (_d, policy) = temp_file("tls.toml", POLICY);
    let out = engine.cli(&["policy", "install", policy.to_str().unwrap(), "--api", &engine.api]);
    assert!(out.status.success(), "policy install over HTTPS: {:?}", text(&out));

    // The API answers a client of the CA, with a certificate or without (a browser).
    let as_engine = client(engine_files.clone(), &collector.api, None);
    assert_eq!(as_engine.get_text("/healthz").unwrap().trim(), "ok");
    let verify_only = TlsFiles { ca: pki.ca_file(), cert: None, key: None };
    assert_eq!(client(verify_only.clone(), &collector.api, None).get_text("/healthz").unwrap().trim(), "ok");

    // Records reach the collector over TLS.
    let before = metric(&as_engine, "tollgate_collector_records_inserted_total");
    for _ in 0..5 {
        engine.dig(&["+short", "NAPTR", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    }
    wait_until(60, "the engine's records stored by the collector", || {
        metric(&as_engine, "tollgate_collector_records_inserted_total") >= before + 5.0
    });

    // Plain HTTP to the TLS port gets no answer; a certificate of another CA is refused; both
    // are counted as failed handshakes.
    let failed_before = metric(&as_engine, "tollgate_connections_tls_failed_total");
    let plain = reqwest::blocking::Client::new()
        .get(format!("{}/healthz", collector.api.replace("https://", "http://")))
        .timeout(Duration::from_secs(10))
        .send();
    assert!(plain.is_err(), "plain HTTP to the TLS port was answered: {plain:?}");
    let stranger = client(pki.stranger(Role::Engine, "engine-x"), &collector.api, None);
    let refused = stranger.get_text("/healthz");
    assert!(refused.is_err(), "a certificate of another CA was accepted: {refused:?}");
    wait_until(20, "both failed handshakes counted", || {
        metric(&as_engine, "tollgate_connections_tls_failed_total") >= failed_before + 2.0
    });

    // Ingest over TLS demands a shipper's certificate besides the token: a person's is refused.
    let operator = client(pki.issue(Role::Operator, "olga"), &collector.api, Some(&token));
    let answer = operator.inner().request(reqwest::Method::POST, "/api/v1/ingest").body("");
    let status = operator.block_on(async { operator.inner().send(answer).await });
    match status {
        Err(tollgate_api::ClientError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("ingest with an operator's certificate: {other:?}"),
    }
}

#[test]
fn a_rotated_certificate_is_presented_to_new_connections_without_a_restart() {
    let pki = Pki::new();
    let files = pki.issue(Role::Collector, "collector-a");
    let collector = tls_collector(&pki, &files);
    let addr = collector.api.trim_start_matches("https://").to_string();
    let first = presented(&addr, &pki.ca_file());
    let pid = collector.pid();
    // `tollgate pki issue` again for the same host: the files are replaced atomically.
    pki.issue(Role::Collector, "collector-a");
    let rotated = CertInfo::from_der(&tollgate_tls::read_certs(files.cert.as_ref().unwrap()).unwrap()[0]).unwrap();
    assert_ne!(rotated.serial, first.serial);
    wait_until(30, "the new certificate presented", || presented(&addr, &pki.ca_file()).serial == rotated.serial);
    assert_eq!(collector.pid(), pid, "no restart");
    let api = client(TlsFiles { ca: pki.ca_file(), cert: None, key: None }, &collector.api, None);
    assert_eq!(api.get_text("/healthz").unwrap().trim(), "ok");
}

/// Starts `tollgate agent` with `config`; its API URL.
fn start_agent(config: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(tollgate_bin())
        .args(["--log", "warn", "--config"])
        .arg(config)
        .arg("agent")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("tollgate agent ready:"))
        .expect("the agent became ready");
    let api = line.split_whitespace().find_map(|w| w.strip_prefix("api=")).unwrap().to_string();
    (child, api)
}

#[test]
fn an_agent_accepts_only_a_managers_certificate() {
    let pki = Pki::new();
    let d = pki.dir.path();
    let host = pki.issue(Role::Engine, "engine-x");
    let role_config = d.join("engine.toml");
    std::fs::write(&role_config, format!("[node]\nname = \"engine-x\"\nstate_dir = \"{}\"\n", d.join("es").display()))
        .unwrap();
    let token = "agent-token-0123456789";
    let agent_config = d.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{}\"\nserver = \"engine-x\"\napp_type = \"engine\"\nrole = \"engine\"\nrole_config = \"{}\"\ndir = \"{}\"\ntrusted_keys = [\"5866666666666666666666666666666666666666666666666666666666666666\"]\ntoken = \"{token}\"\n{}",
            free_port("127.0.0.1"),
            role_config.display(),
            d.join("agent").display(),
            pki.section(&host)
        ),
    )
    .unwrap();
    let (mut child, api) = start_agent(&agent_config);
    assert!(api.starts_with("https://"), "{api}");
    let status = |files: TlsFiles| client(files, &api, Some(token)).get_text(tollgate_api::agent::STATUS);
    let manager = status(pki.issue(Role::Manager, "manager-a"));
    let engine = status(pki.issue(Role::Engine, "engine-y"));
    let anonymous = status(TlsFiles { ca: pki.ca_file(), cert: None, key: None });
    let _ = child.kill();
    let _ = child.wait();
    assert!(manager.is_ok(), "a manager's certificate: {manager:?}");
    assert!(engine.is_err(), "an engine's certificate was accepted: {engine:?}");
    assert!(anonymous.is_err(), "no certificate was accepted: {anonymous:?}");
}

#[test]
fn a_listener_on_a_network_address_without_tls_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    let port = free_port("127.0.0.1");
    std::fs::write(
        &config,
        format!(
            "[node]\nname = \"c\"\nstate_dir = \"{}\"\n[api]\nlisten = \"0.0.0.0:{port}\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let out = Command::new(tollgate_bin()).arg("--config").arg(&config).arg("collector").output().unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "started: {stderr}");
    assert!(stderr.contains(&format!("api.listen = 0.0.0.0:{port} is not a loopback address")), "{stderr}");
    assert!(stderr.contains("allow_plaintext"), "{stderr}");
    assert!(!dir.path().join("state").exists(), "nothing was created before the refusal");

    // Allowed by the operator: it starts (with a warning).
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + "[tls]\nallow_plaintext = true\n").unwrap();
    let mut child = Command::new(tollgate_bin())
        .args(["--log", "warn", "--config"])
        .arg(&config)
        .arg("collector")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("tollgate ready:"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready.is_some_and(|l| l.contains(&format!("api=http://0.0.0.0:{port}"))));
}
