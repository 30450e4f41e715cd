//! Answers for every kind of query, decoded back with hickory-proto.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::Utc;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tollgate_enum::respond::Outcome;
use tollgate_enum::respond::fuzzing;
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::{CompileOptions, PolicySource, compile};
use tollgate_records::{Record, Transport};

const POLICY: &str = r#"
schema = 1
name = "respond-test"
[[internal]]
prefix = "+1212555"
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
[[rule]]
name = "reject-robocaller"
source = "+13125550666"
action = "terminate"
cause = 603
[[rule]]
name = "redirect"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
[[rule]]
name = "redirect-uri"
destination = "+12125550133"
action = "redirect"
target = "sip:ivr@10.0.0.5"
[[rule]]
name = "unknown-intercept"
destination = "+12125550144"
action = "terminate"
intercept = "missing"
"#;

fn responder_with(config: EnumConfig, policy_text: &str) -> Responder {
    // Compiled without the intercept check so "unknown-intercept" exercises fail-open.
    fuzzing::responder(config, policy_text, BTreeMap::new(), 1, "engine-test")
}

fn responder() -> Responder {
    responder_with(EnumConfig::default(), POLICY)
}

fn ctx(transport: Transport) -> QueryContext {
    QueryContext { peer: "127.0.0.1:40000".parse().unwrap(), transport, received: Instant::now(), now: Utc::now() }
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn ask(r: &Responder, m: &Message) -> (Message, Option<Record>, Outcome) {
    let a = r.respond(&m.to_vec().unwrap(), &ctx(Transport::Udp)).expect("an answer");
    (Message::from_vec(&a.bytes).unwrap(), a.record, a.outcome)
}

fn naptr_regexp(resp: &Message) -> String {
    assert_eq!(resp.answers.len(), 1, "{resp:?}");
    match &resp.answers[0].data {
        RData::NAPTR(n) => {
            assert_eq!(n.order, 100);
            assert_eq!(n.preference, 10);
            assert_eq!(&*n.flags, b"u");
            assert_eq!(&*n.services, b"E2U+sip");
            assert!(n.replacement.is_root());
            String::from_utf8(n.regexp.to_vec()).unwrap()
        }
        other => panic!("expected NAPTR, got {other:?}"),
    }
}

#[test]
fn allow_is_nxdomain_with_soa_by_default() {
    let (resp, record, outcome) = ask(&responder(), &query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(resp.metadata.id, 0x1234);
    assert_eq!(resp.metadata.message_type, MessageType::Response);
    assert!(resp.metadata.authoritative && resp.metadata.recursion_desired);
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain);
    assert!(resp.answers.is_empty());
    assert_eq!(resp.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(outcome, Outcome::Decision);
    let Some(Record::EnumQuery { record, .. }) = record else { panic!("no record") };
    assert_eq!(record.destination.to_string(), "+12125550100");
    assert_eq!((record.action.as_str(), record.rule.as_deref()), ("allow", None));
    assert_eq!((record.rcode.as_str(), record.direction.as_str()), ("NXDOMAIN", "inbound"));
    assert_eq!(record.device, "engine-test");
    assert_eq!(record.policy_version, Some(1));
}

#[test]
fn terminate_redirect_and_reject_render_naptr() {
    let r = responder();
    let (resp, record, _) = ask(&r, &query("1.1.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(resp.metadata.response_code, ResponseCode::NoError);
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:intercept@127.0.0.1:5090!");
    assert_eq!(resp.answers[0].name.to_ascii(), "1.1.1.0.5.5.5.2.1.2.1.e164.arpa.");
    assert_eq!(resp.answers[0].ttl, 0);
    let Some(Record::EnumQuery { record, .. }) = record else { panic!() };
    assert_eq!(record.detail.as_deref(), Some("intercept default"));

    let (resp, _, _) = ask(&r, &query("2.2.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:+12125550199@127.0.0.1:5080!");
    let (resp, _, _) = ask(&r, &query("3.3.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:ivr@10.0.0.5!");
}

#[test]
fn calling_number_from_edns_source_uri_option() {
    let r = responder();
    let mut m = query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR);
    let mut edns = Edns::new();
    edns.options_mut().insert(EdnsOption::Unknown(4, b"sip:+13125550666@sbc.example.net;user=phone".to_vec()));
    m.set_edns(edns);
    let (resp, record, _) = ask(&r, &m);
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:603@reject.tollgate.invalid!");
    assert!(resp.edns.is_some(), "EDNS queries get EDNS answers");
    let Some(Record::EnumQuery { record, .. }) = record else { panic!() };
    assert_eq!(record.source.unwrap().to_string(), "+13125550666");
    assert_eq!(record.rule.as_deref(), Some("reject-robocaller"));
    assert_eq!(record.detail.as_deref(), Some("reject 603"));
    assert!(EdnsCode::from(4) == EdnsCode::Unknown(4));
}

#[test]
fn calling_number_from_query_name_label() {
    let r = responder();
    let (resp, record, _) = ask(&r, &query("0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa.", RecordType::NAPTR));
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:603@reject.tollgate.invalid!");
    assert_eq!(resp.answers[0].name.to_ascii(), "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa.");
    let Some(Record::EnumQuery { record, .. }) = record else { panic!() };
    assert_eq!(record.source.unwrap().to_string(), "+13125550666");
}

const INTERNATIONAL_POLICY: &str = r#"
schema = 1
[[rule]]
name = "reject-listed"
source = ["+442079460000", "+4512345678", "+493012345678", "+13125550666"]
action = "terminate"
cause = 603
"#;

/// The source a `src-<digits>` label yields, and whether the listed caller was rejected.
fn label_source(r: &Responder, digits: &str) -> (Option<String>, bool, Option<String>) {
    let m = query(&format!("0.0.1.0.5.5.5.2.1.2.1.src-{digits}.e164.arpa."), RecordType::NAPTR);
    let a = r.respond(&m.to_vec().unwrap(), &ctx(Transport::Udp)).expect("an answer");
    let Some(Record::EnumQuery { record, .. }) = a.record else { panic!("no record") };
    (record.source.map(|s| s.to_string()), record.rule.as_deref() == Some("reject-listed"), a.unreadable_source)
}

#[test]
fn the_source_label_holds_e164_digits_of_any_country() {
    let r = responder_with(EnumConfig::default(), INTERNATIONAL_POLICY);
    for (digits, e164) in [
        ("442079460000", "+442079460000"), // UK, was dropped by the NANP plan (12 digits)
        ("4512345678", "+4512345678"),     // Denmark, was read as +1 451 234 5678
        ("493012345678", "+493012345678"), // Germany
        ("13125550666", "+13125550666"),   // US
    ] {
        assert_eq!(label_source(&r, digits), (Some(e164.to_string()), true, None), "src-{digits}");
    }
    // Dialled forms are not E.164 digits: the caller is unknown (and said so), never guessed.
    assert_eq!(label_source(&r, "011442079460000"), (None, false, Some("src-011442079460000".into())));
    assert_eq!(label_source(&r, "02079460000"), (None, false, Some("src-02079460000".into())));
    assert_eq!(label_source(&r, "12x4"), (None, false, Some("src-12x4".into())));
}

#[test]
fn the_dialing_plan_reads_the_source_label_only_when_configured() {
    let cfg = EnumConfig { source_label_numbers: tollgate_enum::SourceLabelNumbers::DialingPlan, ..Default::default() };
    let r = responder_with(cfg, INTERNATIONAL_POLICY);
    assert_eq!(label_source(&r, "3125550666"), (Some("+13125550666".into()), true, None));
    assert_eq!(label_source(&r, "011442079460000"), (Some("+442079460000".into()), true, None));
    assert_eq!(label_source(&r, "4512345678"), (Some("+14512345678".into()), false, None));
}

#[test]
fn an_answer_ready_after_the_stale_bound_is_marked_stale() {
    // A bound far from the fresh answer's latency, however loaded the machine.
    let r = responder_with(EnumConfig { stale_after_ms: 10_000, ..Default::default() }, POLICY);
    let q = query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR).to_vec().unwrap();
    let fresh = r.respond(&q, &ctx(Transport::Udp)).unwrap();
    let Some(Record::EnumQuery { record, .. }) = &fresh.record else { panic!("no record") };
    assert!(!fresh.stale && !record.stale);
    // Received (by the kernel) twenty seconds ago: the engine was stalled.
    let old = QueryContext {
        received: Instant::now() - std::time::Duration::from_secs(20),
        now: Utc::now() - chrono::Duration::seconds(20),
        ..ctx(Transport::Udp)
    };
    let late = r.respond(&q, &old).unwrap();
    let Some(Record::EnumQuery { record, .. }) = &late.record else { panic!("no record") };
    assert!(late.stale && record.stale);
    assert!(record.latency_us >= 20_000_000, "latency from receipt: {}", record.latency_us);
    // Answers without a record are stale too (the metric counts them).
    let health = query("health.tollgate.", RecordType::A).to_vec().unwrap();
    assert!(r.respond(&health, &old).unwrap().stale);
}

#[test]
fn names_outside_suffixes_are_refused_and_bad_numbers_nxdomain() {
    let r = responder();
    let (resp, record, outcome) = ask(&r, &query("www.example.com.", RecordType::A));
    assert_eq!((resp.metadata.response_code, outcome), (ResponseCode::Refused, Outcome::Refused));
    assert!(record.is_none());
    assert!(!resp.metadata.authoritative);
    for name in ["x.1.2.1.e164.arpa.", "12.1.e164.arpa.", "1.2.e164.arpa.", "e164.arpa.", "src-1312.e164.arpa."] {
        let (resp, record, outcome) = ask(&r, &query(name, RecordType::NAPTR));
        assert_eq!((resp.metadata.response_code, outcome), (ResponseCode::NXDomain, Outcome::NxDomain), "{name}");
        assert!(record.is_none());
    }
}

#[test]
fn other_types_get_nodata() {
    let (resp, record, outcome) = ask(&responder(), &query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::A));
    assert_eq!((resp.metadata.response_code, outcome), (ResponseCode::NoError, Outcome::NoData));
    assert!(resp.answers.is_empty());
    assert!(record.is_none());
}

#[test]
fn health_check_name_answers() {
    let r = responder();
    let (resp, _, outcome) = ask(&r, &query("health.tollgate.", RecordType::A));
    assert_eq!(outcome, Outcome::Health);
    assert_eq!(&resp.answers[0].data, &RData::A("127.0.0.1".parse().unwrap()));
    let (resp, _, _) = ask(&r, &query("HEALTH.tollgate.", RecordType::TXT));
    assert!(matches!(resp.answers[0].data, RData::TXT(_)));
}

#[test]
fn malformed_queries_get_formerr_or_nothing() {
    let r = responder();
    let c = ctx(Transport::Udp);
    assert!(r.respond(&[0u8; 5], &c).is_none(), "too short to answer");
    let mut response_bit = query("1.e164.arpa.", RecordType::NAPTR).to_vec().unwrap();
    response_bit[2] |= 0x80;
    assert!(r.respond(&response_bit, &c).is_none(), "responses are never answered");
    let mut garbage = vec![0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0x3f, 0xff, 0xff]);
    let a = r.respond(&garbage, &c).unwrap();
    let resp = Message::from_vec(&a.bytes).unwrap();
    assert_eq!((resp.metadata.id, resp.metadata.response_code), (0xabcd, ResponseCode::FormErr));
    assert!(resp.metadata.recursion_desired);
    let mut two = query("1.e164.arpa.", RecordType::NAPTR);
    two.add_query(Query::query(Name::from_ascii("2.e164.arpa.").unwrap(), RecordType::NAPTR));
    let (resp, _, _) = ask(&r, &two);
    assert_eq!(resp.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn unsupported_opcode_class_and_edns_version() {
    let r = responder();
    let mut m = query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR);
    m.metadata.op_code = OpCode::Status;
    assert_eq!(ask(&r, &m).0.metadata.response_code, ResponseCode::NotImp);
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.").unwrap(), RecordType::NAPTR);
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    assert_eq!(ask(&r, &m).0.metadata.response_code, ResponseCode::Refused);
    let mut m = query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR);
    let mut edns = Edns::new();
    edns.set_version(1);
    m.set_edns(edns);
    // BADVERS and BADSIG share code 16; hickory decodes it as BADSIG.
    assert_eq!(u16::from(ask(&r, &m).0.metadata.response_code), 16);
}

#[test]
fn internal_failure_fails_open_to_allow() {
    let r = responder();
    let (resp, record, outcome) = ask(&r, &query("4.4.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(outcome, Outcome::FailOpen);
    assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain, "the allow answer (no record)");
    let Some(Record::EnumQuery { record, .. }) = record else { panic!() };
    assert!(record.fail_open);
    assert_eq!(record.action, "allow");
}

#[test]
fn allow_can_be_a_naptr_to_the_normal_route() {
    let cfg: EnumConfig = toml::from_str(
        "[answers]\nallow = { kind = \"naptr\", uri = \"sip:{dest}@10.0.0.1:5060\" }\nterminate = { kind = \"naptr\", uri = \"{intercept}\" }\nreject = { kind = \"naptr\", uri = \"sip:{cause}@reject.invalid\" }\nredirect = { kind = \"naptr\", uri = \"sip:{target}@10.0.0.1\" }\nredirect_uri = { kind = \"naptr\", uri = \"{target}\" }\n",
    )
    .unwrap();
    cfg.validate().unwrap();
    let r = responder_with(cfg, POLICY);
    let (resp, _, _) = ask(&r, &query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR));
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:+12125550100@10.0.0.1:5060!");
}

#[test]
fn installing_policies_under_load_never_drops_or_mixes_answers() {
    let r = Arc::new(responder());
    let stop = Arc::new(AtomicBool::new(false));
    let plan = DialingPlan::nanp();
    let block_all = compile(
        &PolicySource::from_text(
            "b.toml",
            "schema = 1\n[[rule]]\nname = \"all\"\naction = \"terminate\"\ncause = 486\n",
            BTreeMap::new(),
        ),
        CompileOptions { plan: &plan, intercepts: None },
    )
    .unwrap();
    let swapper = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                r.policy().replace(Some(2), block_all.clone());
                r.policy().clear();
                swaps += 1;
            }
            swaps
        })
    };
    let q = query("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR).to_vec().unwrap();
    let mut seen = [0u32; 2];
    for _ in 0..20_000 {
        let a = r.respond(&q, &ctx(Transport::Udp)).expect("every query is answered");
        let resp = Message::from_vec(&a.bytes).unwrap();
        match resp.metadata.response_code {
            ResponseCode::NXDomain => seen[0] += 1,
            ResponseCode::NoError => {
                assert_eq!(naptr_regexp(&resp), "!^.*$!sip:486@reject.tollgate.invalid!");
                seen[1] += 1
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);
    assert_eq!(seen[0] + seen[1], 20_000);
}

const VELOCITY_POLICY: &str = r#"
schema = 2
[[rule]]
name = "robocall-velocity"
source = "+1312*"
velocity = { calls = 2, window = "10m" }
action = "terminate"
cause = 603
"#;

#[test]
fn velocity_terminates_the_third_call_and_lookup_does_not_count() {
    let r = responder_with(EnumConfig::default(), VELOCITY_POLICY);
    let name = "0.0.1.0.5.5.5.2.1.2.1.src-13125550777.e164.arpa.";
    let from: tollgate_number::E164 = "+13125550777".parse().unwrap();
    let to: tollgate_number::E164 = "+12125550100".parse().unwrap();
    // Asking how a call would be decided, however often, counts nothing.
    for _ in 0..5 {
        let l = r.lookup(Some(from), to, Utc::now());
        assert_eq!(l.decision.rule, None);
    }
    for _ in 0..2 {
        let (resp, _, _) = ask(&r, &query(name, RecordType::NAPTR));
        assert_eq!(resp.metadata.response_code, ResponseCode::NXDomain, "within the limit: allowed");
    }
    let (resp, record, _) = ask(&r, &query(name, RecordType::NAPTR));
    assert_eq!(naptr_regexp(&resp), "!^.*$!sip:603@reject.tollgate.invalid!");
    let Some(Record::EnumQuery { record, .. }) = record else { panic!("no record") };
    assert_eq!(record.rule.as_deref(), Some("robocall-velocity"));
    // lookup now explains the block, still without counting.
    let l = r.lookup(Some(from), to, Utc::now());
    assert_eq!(l.decision.rule.map(|m| m.name.to_string()).as_deref(), Some("robocall-velocity"));
    assert_eq!(r.velocity().snapshot()[0].times.len(), 3);
}
