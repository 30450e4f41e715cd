//! Issue 13, item 6: tollgate on several "hosts" with real network isolation.
//!
//! Each host is a network namespace with its own address on 10.213.13.0/24, joined to the
//! others by a Linux bridge (in a namespace of its own); the test process is the operator's
//! workstation on the same bridge (.200). Every server runs the binary exactly as the
//! package's systemd unit starts it, `tollgate --config /etc/tollgate/tollgate.toml agent`,
//! with its own directories bind-mounted over /etc/tollgate and /var/lib/tollgate; the agent
//! runs the role from the installed release with the same file
//! (`tollgate --config /etc/tollgate/tollgate.toml <role>`, the role units' command line).
//!
//! Hosts: a manager pair (mgr-a .1, mgr-b .2), an SRP engine pair (east-a .11, east-b .12)
//! whose ENUM service address .10 moves between the hosts (`ip addr add` + gratuitous ARP), a
//! collector (.41) and an SBC host (.50: Kamailio, with SIPp caller .70 and callees .60/.61).
//!
//! Shown: an engine answers ENUM asked from another host, and its records reach the
//! collector; an SRP checkpoint crosses the bridge; a rolling upgrade to 2.0.0 and the backout
//! to 1.0.0 complete across every host while Kamailio and SIPp place 100 calls/s through the
//! engines, with no failed call (SIPp's own count), every call decided by an engine and
//! recorded at the collector. tcpdump captures the bridge for the whole run, and the capture
//! is searched for the agent token, the API token, a UI password, SIPp's phone numbers and
//! checkpoint content on the tollgate links: with [`Transport::Plain`] (today) each is found
//! in clear, which proves the analysis finds them; with [`Transport::Tls`] none may be, and a
//! client with a certificate of another CA, or with none, must be refused on every port, and
//! a certificate re-issued on one host must be served without a restart. Needs root.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::capture::{self, Needle};
use common::netns::{self, CONFIG, Host, HostProcess, Network, VAR};
use common::sip::{Callee, Kamailio, SbcOptions, e2e_dir, in_netns, require_root_and_peers, sipp_call_counts};
use common::tcpdump::Tcpdump;
use common::{text, tollgate_bin, wait_until};
use serde_json::{Value, json};
use tollgate_config::Config;
use tollgate_config::agent::{AgentConfig, RoleProcess};
use tollgate_config::manager::{ClusterConfig, ManagerConfig, ServerConfig};
use tollgate_config::service_address::{ServiceAddressConfig, ServiceAddressMode};
use tollgate_enum::{AnswerTemplate, Template};
use tollgate_srp::config::{ChassisMode, SrpConfig};
use tollgate_upgrade::topology::{AppType, HaRole, ManagerDesignation, Segment, Site};

/// How the servers talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Plain HTTP and a plain SRP link (today): the capture shows the secrets in clear.
    Plain,
    /// Every link TLS with certificates from `tollgate pki`: the capture shows none of them.
    Tls,
}

thread_local! {
    /// The transport of the run on this thread (each test is one run on its own thread).
    static TRANSPORT_OF_RUN: std::cell::Cell<Transport> = const { std::cell::Cell::new(Transport::Tls) };
}

/// The transport of this run.
#[allow(non_snake_case)]
fn TRANSPORT() -> Transport {
    TRANSPORT_OF_RUN.with(|t| t.get())
}

/// One multi-host run at a time: each places 100 calls/s through Kamailio on a 2-core machine.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The hosts' subnet (first three octets).
const SUBNET: &str = "10.213.13";
/// The rate SIPp places calls at.
const CALL_RATE: u32 = 100;
/// SIPp's calling and called numbers.
const SIPP_FROM: &str = "+14155550123";
const SIPP_TO: &str = "+12125550100";
/// The number the engines redirect every call to.
const REDIRECT_TARGET: &str = "+12125550199";
/// A caller the velocity rule counts: its counter is checkpointed to the standby engine.
const ROBOCALLER: &str = "+13125550666";
/// The called number of the query asked with dig from another host.
const DIG_NUMBER: &str = "+12125550142";
/// The ports of tollgate's own links: agents, role and manager APIs (ingest too), SRP.
const AGENT_PORT: u16 = 7000;
const API_PORT: u16 = 8080;
const SRP_PORT: u16 = 7501;

const POLICY: &str = r#"schema = 2
name = "multihost"

[[rule]]
name = "robocaller"
source = "+13125550666"
velocity = { calls = 3, window = "10m" }
action = "terminate"
cause = 603

[[rule]]
name = "redirect-all"
destination = "+1*"
action = "redirect"
target = "+12125550199"
"#;

/// One server of the topology.
struct Server {
    hostname: &'static str,
    cluster: &'static str,
    app: &'static str,
    octet: u8,
    role: HaRole,
    /// SRP: (peer octet, chassis mode, priority).
    srp: Option<(u8, ChassisMode, u8)>,
}

const SERVERS: [Server; 5] = [
    Server { hostname: "mgr-a", cluster: "mgr", app: "manager", octet: 1, role: HaRole::Active, srp: None },
    Server { hostname: "mgr-b", cluster: "mgr", app: "manager", octet: 2, role: HaRole::Standby, srp: None },
    Server {
        hostname: "east-a",
        cluster: "engine-east",
        app: "engine",
        octet: 11,
        role: HaRole::Active,
        srp: Some((12, ChassisMode::Primary, 1)),
    },
    Server {
        hostname: "east-b",
        cluster: "engine-east",
        app: "engine",
        octet: 12,
        role: HaRole::Standby,
        srp: Some((11, ChassisMode::Backup, 2)),
    },
    Server {
        hostname: "collector-a",
        cluster: "collector",
        app: "collector",
        octet: 41,
        role: HaRole::Active,
        srp: None,
    },
];

/// The engines' ENUM service address (moves with the SRP Active).
const SERVICE_OCTET: u8 = 10;
/// The SBC host and its SIP addresses: Kamailio, the policy callee, the normal-route callee,
/// the SIPp caller.
const SBC_OCTET: u8 = 50;
const POLICY_CALLEE_OCTET: u8 = 60;
const NORMAL_CALLEE_OCTET: u8 = 61;
const CALLER_OCTET: u8 = 70;

fn addr(octet: u8) -> String {
    format!("{SUBNET}.{octet}")
}

fn sock(octet: u8, port: u16) -> SocketAddr {
    format!("{}:{port}", addr(octet)).parse().unwrap()
}

fn scheme() -> &'static str {
    match TRANSPORT() {
        Transport::Plain => "http",
        Transport::Tls => "https",
    }
}

fn url(octet: u8, port: u16) -> String {
    format!("{}://{}:{port}", scheme(), addr(octet))
}

/// The secrets of the run (what the capture is searched for).
struct Secrets {
    /// Operators' API token (every role API, ingest).
    api_token: String,
    /// The agents' token (stage and install software).
    agent_token: String,
    /// The SRP pair's shared key.
    srp_key: String,
    /// A UI user's password on the collector.
    ui_password: String,
}

fn secret() -> String {
    tollgate_web::auth::random_secret()
}

/// Paths as the host sees them (under the packaged directories).
fn var(rel: &str) -> PathBuf {
    Path::new(VAR).join(rel)
}

/// The `[tls]` section of a host's configuration.
fn set_tls(c: &mut Config, host: &str) {
    match TRANSPORT() {
        // Non-loopback plain listeners must be allowed explicitly.
        Transport::Plain => c.tls.allow_plaintext = true,
        Transport::Tls => {
            let tls = Path::new(netns::ETC).join("tls");
            c.tls.ca = Some(tls.join("ca.crt"));
            c.tls.cert = Some(tls.join(format!("{host}.crt")));
            c.tls.key = Some(tls.join(format!("{host}.key")));
            c.tls.require_client_certificates = true;
        }
    }
}

/// The packaged configuration file of a server: its role's sections and `[agent]` (whose
/// `role_config` is this same file).
fn server_config(s: &Server, secrets: &Secrets, public_key: &str) -> String {
    let me = addr(s.octet);
    let mut c = Config::default();
    c.node.name = s.hostname.into();
    c.node.state_dir = var("state");
    c.api.listen = sock(s.octet, API_PORT);
    c.api.token = Some(secrets.api_token.clone());
    c.probe.hep_udp = Vec::new();
    c.probe.hep_tcp = Vec::new();
    let naptr = |uri: &str| AnswerTemplate::Naptr { uri: Template::parse(uri).expect("templates parse") };
    match s.app {
        "engine" => {
            let service = sock(SERVICE_OCTET, 53);
            let callee = addr(POLICY_CALLEE_OCTET);
            c.enum_.listen_udp = vec![service];
            c.enum_.listen_tcp = vec![service];
            c.enum_.answers.redirect = naptr(&format!("sip:{{target}}@{callee}:5080"));
            c.enum_.intercepts = [("default".to_string(), format!("sip:intercept@{callee}:5080"))].into();
            c.enum_.devices = vec![tollgate_enum::config::DeviceConfig {
                name: "sbc".into(),
                addresses: vec![format!("{SUBNET}.0/24").parse().unwrap()],
            }];
            c.shipper.collector = url(41, API_PORT);
            c.shipper.token = secrets.api_token.clone();
            let (peer, mode, priority) = s.srp.expect("engines are SRP chassis");
            let mut srp = SrpConfig::new(
                s.hostname,
                sock(s.octet, SRP_PORT),
                sock(peer, SRP_PORT),
                &secrets.srp_key,
                mode,
                priority,
            );
            srp.hello_interval_ms = 100;
            srp.dead_interval_ms = 300;
            c.srp = Some(srp);
            c.service_address =
                ServiceAddressConfig { mode: ServiceAddressMode::Ip, interface: "eth0".into(), prefix_len: None };
        }
        // The collector runs no ENUM server; the section only has to be valid.
        "collector" => c.enum_.listen_udp = vec![format!("{me}:5353").parse().unwrap()],
        _ => c.manager = Some(manager_section(s, secrets, public_key)),
    }
    c.agent = Some(AgentConfig {
        listen: sock(s.octet, AGENT_PORT),
        server: s.hostname.into(),
        app_type: s.app.parse().expect("known applications"),
        role: s.app.parse::<RoleProcess>().expect("known roles"),
        role_config: CONFIG.into(),
        dir: var("agent"),
        trusted_keys: vec![public_key.into()],
        token: secrets.agent_token.clone(),
        ..AgentConfig::defaults()
    });
    set_tls(&mut c, s.hostname);
    c.to_toml()
}

fn manager_section(s: &Server, secrets: &Secrets, public_key: &str) -> ManagerConfig {
    let mate = SERVERS.iter().find(|m| m.app == "manager" && m.hostname != s.hostname).expect("a manager pair");
    let clusters = ["mgr", "engine-east", "collector"]
        .into_iter()
        .map(|cluster| {
            let members: Vec<&Server> = SERVERS.iter().filter(|m| m.cluster == cluster).collect();
            let application: AppType = members[0].app.parse().expect("known applications");
            let manager = application == AppType::Manager;
            ClusterConfig {
                name: cluster.into(),
                application,
                designation: manager.then_some(ManagerDesignation::Primary),
                site: "site1".into(),
                segment: (!manager).then(|| "segment1".into()),
                servers: members
                    .iter()
                    .map(|m| ServerConfig {
                        hostname: m.hostname.into(),
                        site: Some("site1".into()),
                        role: m.role,
                        agent: url(m.octet, AGENT_PORT),
                    })
                    .collect(),
            }
        })
        .collect();
    ManagerConfig {
        hostname: s.hostname.into(),
        mate: Some(url(mate.octet, API_PORT)),
        starts_active: s.role == HaRole::Active,
        agent_token: secrets.agent_token.clone(),
        bundles: var("bundles"),
        trusted_keys: vec![public_key.into()],
        policy: Some(Path::new(netns::ETC).join("policy.toml")),
        poll_ms: 500,
        takeover_ms: 3000,
        replication_timeout_s: 120,
        max_parallel_clusters: None,
        sites: vec![Site { name: "site1".into(), primary: true }],
        segments: vec![Segment { name: "segment1".into() }],
        clusters,
    }
}

/// Runs the tollgate CLI (outside the hosts); panics with its output on failure.
fn tollgate(args: &[&str]) -> String {
    let out = Command::new(tollgate_bin()).args(args).output().expect("run tollgate");
    assert!(out.status.success(), "tollgate {}: {:?}", args.join(" "), text(&out));
    text(&out).0
}

/// The signed releases 1.0.0 and 2.0.0 of every application, built from this binary
/// (stripped when `strip` is there); returns the public key.
fn build_releases(dir: &Path) -> String {
    let key = dir.join("release.key");
    let public = tollgate(&["release", "keygen", "--out", key.to_str().unwrap()]);
    let public = public.split_whitespace().last().expect("a public key").to_string();
    let payload = dir.join("tollgate.payload");
    let stripped =
        Command::new("strip").arg("-o").arg(&payload).arg(tollgate_bin()).status().is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(tollgate_bin(), &payload).unwrap();
    }
    std::fs::create_dir_all(dir.join("bundles")).unwrap();
    for version in ["1.0.0", "2.0.0"] {
        for app in ["manager", "engine", "collector"] {
            let out = dir.join("bundles").join(format!("tollgate-{app}-{version}.tgb"));
            tollgate(&[
                "release",
                "build",
                "--key",
                key.to_str().unwrap(),
                "--application",
                app,
                "--version",
                version,
                "--binary",
                payload.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
        }
    }
    let _ = std::fs::remove_file(&payload);
    public
}

/// The operator's HTTP client (the test process, on the bridge at .200).
struct Ops {
    http: reqwest::blocking::Client,
    installer: reqwest::blocking::Client,
    token: String,
    agent_token: String,
    managers: Vec<String>,
}

impl Ops {
    /// The operator's clients; over TLS they trust only the run's CA. `ops_tls` holds the
    /// operator's certificate (`ops.crt`, `ops.key`) for the APIs, and the installer's
    /// (`installer.crt`, `installer.key`, role manager) for the agents, which accept only
    /// managers: the release first put on each server is installed as a manager would.
    fn new(token: &str, agent_token: &str, ops_tls: &Path) -> Ops {
        let http = Ops::client(ops_tls, "ops");
        let installer = Ops::client(ops_tls, "installer");
        let managers = SERVERS.iter().filter(|s| s.app == "manager").map(|s| url(s.octet, API_PORT)).collect();
        Ops { http, installer, token: token.into(), agent_token: agent_token.into(), managers }
    }

    /// The rustls configuration presenting `<name>.crt` of `ops_tls` (None in plain text).
    fn tls(ops_tls: &Path, name: &str) -> Option<tollgate_api::TlsConfig> {
        if TRANSPORT() == Transport::Plain {
            return None;
        }
        let material = tollgate_tls::TlsMaterial::load(tollgate_tls::TlsFiles {
            ca: ops_tls.join("ca.crt"),
            cert: Some(ops_tls.join(format!("{name}.crt"))),
            key: Some(ops_tls.join(format!("{name}.key"))),
        })
        .expect("the operator's certificates");
        let versions = tollgate_tls::Versions::Tls12And13;
        Some(tollgate_tls::client_config(&material, tollgate_tls::RoleSet::SERVERS, versions, &[b"http/1.1"]).unwrap())
    }

    fn client(ops_tls: &Path, name: &str) -> reqwest::blocking::Client {
        let builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        let builder = match Ops::tls(ops_tls, name) {
            Some(config) => builder.tls_backend_preconfigured(tollgate_tls::rustls::ClientConfig::clone(&config)),
            None => builder,
        };
        builder.build().unwrap()
    }

    /// The status of the agent at `octet` (None while it does not answer).
    fn agent_status(&self, octet: u8) -> Option<Value> {
        let r = self.installer.get(format!("{}/agent/v1/status", url(octet, AGENT_PORT)));
        let r = r.bearer_auth(&self.agent_token).send().ok()?;
        r.status().is_success().then(|| r.json().ok()).flatten()
    }

    /// The active manager's URL (waits through a failover).
    fn active(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for m in &self.managers {
                let ha = self.http.get(format!("{m}/api/v1/manager/ha")).timeout(Duration::from_secs(2)).send();
                if ha.ok().and_then(|r| r.json::<Value>().ok()).is_some_and(|h| h["ha"] == "Active") {
                    return m.clone();
                }
            }
            assert!(Instant::now() < deadline, "no active manager for 60 s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn get_at(&self, url: &str) -> Option<Value> {
        let r = self.http.get(url).bearer_auth(&self.token).send().ok()?;
        r.status().is_success().then(|| r.json().ok()).flatten()
    }

    /// GET on the active manager (retried through a failover).
    fn get(&self, path: &str) -> Value {
        for _ in 0..20 {
            if let Some(v) = self.get_at(&format!("{}{path}", self.active())) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("GET {path} failed on every manager");
    }

    /// POST JSON on the active manager: status and answer.
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.active())).bearer_auth(&self.token).json(&body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// Pushes a policy through the active manager.
    fn push_policy(&self, policy: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/policy/push?name=multihost.toml", self.active()))
            .bearer_auth(&self.token)
            .body(policy.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// The ENUM records the collector holds, as its CSV export.
    fn collector_records(&self) -> String {
        let now = chrono::Utc::now();
        let from = (now - chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to = (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let r = self
            .http
            .get(format!("{}/api/v1/export?dataset=ENUM&from={from}&to={to}", url(41, API_PORT)))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .send();
        match r {
            Ok(r) if r.status().is_success() => r.text().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// `show srp <what>` of an engine's role (None while it does not answer).
    fn srp(&self, octet: u8, what: &str) -> Option<Value> {
        self.get_at(&format!("{}/api/v1/srp/show/{what}", url(octet, API_PORT))).map(|v| v["data"].clone())
    }
}

/// SIPp placing calls through Kamailio from the SBC host until stopped.
struct Traffic {
    sipp: HostProcess,
    /// SIPp's statistics and error log (in the run's directory).
    dir: PathBuf,
}

impl Traffic {
    fn start(sbc: &Host, run: &Path) -> Traffic {
        let dir = run.join("sipp");
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = in_netns(Some(&sbc.ns), "sipp");
        c.arg("-sf")
            .arg(e2e_dir().join("uac.xml"))
            .args(["-s", SIPP_TO, "-key", "from", SIPP_FROM])
            .args(["-r", &CALL_RATE.to_string(), "-m", "10000000", "-l", "3000"])
            .args(["-i", &addr(CALLER_OCTET), "-p", "5070", "-mp", "6100"])
            .args(["-nostdin", "-trace_stat", "-fd", "1", "-stf"])
            .arg(dir.join("stats.csv"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .arg(format!("{}:5060", addr(SBC_OCTET)))
            .current_dir(&dir);
        let sipp = HostProcess::spawn(c, "sipp (caller)", &dir.join("sipp.out"));
        Traffic { sipp, dir }
    }

    /// SIPp's error log so far (its last 40 lines).
    fn errors(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIPp's (successful, failed) calls so far.
    fn counts(&self) -> (u64, u64) {
        sipp_call_counts(&self.dir.join("stats.csv"))
    }

    /// A cumulative column of SIPp's last statistics line (e.g. `OutgoingCall(C)`).
    fn stat(&self, column: &str) -> String {
        let stats = std::fs::read_to_string(self.dir.join("stats.csv")).unwrap_or_default();
        let mut lines = stats.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
        let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
        header.iter().position(|h| *h == column).and_then(|i| last.get(i)).map_or(String::new(), |v| v.to_string())
    }

    /// Stops placing calls (SIGUSR1), lets the calls in progress end; (successful, failed)
    /// calls and SIPp's error log.
    fn stop(mut self) -> (u64, u64, String) {
        self.sipp.signal("USR1");
        if !self.sipp.wait_exit(60) {
            self.sipp.stop();
        }
        let (ok, failed) = self.counts();
        // Every call SIPp started ended one way or the other.
        let outgoing: u64 = self.stat("OutgoingCall(C)").parse().unwrap_or(0);
        assert_eq!(outgoing, ok + failed, "SIPp started {outgoing} calls; {ok} succeeded, {failed} failed");
        eprintln!(
            "SIPp: {outgoing} calls at {} calls/s (its own average over {})",
            self.stat("CallRate(C)"),
            self.stat("ElapsedTime(C)")
        );
        (ok, failed, self.errors())
    }
}

/// The reversed-digit ENUM name of `to`, with the caller in tollgate's `src-` label.
fn enum_name(from: &str, to: &str) -> String {
    let digits: String = to.trim_start_matches('+').chars().rev().flat_map(|c| [c, '.']).collect();
    format!("{digits}src-{}.e164.arpa.", from.trim_start_matches('+'))
}

/// `dig NAPTR` of the service address from `host`; the short answer.
fn dig_from(host: &Host, from: &str, to: &str) -> String {
    let out = host.run(
        "dig",
        &[&format!("@{}", addr(SERVICE_OCTET)), "+short", "+tries=1", "+time=2", "NAPTR", &enum_name(from, to)],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kamailio's log without the lines of calls that went as planned (its last 60 lines).
fn sbc_problems(k: &Kamailio) -> String {
    let log = k.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("rewritten to")).collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `text` encoded for an `application/x-www-form-urlencoded` body.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every server of the status's grid.
fn servers(status: &Value) -> impl Iterator<Item = &Value> {
    status["clusters"].as_array().into_iter().flatten().flat_map(|c| c["servers"].as_array().into_iter().flatten())
}

fn all_on(status: &Value, release: &str) -> bool {
    let all: Vec<&Value> = servers(status).collect();
    all.len() == SERVERS.len() && all.iter().all(|s| s["running_release"] == release && s["reachable"] == true)
}

/// Takes the next preferred actions until every cluster is done in `direction`.
fn drive(ops: &Ops, direction: &str, agents: &mut [HostProcess]) {
    let deadline = Instant::now() + Duration::from_secs(420);
    loop {
        for a in agents.iter_mut() {
            a.assert_running();
        }
        let status = ops.get("/api/v1/upgrade/status");
        let failures = status["failures"].as_object().cloned().unwrap_or_default();
        assert!(failures.is_empty(), "an action of the {direction} failed: {failures:#?}");
        let (code, next) = ops.post("/api/v1/upgrade/next", json!({ "direction": direction }));
        if code == 200 && next["done"] == true {
            return;
        }
        if Instant::now() > deadline {
            let log = ops.get("/api/v1/upgrade/log");
            let tail: Vec<&Value> = log.as_array().unwrap().iter().rev().take(12).collect();
            panic!(
                "the {direction} did not finish in 7 minutes\nnext: {next:#}\nstatus: {status:#}\nlog tail: {tail:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every log of a host (agent and role), for a failure message.
fn host_logs(h: &Host) -> String {
    let mut out = String::new();
    let mut stack = vec![h.var.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                out.push_str(&format!("--- {}\n{}\n", p.display(), tail.join("\n")));
            }
        }
    }
    out
}

/// Checks prepared for [`Transport::Tls`], against the planned `tollgate pki` CLI and
/// `[tls]` section.
mod tls_checks {
    use super::*;

    /// A CA in `dir` (`ca.crt`, `ca.key`): `tollgate pki init`.
    pub fn pki_init(dir: &Path) {
        tollgate(&["pki", "init", "--dir", &dir.display().to_string(), "--name", "tollgate multihost test CA"]);
    }

    /// Issues a certificate for `role` on `host` at `ip` with the CA of `ca_dir` into
    /// `host_etc/tls` (`<host>.crt`, `<host>.key`, and the CA's `ca.crt` copied beside them):
    /// `tollgate pki issue --role ROLE --host HOST --ip IP --out-dir DIR --force`.
    pub fn issue(ca_dir: &Path, role: &str, host: &str, ip: &str, host_etc: &Path) {
        let tls = host_etc.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        let (ca, out) = (ca_dir.display().to_string(), tls.display().to_string());
        tollgate(&[
            "pki",
            "issue",
            "--dir",
            &ca,
            "--role",
            role,
            "--host",
            host,
            "--ip",
            ip,
            "--validity",
            "1day",
            "--out-dir",
            &out,
            "--force",
        ]);
        std::fs::copy(ca_dir.join(tollgate_tls::pki::CA_CERT_FILE), tls.join("ca.crt")).unwrap();
    }

    /// True if a TLS handshake with `target` (from the operator's address) succeeds with the
    /// given client material (`openssl s_client`).
    pub fn handshake(target: &str, ca: &Path, client: Option<(&Path, &Path)>) -> bool {
        let mut c = Command::new("openssl");
        c.args(["s_client", "-connect", target, "-verify_return_error", "-brief", "-ign_eof", "-CAfile"]).arg(ca);
        if let Some((cert, key)) = client {
            c.arg("-cert").arg(cert).arg("-key").arg(key);
        }
        // A request after the handshake: a server requiring a client certificate refuses it
        // (TLS 1.3 sends that refusal after the client's Finished).
        let out = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                }
                child.wait_with_output()
            })
            .expect("run openssl (Debian package openssl)");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("HTTP/1.1 200")
    }

    /// A client with a certificate of another CA, or with none, is refused on every port;
    /// one with the run's CA is served (so the refusals are not a dead port).
    pub fn refuses_foreign_and_anonymous(run_ca: &Path, ops_tls: &Path, foreign_tls: &Path) {
        let ports: Vec<String> = SERVERS
            .iter()
            .flat_map(|s| {
                let mut p = vec![format!("{}:{AGENT_PORT}", addr(s.octet)), format!("{}:{API_PORT}", addr(s.octet))];
                if s.srp.is_some() {
                    p.push(format!("{}:{SRP_PORT}", addr(s.octet)));
                }
                p
            })
            .collect();
        let ca = run_ca.join("ca.crt");
        let ops = (ops_tls.join("ops.crt"), ops_tls.join("ops.key"));
        let installer = (ops_tls.join("installer.crt"), ops_tls.join("installer.key"));
        let foreign = (foreign_tls.join("ops.crt"), foreign_tls.join("ops.key"));
        for target in &ports {
            assert!(!handshake(target, &ca, None), "{target} served a client without a certificate");
            assert!(
                !handshake(target, &ca, Some((&foreign.0, &foreign.1))),
                "{target} served a client whose certificate is from another CA"
            );
            if target.ends_with(&format!(":{AGENT_PORT}")) {
                // An agent accepts only managers: the operator's own certificate is refused too.
                assert!(!handshake(target, &ca, Some((&ops.0, &ops.1))), "{target} served an operator certificate");
                assert!(
                    handshake(target, &ca, Some((&installer.0, &installer.1))),
                    "{target} refused a manager's certificate"
                );
            } else if !target.ends_with(&format!(":{SRP_PORT}")) {
                assert!(handshake(target, &ca, Some((&ops.0, &ops.1))), "{target} refused the operator's certificate");
            }
        }
    }

    /// The serial of the certificate `target` presents.
    pub fn served_serial(target: &str, ca: &Path) -> String {
        let s_client = Command::new("openssl")
            .args(["s_client", "-connect", target, "-showcerts", "-CAfile"])
            .arg(ca)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-serial"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        {
            use std::io::Write;
            x509.stdin.take().unwrap().write_all(&s_client.stdout).unwrap();
        }
        String::from_utf8_lossy(&x509.wait_with_output().unwrap().stdout).trim().to_string()
    }
}

/// Every link TLS: the servers work as on a plain network, the capture of the bridge shows
/// no token, password, number or checkpoint, foreign and anonymous clients are refused on
/// every port, and a rotated certificate is served without a restart.
#[test]
fn over_tls_servers_on_separate_hosts_answer_record_upgrade_and_back_out_under_100_calls_per_second() {
    run_hosts(Transport::Tls);
}

/// The same run in plain text (`allow_plaintext`): the capture shows every secret in clear,
/// which proves the capture analysis of the TLS run would see them.
#[test]
fn in_plain_text_the_same_run_shows_every_secret_on_the_bridge() {
    run_hosts(Transport::Plain);
}

fn run_hosts(transport: Transport) {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    TRANSPORT_OF_RUN.with(|t| t.set(transport));
    require_root_and_peers();
    netns::require_netns();
    for (program, package) in [("tcpdump", "tcpdump"), ("dig", "dnsutils"), ("arping", "iputils-arping")] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).status();
        assert!(found.is_ok_and(|s| s.success()), "{program} is missing: install the Debian package {package}");
    }
    netns::cleanup_leftovers();
    let mut run = tempfile::Builder::new().prefix("tollgate-multihost-").tempdir().unwrap();
    // TOLLGATE_KEEP_MULTIHOST=1 keeps the run's directory (configurations, logs, capture).
    run.disable_cleanup(std::env::var_os("TOLLGATE_KEEP_MULTIHOST").is_some());
    let mut net = Network::create(SUBNET);
    let hosts: Vec<Host> = SERVERS.iter().map(|s| net.add_host(s.hostname, s.octet, run.path())).collect();
    let sbc = net.add_host("sbc", SBC_OCTET, run.path());
    for octet in [POLICY_CALLEE_OCTET, NORMAL_CALLEE_OCTET, CALLER_OCTET] {
        netns::ip(&["-n", &sbc.ns, "addr", "add", &format!("{}/24", addr(octet)), "dev", "eth0"]);
    }
    let host = |name: &str| hosts.iter().find(|h| h.name == name).unwrap().clone();

    // The capture runs from before the first packet to the end.
    let pcap = run.path().join("bridge.pcap");
    let mut capture = Tcpdump::start_on(Some(&net.switch), "br0", &pcap, "");

    let secrets = Secrets { api_token: secret(), agent_token: secret(), srp_key: secret(), ui_password: secret() };
    let public_key = build_releases(run.path());
    if TRANSPORT() == Transport::Tls {
        let ca = run.path().join("ca");
        tls_checks::pki_init(&ca);
        for (s, h) in SERVERS.iter().zip(&hosts) {
            tls_checks::issue(&ca, s.app, s.hostname, &h.ip, &h.etc);
        }
        tls_checks::issue(&ca, "operator", "ops", &net.ops_ip(), &run.path().join("ops"));
        tls_checks::issue(&ca, "manager", "installer", &net.ops_ip(), &run.path().join("ops"));
    }
    for (s, h) in SERVERS.iter().zip(&hosts) {
        std::fs::write(h.etc_path("tollgate.toml"), server_config(s, &secrets, &public_key)).unwrap();
        if s.app == "manager" {
            std::fs::write(h.etc_path("policy.toml"), POLICY).unwrap();
            // The bundles a manager stages: hard links to the run's (copies across file systems).
            std::fs::create_dir_all(h.var.join("bundles")).unwrap();
            for e in std::fs::read_dir(run.path().join("bundles")).unwrap().flatten() {
                let to = h.var.join("bundles").join(e.file_name());
                if std::fs::hard_link(e.path(), &to).is_err() {
                    std::fs::copy(e.path(), &to).unwrap();
                }
            }
        }
    }
    // A UI user on the collector, made with the packaged configuration as an operator would.
    {
        let c = host("collector-a");
        let mut user = c.command(&tollgate_bin());
        let mut child = user
            .args(["--config", CONFIG, "user", "set", "webop", "--role", "viewer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            writeln!(child.stdin.take().unwrap(), "{}", secrets.ui_password).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "tollgate user set: {:?}", text(&out));
    }

    // Every server: `tollgate --config /etc/tollgate/tollgate.toml agent`, as its unit does.
    let mut agents: Vec<HostProcess> = hosts
        .iter()
        .map(|h| {
            let mut c = h.command(&tollgate_bin());
            c.args(["--config", CONFIG, "agent"]);
            HostProcess::spawn(
                c,
                &format!("the agent of {}", h.name),
                &run.path().join(format!("{}.agent.out", h.name)),
            )
        })
        .collect();
    let ops_tls = run.path().join("ops").join("tls");
    let ops = Ops::new(&secrets.api_token, &secrets.agent_token, &ops_tls);
    let installer_tls = Ops::tls(&ops_tls, "installer");
    let agent_client = |s: &Server| {
        tollgate_api::BlockingClient::with_tls(
            &url(s.octet, AGENT_PORT),
            Some(secrets.agent_token.clone()),
            Duration::from_secs(600),
            installer_tls.as_ref(),
        )
        .unwrap()
    };
    for (s, a) in SERVERS.iter().zip(agents.iter_mut()) {
        let client = agent_client(s);
        wait_until(60, &format!("the agent of {} over the bridge", s.hostname), || {
            a.assert_running();
            client.get_text("/healthz").is_ok()
        });
    }

    // Release 1.0.0 everywhere, staged and installed by the operator: collector first (the
    // engines ship to it), managers last.
    for app in ["collector", "engine", "manager"] {
        for s in SERVERS.iter().filter(|s| s.app == app) {
            let name = format!("tollgate-{app}-1.0.0.tgb");
            let client = agent_client(s);
            let bytes = std::fs::read(run.path().join("bundles").join(&name)).unwrap();
            if let Err(e) = tollgate_api::agent::stage_blocking(&client, &name, bytes) {
                panic!("{}: staging 1.0.0: {e}\n{}", s.hostname, host_logs(&host(s.hostname)));
            }
            let install = tollgate_api::agent::VersionRequest { version: "1.0.0".into() };
            let installed = client.post::<_, tollgate_api::agent::AgentStatus>(tollgate_api::agent::INSTALL, &install);
            if let Err(e) = installed {
                panic!("{}: installing 1.0.0: {e}\n{}", s.hostname, host_logs(&host(s.hostname)));
            }
        }
    }
    wait_until(120, "an active manager that sees every server on 1.0.0", || {
        let m = ops.active();
        ops.get_at(&format!("{m}/api/v1/upgrade/status")).is_some_and(|s| all_on(&s, "1.0.0"))
    });
    let (code, body) = ops.push_policy(POLICY);
    assert_eq!(code, 200, "pushing the policy: {body}");

    // ENUM asked from another host (the collector) reaches the Active engine over the bridge.
    let collector = host("collector-a");
    wait_until(60, "a NAPTR answer from the service address", || {
        dig_from(&collector, "+16505550100", DIG_NUMBER).contains(&format!("{REDIRECT_TARGET}@"))
    });
    let (east_a, east_b) = (host("east-a"), host("east-b"));
    let service = format!("{}/32", addr(SERVICE_OCTET));
    assert!(
        east_a.addresses().contains(&service) != east_b.addresses().contains(&service),
        "exactly one engine host holds the service address:\neast-a {}\neast-b {}",
        east_a.addresses(),
        east_b.addresses()
    );
    // The velocity rule counts the robocaller: the fourth call is refused, and the counter
    // is checkpointed to the Standby across the bridge.
    let robo: Vec<String> = (0..4).map(|_| dig_from(&sbc, ROBOCALLER, SIPP_TO)).collect();
    assert!(!robo[0].contains("603") && robo[3].contains("603"), "the velocity rule: {robo:#?}");
    wait_until(30, "the robocaller's counter checkpointed to the Standby", || {
        [11, 12].iter().any(|&o| {
            let standby = ops.srp(o, "info").is_some_and(|i| i["chassis_state"] == "Standby");
            standby && ops.srp(o, "velocity").is_some_and(|v| v.to_string().contains(ROBOCALLER))
        })
    });
    // The records reach the collector.
    wait_until(60, "the dig query's record at the collector", || ops.collector_records().contains(DIG_NUMBER));
    // A UI login on the collector (its password crosses the bridge).
    let login = ops
        .http
        .post(format!("{}/login", url(41, API_PORT)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=webop&password={}&next=%2F", form_encode(&secrets.ui_password)))
        .send()
        .unwrap();
    assert!(
        login.status().is_redirection() && login.headers().contains_key("set-cookie"),
        "the UI login on the collector: {} {:?}",
        login.status(),
        login.text()
    );

    // Calls: Kamailio on the SBC host asks the service address over the bridge; SIPp places
    // CALL_RATE calls a second.
    let policy_callee =
        Callee::start_in(Some(&sbc.ns), &addr(POLICY_CALLEE_OCTET), 5080, &e2e_dir().join("uas-answer.xml"), 6000);
    let normal_callee =
        Callee::start_in(Some(&sbc.ns), &addr(NORMAL_CALLEE_OCTET), 5080, &e2e_dir().join("uas-answer.xml"), 6200);
    let service_ip = addr(SERVICE_OCTET);
    let kamailio = Kamailio::start_sbc(SbcOptions {
        ip: &addr(SBC_OCTET),
        normal_ip: &addr(NORMAL_CALLEE_OCTET),
        nameservers: &[&service_ip],
        rotate: false,
        children: 16,
        dns_retries: 2,
        netns: Some(&sbc.ns),
    });
    let traffic = Traffic::start(&sbc, run.path());
    wait_until(60, "calls flowing through the engines", || {
        assert_eq!(
            traffic.counts().1,
            0,
            "failed calls before the upgrade:\n{}\nKamailio:\n{}",
            traffic.errors(),
            sbc_problems(&kamailio)
        );
        policy_callee.invites().len() >= 10 * CALL_RATE as usize
    });

    // The rolling upgrade to 2.0.0, then the backout, through the manager's API.
    let (code, body) = ops.post("/api/v1/upgrade/procedure", json!({ "release": "2.0.0" }));
    assert_eq!(code, 200, "{body}");
    drive(&ops, "upgrade", &mut agents);
    let status = ops.get("/api/v1/upgrade/status");
    assert!(all_on(&status, "2.0.0"), "every server on 2.0.0:\n{status:#}");
    assert_eq!(
        traffic.counts().1,
        0,
        "failed calls during the upgrade:\n{}\nKamailio:\n{}",
        traffic.errors(),
        sbc_problems(&kamailio)
    );
    drive(&ops, "backout", &mut agents);
    let status = ops.get("/api/v1/upgrade/status");
    assert!(all_on(&status, "1.0.0"), "every server back on 1.0.0:\n{status:#}");

    // Calls: none failed (SIPp's count), every one decided by an engine (none took the
    // normal route), and every answered query recorded at the collector.
    let (ok, failed, errors) = traffic.stop();
    assert_eq!(
        failed,
        0,
        "failed calls during the upgrade and backout:\n{errors}\nKamailio:\n{}",
        sbc_problems(&kamailio)
    );
    assert!(ok >= 10 * CALL_RATE as u64, "only {ok} calls were placed");
    let normal = normal_callee.invites().len();
    assert_eq!(normal, 0, "{normal} calls routed without an ENUM answer:\n{}", sbc_problems(&kamailio));
    let redirected = policy_callee.invites().len() as u64;
    assert!(redirected >= ok, "{redirected} redirected INVITEs for {ok} calls");
    let sipp_from = SIPP_FROM.to_string();
    wait_until(180, "a record at the collector for every call", || {
        let csv = ops.collector_records();
        csv.lines().filter(|l| l.contains(&sipp_from)).count() as u64 >= ok
    });
    let log = ops.get("/api/v1/upgrade/log");
    let entries = log.as_array().unwrap();
    for s in &SERVERS {
        let has = |action: &str| {
            entries
                .iter()
                .any(|e| e["action_name"] == action && e["hostname"] == s.hostname && e["result"] == "Success")
        };
        assert!(has("Upgrading server"), "{} upgraded in the log", s.hostname);
        assert!(has("Backing out server upgrade"), "{} backed out in the log", s.hostname);
    }

    if TRANSPORT() == Transport::Tls {
        let ca = run.path().join("ca");
        let foreign = run.path().join("foreign-ca");
        tls_checks::pki_init(&foreign);
        tls_checks::issue(&foreign, "operator", "ops", &net.ops_ip(), &run.path().join("foreign-ops"));
        tls_checks::refuses_foreign_and_anonymous(
            &ca,
            &run.path().join("ops").join("tls"),
            &run.path().join("foreign-ops").join("tls"),
        );
        // A certificate re-issued on the collector is served without a restart.
        let target = format!("{}:{API_PORT}", addr(41));
        let before = tls_checks::served_serial(&target, &ca.join("ca.crt"));
        let pid_before = ops.agent_status(41).expect("the collector's agent answers")["process"]["pid"].clone();
        assert!(pid_before.is_u64(), "the collector's role process runs");
        tls_checks::issue(&ca, "collector", "collector-a", &addr(41), &collector.etc);
        wait_until(60, "the collector serving its new certificate", || {
            tls_checks::served_serial(&target, &ca.join("ca.crt")) != before
        });
        let pid_after = ops.agent_status(41).expect("the collector's agent answers")["process"]["pid"].clone();
        assert_eq!(pid_before, pid_after, "the collector was not restarted");
    }

    // The capture: what crossed the bridge on tollgate's links.
    drop(kamailio);
    capture.stop();
    let needles = [
        Needle::new("agent token", &secrets.agent_token),
        Needle::new("API token", &secrets.api_token),
        Needle::new("UI password", &secrets.ui_password),
        Needle::new("SIPp's calling number", SIPP_FROM.trim_start_matches('+')),
        Needle::new("SIPp's called number", SIPP_TO.trim_start_matches('+')),
        Needle::new("checkpointed caller", ROBOCALLER.trim_start_matches('+')),
    ];
    let analysis = capture::analyse(&pcap, &[AGENT_PORT, API_PORT, SRP_PORT], &needles);
    // What was seen in clear, by needle: the tollgate ports it crossed (`zlib` if compressed).
    let mut seen: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> = Default::default();
    for sg in &analysis.sightings {
        let port = [AGENT_PORT, API_PORT, SRP_PORT].into_iter().find(|p| *p == sg.flow.1 || *p == sg.flow.3);
        let port = port.map_or("?".to_string(), |p| p.to_string());
        seen.entry(&sg.what).or_default().insert(if sg.compressed { format!("{port} (zlib)") } else { port });
    }
    eprintln!(
        "capture: {} packets, {} flows on tollgate's ports ({} MB of payload); in clear: {seen:?}",
        analysis.packets,
        analysis.flows,
        analysis.tcp_bytes / 1_000_000,
    );
    match TRANSPORT() {
        Transport::Plain => {
            assert!(!analysis.seen_on_port("agent token", AGENT_PORT).is_empty(), "the agent token in clear");
            assert!(!analysis.seen_on_port("API token", API_PORT).is_empty(), "the API token in clear");
            assert!(!analysis.seen_on_port("UI password", API_PORT).is_empty(), "the UI password in clear");
            assert!(!analysis.seen_on_port("SIPp's calling number", API_PORT).is_empty(), "records in clear");
            assert!(
                !analysis.seen_on_port("checkpointed caller", SRP_PORT).is_empty(),
                "the SRP checkpoint in clear (compressed is not encrypted)"
            );
        }
        Transport::Tls => assert!(analysis.sightings.is_empty(), "secrets in clear on a TLS link"),
    }
    eprintln!("calls: {ok} placed through the upgrade and backout, none failed; {redirected} redirected INVITEs");
    drop(agents);
    drop(net);
}

/// The capture analysis finds a needle split across packets of one flow and one inside a zlib
/// stream, and ignores ports it was not asked about.
#[test]
fn the_capture_analysis_finds_split_and_compressed_secrets_on_the_selected_ports_only() {
    use std::io::Write;
    fn pcap(packets: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0];
        for (sport, dport, payload) in packets {
            let mut frame = vec![0u8; 12];
            frame.extend_from_slice(&[0x08, 0x00]);
            let total = 40 + payload.len();
            frame.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 6, 0, 0]);
            frame.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            let mut tcp = [0u8; 20];
            tcp[..2].copy_from_slice(&sport.to_be_bytes());
            tcp[2..4].copy_from_slice(&dport.to_be_bytes());
            tcp[12] = 5 << 4;
            frame.extend_from_slice(&tcp);
            frame.extend_from_slice(payload);
            let len = (frame.len() as u32).to_le_bytes();
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&len);
            f.extend_from_slice(&len);
            f.extend_from_slice(&frame);
        }
        f
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(b"{\"source\":\"+13125550666\"}").unwrap();
    let compressed = z.finish().unwrap();
    let file = pcap(&[
        (40000, 8080, b"Authorization: Bearer sec"),
        (40000, 8080, b"ret-token\r\n"),
        (40001, 7501, &compressed),
        (40002, 5060, b"the-other-secret"),
    ]);
    let needles = [
        Needle::new("token", "secret-token"),
        Needle::new("number", "13125550666"),
        Needle::new("other", "the-other-secret"),
    ];
    let a = capture::analyse_reader(&file[..], &[8080, 7501], &needles);
    assert_eq!(a.packets, 4);
    assert_eq!(a.seen_on_port("token", 8080).len(), 1, "{a:?}");
    let number = a.seen_on_port("number", 7501);
    assert!(number.len() == 1 && number[0].compressed, "{a:?}");
    assert!(a.seen("other").is_empty(), "port 5060 is not selected: {a:?}");
}
