//! The redirect server's answers, one message at a time (no network): which status each
//! request gets, the headers of every response, where it is sent, retransmissions, CANCEL,
//! ACK, fail-open, per-client answers and the records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tollgate_enum::respond::fuzzing;
use tollgate_enum::{EnumConfig, Template};
use tollgate_records::{Protocol, Record, Transport};
use tollgate_sip::message::{HeaderName, SipMessage, parse_one};
use tollgate_sip::uri::name_addr;
use tollgate_sip_redirect::config::{Answer, ClientConfig};
use tollgate_sip_redirect::{Handled, Outcome, RedirectConfig, Redirector, RequestContext};

// The test policy (one rule per kind of decision) is the fuzz target's.
use tollgate_sip_redirect::fuzzing::POLICY;

const CLIENT: &str = "127.0.0.1:5062";
const STRANGER: &str = "192.0.2.7:5060";

fn redirector(config: RedirectConfig) -> Redirector {
    let responder = fuzzing::responder(EnumConfig::default(), POLICY, BTreeMap::new(), 7, "engine-1");
    Redirector::new(config, Arc::new(responder))
}

fn ctx(peer: &str, transport: Transport) -> RequestContext {
    RequestContext {
        peer: peer.parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
        transport,
        received: Instant::now(),
        now: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
    }
}

/// A request: `method` to `ruri` from `caller`, with the given branch, Call-ID and extra
/// header lines; the CSeq is `1 <method>`.
fn request(method: &str, ruri: &str, caller: &str, branch: &str, call_id: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport\r\n\
Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-upstream;received=10.9.9.8\r\n\
Max-Forwards: 70\r\n\
From: \"Caller\" <sip:{caller}@127.0.0.1:5062>;tag=from-1\r\n\
To: <{ruri}>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 {method}\r\n\
{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn invite(callee: &str, caller: &str) -> Vec<u8> {
    request("INVITE", &format!("sip:{callee}@10.0.0.1:5060;user=phone"), caller, "z9hG4bK-1", "call-1", "")
}

/// The response's status and message; every response must parse back as SIP, with the
/// request's Call-ID and CSeq.
fn response<'a>(handled: &'a Handled, request: &[u8]) -> (u16, SipMessage<'a>) {
    let (bytes, _) = handled.response.as_ref().expect("a response");
    let (m, rest) = parse_one(bytes).expect("the response parses back");
    assert!(rest.is_empty(), "one message");
    let (req, _) = parse_one(request).unwrap();
    assert_eq!(m.call_id(), req.call_id());
    assert_eq!(m.cseq(), req.cseq());
    assert_eq!(m.header(HeaderName::ContentLength), Some("0"));
    (m.status().expect("a status line"), m)
}

fn headers<'a>(m: &SipMessage<'a>, name: HeaderName<'_>) -> Vec<&'a str> {
    m.headers.iter().filter(|h| h.name == name).map(|h| h.value).collect()
}

/// What the policy decides, by callee and caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Reject,
    Intercept,
    Redirect,
    RedirectUri,
    FailOpen,
}

const DECISIONS: [(Decision, &str, &str); 6] = [
    (Decision::Allow, "+12125550100", "+13125550100"),
    (Decision::Reject, "+12125550100", "+13125550666"),
    (Decision::Intercept, "+12125550111", "+13125550100"),
    (Decision::Redirect, "+12125550122", "+13125550100"),
    (Decision::RedirectUri, "+12125550133", "+13125550100"),
    (Decision::FailOpen, "+12125550144", "+13125550100"),
];

const METHODS: [&str; 7] = ["INVITE", "OPTIONS", "CANCEL", "ACK", "BYE", "REGISTER", "SUBSCRIBE"];

/// The specification, written independently of the code: the status each method gets from a
/// client or a stranger, for each decision the policy would make (`None`: nothing sent).
fn expected(method: &str, client: bool, decision: Decision) -> (Option<u16>, Outcome) {
    match (method, client, decision) {
        ("ACK", _, _) => (None, Outcome::Ack),
        // Over UDP (these cases), a stranger's forgeable source gets nothing back.
        (_, false, _) => (None, Outcome::Forbidden),
        ("OPTIONS", true, _) => (Some(200), Outcome::Options),
        ("CANCEL", true, _) => (Some(481), Outcome::Cancel),
        ("INVITE", true, Decision::Reject) => (Some(603), Outcome::Decision),
        ("INVITE", true, Decision::FailOpen) => (Some(302), Outcome::FailOpen),
        ("INVITE", true, _) => (Some(302), Outcome::Decision),
        (_, true, _) => (Some(405), Outcome::MethodNotAllowed),
    }
}

#[test]
fn every_method_client_and_decision_gets_its_status() {
    for method in METHODS {
        for client in [true, false] {
            for (i, (decision, callee, caller)) in DECISIONS.into_iter().enumerate() {
                // A fresh redirector per case: no retransmission or CANCEL state between cases.
                let r = redirector(RedirectConfig::default());
                let branch = format!("z9hG4bK-{i}");
                let msg = request(method, &format!("sip:{callee}@10.0.0.1"), caller, &branch, "c", "");
                let peer = if client { CLIENT } else { STRANGER };
                let handled = r.handle(&msg, &ctx(peer, Transport::Udp));
                let (status, outcome) = expected(method, client, decision);
                let case = format!("{method} from {peer}, {decision:?}");
                assert_eq!(handled.outcome, outcome, "{case}");
                assert_eq!(handled.response.as_ref().map(|_| response(&handled, &msg).0), status, "{case}");
                let decided = matches!(outcome, Outcome::Decision | Outcome::FailOpen);
                assert_eq!(handled.record.is_some(), decided, "a record only for a decided INVITE: {case}");
                assert_eq!(handled.decision.is_some(), decided, "{case}");
            }
        }
    }
}

/// A stranger over UDP is dropped unless `answer_strangers`; over TCP (a handshake proved
/// the address) it gets 403. Never a decision or a record.
#[test]
fn strangers_are_dropped_over_udp_unless_answer_strangers_and_get_403_over_tcp() {
    let msg = invite("+12125550100", "+13125550100");
    for answer_strangers in [false, true] {
        let r = redirector(RedirectConfig { answer_strangers, ..Default::default() });
        for transport in [Transport::Udp, Transport::Tcp] {
            let handled = r.handle(&msg, &ctx(STRANGER, transport));
            let case = format!("answer_strangers = {answer_strangers}, {transport:?}");
            assert_eq!(handled.outcome, Outcome::Forbidden, "{case}");
            assert!(handled.record.is_none() && handled.decision.is_none(), "{case}");
            let expected = if transport == Transport::Udp && !answer_strangers { None } else { Some(403) };
            assert_eq!(handled.response.as_ref().map(|_| response(&handled, &msg).0), expected, "{case}");
        }
    }
}

#[test]
fn responses_copy_the_vias_from_to_call_id_cseq_and_add_their_own_headers() {
    let r = redirector(RedirectConfig::default());
    let cases = [
        ("+12125550100", "+13125550100", 302, Some("<sip:+12125550100@10.0.0.1:5060;user=phone>"), None),
        ("+12125550111", "+13125550100", 302, Some("<sip:intercept@127.0.0.1:5090>"), None),
        ("+12125550122", "+13125550100", 302, Some("<sip:+12125550199@10.0.0.1:5060;user=phone>"), None),
        ("+12125550133", "+13125550100", 302, Some("<sip:ivr@10.0.0.5>"), None),
        ("+12125550100", "+13125550666", 603, None, Some("SIP ;cause=603 ;text=\"reject-robocaller\"")),
    ];
    for (i, (callee, caller, code, contact, reason)) in cases.into_iter().enumerate() {
        let msg = request(
            "INVITE",
            &format!("sip:{callee}@10.0.0.1:5060;user=phone"),
            caller,
            &format!("z9hG4bK-h{i}"),
            &format!("call-h{i}"),
            "",
        );
        let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
        let (status, m) = response(&handled, &msg);
        assert_eq!(status, code, "{callee} from {caller}");
        assert_eq!(
            headers(&m, HeaderName::Via),
            [
                format!("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-h{i};rport=5062;received=127.0.0.1").as_str(),
                "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-upstream;received=10.9.9.8",
            ],
            "every Via in order, the top one with rport and received"
        );
        assert_eq!(
            m.header(HeaderName::From),
            Some("\"Caller\" <sip:".to_string() + caller + "@127.0.0.1:5062>;tag=from-1").as_deref()
        );
        let to = m.header(HeaderName::To).unwrap();
        assert!(to.starts_with(&format!("<sip:{callee}@10.0.0.1:5060;user=phone>;tag=tg")), "{to}");
        assert_eq!(m.header(HeaderName::Contact), contact);
        assert_eq!(m.header_named("Reason"), reason);
        assert!(m.header_named("Server").unwrap().starts_with("tollgate/"));
        let text = std::str::from_utf8(handled.response.as_ref().unwrap().0.as_slice()).unwrap();
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
        assert!(text.starts_with(&format!("SIP/2.0 {code} ")), "{text}");
    }
    // The To tag: stable for the same branch and Call-ID, different for another call; a To
    // that has a tag keeps it.
    let tag = |branch: &str, call_id: &str, r: &Redirector| {
        let msg = request("OPTIONS", "sip:tollgate@127.0.0.1", "+13125550100", branch, call_id, "");
        let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
        let (_, m) = response(&handled, &msg);
        name_addr(m.header(HeaderName::To).unwrap()).tag.unwrap().to_string()
    };
    assert_eq!(tag("z9hG4bK-a", "x", &r), tag("z9hG4bK-a", "x", &redirector(RedirectConfig::default())));
    assert_ne!(tag("z9hG4bK-a", "x", &r), tag("z9hG4bK-a", "y", &r));
    let mut msg = String::from_utf8(invite("+12125550100", "+13125550100")).unwrap();
    msg = msg.replace("To: <sip:+12125550100@10.0.0.1:5060;user=phone>", "To: <sip:+12125550100@10.0.0.1>;tag=theirs");
    let handled = r.handle(msg.as_bytes(), &ctx(CLIENT, Transport::Udp));
    let (_, m) = response(&handled, msg.as_bytes());
    assert_eq!(m.header(HeaderName::To), Some("<sip:+12125550100@10.0.0.1>;tag=theirs"));
    // OPTIONS: Allow and Accept; another method: Allow.
    let msg = request("OPTIONS", "sip:tollgate@127.0.0.1", "+13125550100", "z9hG4bK-o", "o", "");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    let (_, m) = response(&handled, &msg);
    assert_eq!(m.header_named("Allow"), Some("INVITE, ACK, CANCEL, OPTIONS"));
    assert_eq!(m.header_named("Accept"), Some("application/sdp"));
    let msg = request("BYE", "sip:tollgate@127.0.0.1", "+13125550100", "z9hG4bK-b", "b", "");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    assert_eq!(response(&handled, &msg).1.header_named("Allow"), Some("INVITE, ACK, CANCEL, OPTIONS"));
}

/// The To tag added to a response is a fixed function of the top Via branch and the Call-ID
/// (FNV-1a 64 of branch, NUL, Call-ID, computed independently): the same answer to the same
/// request whatever the build or restart.
#[test]
fn the_to_tag_is_stable_across_builds() {
    let r = redirector(RedirectConfig::default());
    let msg = invite("+12125550100", "+13125550100");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    let (_, m) = response(&handled, &msg);
    assert_eq!(name_addr(m.header(HeaderName::To).unwrap()).tag, Some("tg5c38d2f3ca62c6c8"));
}

#[test]
fn responses_go_to_the_source_port_with_rport_else_to_the_via_port() {
    let r = redirector(RedirectConfig::default());
    let via = |via: &str, n: usize| {
        format!(
            "OPTIONS sip:t@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:t@127.0.0.1>\r\nCall-ID: d{n}\r\nCSeq: 1 OPTIONS\r\n\r\n"
        )
        .into_bytes()
    };
    let peer = "127.0.0.9:40000";
    let cases = [
        (
            "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK-1;rport",
            Transport::Udp,
            "127.0.0.9:40000",
            "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK-1;rport=40000;received=127.0.0.9",
        ),
        (
            "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK-1",
            Transport::Udp,
            "127.0.0.9:5062",
            "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK-1",
        ),
        (
            "SIP/2.0/UDP sbc.example.net;branch=z9hG4bK-1",
            Transport::Udp,
            "127.0.0.9:5060",
            "SIP/2.0/UDP sbc.example.net;branch=z9hG4bK-1;received=127.0.0.9",
        ),
        (
            "SIP/2.0/UDP 10.0.0.1:5070;received=1.2.3.4;branch=z9hG4bK-1;maddr=192.0.2.1",
            Transport::Udp,
            "127.0.0.9:5070",
            "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;maddr=192.0.2.1;received=127.0.0.9",
        ),
        (
            "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK-1",
            Transport::Tcp,
            peer,
            "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK-1;received=127.0.0.9",
        ),
    ];
    for (n, (top, transport, to, answered)) in cases.into_iter().enumerate() {
        let msg = via(top, n);
        let handled = r.handle(&msg, &ctx(peer, transport));
        let (status, m) = response(&handled, &msg);
        assert_eq!(status, 200);
        assert_eq!(handled.response.as_ref().unwrap().1, to.parse::<SocketAddr>().unwrap(), "{top}");
        assert_eq!(m.header(HeaderName::Via), Some(answered));
    }
}

#[test]
fn a_retransmission_gets_the_same_bytes_without_a_second_record_or_velocity_count() {
    let r = redirector(RedirectConfig::default());
    let c = ctx(CLIENT, Transport::Udp);
    // The velocity rule terminates a +1415 caller's third call in 10 minutes.
    let first = invite("+12125550100", "+14155550100");
    let answer = r.handle(&first, &c);
    assert_eq!(answer.outcome, Outcome::Decision);
    assert!(answer.record.is_some());
    for _ in 0..3 {
        let again = r.handle(&first, &ctx(CLIENT, Transport::Udp));
        assert_eq!(again.outcome, Outcome::Retransmission);
        assert_eq!(again.response, answer.response, "the very same bytes, to the same address");
        assert!(again.record.is_none() && again.decision.is_none());
    }
    let second = request("INVITE", "sip:+12125550100@10.0.0.1", "+14155550100", "z9hG4bK-2", "call-2", "");
    let handled = r.handle(&second, &c);
    assert_eq!(response(&handled, &second).0, 302, "the second call is still under the limit");
    let third = request("INVITE", "sip:+12125550100@10.0.0.1", "+14155550100", "z9hG4bK-3", "call-3", "");
    let handled = r.handle(&third, &c);
    assert_eq!(response(&handled, &third).0, 486, "the third call is over it");
    // Another sender with the same branch and Call-ID is another request.
    let other = r.handle(&first, &ctx("127.0.0.2:5062", Transport::Udp));
    assert_eq!(other.outcome, Outcome::Decision);
}

/// Emergency calls, N11 and short codes, service URNs and names are not numbers the policy
/// decides: they continue as dialled with the client's allow answer, undecided, unrecorded and
/// not counted by velocity rules (a +1415 caller's third call in 10 minutes would be 486).
#[test]
fn callees_that_are_not_numbers_continue_as_dialled() {
    const CALLEES: [&str; 7] = [
        "sip:911@10.0.0.1:5060;user=phone",
        "sip:112@10.0.0.1",
        "urn:service:sos",
        "URN:service:sos.police",
        "sip:alice@x",
        "sip:611@10.0.0.1",
        "tel:5550",
    ];
    let mut sbc = ClientConfig::new("sbc-404", vec!["127.0.0.1/32".parse().unwrap()]);
    sbc.allow = Some(Answer::Final { code: Some(404), reason: true });
    let mut gw = ClientConfig::new("gw", vec!["127.0.0.2/32".parse().unwrap()]);
    gw.allow = Some(Answer::Redirect { code: 302, contact: Template::parse("sip:{dest}@gw.example.net").unwrap() });
    let mut src = ClientConfig::new("src", vec!["127.0.0.3/32".parse().unwrap()]);
    src.allow = Some(Answer::Redirect { code: 305, contact: Template::parse("{ruri};src={source_digits}").unwrap() });
    let config = RedirectConfig { clients: vec![sbc, gw, src, ClientConfig::loopback()], ..Default::default() };
    let r = redirector(config);
    for (n, callee) in CALLEES.into_iter().enumerate() {
        // peer, expected status and Contact (None: none).
        let cases = [
            // The default allow answer: 302 to the Request-URI.
            ("127.0.0.4:5062", 302, Some(format!("<{callee}>"))),
            // An SBC that continues on 404: 404, with a Reason naming no rule.
            (CLIENT, 404, None),
            // An answer that needs the number: the built-in 302 to the Request-URI.
            ("127.0.0.2:5062", 302, Some(format!("<{callee}>"))),
            // Placeholders that have a value without a callee number are filled in.
            ("127.0.0.3:5062", 305, Some(format!("<{callee};src=14155550100>"))),
        ];
        for (peer, code, contact) in cases {
            let msg = request("INVITE", callee, "+14155550100", &format!("z9hG4bK-{n}"), &format!("c{n}"), "");
            let handled = r.handle(&msg, &ctx(peer, Transport::Udp));
            let case = format!("{callee} from {peer}");
            assert_eq!(handled.outcome, Outcome::NotDecided, "{case}");
            assert!(handled.record.is_none() && handled.decision.is_none(), "{case}");
            let (status, m) = response(&handled, &msg);
            assert_eq!(status, code, "{case}");
            assert_eq!(m.header(HeaderName::Contact).map(str::to_string), contact, "{case}");
            let reason = if code == 404 { Some("SIP ;cause=404") } else { None };
            assert_eq!(m.header_named("Reason"), reason, "{case}");
            // Answered like any INVITE: a retransmission gets the same bytes.
            let again = r.handle(&msg, &ctx(peer, Transport::Udp));
            assert_eq!((again.outcome, &again.response), (Outcome::Retransmission, &handled.response), "{case}");
        }
    }
    // None of those was counted: the +1415 caller's first two numbered calls are allowed.
    for n in 0..2 {
        let msg = request("INVITE", "sip:+12125550100@h", "+14155550100", &format!("z9hG4bK-n{n}"), "numbered", "");
        let handled = r.handle(&msg, &ctx("127.0.0.4:5062", Transport::Udp));
        assert_eq!((handled.outcome, response(&handled, &msg).0), (Outcome::Decision, 302), "numbered call {n}");
    }
}

#[test]
fn the_window_expires_and_is_bounded() {
    let config = RedirectConfig { retransmission_window_secs: 32, retransmission_entries: 2, ..Default::default() };
    let r = redirector(config);
    let mut c = ctx(CLIENT, Transport::Udp);
    let first = invite("+12125550100", "+13125550100");
    assert_eq!(r.handle(&first, &c).outcome, Outcome::Decision);
    c.received += Duration::from_secs(31);
    assert_eq!(r.handle(&first, &c).outcome, Outcome::Retransmission);
    c.received += Duration::from_secs(1);
    let late = r.handle(&first, &c);
    assert_eq!(late.outcome, Outcome::Decision, "after the window, a new request");
    assert!(late.record.is_some());
    for n in 0..2 {
        let msg = request("INVITE", "sip:+12125550100@h", "+13125550100", &format!("z9hG4bK-b{n}"), "b", "");
        assert_eq!(r.handle(&msg, &c).outcome, Outcome::Decision);
    }
    assert_eq!(r.retransmissions_kept(), 2);
    assert_eq!(r.retransmissions_evicted(), 1);
    assert_eq!(r.handle(&first, &c).outcome, Outcome::Decision, "forgotten to keep the bound");
}

/// `retransmission_max_mb` bounds the window's memory apart from its entries: 3,000 answers
/// (about 0.6 KiB each with their keys) do not fit in 1 MiB, however many entries are allowed;
/// with the defaults (320,000 entries, 256 MiB) all are kept.
#[test]
fn the_window_is_bounded_in_bytes_by_retransmission_max_mb() {
    let c = ctx(CLIENT, Transport::Udp);
    let small = redirector(RedirectConfig { retransmission_max_mb: 1, ..Default::default() });
    let default = redirector(RedirectConfig::default());
    for n in 0..3000 {
        let msg = request("INVITE", "sip:+12125550100@h", "+13125550100", &format!("z9hG4bK-m{n}"), "m", "");
        assert_eq!(small.handle(&msg, &c).outcome, Outcome::Decision);
        assert_eq!(default.handle(&msg, &c).outcome, Outcome::Decision);
    }
    assert!(small.retransmissions_bytes() <= 1 << 20, "{}", small.retransmissions_bytes());
    assert!(small.retransmissions_evicted() > 0);
    assert_eq!(small.retransmissions_kept() as u64 + small.retransmissions_evicted(), 3000);
    assert_eq!((default.retransmissions_kept(), default.retransmissions_evicted()), (3000, 0));
    assert!(default.retransmissions_bytes() > 1 << 20, "the bound was needed: {}", default.retransmissions_bytes());
}

#[test]
fn cancel_is_200_for_an_invite_answered_here_and_481_otherwise_and_ack_is_silent() {
    let r = redirector(RedirectConfig::default());
    let c = ctx(CLIENT, Transport::Udp);
    let cancel =
        request("CANCEL", "sip:+12125550100@10.0.0.1:5060;user=phone", "+13125550100", "z9hG4bK-1", "call-1", "");
    let handled = r.handle(&cancel, &c);
    assert_eq!((handled.outcome, response(&handled, &cancel).0), (Outcome::Cancel, 481));
    let inv = invite("+12125550100", "+13125550100");
    let answered = r.handle(&inv, &c);
    let handled = r.handle(&cancel, &c);
    let (status, m) = response(&handled, &cancel);
    assert_eq!(status, 200);
    let invite_to = {
        let (m, _) = parse_one(&answered.response.as_ref().unwrap().0).unwrap();
        m.header(HeaderName::To).unwrap().to_string()
    };
    assert_eq!(m.header(HeaderName::To), Some(invite_to.as_str()), "the CANCEL's 200 has the INVITE answer's To tag");
    let ack = request("ACK", "sip:+12125550100@10.0.0.1:5060;user=phone", "+13125550100", "z9hG4bK-1", "call-1", "");
    for peer in [CLIENT, STRANGER] {
        let handled = r.handle(&ack, &ctx(peer, Transport::Udp));
        assert_eq!(handled.outcome, Outcome::Ack);
        assert!(handled.response.is_none() && handled.record.is_none());
    }
}

#[test]
fn an_unknown_intercept_fails_open_with_the_allow_answer() {
    let r = redirector(RedirectConfig::default());
    let msg = invite("+12125550144", "+13125550100");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    assert_eq!(handled.outcome, Outcome::FailOpen);
    let (status, m) = response(&handled, &msg);
    assert_eq!(status, 302);
    assert_eq!(m.header(HeaderName::Contact), Some("<sip:+12125550144@10.0.0.1:5060;user=phone>"));
    let Some(Record::EnumQuery { record, .. }) = &handled.record else { panic!("a record") };
    assert!(record.fail_open);
    assert_eq!(record.action, "allow");
    // A redirect to a number for a tel: Request-URI has no host to redirect to: fail-open too.
    let msg = request("INVITE", "tel:+12125550122", "+13125550100", "z9hG4bK-t", "t", "");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    assert_eq!(handled.outcome, Outcome::FailOpen);
    assert_eq!(response(&handled, &msg).1.header(HeaderName::Contact), Some("<tel:+12125550122>"));
}

#[test]
fn a_client_may_have_its_own_answers() {
    let mut sbc = ClientConfig::new("sbc-1", vec!["127.0.0.1/32".parse().unwrap()]);
    sbc.allow = Some(Answer::Final { code: Some(404), reason: false });
    sbc.reject = Some(Answer::Final { code: Some(480), reason: true });
    let config = RedirectConfig { clients: vec![sbc, ClientConfig::loopback()], ..Default::default() };
    let r = redirector(config);
    let cases = [
        (CLIENT, "+13125550100", 404, None),
        (CLIENT, "+13125550666", 480, Some("SIP ;cause=480 ;text=\"reject-robocaller\"")),
        ("127.0.0.2:5062", "+13125550100", 302, None),
    ];
    for (n, (peer, caller, code, reason)) in cases.into_iter().enumerate() {
        let msg = request("INVITE", "sip:+12125550100@h", caller, &format!("z9hG4bK-{n}"), "c", "");
        let handled = r.handle(&msg, &ctx(peer, Transport::Udp));
        let (status, m) = response(&handled, &msg);
        assert_eq!(status, code, "{peer} {caller}");
        assert_eq!(m.header_named("Reason"), reason);
        let Some(Record::EnumQuery { record, .. }) = &handled.record else { panic!("a record") };
        assert_eq!(record.client, if peer == CLIENT { "sbc-1" } else { "loopback" });
        assert_eq!(record.rcode, code.to_string());
    }
}

#[test]
fn the_record_is_the_enum_datasets_with_protocol_sip() {
    let r = redirector(RedirectConfig::default());
    let extra = "P-Asserted-Identity: <sip:+13125550666@10.0.0.2>, <tel:+13125550100>\r\n";
    let msg = request("INVITE", "sip:2125550100@10.0.0.1", "+13125550100", "z9hG4bK-r", "r", extra);
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Tcp));
    assert_eq!(response(&handled, &msg).0, 603, "the caller from P-Asserted-Identity, not From");
    let Some(Record::EnumQuery { record, .. }) = &handled.record else { panic!("a record") };
    assert_eq!(record.protocol, Protocol::Sip);
    assert_eq!(record.transport, Transport::Tcp);
    assert_eq!(record.rcode, "603");
    assert_eq!(record.client, "loopback");
    assert_eq!(record.device, "engine-1");
    assert_eq!(record.client_addr, CLIENT.parse::<SocketAddr>().unwrap());
    assert_eq!(record.destination.to_string(), "+12125550100", "the dialing plan normalises the callee");
    assert_eq!(record.source.map(|s| s.to_string()).as_deref(), Some("+13125550666"));
    assert_eq!(record.rule.as_deref(), Some("reject-robocaller"));
    assert_eq!(record.detail.as_deref(), Some("reject 603"));
    assert_eq!(record.policy_version, Some(7));
    assert!(!record.fail_open);
    // An unreadable caller: decided without one.
    let msg = request("INVITE", "sip:+12125550100@h", "anonymous", "z9hG4bK-a", "a", "");
    let handled = r.handle(&msg, &ctx(CLIENT, Transport::Udp));
    let Some(Record::EnumQuery { record, .. }) = &handled.record else { panic!("a record") };
    assert_eq!(record.source, None);
}

#[test]
fn callees_that_are_not_numbers_and_malformed_requests() {
    let r = redirector(RedirectConfig::default());
    let c = ctx(CLIENT, Transport::Udp);
    let status = |msg: &[u8]| {
        let handled = r.handle(msg, &c);
        assert!(handled.record.is_none(), "no decision");
        (handled.outcome, handled.response.as_ref().map(|_| response(&handled, msg).0))
    };
    let inv = |ruri: &str, branch: &str| request("INVITE", ruri, "+13125550100", branch, "n", "");
    assert_eq!(status(&inv("sip:alice@example.com", "z9hG4bK-1")), (Outcome::NotDecided, Some(302)));
    assert_eq!(status(&inv("sip:5550@example.com", "z9hG4bK-2")), (Outcome::NotDecided, Some(302)));
    assert_eq!(status(&inv("mailto:a@b", "z9hG4bK-3")), (Outcome::NotDecided, Some(416)));
    let hops = String::from_utf8(request("INVITE", "sip:+12125550100@h", "+13125550100", "z9hG4bK-4", "n", ""))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(status(hops.as_bytes()), (Outcome::NotDecided, Some(483)));
    // A Request-URI without a user part: the callee is the To URI's.
    let mut to_only = String::from_utf8(inv("sip:10.0.0.1", "z9hG4bK-5")).unwrap();
    to_only = to_only.replace("To: <sip:10.0.0.1>", "To: <tel:+1-212-555-0122>");
    let handled = r.handle(to_only.as_bytes(), &c);
    assert_eq!(
        response(&handled, to_only.as_bytes()).1.header(HeaderName::Contact),
        Some("<sip:+12125550199@10.0.0.1;user=phone>")
    );
    // Malformed: 400 with a Warning, or dropped when there is no Via or it is a response.
    let full = String::from_utf8(inv("sip:+12125550100@h", "z9hG4bK-6")).unwrap();
    for (drop, why) in [("Call-ID: n\r\n", "Missing Call-ID"), ("CSeq: 1 INVITE\r\n", "Missing or Bad CSeq")] {
        let msg = full.replace(drop, "");
        let handled = r.handle(msg.as_bytes(), &c);
        assert_eq!(handled.outcome, Outcome::BadRequest);
        let (bytes, _) = handled.response.as_ref().unwrap();
        let (m, _) = parse_one(bytes).unwrap();
        assert_eq!(m.status(), Some(400));
        assert_eq!(m.header_named("Warning"), Some(format!("399 tollgate \"{why}\"").as_str()));
    }
    let mismatch = full.replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    assert_eq!(status(mismatch.as_bytes()), (Outcome::BadRequest, Some(400)));
    let no_via = full
        .replace("Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-6;rport\r\n", "")
        .replace("Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-upstream;received=10.9.9.8\r\n", "");
    assert_eq!(status(no_via.as_bytes()), (Outcome::Dropped, None));
    assert_eq!(
        status(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=x\r\nContent-Length: 0\r\n\r\n"),
        (Outcome::Dropped, None)
    );
    assert_eq!(status(b"\x00\x01garbage"), (Outcome::Dropped, None));
    let long = full.replace("Call-ID: n", &format!("Call-ID: {}", "x".repeat(300)));
    assert_eq!(status(long.as_bytes()), (Outcome::BadRequest, Some(400)));
    let huge = full.replace("Max-Forwards: 70", &format!("Via: SIP/2.0/UDP {}", "h".repeat(4000)));
    assert_eq!(status(huge.as_bytes()), (Outcome::BadRequest, Some(513)));
}

/// A client's request whose copied headers exceed 3 KiB gets 513 Message Too Large with only
/// the top Via and the short dialog headers, is not decided, and is not kept for
/// retransmissions (its repeat is answered 513 again, not from the window).
#[test]
fn headers_too_long_to_copy_get_513_without_them() {
    let r = redirector(RedirectConfig::default());
    let c = ctx(CLIENT, Transport::Udp);
    let vias: String =
        (0..60).map(|n| format!("Via: SIP/2.0/UDP proxy-{n}.example.net:5060;branch=z9hG4bK-p{n}\r\n")).collect();
    let msg = String::from_utf8(invite("+12125550100", "+13125550100")).unwrap().replace("Max-Forwards: 70\r\n", &vias);
    for _ in 0..2 {
        let handled = r.handle(msg.as_bytes(), &c);
        assert_eq!(handled.outcome, Outcome::BadRequest);
        assert!(handled.record.is_none() && handled.decision.is_none());
        let (bytes, to) = handled.response.as_ref().unwrap();
        assert_eq!(*to, c.peer, "rport: to the source");
        assert!(bytes.len() < 1024, "{} bytes", bytes.len());
        let (status, m) = response(&handled, msg.as_bytes());
        assert_eq!(status, 513);
        let via = headers(&m, HeaderName::Via);
        assert_eq!(via, ["SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport=5062;received=127.0.0.1"]);
        assert_eq!(m.header(HeaderName::From), Some("\"Caller\" <sip:+13125550100@127.0.0.1:5062>;tag=from-1"));
        assert!(name_addr(m.header(HeaderName::To).unwrap()).tag.is_some());
        assert_eq!(r.retransmissions_kept(), 0);
    }
}

/// A datagram shorter than its Content-Length (RFC 3261 18.3) gets 400, not a decision.
#[test]
fn a_truncated_datagram_gets_400_and_no_decision() {
    let r = redirector(RedirectConfig::default());
    let whole = String::from_utf8(invite("+12125550100", "+13125550100")).unwrap();
    let cut = whole
        .replace("Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\nContent-Length: 200\r\n\r\nv=0\r\n");
    let handled = r.handle(cut.as_bytes(), &ctx(CLIENT, Transport::Udp));
    assert_eq!(handled.outcome, Outcome::BadRequest);
    assert!(handled.record.is_none() && handled.decision.is_none());
    let (status, m) = response(&handled, cut.as_bytes());
    assert_eq!(status, 400);
    assert_eq!(m.header_named("Warning"), Some("399 tollgate \"Truncated Body\""));
    // The same INVITE whole is decided.
    assert_eq!(r.handle(whole.as_bytes(), &ctx(CLIENT, Transport::Udp)).outcome, Outcome::Decision);
}

/// A re-INVITE (To with a tag, however the parameter is spelled) is not this stateless
/// server's: 481, no decision, no record, no velocity count.
#[test]
fn a_reinvite_gets_481_without_a_decision_or_count() {
    let r = redirector(RedirectConfig::default());
    let c = ctx(CLIENT, Transport::Udp);
    for (n, tag) in [";tag=callee-1", ";Tag=x", " ; TAG = y"].into_iter().enumerate() {
        let msg = request("INVITE", "sip:+12125550100@h", "+14155550100", &format!("z9hG4bK-re{n}"), "re", "");
        let msg = String::from_utf8(msg)
            .unwrap()
            .replace("To: <sip:+12125550100@h>", &format!("To: <sip:+12125550100@h>{tag}"));
        let handled = r.handle(msg.as_bytes(), &c);
        assert_eq!(handled.outcome, Outcome::NotDecided, "{tag}");
        assert!(handled.record.is_none() && handled.decision.is_none(), "{tag}");
        let (status, m) = response(&handled, msg.as_bytes());
        assert_eq!(status, 481, "{tag}");
        assert_eq!(headers(&m, HeaderName::To).len(), 1, "the To copied, no second tag added: {tag}");
    }
    for n in 0..2 {
        let msg = request("INVITE", "sip:+12125550100@h", "+14155550100", &format!("z9hG4bK-i{n}"), "init", "");
        let handled = r.handle(&msg, &c);
        assert_eq!((handled.outcome, response(&handled, &msg).0), (Outcome::Decision, 302), "initial INVITE {n}");
    }
}
