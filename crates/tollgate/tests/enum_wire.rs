//! The ENUM server on the wire, checked with real DNS clients (dig and kdig) against a running
//! `tollgate serve` with the demo policy.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Engine, EngineOptions, kdig};
use hickory_proto::op::{Message, ResponseCode};

fn status(out: &str) -> &str {
    out.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("")
}

/// The output with runs of blanks in each line collapsed to one space.
fn squash(out: &str) -> String {
    out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n").collect()
}

fn answer_lines(out: &str) -> Vec<String> {
    out.split(";; ANSWER SECTION:")
        .nth(1)
        .map(|s| {
            s.lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn naptr_answers_for_each_action_on_the_wire() {
    let e = Engine::start(EngineOptions { node: "wire".into(), ..Default::default() });

    // allow: no record (NXDOMAIN) with the SOA, authoritative.
    let out = e.dig(&["NAPTR", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", "+norec"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("flags: qr aa;"), "{out}");
    assert!(
        squash(&out).contains(";; AUTHORITY SECTION:\ne164.arpa. 0 IN SOA tollgate.invalid. hostmaster.tollgate.invalid. 1 3600 600 86400 0\n"),
        "{out}"
    );

    // terminate: the intercept extension's URI.
    let out = e.dig(&["NAPTR", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(
        answer_lines(&out),
        vec![
            r#"1.1.1.0.5.5.5.2.1.2.1.e164.arpa. 0 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:intercept@127.0.0.1:5090!" ."#
        ]
    );

    // redirect: the target number at the redirect route.
    let out = e.dig(&["NAPTR", "2.2.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert_eq!(
        answer_lines(&out),
        vec![
            r#"2.2.1.0.5.5.5.2.1.2.1.e164.arpa. 0 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:+12125550199@127.0.0.1:5080!" ."#
        ]
    );

    // reject by source (query-name scheme): the reject cause.
    let out = e.dig(&["NAPTR", "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa."]);
    assert_eq!(
        answer_lines(&out),
        vec![
            r#"0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa. 0 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:603@reject.tollgate.invalid!" ."#
        ]
    );

    // TCP gives the same answer.
    let port = e.tcp.port().to_string();
    let out = common::dig(&["@127.0.0.1", "-p", &port, "+tcp", "NAPTR", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(out.contains("(TCP)"), "{out}");
    assert_eq!(
        answer_lines(&out),
        vec![
            r#"1.1.1.0.5.5.5.2.1.2.1.e164.arpa. 0 IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:intercept@127.0.0.1:5090!" ."#
        ]
    );

    // A name outside every suffix: REFUSED, not authoritative.
    let out = e.dig(&["A", "www.example.com."]);
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(!out.contains(" aa"), "{out}");

    // Under the suffix but not a number: NXDOMAIN.
    let out = e.dig(&["NAPTR", "x.1.2.e164.arpa."]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");

    // A number asked for another type: NOERROR, no answer.
    let out = e.dig(&["A", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("ANSWER: 0"), "{out}");

    // A query with no question (dig +header-only) is malformed: FORMERR.
    let out = e.dig(&["+header-only", "NAPTR", "1.e164.arpa."]);
    assert_eq!(status(&out), "FORMERR", "{out}");

    // Health check name.
    let out = e.dig(&["+short", "A", "health.tollgate."]);
    assert_eq!(out.trim(), "127.0.0.1");
}

#[test]
fn kdig_with_edns_source_uri_option() {
    let e = Engine::start(EngineOptions { node: "kdig".into(), ..Default::default() });
    let uri_hex: String = b"sip:+13125550666@sbc.example.net;user=phone".iter().map(|b| format!("{b:02x}")).collect();
    let server = format!("@{}", e.udp.ip());
    let port = e.udp.port().to_string();
    let opt = format!("+ednsopt=4:{uri_hex}");
    let out = kdig(&[&server, "-p", &port, &opt, "NAPTR", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains(r#"NAPTR	100 10 "u" "E2U+sip" "!^.*$!sip:603@reject.tollgate.invalid!" ."#), "{out}");
    // The same query without the option is allowed.
    let out = kdig(&[&server, "-p", &port, "NAPTR", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    // kdig over TCP.
    let tport = e.tcp.port().to_string();
    let out = kdig(&[&server, "-p", &tport, "+tcp", "NAPTR", "2.2.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(out.contains(r#""!^.*$!sip:+12125550199@127.0.0.1:5080!""#), "{out}");
    assert!(out.contains("(TCP)"), "{out}");
}

#[test]
fn garbage_gets_formerr_and_the_server_keeps_answering() {
    let e = Engine::start(EngineOptions { node: "garbage".into(), ..Default::default() });
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 1500];
    // A header claiming one question followed by a broken name.
    let garbage = [0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0xff];
    sock.send_to(&garbage, e.udp).unwrap();
    let (n, _) = sock.recv_from(&mut buf).expect("FORMERR answer");
    let resp = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!((resp.metadata.id, resp.metadata.response_code), (0xbeef, ResponseCode::FormErr));
    // Short packets and responses get no answer at all...
    sock.send_to(&[1, 2, 3], e.udp).unwrap();
    let mut response = garbage;
    response[2] |= 0x80;
    sock.send_to(&response, e.udp).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "no answer to short packets or responses");
    // ...and the server is still up.
    let out = e.dig(&["+short", "NAPTR", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."]);
    assert!(out.contains("sip:intercept@127.0.0.1:5090"), "{out}");
}
