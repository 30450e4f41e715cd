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
        Kamailio::start_sbc_hep(o, None)
    }

    /// Starts the SBC as `options` say, mirroring every SIP message it receives or sends as
    /// HEP3 to `hep` (a probe's `hep_udp` address) when given.
    pub fn start_sbc_hep(o: SbcOptions<'_>, hep: Option<&str>) -> Kamailio {
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
        // The configuration's HEP part is a preprocessor block (`#!ifdef HEP_URI`).
        let define = hep.map(|a| format!(" -A 'HEP_URI=\"sip:{a}\"'")).unwrap_or_default();
        let script = format!(
            "mount --bind {d}/resolv.conf /etc/resolv.conf && exec kamailio -f {d}/kamailio.cfg -DD -E -m 64 -M 8 -w {d}{define}",
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

/// True if some process listens on TCP `ip:port` (read from `ss`).
pub fn tcp_listening(ip: &str, port: u16) -> bool {
    let out = Command::new("ss").args(["-Hltn", "src", &format!("{ip}:{port}")]).output();
    out.map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty()).unwrap_or(false)
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
        Callee::start_over(netns, "u1", ip, port, scenario, media_port)
    }

    /// [`Callee::start_scenario`] over TCP (SIPp `-t t1`): it listens on TCP `ip:port`.
    pub fn start_tcp(ip: &str, port: u16, scenario: &Path, media_port: u16) -> Callee {
        Callee::start_over(None, "t1", ip, port, scenario, media_port)
    }

    /// A SIPp callee with SIPp transport mode `transport` (`u1` UDP, `t1` TCP).
    fn start_over(
        netns: Option<&str>,
        transport: &str,
        ip: &str,
        port: u16,
        scenario: &Path,
        media_port: u16,
    ) -> Callee {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("messages.log");
        let child = in_netns(netns, "sipp")
            .arg("-sf")
            .arg(scenario)
            .args(["-t", transport, "-i", ip, "-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-nostdin", "-trace_msg"])
            .arg("-message_file")
            .arg(&log)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp callee");
        // Wait until SIPp has bound its port.
        let deadline = Instant::now() + Duration::from_secs(10);
        let bound = || if transport == "t1" { tcp_listening(ip, port) } else { udp_bound_in(netns, ip, port) };
        while !bound() {
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
    place_calls_at(scenario, numbers, calls, concurrent, 5, ip, port, media_port, proxy)
}

/// [`place_calls`] at `rate` new calls a second (5 there).
#[allow(clippy::too_many_arguments)]
pub fn place_calls_at(
    scenario: &Path,
    numbers: &Path,
    calls: u64,
    concurrent: u64,
    rate: u64,
    ip: &str,
    port: u16,
    media_port: u16,
    proxy: &str,
) -> CallerRun {
    place_calls_over(None, "u1", scenario, numbers, calls, concurrent, rate, ip, port, media_port, proxy)
}

/// [`place_calls_at`] from network namespace `netns` (the root namespace if `None`) with SIPp
/// transport mode `transport`: `u1` UDP, `t1` TCP on one connection for all calls, `tn` TCP
/// with a connection per call.
#[allow(clippy::too_many_arguments)]
pub fn place_calls_over(
    netns: Option<&str>,
    transport: &str,
    scenario: &Path,
    numbers: &Path,
    calls: u64,
    concurrent: u64,
    rate: u64,
    ip: &str,
    port: u16,
    media_port: u16,
    proxy: &str,
) -> CallerRun {
    let dir = tempfile::tempdir().unwrap();
    let mut sipp = in_netns(netns, "sipp");
    if transport == "tn" {
        // A socket per call: SIPp refuses to start when its default socket limit (50,000)
        // exceeds the open-file limit.
        sipp.args(["-max_socket", "1000"]);
    }
    let out = sipp
        .args(["-t", transport])
        .arg("-sf")
        .arg(scenario)
        .arg("-inf")
        .arg(numbers)
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            &concurrent.to_string(),
            "-i",
            ip,
            "-p",
            &port.to_string(),
        ])
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
    // Every Call-ID in the log (over TCP, SIPp does not log an INVITE it had to buffer while
    // its connection was opening, only the responses), in call order: SIPp's Call-IDs start
    // with the call number.
    let mut call_ids: Vec<String> = Vec::new();
    for line in messages.lines() {
        if let Some(id) = line.strip_prefix("Call-ID: ")
            && !call_ids.iter().any(|c| c == id.trim())
        {
            call_ids.push(id.trim().to_string());
        }
    }
    call_ids.sort_by_key(|id| id.split('-').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX));
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

/// A call that stays up until the test hangs it up: a minimal SIP caller over UDP (INVITE,
/// ACK, BYE through the SBC, following its Record-Route), so a test can hold several calls of
/// one caller at once and end them when it chooses. The callee is a SIPp [`Callee`] (`uas.xml`
/// answers and waits for the BYE).
pub struct HeldCall {
    socket: UdpSocket,
    sbc: std::net::SocketAddr,
    /// The caller's address (`ip:port`).
    local: std::net::SocketAddr,
    /// Calling user part as sent in From.
    from: String,
    /// Called user part as sent in the request URI.
    to: String,
    /// Its Call-ID.
    pub call_id: String,
    tag: String,
    /// The To header of the final response (with the callee's tag).
    to_header: String,
    /// The callee's Contact URI (the target of ACK and BYE).
    contact: String,
    /// The SBC's Record-Route entries (the route set).
    routes: Vec<String>,
    /// The final status code (200 if answered).
    pub status: u16,
    ended: bool,
}

/// The value of the first header `name` (case-insensitive) of a SIP message.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Every value of header `name` (comma-separated values split), in order.
fn headers(msg: &str, name: &str) -> Vec<String> {
    msg.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
        .collect()
}

fn status_code(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn uniq() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{n}{}", t & 0xffff_ffff, std::process::id())
}

impl HeldCall {
    /// Calls `to` from `from` (user parts as dialled) from `caller_ip` through the SBC at
    /// `sbc_ip:5060` and waits (up to 20 s) for the final response; the call stays up when
    /// answered (see [`HeldCall::status`]).
    pub fn place(caller_ip: &str, sbc_ip: &str, from: &str, to: &str) -> HeldCall {
        let socket = UdpSocket::bind((caller_ip, 0)).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
        let local = socket.local_addr().unwrap();
        let sbc: std::net::SocketAddr = format!("{sbc_ip}:5060").parse().unwrap();
        let id = uniq();
        let mut c = HeldCall {
            socket,
            sbc,
            local,
            from: from.to_string(),
            to: to.to_string(),
            call_id: format!("held-{id}@{caller_ip}"),
            tag: format!("t{id}"),
            to_header: String::new(),
            contact: String::new(),
            routes: Vec::new(),
            status: 0,
            ended: false,
        };
        let sdp = format!(
            "v=0\r\no=held 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = local.ip(),
            port = local.port() + 2
        );
        let branch = format!("z9hG4bK-{}", uniq());
        let invite = format!(
            "INVITE sip:{to}@{sbc} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nFrom: <sip:{from}@{local}>;tag={tag}\r\nTo: <sip:{to}@{sbc}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from}@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            tag = c.tag,
            cid = c.call_id,
            len = sdp.len()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut provisional = false;
        let mut last_sent = Instant::now() - Duration::from_secs(1);
        let final_response = loop {
            assert!(Instant::now() < deadline, "no final response to INVITE {} within 20 s", c.call_id);
            // Retransmit until the SBC says it has the request (100 Trying or later).
            if !provisional && last_sent.elapsed() >= Duration::from_millis(500) {
                c.socket.send_to(invite.as_bytes(), sbc).unwrap();
                last_sent = Instant::now();
            }
            let Some(msg) = c.recv() else { continue };
            if header(&msg, "Call-ID") != Some(c.call_id.as_str()) || !msg.contains("INVITE") {
                continue;
            }
            match status_code(&msg) {
                Some(code) if code < 200 => provisional = true,
                Some(_) => break msg,
                None => {}
            }
        };
        c.status = status_code(&final_response).unwrap();
        c.to_header = header(&final_response, "To").unwrap_or_default().to_string();
        if c.status < 300 {
            c.contact = header(&final_response, "Contact")
                .and_then(|v| Some(v.split_once('<')?.1.split_once('>')?.0.to_string()))
                .expect("a Contact in the 200 OK");
            // The UAC's route set is the Record-Route list in reverse order.
            c.routes = headers(&final_response, "Record-Route");
            c.routes.reverse();
            c.ack(&branch_for_ack());
        } else {
            // A non-2xx final response: the ACK is part of the INVITE transaction.
            let ack = format!(
                "ACK sip:{to}@{sbc} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\nFrom: <sip:{from}@{local}>;tag={tag}\r\nTo: {toh}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                tag = c.tag,
                toh = c.to_header,
                cid = c.call_id
            );
            c.socket.send_to(ack.as_bytes(), sbc).unwrap();
            c.ended = true;
        }
        c
    }

    fn recv(&self) -> Option<String> {
        let mut buf = [0u8; 8192];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).replace("\r\n", "\n"))
    }

    fn in_dialog(&self, method: &str, cseq: u32, branch: &str) -> String {
        let route: String = self.routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
        format!(
            "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n{route}From: <sip:{from}@{local}>;tag={tag}\r\nTo: {toh}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            contact = self.contact,
            local = self.local,
            from = self.from,
            tag = self.tag,
            toh = self.to_header,
            cid = self.call_id
        )
    }

    fn ack(&self, branch: &str) {
        self.socket.send_to(self.in_dialog("ACK", 1, branch).as_bytes(), self.sbc).unwrap();
    }

    /// True while the call is answered and not hung up.
    pub fn is_up(&self) -> bool {
        self.status == 200 && !self.ended
    }

    /// Hangs up (BYE through the SBC) and waits (up to 20 s) for the callee's 200 OK.
    pub fn hang_up(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let bye = self.in_dialog("BYE", 2, &format!("z9hG4bK-{}", uniq()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last_sent = Instant::now() - Duration::from_secs(1);
        loop {
            assert!(Instant::now() < deadline, "no 200 OK to the BYE of {} within 20 s", self.call_id);
            if last_sent.elapsed() >= Duration::from_millis(500) {
                self.socket.send_to(bye.as_bytes(), self.sbc).unwrap();
                last_sent = Instant::now();
            }
            let Some(msg) = self.recv() else { continue };
            if header(&msg, "Call-ID") != Some(self.call_id.as_str()) {
                continue;
            }
            match (status_code(&msg), header(&msg, "CSeq")) {
                // A retransmitted 200 OK to the INVITE: our ACK was lost.
                (Some(200), Some(cseq)) if cseq.ends_with("INVITE") => self.ack(&branch_for_ack()),
                (Some(code), Some(cseq)) if code >= 200 && cseq.ends_with("BYE") => return,
                _ => {}
            }
        }
    }

    /// The caller's `user@ip:port` and the called user, for messages.
    pub fn describe(&self) -> String {
        format!("{} -> {} ({})", self.from, self.to, self.call_id)
    }
}

fn branch_for_ack() -> String {
    format!("z9hG4bK-{}", uniq())
}

impl Drop for HeldCall {
    fn drop(&mut self) {
        if self.is_up() && !std::thread::panicking() {
            self.hang_up();
        }
    }
}

/// The `[enum]` additions of an engine behind the test SBC (the net's callees: `{net}.21` the
/// intercept, `{net}.22:5080` the redirect target; a cause is a reject Kamailio sends back), and
/// the SBC's addresses as device `kamailio-sbc`.
pub fn sbc_engine_answers(net: &str) -> String {
    format!(
        "[enum.answers]\nallow = {{ kind = \"no-record\" }}\nterminate = {{ kind = \"naptr\", uri = \"{{intercept}}\" }}\nreject = {{ kind = \"naptr\", uri = \"sip:{{cause}}@reject.tollgate.invalid\" }}\nredirect = {{ kind = \"naptr\", uri = \"sip:{{target}}@{net}.22:5080\" }}\nredirect_uri = {{ kind = \"naptr\", uri = \"{{target}}\" }}\n[enum.intercepts]\ndefault = \"sip:intercept@{net}.21:5080\"\n[[enum.devices]]\nname = \"kamailio-sbc\"\naddresses = [\"127.0.0.0/8\"]\n"
    )
}

/// The probe's SIPp scenario `name` (under tests/e2e/probe/) with its `@CODE@` filled, written
/// into `dir`.
pub fn probe_scenario(dir: &Path, name: &str, code: Option<u16>) -> std::path::PathBuf {
    let text = std::fs::read_to_string(e2e_dir().join("probe").join(name)).unwrap();
    let text = match code {
        Some(c) => text.replace("@CODE@", &c.to_string()),
        None => text,
    };
    let path = dir.join(format!("{}-{name}", code.unwrap_or(0)));
    std::fs::write(&path, text).unwrap();
    path
}

/// A SIPp callee on `ip`:`port` answering every INVITE with `code` `reason` (after `extra`
/// messages, e.g. a 180), with media on `media` (tests/e2e/probe/uas-final.xml).
pub fn probe_callee(ip: &str, dir: &Path, port: u16, (code, reason, extra): (u16, &str, &str), media: u16) -> Callee {
    let text = std::fs::read_to_string(e2e_dir().join("probe/uas-final.xml"))
        .unwrap()
        .replace("@CODE@", &code.to_string())
        .replace("@REASON@", reason)
        .replace("@EXTRA@", extra);
    let path = dir.join(format!("uas-{code}.xml"));
    std::fs::write(&path, text).unwrap();
    Callee::start_scenario(ip, port, &path, media)
}
