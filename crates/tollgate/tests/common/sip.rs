//! SIP peers: Kamailio as the SBC, SIPp as callers and callees.
//!
//! Kamailio's resolver (the enum module uses it) reads `/etc/resolv.conf` and always queries
//! port 53, so each Kamailio runs in its own mount namespace (`unshare --mount`) with a
//! resolv.conf bind-mounted over the system one that lists the test's tollgate engines. The
//! host's resolver configuration is never touched. This needs root (CI runs as root).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Directory of the e2e scenario and configuration files.
pub fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Fails clearly when the test cannot run here.
pub fn require_root_and_peers() {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        uid.as_deref().unwrap_or(""),
        "0",
        "the SBC tests bind port 53 and mount a private resolv.conf for Kamailio: run them as root (CI does)"
    );
    for (program, package) in [("kamailio", "kamailio"), ("sipp", "sip-tester"), ("unshare", "util-linux")] {
        let found =
            Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().map(|o| o.status.success());
        assert!(found.unwrap_or(false), "{program} is missing: install the Debian package {package} (see .ci/run)");
    }
}

/// The Kamailio module directory of this machine.
fn kamailio_modules() -> String {
    for dir in [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
    ] {
        if Path::new(dir).join("enum.so").exists() {
            return format!("{dir}/");
        }
    }
    panic!("Kamailio's enum module (enum.so) was not found; install the Debian package kamailio");
}

/// A Kamailio SBC.
pub struct Kamailio {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its SIP address (UDP, port 5060).
    pub ip: String,
}

impl Kamailio {
    /// Starts Kamailio on `ip:5060`, sending calls with no ENUM record to `normal_ip:5080`,
    /// resolving ENUM through `nameservers` (round-robin when `rotate`).
    pub fn start(ip: &str, normal_ip: &str, nameservers: &[&str], rotate: bool) -> Kamailio {
        Kamailio::start_sbc(SbcOptions { ip, normal_ip, nameservers, rotate, children: 1, dns_retries: 1, netns: None })
    }

    /// Starts the SBC as `options` say (see [`Kamailio::start`]).
    pub fn start_sbc(o: SbcOptions<'_>) -> Kamailio {
        let SbcOptions { ip, normal_ip, nameservers, rotate, children, dns_retries, netns } = o;
        let dir = tempfile::tempdir().unwrap();
        let cfg = std::fs::read_to_string(e2e_dir().join("kamailio-sbc.cfg"))
            .unwrap()
            .replace("@SBC_IP@", ip)
            .replace("@NORMAL_IP@", normal_ip)
            .replace("@CHILDREN@", &children.to_string())
            .replace("@DNS_RETRIES@", &dns_retries.to_string())
            .replace("@MODULES@", &kamailio_modules());
        std::fs::write(dir.path().join("kamailio.cfg"), cfg).unwrap();
        let mut resolv: String = nameservers.iter().map(|n| format!("nameserver {n}\n")).collect();
        resolv.push_str(if rotate {
            "options rotate timeout:1 attempts:1\n"
        } else {
            "options timeout:1 attempts:1\n"
        });
        std::fs::write(dir.path().join("resolv.conf"), resolv).unwrap();
        let script = format!(
            "mount --bind {d}/resolv.conf /etc/resolv.conf && exec kamailio -f {d}/kamailio.cfg -DD -E -m 64 -M 8 -w {d}",
            d = dir.path().display()
        );
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unshare"]);
                c
            }
            None => Command::new("unshare"),
        };
        command.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        Kamailio::launch(dir, ip, command, netns)
    }

    /// Starts Kamailio on `ip:5060` with a configuration from the e2e directory, after
    /// replacing `@MODULES@` and each `(marker, value)` pair.
    pub fn start_config(ip: &str, config: &str, replace: &[(&str, &str)]) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            std::fs::read_to_string(e2e_dir().join(config)).unwrap().replace("@MODULES@", &kamailio_modules());
        for (marker, value) in replace {
            cfg = cfg.replace(marker, value);
        }
        std::fs::write(dir.path().join("kamailio.cfg"), cfg).unwrap();
        let mut command = Command::new("kamailio");
        command
            .arg("-f")
            .arg(dir.path().join("kamailio.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-w"])
            .arg(dir.path());
        Kamailio::launch(dir, ip, command, None)
    }

    fn launch(dir: tempfile::TempDir, ip: &str, mut command: Command, netns: Option<&str>) -> Kamailio {
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = command.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("start kamailio");
        let mut k = Kamailio { child: Some(child), dir, ip: ip.to_string() };
        match netns {
            // The test process is not in the namespace: wait for the listening socket there.
            Some(ns) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !udp_bound_in(Some(ns), ip, 5060) {
                    if let Some(Ok(Some(status))) = k.child.as_mut().map(|c| c.try_wait()) {
                        panic!("kamailio exited ({status}):\n{}", k.log());
                    }
                    assert!(Instant::now() < deadline, "kamailio did not bind {ip}:5060 within 20 s:\n{}", k.log());
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            None => k.wait_ready(),
        }
        k
    }

    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind((self.ip.as_str(), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let local = sock.local_addr().unwrap();
            let options = format!(
                "OPTIONS sip:ping@{ip}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ready-{n}\r\nFrom: <sip:probe@{local}>;tag=probe\r\nTo: <sip:ping@{ip}>\r\nCall-ID: ready-{n}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                ip = self.ip,
                n = Instant::now().elapsed().as_nanos()
            );
            let _ = sock.send_to(options.as_bytes(), (self.ip.as_str(), 5060));
            if sock.recv_from(&mut buf).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
        }
        panic!("kamailio did not answer on {}:5060 within 20 s:\n{}", self.ip, self.log());
    }

    /// Kamailio's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets the main process stop its children.
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True if some process has a UDP socket bound to `ip:port` (read from `ss`).
pub fn udp_bound(ip: &str, port: u16) -> bool {
    udp_bound_in(None, ip, port)
}

/// [`udp_bound`] in network namespace `netns` (the root namespace if `None`).
pub fn udp_bound_in(netns: Option<&str>, ip: &str, port: u16) -> bool {
    let mut command = in_netns(netns, "ss");
    let out = command.args(["-Hlun", "src", &format!("{ip}:{port}")]).output();
    out.map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty()).unwrap_or(false)
}

/// `program`, run in network namespace `netns` (`ip netns exec`) when given.
pub fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// How to start the SBC ([`Kamailio::start_sbc`]).
pub struct SbcOptions<'a> {
    /// Its SIP address (UDP, port 5060).
    pub ip: &'a str,
    /// Where calls with no ENUM record go (port 5080).
    pub normal_ip: &'a str,
    /// The ENUM servers (its private resolv.conf).
    pub nameservers: &'a [&'a str],
    /// Round-robin over the servers.
    pub rotate: bool,
    /// Kamailio's UDP worker processes (each blocks while its ENUM query is outstanding).
    pub children: u32,
    /// How many times an unanswered ENUM query is sent again (1 s apart).
    pub dns_retries: u32,
    /// Run in this network namespace.
    pub netns: Option<&'a str>,
}

/// A SIPp callee that answers every call and logs what it received.
pub struct Callee {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its address.
    pub ip: String,
}

impl Callee {
    /// Starts a callee on `ip:5080` that answers every call.
    pub fn start(ip: &str) -> Callee {
        Callee::start_scenario(ip, 5080, &e2e_dir().join("uas.xml"), 6000)
    }

    /// Starts a SIPp callee with `scenario` on `ip:port`, its media on `media_port`.
    pub fn start_scenario(ip: &str, port: u16, scenario: &Path, media_port: u16) -> Callee {
        Callee::start_in(None, ip, port, scenario, media_port)
    }

    /// [`Callee::start_scenario`] in network namespace `netns`.
    pub fn start_in(netns: Option<&str>, ip: &str, port: u16, scenario: &Path, media_port: u16) -> Callee {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("messages.log");
        let child = in_netns(netns, "sipp")
            .arg("-sf")
            .arg(scenario)
            .args(["-i", ip, "-p", &port.to_string(), "-mp", &media_port.to_string(), "-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(&log)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp callee");
        // Wait until SIPp has bound its port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_bound_in(netns, ip, port) {
            assert!(Instant::now() < deadline, "sipp callee did not bind {ip}:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Callee { child: Some(child), dir, ip: ip.to_string() }
    }

    /// The request URIs of every INVITE received so far, in order.
    pub fn invites(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("INVITE "))
            .map(|l| l.trim_end_matches(" SIP/2.0").to_string())
            .collect()
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Places one call with SIPp from `caller_ip` through the SBC; true if SIPp saw the scenario
/// through (answered and hung up, or, for `expect_reject`, rejected with 603 as required).
pub fn call(caller_ip: &str, sbc_ip: &str, from: &str, to: &str, expect_reject: bool) -> bool {
    let scenario = if expect_reject { "uac-rejected.xml" } else { "uac.xml" };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("sipp")
        .arg("-sf")
        .arg(e2e_dir().join(scenario))
        .args(["-s", to, "-key", "from", from, "-m", "1", "-i", caller_ip, "-p", "5070"])
        .arg(format!("{sbc_ip}:5060"))
        .args(["-timeout", "15", "-timeout_error", "-nostdin", "-trace_err", "-error_file"])
        .arg(dir.path().join("errors.log"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sipp caller");
    if !status.success() {
        eprintln!(
            "sipp call {from} -> {to} failed ({status}):\n{}",
            std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default()
        );
    }
    status.success()
}

/// What one SIPp caller run reported.
#[derive(Debug)]
pub struct CallerRun {
    /// SIPp's exit status was success (every call went as the scenario says).
    pub success: bool,
    /// SIPp's own count of successful calls (its statistics file).
    pub successful_calls: u64,
    /// SIPp's count of failed calls.
    pub failed_calls: u64,
    /// Call-IDs of the calls placed, in order.
    pub call_ids: Vec<String>,
}

/// Places `calls` calls with SIPp `scenario` from `ip:port` (media on `media_port`) to
/// `proxy:5060`, at most `concurrent` at once, numbers from the injection file `numbers`
/// (`field0;field1;` per call).
#[allow(clippy::too_many_arguments)]
pub fn place_calls(
    scenario: &Path,
    numbers: &Path,
    calls: u64,
    concurrent: u64,
    ip: &str,
    port: u16,
    media_port: u16,
    proxy: &str,
) -> CallerRun {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .arg("-inf")
        .arg(numbers)
        .args(["-m", &calls.to_string(), "-r", "5", "-l", &concurrent.to_string(), "-i", ip, "-p", &port.to_string()])
        .args(["-mp", &media_port.to_string(), "-timeout", "30", "-timeout_error", "-nostdin"])
        .args(["-trace_msg", "-message_file"])
        .arg(dir.path().join("messages.log"))
        .args(["-trace_stat", "-stf"])
        .arg(dir.path().join("stats.csv"))
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("errors.log"))
        .arg(format!("{proxy}:5060"))
        .current_dir(dir.path())
        .output()
        .expect("run sipp caller (Debian package sip-tester)");
    let (successful_calls, failed_calls) = sipp_call_counts(&dir.path().join("stats.csv"));
    let messages = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
    let mut call_ids: Vec<String> = Vec::new();
    let mut in_invite = false;
    for line in messages.lines() {
        if line.starts_with("INVITE ") {
            in_invite = true;
        } else if in_invite && let Some(id) = line.strip_prefix("Call-ID: ") {
            if !call_ids.iter().any(|c| c == id.trim()) {
                call_ids.push(id.trim().to_string());
            }
            in_invite = false;
        }
    }
    let run = CallerRun { success: out.status.success(), successful_calls, failed_calls, call_ids };
    if !run.success {
        eprintln!(
            "sipp {} failed ({}):\n{}",
            scenario.display(),
            out.status,
            std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default()
        );
    }
    run
}

/// SIPp's cumulative (successful, failed) call counts from the last line of its `-stf`
/// statistics file (0 when absent).
pub fn sipp_call_counts(stats_file: &Path) -> (u64, u64) {
    let stats = std::fs::read_to_string(stats_file).unwrap_or_default();
    let mut lines = stats.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
    let column = |name: &str| -> u64 {
        header.iter().position(|h| *h == name).and_then(|i| last.get(i)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (column("SuccessfulCall(C)"), column("FailedCall(C)"))
}
