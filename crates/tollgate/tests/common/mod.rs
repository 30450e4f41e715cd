//! Test harness: real tollgate processes and real peers (dig, kdig, Kamailio, SIPp).
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod analytics;
pub mod axe;
pub mod capture;
pub mod chromium;
pub mod lab;
pub mod netns;
pub mod redis;
pub mod sip;
pub mod srp;
pub mod tcpdump;
pub mod tshark;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The tollgate binary under test.
pub fn tollgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// A path in the repository (`docs/screenshots/...`).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// Runs a peer program; panics with an install hint if it is missing.
pub fn run_peer(program: &str, args: &[&str], package: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); install the Debian package {package} (see .ci/run)"))
}

/// `dig` output as text.
pub fn dig(args: &[&str]) -> String {
    let out = run_peer("dig", args, "dnsutils");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kdig` output as text.
pub fn kdig(args: &[&str]) -> String {
    let out = run_peer("kdig", args, "knot-dnsutils");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How to start an engine.
#[derive(Clone)]
pub struct EngineOptions {
    /// Node name (the record "device").
    pub node: String,
    /// ENUM listen addresses (UDP and TCP); port 0 picks free ports.
    pub enum_listen: Vec<SocketAddr>,
    /// API listen address; port 0 picks a free port.
    pub api_listen: SocketAddr,
    /// The role: `serve` (engine, collector and UI; demo policy on first start), `engine` or
    /// `collector`.
    pub role: &'static str,
    /// Extra configuration appended to the `[enum]` section of the generated file (TOML).
    pub extra_config: String,
    /// API bearer token.
    pub token: Option<String>,
    /// Body of the `[probe]` section. The default binds no probe sources, so tests can run
    /// side by side.
    pub probe: String,
    /// Extra environment variables of the process (fault injection).
    pub env: Vec<(String, String)>,
    /// Run the process inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
    /// Body of the `[spool]` section.
    pub spool: String,
    /// Extra configuration appended to the `[api]` section (TOML).
    pub api_config: String,
    /// Start the process with this open-file limit (soft, hard), through `prlimit`.
    pub nofile: Option<(u64, u64)>,
}

/// A port free for both UDP and TCP on `ip` right now.
pub fn free_port(ip: &str) -> u16 {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            node: "engine-test".into(),
            enum_listen: vec![format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap()],
            api_listen: "127.0.0.1:0".parse().unwrap(),
            role: "serve",
            extra_config: String::new(),
            token: None,
            probe: "hep_udp = []\nhep_tcp = []\n".into(),
            env: Vec::new(),
            netns: None,
            spool: "fsync_ms = 50\n".into(),
            api_config: String::new(),
            nofile: None,
        }
    }
}

/// A running tollgate process.
pub struct Engine {
    child: Option<Child>,
    /// Options it was started with.
    pub options: EngineOptions,
    /// State directory (kept across restarts).
    pub state: PathBuf,
    _state_guard: Option<tempfile::TempDir>,
    /// Configuration file.
    pub config: PathBuf,
    /// First UDP address (the unspecified address for a collector).
    pub udp: SocketAddr,
    /// First TCP address (the unspecified address for a collector).
    pub tcp: SocketAddr,
    /// The admin password printed on first start.
    pub admin_password: Option<String>,
    /// API base URL.
    pub api: String,
    /// The ready line it printed.
    pub ready: String,
}

fn write_config(path: &Path, state: &Path, o: &EngineOptions) {
    let listen = o.enum_listen.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let token = o.token.as_ref().map(|t| format!("token = \"{t}\"\n")).unwrap_or_default();
    let text = format!(
        "[node]\nname = \"{}\"\nstate_dir = \"{}\"\n\n[api]\nlisten = \"{}\"\n{token}{}\n[spool]\n{}\n\n[enum]\nlisten_udp = [{listen}]\nlisten_tcp = [{listen}]\nudp_workers = 2\n{}\n\n[probe]\n{}\n",
        o.node,
        state.display(),
        o.api_listen,
        o.api_config,
        o.spool,
        o.extra_config,
        o.probe
    );
    std::fs::write(path, text).unwrap();
}

impl Engine {
    /// Starts an engine in a fresh state directory and waits until it is ready.
    pub fn start(options: EngineOptions) -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = dir.path().join("tollgate.toml");
        write_config(&config, &state, &options);
        let mut e = Engine {
            child: None,
            options,
            state,
            _state_guard: Some(dir),
            config,
            udp: "0.0.0.0:0".parse().unwrap(),
            tcp: "0.0.0.0:0".parse().unwrap(),
            api: String::new(),
            admin_password: None,
            ready: String::new(),
        };
        e.launch();
        e
    }

    fn launch(&mut self) {
        let role = self.options.role;
        let mut command = match &self.options.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(tollgate_bin());
                c
            }
            None => Command::new(tollgate_bin()),
        };
        if let Some((soft, hard)) = self.options.nofile {
            // prlimit sets the limit, then executes the rest of the command line in its place.
            let program = command.get_program().to_owned();
            let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
            command = Command::new("prlimit");
            command.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(program).args(args);
        }
        let mut child = command
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg("warn")
            .arg(role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("tollgate ready:") || line.starts_with("tollgate first start: user") {
                    let _ = tx.send(line);
                }
            }
        });
        let mut line = String::new();
        while !line.starts_with("tollgate ready:") {
            line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| {
                if e == mpsc::RecvTimeoutError::Disconnected {
                    // Its standard output closed: it exited (a refused configuration, a port
                    // in use); what it said is on standard error, above.
                    let status = child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                    panic!(
                        "tollgate ({}) exited before it was ready ({status}): see its error above",
                        self.options.node
                    )
                }
                let _ = child.kill();
                panic!("tollgate ({}) did not become ready within 60 s", self.options.node)
            });
            if let Some(rest) = line.strip_prefix("tollgate first start: user `admin`, password ") {
                self.admin_password = rest.split_whitespace().next().map(String::from);
            }
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        if !matches!(self.options.role, "collector" | "probe") {
            self.udp = field("enum_udp").split(',').next().unwrap().parse().unwrap();
            self.tcp = field("enum_tcp").split(',').next().unwrap().parse().unwrap();
        }
        self.api = field("api");
        self.ready = line.clone();
        self.child = Some(child);
    }

    /// A `name=value` field of the ready line (e.g. `hep_udp`).
    pub fn ready_field(&self, name: &str) -> Option<String> {
        self.ready.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).map(String::from)
    }

    /// Kills the process (SIGKILL) without any cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again on the same state directory and addresses.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.options.role == "collector" || self.options.enum_listen.iter().all(|a| a.port() != 0),
            "restart needs fixed ENUM ports"
        );
        if self.options.api_listen.port() == 0 {
            let addr = self.api.trim_start_matches("http://").trim_start_matches("https://");
            self.options.api_listen = addr.parse().unwrap();
        }
        write_config(&self.config, &self.state, &self.options);
        self.launch();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Starts the process again after [`Engine::kill`] or [`Engine::stop`], unchanged.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.restart();
    }

    /// The admin token the CLI of this state directory uses.
    pub fn cli_token(&self) -> String {
        std::fs::read_to_string(self.state.join("cli-token")).expect("cli-token").trim().to_string()
    }

    /// `GET /api/v1/alarms`, typed as the web API answers it.
    pub fn alarms(&self) -> tollgate_api::web::RoleAlarms {
        serde_json::from_value(self.get_json("/api/v1/alarms")).expect("an alarms answer")
    }

    /// An HTTP client of this engine's API: with `[tls]` in its configuration, one that
    /// trusts that CA (the API is then HTTPS). It presents no certificate: the API takes
    /// clients without one, and a test may have broken the engine's own files on purpose.
    pub fn http(&self) -> reqwest::blocking::Client {
        let text = std::fs::read_to_string(&self.config).unwrap_or_default();
        let config: toml::Table = toml::from_str(&text).unwrap_or_default();
        let path = |key: &str| config.get("tls")?.get(key)?.as_str().map(PathBuf::from);
        let (Some(ca), Some(_)) = (path("ca"), path("cert")) else {
            return reqwest::blocking::Client::new();
        };
        let material = tollgate_tls::TlsMaterial::load(tollgate_tls::TlsFiles { ca, cert: None, key: None })
            .expect("the engine's [tls] CA");
        let versions = tollgate_tls::Versions::Tls12And13;
        let tls = tollgate_tls::client_config(&material, tollgate_tls::RoleSet::ANY, versions, &[b"http/1.1"]).unwrap();
        reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tollgate_tls::rustls::ClientConfig::clone(&tls))
            .build()
            .unwrap()
    }

    /// GETs an API path with the admin token and decodes JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let resp = self
            .http()
            .get(format!("{}{path}", self.api))
            .bearer_auth(self.cli_token())
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().unwrap()
    }

    /// The sum of every sample of a metric at `/metrics` (all label sets), e.g.
    /// `tollgate_spool_records_total`; 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self
            .http()
            .get(format!("{}/metrics", self.api))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Creates an ingest token (through the CLI) for engines shipping here.
    pub fn ingest_token(&self, name: &str) -> String {
        let out = self.cli(&["token", "create", name, "--role", "ingest"]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.trim().to_string()
    }

    /// Runs the tollgate CLI with this engine's configuration (in its network namespace).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = match &self.options.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(tollgate_bin());
                c
            }
            None => Command::new(tollgate_bin()),
        };
        command.arg("--config").arg(&self.config).args(args).output().expect("run tollgate CLI")
    }

    /// `dig` against this engine's UDP address with extra arguments.
    pub fn dig(&self, args: &[&str]) -> String {
        let server = format!("@{}", self.udp.ip());
        let port = self.udp.port().to_string();
        let mut all = vec![server.as_str(), "-p", port.as_str()];
        all.extend_from_slice(args);
        dig(&all)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a file into a fresh temporary directory and returns both.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Text of a process's stdout and stderr.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A throwaway PostgreSQL database for a test (admin URL from TOLLGATE_TEST_POSTGRES, default
/// postgres://tollgate:tollgate@127.0.0.1:5432/postgres, which `.ci/run` sets up); dropped at
/// the end.
pub struct PgDb {
    admin: String,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDb {
    /// Creates the database.
    pub fn create() -> PgDb {
        let admin = std::env::var("TOLLGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://tollgate:tollgate@127.0.0.1:5432/postgres".into());
        let name = format!("tollgate_e2e_{}", std::process::id()) + &format!("_{}", rand_suffix());
        let out = Command::new("psql")
            .arg(&admin)
            .args(["-v", "ON_ERROR_STOP=1", "-c", &format!("CREATE DATABASE {name}")])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "cannot create database at {admin}: {} (.ci/run installs and starts PostgreSQL)",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("psql not found ({e}); install the Debian package postgresql-client"),
        }
        let url = format!("{}/{name}", &admin[..admin.rfind('/').unwrap()]);
        PgDb { admin, name, url }
    }
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}", nanos & 0xffff_ffff)
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin)
            .args(["-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// A DNS client that remembers which queries were answered: each query asks for a distinct
/// called number, so answered queries can be found in the store afterwards.
pub struct TrackedClient {
    socket: std::net::UdpSocket,
    server: SocketAddr,
    /// Called numbers whose query was answered.
    pub answered: Vec<String>,
    /// Queries sent.
    pub sent: u64,
}

impl TrackedClient {
    /// A client of `server`.
    pub fn new(server: SocketAddr) -> TrackedClient {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        TrackedClient { socket, server, answered: Vec::new(), sent: 0 }
    }

    /// Asks for the called number `+1646<n>` (n < 10^7); true if answered.
    pub fn ask(&mut self, n: u64) -> bool {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RecordType};
        let number = format!("1646{n:07}");
        let name: String = number.chars().rev().flat_map(|c| [c, '.']).collect::<String>() + "e164.arpa.";
        let id = (n & 0xffff) as u16;
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(&name).unwrap(), RecordType::NAPTR));
        self.sent += 1;
        if self.socket.send_to(&m.to_vec().unwrap(), self.server).is_err() {
            return false;
        }
        let mut buf = [0u8; 1500];
        while let Ok((len, _)) = self.socket.recv_from(&mut buf) {
            if let Ok(resp) = Message::from_vec(&buf[..len])
                && resp.metadata.id == id
            {
                self.answered.push(format!("+{number}"));
                return true;
            }
        }
        false
    }
}

/// The Prometheus text of the server at `api` (`GET /metrics`).
pub fn scrape(api: &str) -> String {
    reqwest::blocking::get(format!("{api}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("GET {api}/metrics: {e}"))
}

/// The value of one sample in Prometheus text: `series` is the metric name with its labels as
/// printed, e.g. `x_total{reason="a"}`; `None` when absent.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One sample of the `/metrics` of the server at `api` (see [`metric_sample`]); 0 when absent.
pub fn metric_at(api: &str, series: &str) -> f64 {
    metric_sample(&scrape(api), series).unwrap_or(0.0)
}

/// The peak resident memory of a process (VmHWM of /proc/PID/status), KiB.
pub fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Polls `check` every 200 ms until it returns true, failing with `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A number from dnsperf's report: the first word after `name` (e.g. `"Queries lost:"`).
pub fn dnsperf_field(report: &str, name: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in dnsperf's report:\n{report}"))
}
