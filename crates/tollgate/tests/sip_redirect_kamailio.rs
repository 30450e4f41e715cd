//! Issue 19: the engine's SIP redirect server behind a real SBC. Kamailio
//! (tests/e2e/kamailio-redirect.cfg) sends each new INVITE to one of three `tollgate engine`
//! processes chosen round-robin by `dispatcher`, and follows the answer with `uac_redirect`'s
//! `get_redirects()`; SIPp places the calls and plays the callees. All on 127.0.122.0/24 and
//! 127.0.123.0/24 (no other test uses them).
//!
//! * `policy_answers_followed_by_kamailio`: allowed calls reach the normal callee, redirected
//!   calls the new target (the callee's Request-URI carries the new number), rejected calls get
//!   603 at the caller, intercepted calls reach the intercept; each decision is one record
//!   (`protocol` sip, the status sent, the rule) on the engine that answered, and the three
//!   engines shared the calls. A raw client then checks what Kamailio does not exercise: a
//!   retransmitted INVITE is answered with the same bytes and recorded once, OPTIONS 200, other
//!   methods 405, an INVITE over UDP from outside the configured clients dropped and counted (no
//!   answer, no record), and TCP.
//! * `engine_killed_mid_run_loses_no_call`: kill -9 of one engine during a steady SIPp run;
//!   Kamailio fails over to the next engine, SIPp counts every call successful, every call
//!   reached the callee and has a record on some engine.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sip::{Callee, Kamailio, call, e2e_dir, place_calls_at, require_root_and_peers};
use common::{Engine, EngineOptions, free_port, temp_file, text, wait_until};

const POLICY: &str = r#"
schema = 1
name = "sip-redirect-e2e"

[[rule]]
name = "reject-robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "allow-test-call"
destination = "+12125550100"
action = "allow"

[[rule]]
name = "terminate-test-call"
destination = "+12125550111"
action = "terminate"

[[rule]]
name = "redirect-test-call"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
"#;

/// The addresses of one test's network `net` (`127.0.122` or `127.0.123`).
struct Net {
    net: &'static str,
}

impl Net {
    /// Engine `i` (0-2): its SIP redirect server listens on UDP and TCP port 5060.
    fn engine(&self, i: usize) -> String {
        format!("{}.{}", self.net, 11 + i)
    }
    /// Kamailio, the SBC (the engines' configured client `kamailio`).
    fn sbc(&self) -> String {
        format!("{}.50", self.net)
    }
    /// A second configured client: the raw SIP client of the test.
    fn client(&self) -> String {
        format!("{}.51", self.net)
    }
    /// An address no engine lists as a client.
    fn stranger(&self) -> String {
        format!("{}.80", self.net)
    }
    /// The callee the SBC routes to without tollgate (port 5080).
    fn normal(&self) -> String {
        format!("{}.60", self.net)
    }
    /// The intercept (port 5080).
    fn intercept(&self) -> String {
        format!("{}.61", self.net)
    }
    /// The redirect target's callee (port 5080).
    fn reroute(&self) -> String {
        format!("{}.62", self.net)
    }
    /// SIPp callers.
    fn caller(&self) -> String {
        format!("{}.70", self.net)
    }
}

/// The engine's `[sip_redirect]` configuration (and the intercept it redirects to), appended
/// after its `[enum]` section.
fn redirect_config(n: &Net, i: usize) -> String {
    format!(
        r#"
[enum.intercepts]
default = "sip:intercept@{intercept}:5080"

[sip_redirect]
listen_udp = ["{engine}:5060"]
listen_tcp = ["{engine}:5060"]

[[sip_redirect.clients]]
name = "kamailio"
addresses = ["{sbc}/32"]

[[sip_redirect.clients]]
name = "test-client"
addresses = ["{client}/32"]

[sip_redirect.answers]
allow = {{ kind = "redirect", code = 302, contact = "{{ruri}}" }}
redirect = {{ kind = "redirect", code = 302, contact = "sip:{{target}}@{reroute}:5080" }}
terminate = {{ kind = "redirect", code = 302, contact = "{{intercept}}" }}
reject = {{ kind = "final" }}
"#,
        intercept = n.intercept(),
        engine = n.engine(i),
        sbc = n.sbc(),
        client = n.client(),
        reroute = n.reroute(),
    )
}

fn engine(n: &Net, i: usize) -> Engine {
    let ip = n.engine(i);
    Engine::start(EngineOptions {
        node: format!("sip-engine-{}", i + 1),
        role: "engine",
        enum_listen: vec![format!("{ip}:{}", free_port(&ip)).parse().unwrap()],
        api_listen: format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap(),
        extra_config: redirect_config(n, i),
        ..Default::default()
    })
}

fn install(e: &Engine, policy: &Path) {
    let out = e.cli(&["policy", "install", policy.to_str().unwrap(), "--api", &e.api]);
    assert!(out.status.success(), "install on {}: {:?}", e.options.node, text(&out));
}

/// Kamailio with the three engines of `n` in its dispatcher set; `dir` keeps the list file.
fn sbc(n: &Net, dir: &Path) -> Kamailio {
    let list: String = (0..3).map(|i| format!("1 sip:{}:5060 0 0\n", n.engine(i))).collect();
    let list_file = dir.join("dispatcher.list");
    std::fs::write(&list_file, list).unwrap();
    Kamailio::start_config(
        &n.sbc(),
        "kamailio-redirect.cfg",
        &[
            ("@SBC_IP@", &n.sbc()),
            ("@NORMAL_IP@", &n.normal()),
            ("@CHILDREN@", "4"),
            ("@DISPATCHER_LIST@", list_file.to_str().unwrap()),
        ],
    )
}

/// Every record the engine has spooled, as JSON, in time order (its process may be dead).
fn records(e: &Engine) -> Vec<serde_json::Value> {
    let dir = e.state.join("spool");
    let out = e.cli(&["spool", "dump", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "spool dump of {}: {:?}", e.options.node, text(&out));
    let mut recs: Vec<serde_json::Value> =
        text(&out).0.lines().map(|l| serde_json::from_str(l).expect("a JSON record")).collect();
    recs.sort_by_key(|r| chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap());
    recs
}

/// A record's field as text (`-` when absent or null).
fn field(r: &serde_json::Value, name: &str) -> String {
    match &r[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// The records of every engine, in time order.
fn all_records(engines: &[Engine]) -> Vec<serde_json::Value> {
    let mut all: Vec<serde_json::Value> = engines.iter().flat_map(records).collect();
    all.sort_by_key(|r| chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap());
    all
}

/// The SIPp caller scenario (tests/e2e/uac.xml) with the numbers from an injection file
/// (`caller;callee;` per line), written into `dir`.
fn uac_from_file(dir: &Path) -> PathBuf {
    let xml = std::fs::read_to_string(e2e_dir().join("uac.xml"))
        .unwrap()
        .replace("[from]", "[field0]")
        .replace("[service]", "[field1]");
    let path = dir.join("uac-inf.xml");
    std::fs::write(&path, xml).unwrap();
    path
}

// --- a raw SIP client, for what the SBC does not show -------------------------------------

/// A request from `local` to `server` (`method`, Request-URI user `to`, Via branch `branch`,
/// `transport` in the Via); `to_header` replaces the To header (an ACK's, with the tag).
fn request(method: &str, local: SocketAddr, server: &str, to: &str, branch: &str, transport: &str) -> String {
    sip_request(method, local, server, to, branch, transport, &format!("<sip:{to}@{server}>"))
}

/// [`request`] with the To header's value given.
fn sip_request(
    method: &str,
    local: SocketAddr,
    server: &str,
    to: &str,
    branch: &str,
    transport: &str,
    to_header: &str,
) -> String {
    format!(
        "{method} sip:{to}@{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:+14155550000@{ip}>;tag=raw-{branch}\r\nTo: {to_header}\r\nCall-ID: {branch}@{ip}\r\nCSeq: 1 {method}\r\nContact: <sip:+14155550000@{local}>\r\nContent-Length: 0\r\n\r\n",
        ip = local.ip()
    )
}

/// Sends `message` from `socket` to `server` and waits (10 s at most) for a response.
fn exchange(socket: &UdpSocket, server: SocketAddr, message: &str) -> String {
    socket.send_to(message.as_bytes(), server).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8192];
    let (n, from) =
        socket.recv_from(&mut buf).unwrap_or_else(|e| panic!("no answer from {server} to:\n{message}\n({e})"));
    assert_eq!(from, server, "the response comes from the address asked");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The status code of a response.
fn status(response: &str) -> u16 {
    response.strip_prefix("SIP/2.0 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The value of header `name` (case-insensitive, first occurrence).
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.split("\r\n").take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Records of `engine` whose destination is `number`.
fn records_for(engine: &Engine, number: &str) -> Vec<serde_json::Value> {
    records(engine).into_iter().filter(|r| r["destination"] == number).collect()
}

#[test]
fn policy_answers_followed_by_kamailio() {
    require_root_and_peers();
    let n = Net { net: "127.0.122" };
    let engines: Vec<Engine> = (0..3).map(|i| engine(&n, i)).collect();
    let (_policy_dir, policy) = temp_file("sip-redirect.toml", POLICY);
    for e in &engines {
        install(e, &policy);
    }
    let normal = Callee::start(&n.normal());
    let intercept = Callee::start(&n.intercept());
    let reroute = Callee::start(&n.reroute());
    let work = tempfile::tempdir().unwrap();
    let sbc = sbc(&n, work.path());
    let caller = n.caller();
    let dial = |from: &str, to: &str| {
        assert!(call(&caller, &sbc.ip, from, to, false), "call {from} -> {to} failed:\n{}", sbc.log())
    };

    // Allow: the engine's 302 points back at the normal route, which Kamailio follows.
    dial("14155550000", "12125550100");
    assert_eq!(normal.invites(), vec![format!("sip:+12125550100@{}:5080", n.normal())]);
    // Terminate to the intercept: the call reaches the intercept, not the dialled callee.
    dial("14155550000", "12125550111");
    assert_eq!(intercept.invites(), vec![format!("sip:intercept@{}:5080", n.intercept())]);
    // Redirect: the call reaches the reroute callee with the NEW number in its Request-URI.
    dial("14155550000", "12125550122");
    assert_eq!(reroute.invites(), vec![format!("sip:+12125550199@{}:5080", n.reroute())]);
    // Reject: the caller gets the policy's 603 (uac-rejected.xml accepts nothing else), and
    // nobody is called.
    assert!(call(&caller, &sbc.ip, "13125550666", "12125550100", true), "603 expected:\n{}", sbc.log());
    // Two more allowed calls: six decisions, two per engine in round-robin.
    dial("14155550000", "12125550100");
    dial("14155550000", "12125550100");
    assert_eq!(
        [normal.invites().len(), intercept.invites().len(), reroute.invites().len()],
        [3, 1, 1],
        "calls per callee (normal, intercept, reroute)"
    );

    // One record per call, on the engine that answered, with the status it sent.
    let recs = all_records(&engines);
    let summary: Vec<[String; 6]> = recs
        .iter()
        .map(|r| ["protocol", "source", "destination", "rule", "action", "rcode"].map(|name| field(r, name)))
        .collect();
    let expected: Vec<[String; 6]> = [
        ["+14155550000", "+12125550100", "allow-test-call", "allow", "302"],
        ["+14155550000", "+12125550111", "terminate-test-call", "terminate", "302"],
        ["+14155550000", "+12125550122", "redirect-test-call", "redirect", "302"],
        ["+13125550666", "+12125550100", "reject-robocaller", "terminate", "603"],
        ["+14155550000", "+12125550100", "allow-test-call", "allow", "302"],
        ["+14155550000", "+12125550100", "allow-test-call", "allow", "302"],
    ]
    .iter()
    .map(|[a, b, c, d, e]| ["sip", a, b, c, d, e].map(String::from))
    .collect();
    assert_eq!(summary, expected, "records: {recs:#?}");
    assert!(recs.iter().all(|r| r["client"] == "kamailio"), "the SBC is the configured client: {recs:#?}");
    // The dispatcher spread the calls over all three engines.
    for e in &engines {
        let own = records(e);
        assert_eq!(own.len(), 2, "{} answered two of the six calls: {own:#?}", e.options.node);
        assert!(own.iter().all(|r| r["device"] == e.options.node.as_str()), "{own:#?}");
    }

    // A raw client of engine 1 (a configured client address).
    let e1 = &engines[0];
    let server: SocketAddr = format!("{}:5060", n.engine(0)).parse().unwrap();
    let socket = UdpSocket::bind((n.client().as_str(), 0)).unwrap();
    let local = socket.local_addr().unwrap();

    // A retransmitted INVITE (same branch) is answered with the same bytes, recorded once.
    let invite = request("INVITE", local, &n.normal(), "+12125550133", "z9hG4bK-retrans-1", "UDP");
    let first = exchange(&socket, server, &invite);
    let again = exchange(&socket, server, &invite);
    assert_eq!(status(&first), 302, "{first}");
    assert_eq!(header(&first, "Contact"), Some(format!("<sip:+12125550133@{}>", n.normal()).as_str()), "{first}");
    assert_eq!(again, first, "the retransmission's answer is the first answer");
    let to_tag = header(&first, "To").and_then(|t| t.split_once(";tag=")).map(|(_, t)| t.to_string());
    assert!(to_tag.is_some_and(|t| !t.is_empty()), "a To tag in the 302: {first}");
    assert_eq!(header(&first, "Call-ID"), Some("z9hG4bK-retrans-1@127.0.122.51"), "{first}");
    assert_eq!(header(&first, "CSeq"), Some("1 INVITE"), "{first}");
    // The ACK of the 302 (same branch, the To tag of the answer): absorbed, nothing answered.
    let to_header = header(&first, "To").unwrap().to_string();
    let ack = sip_request("ACK", local, &n.normal(), "+12125550133", "z9hG4bK-retrans-1", "UDP", &to_header);
    socket.send_to(ack.as_bytes(), server).unwrap();
    wait_until(20, "the record of the raw INVITE", || !records_for(e1, "+12125550133").is_empty());
    // A record is in the spool before its answer is sent: both answers are here, so a second
    // record would be too; half a second more lets a wrongly late one show up as well.
    std::thread::sleep(Duration::from_millis(500));
    let raw = records_for(e1, "+12125550133");
    assert_eq!(raw.len(), 1, "one record for an INVITE and its retransmission: {raw:#?}");
    assert_eq!((field(&raw[0], "rcode"), field(&raw[0], "client")), ("302".into(), "test-client".into()));

    // OPTIONS (an SBC's health check): 200. Other methods: 405.
    let options = exchange(&socket, server, &request("OPTIONS", local, &n.normal(), "ping", "z9hG4bK-opt-1", "UDP"));
    assert_eq!(status(&options), 200, "{options}");
    let register = exchange(&socket, server, &request("REGISTER", local, &n.normal(), "u", "z9hG4bK-reg-1", "UDP"));
    assert_eq!(status(&register), 405, "{register}");

    // An INVITE over UDP from outside the configured clients: dropped unanswered (a 403 to a
    // spoofable source would reflect traffic at it), counted, and no decision recorded.
    let forbidden_before = e1.metric("tollgate_sip_redirect_forbidden_total");
    let stranger = UdpSocket::bind((n.stranger().as_str(), 0)).unwrap();
    let from_stranger =
        request("INVITE", stranger.local_addr().unwrap(), &n.normal(), "+12125550144", "z9hG4bK-x-1", "UDP");
    stranger.send_to(from_stranger.as_bytes(), server).unwrap();
    wait_until(20, "the stranger's INVITE counted as forbidden", || {
        e1.metric("tollgate_sip_redirect_forbidden_total") > forbidden_before
    });
    stranger.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert!(stranger.recv_from(&mut [0u8; 2048]).is_err(), "no answer to a stranger over UDP");

    // The same over TCP, from the client address.
    let tcp = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&format!("{}:0", n.client()).parse::<SocketAddr>().unwrap().into()).unwrap();
        s.connect(&server.into()).unwrap();
        TcpStream::from(s)
    };
    let tcp_local = tcp.local_addr().unwrap();
    let tcp_invite = request("INVITE", tcp_local, &n.normal(), "+12125550155", "z9hG4bK-tcp-1", "TCP");
    let tcp_answer = tcp_exchange(&tcp, &tcp_invite);
    assert_eq!(status(&tcp_answer), 302, "{tcp_answer}");
    assert_eq!(header(&tcp_answer, "Contact"), Some(format!("<sip:+12125550155@{}>", n.normal()).as_str()));
    wait_until(20, "the record of the TCP INVITE", || !records_for(e1, "+12125550155").is_empty());
    let tcp_recs = records_for(e1, "+12125550155");
    assert_eq!(tcp_recs.len(), 1, "{tcp_recs:#?}");
    assert_eq!(field(&tcp_recs[0], "transport"), "tcp", "{tcp_recs:#?}");

    std::thread::sleep(Duration::from_millis(500));
    assert!(records_for(e1, "+12125550144").is_empty(), "no record for a refused INVITE");
    // Nothing else reached engine 1: its two calls, the raw INVITE and the TCP one.
    assert_eq!(records(e1).len(), 4, "{:#?}", records(e1));
}

/// Sends `message` on `stream` and reads one response (its headers and Content-Length body).
fn tcp_exchange(mut stream: &TcpStream, message: &str) -> String {
    stream.write_all(message.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = header(&text, "Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if text.len() >= end + 4 + len {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no complete response over TCP within 10 s: {text:?}");
        match stream.read(&mut buf) {
            Ok(0) => panic!("the engine closed the TCP connection: {text:?}"),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => panic!("reading the TCP answer: {e} ({text:?})"),
        }
    }
}

#[test]
fn engine_killed_mid_run_loses_no_call() {
    require_root_and_peers();
    let n = Net { net: "127.0.123" };
    let mut engines: Vec<Engine> = (0..3).map(|i| engine(&n, i)).collect();
    let normal = Callee::start(&n.normal());
    let work = tempfile::tempdir().unwrap();
    let sbc = sbc(&n, work.path());

    // 60 calls at 6 a second, each to its own number (no policy: every call allowed, the 302
    // points at the normal route).
    const CALLS: u64 = 60;
    let numbers = work.path().join("numbers.csv");
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..CALLS {
        csv.push_str(&format!("14155550000;1646555{i:04};\n"));
    }
    std::fs::write(&numbers, csv).unwrap();
    let scenario = uac_from_file(work.path());
    let caller = n.caller();
    let run = std::thread::scope(|s| {
        let sipp = s.spawn(|| place_calls_at(&scenario, &numbers, CALLS, 30, 6, &caller, 5070, 6070, &sbc.ip));
        // A third of the calls through: kill -9 engine 2.
        wait_until(120, "a third of the calls at the callee", || normal.invites().len() as u64 >= CALLS / 3);
        let killed_at = normal.invites().len();
        engines[1].kill();
        eprintln!("engine 2 killed after {killed_at} calls");
        sipp.join().unwrap()
    });
    assert!(run.success, "SIPp: {run:?}\n{}", sbc.log());
    assert_eq!((run.successful_calls, run.failed_calls), (CALLS, 0), "SIPp's counts: {run:?}");
    // Kamailio met the dead engine and went on to the next one.
    assert!(sbc.log().contains("did not answer"), "no failover in Kamailio's log:\n{}", sbc.log());

    // Every call reached the callee with its own number, once.
    let mut reached = normal.invites();
    reached.sort();
    let wanted: Vec<String> = (0..CALLS).map(|i| format!("sip:+1646555{i:04}@{}:5080", n.normal())).collect();
    assert_eq!(reached, wanted);
    // Every call has a record on some engine (the killed one's spool included); all three
    // engines answered some.
    let recs = all_records(&engines);
    for number in (0..CALLS).map(|i| format!("+1646555{i:04}")) {
        assert!(
            recs.iter().any(|r| r["destination"] == number.as_str() && r["rcode"] == "302" && r["protocol"] == "sip"),
            "no record of the call to {number}"
        );
    }
    for e in &engines {
        assert!(!records(e).is_empty(), "{} answered no call", e.options.node);
    }
}
