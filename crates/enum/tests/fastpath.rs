//! The fast path against the hickory path: for every query the fast path accepts, its answer
//! bytes, record, decision and outcome equal the hickory path's; and it does accept the
//! common queries (every action kind, with and without EDNS0 and the Source-URI option, the
//! `src-` label, upper case, UDP and TCP), so it is not silently always falling back.
//!
//! Two responders with the same configuration and policy see the same queries in the same
//! order: one answers by the fast path (falling back to hickory when it declines), the other
//! by hickory only, so their velocity counters stay equal and velocity decisions compare too.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use proptest::prelude::*;
use tollgate_enum::respond::fuzzing::{self, compare_paths};
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_records::Transport;

/// Every action kind: allow (default), intercept, reject by source, redirect to a number and
/// to a URI, a list of callers, velocity, a time window, and an intercept that is not
/// configured (fail-open).
const POLICY: &str = r#"
schema = 2
[[internal]]
prefix = "+1212555"
[lists]
robo = "robo.txt"
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
name = "listed"
source = "list:robo"
action = "terminate"
cause = 608
[[rule]]
name = "velocity"
source = "+1415*"
velocity = { calls = 2, window = "10m" }
action = "terminate"
cause = 486
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
[[rule]]
name = "office-hours"
destination = "+1212555015*"
time = { days = ["mon-fri"], hours = "09:00-17:00", zone = "UTC" }
action = "redirect"
target = "+12125550198"
"#;

/// Called numbers, one per rule above (and the default).
const DESTINATIONS: [&str; 8] = [
    "12125550100", // allow
    "12125550111", // intercept
    "12125550122", // redirect
    "12125550133", // redirect-uri
    "12125550144", // fail-open
    "12125550155", // office hours
    "4930123456",  // transit, allow
    "12125550177", // allow (a caller may be listed or counted)
];

/// Calling numbers: none, plain, rejected, listed, counted (velocity), foreign.
const SOURCES: [Option<&str>; 6] =
    [None, Some("13125550100"), Some("13125550666"), Some("13125550888"), Some("14155550100"), Some("442079460000")];

/// The configurations the paths are compared under.
fn configs() -> Vec<(&'static str, EnumConfig)> {
    let default = EnumConfig::default();
    let custom: EnumConfig = toml::from_str(
        r#"
suffixes = ["e164.arpa.", "E164.Example.NET", "arpa."]
ttl = 300
no_record = "nodata"
source_label_prefix = "caller-"
source_label_numbers = "dialing-plan"
[naptr]
order = 10
preference = 100
flags = "U"
service = "E2U+sip:tel"
[soa]
mname = "ns1.e164.example.net."
rname = "hostmaster.example.net."
negative_ttl = 30
[answers]
allow = { kind = "naptr", uri = "sip:{dest_digits}@10.0.0.1:5060;src={source}" }
terminate = { kind = "naptr", uri = "{intercept};rule={rule}" }
reject = { kind = "naptr", uri = "sip:{cause}@reject.invalid" }
redirect = { kind = "naptr", uri = "sip:{target_digits}@10.0.0.1" }
redirect_uri = { kind = "no-record" }
[intercepts]
default = "sip:li@10.9.9.9"
[[devices]]
name = "sbc-a"
addresses = ["127.0.0.0/8"]
"#,
    )
    .unwrap();
    custom.validate().unwrap();
    let no_option: EnumConfig = toml::from_str("source_edns_option = 65001\nsource_label_prefix = \"\"\n").unwrap();
    vec![("default", default), ("custom", custom), ("option-65001", no_option)]
}

fn responder(config: EnumConfig, lists: &tempfile::TempDir) -> Responder {
    let robo = lists.path().join("robo.txt");
    std::fs::write(&robo, "# robocallers\n+13125550888\n+13125550889\n").unwrap();
    fuzzing::responder(config, POLICY, BTreeMap::from([("robo".to_string(), robo)]), 7, "engine-diff")
}

/// A Wednesday at 10:00 UTC (inside the office hours) and a Sunday.
fn times() -> [DateTime<Utc>; 2] {
    [Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap()]
}

/// One fixed context per query, used for both paths.
fn context(transport: Transport, now: DateTime<Utc>) -> QueryContext {
    QueryContext { peer: "127.0.0.1:40000".parse().unwrap(), transport, received: Instant::now(), now }
}

/// The pair under test.
struct Pair {
    fast: Responder,
    reference: Responder,
    accepted: usize,
    declined: usize,
}

impl Pair {
    fn new(config: EnumConfig, lists: &tempfile::TempDir) -> Self {
        // Staleness is measured from the context's receipt on each path: with the bound an
        // hour off, a stalled machine cannot make one path's answer stale and not the other's.
        let config = EnumConfig { stale_after_ms: 3_600_000, ..config };
        Pair { fast: responder(config.clone(), lists), reference: responder(config, lists), accepted: 0, declined: 0 }
    }

    /// Answers `packet` both ways ([`compare_paths`]); returns whether the fast path took it.
    fn check(&mut self, packet: &[u8], ctx: &QueryContext) -> bool {
        let accepted = compare_paths(&self.fast, &self.reference, packet, ctx);
        if accepted {
            self.accepted += 1;
        } else {
            self.declined += 1;
        }
        accepted
    }
}

/// How a realistic query is built.
#[derive(Debug, Clone, Copy)]
struct Shape {
    destination: &'static str,
    source: Option<&'static str>,
    /// 0: no EDNS, 1: EDNS without options, 2: EDNS with the Source-URI option (tel:),
    /// 3: the option as a SIP URI, 4: an unreadable option.
    edns: u8,
    /// Put the source in the query-name label (as `src-`/the configured prefix).
    label: bool,
    any: bool,
    upper: bool,
    rd: bool,
    cd: bool,
    payload: u16,
}

fn build(shape: Shape, config: &EnumConfig, suffix: &str, id: u16) -> Vec<u8> {
    let mut name: String = shape.destination.bytes().rev().flat_map(|d| [d as char, '.']).collect();
    if shape.label
        && !config.source_label_prefix.is_empty()
        && let Some(src) = shape.source
    {
        name.push_str(&format!("{}{src}.", config.source_label_prefix));
    }
    name.push_str(suffix);
    if shape.upper {
        name = name.to_ascii_uppercase();
    }
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = shape.rd;
    m.metadata.checking_disabled = shape.cd;
    let rtype = if shape.any { RecordType::ANY } else { RecordType::NAPTR };
    m.add_query(Query::query(Name::from_ascii(&name).unwrap(), rtype));
    if shape.edns > 0 {
        let mut edns = Edns::new();
        edns.set_max_payload(shape.payload);
        let code = config.source_edns_option.unwrap_or(4);
        let uri = match (shape.edns, shape.source) {
            (2, Some(src)) => Some(format!("tel:+{src}")),
            (3, Some(src)) => Some(format!("sip:+{src}@sbc.example.net;user=phone")),
            (4, _) => Some("sip:alice@example.net".to_string()),
            _ => None,
        };
        if let Some(uri) = uri {
            edns.options_mut().insert(EdnsOption::Unknown(code, uri.into_bytes()));
        }
        m.set_edns(edns);
    }
    m.to_vec().unwrap()
}

/// Every realistic query shape.
fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    for destination in DESTINATIONS {
        for source in SOURCES {
            for edns in 0..5u8 {
                for label in [false, true] {
                    let i = out.len();
                    out.push(Shape {
                        destination,
                        source,
                        edns,
                        label,
                        any: i % 5 == 0,
                        upper: i % 3 == 0,
                        rd: i % 2 == 0,
                        cd: i % 7 == 0,
                        payload: [1232, 512, 4096, 100][i % 4],
                    });
                }
            }
        }
    }
    out
}

#[test]
fn the_fast_path_answers_the_common_queries_exactly_as_hickory_does() {
    let lists = tempfile::tempdir().unwrap();
    for (label, config) in configs() {
        let mut pair = Pair::new(config.clone(), &lists);
        let suffixes = config.parsed_suffixes();
        let mut realistic = 0;
        for (i, shape) in shapes().into_iter().enumerate() {
            let suffix = suffixes[i % suffixes.len()].as_str();
            let packet = build(shape, &config, suffix, i as u16);
            for transport in [Transport::Udp, Transport::Tcp] {
                for now in times() {
                    realistic += 1;
                    assert!(
                        pair.check(&packet, &context(transport, now)),
                        "{label}: the fast path declined a common query: {shape:?} under {suffix}"
                    );
                }
            }
        }
        assert_eq!(pair.accepted, realistic, "{label}");
        // Every kind of answer was among them, through the fast path.
        let mut kinds = std::collections::BTreeSet::new();
        for (i, shape) in shapes().into_iter().enumerate() {
            let packet = build(shape, &config, suffixes[0].as_str(), i as u16);
            let a = pair.fast.respond(&packet, &context(Transport::Udp, times()[0])).unwrap();
            assert!(a.fast_path);
            let d = a.decision.unwrap();
            kinds.insert((d.action.name(), a.outcome.as_str()));
        }
        for kind in [("allow", "decision"), ("terminate", "decision"), ("redirect", "decision"), ("allow", "fail_open")]
        {
            assert!(kinds.contains(&kind), "{label}: no {kind:?} answer among {kinds:?}");
        }
    }
}

#[test]
fn the_fast_path_declines_what_it_does_not_reproduce() {
    let lists = tempfile::tempdir().unwrap();
    let config = EnumConfig::default();
    let mut pair = Pair::new(config.clone(), &lists);
    let ctx = context(Transport::Udp, times()[0]);
    let q = |name: &str, rtype: RecordType| {
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    };
    let common = q("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::NAPTR);
    let mut declined = vec![
        q("health.tollgate.", RecordType::A).to_vec().unwrap(),
        q("0.0.1.0.5.5.5.2.1.2.1.example.com.", RecordType::NAPTR).to_vec().unwrap(),
        q("x.0.1.e164.arpa.", RecordType::NAPTR).to_vec().unwrap(),
        q("0.0.1.0.5.5.5.2.1.2.1.e164.arpa.", RecordType::A).to_vec().unwrap(),
        q("0\\.0.1.e164.arpa.", RecordType::NAPTR).to_vec().unwrap(),
    ];
    let mut chaos = common.clone();
    chaos.queries[0].set_query_class(DNSClass::CH);
    declined.push(chaos.to_vec().unwrap());
    let mut notify = common.clone();
    notify.metadata.op_code = OpCode::Notify;
    declined.push(notify.to_vec().unwrap());
    let mut two = common.clone();
    two.add_query(common.queries[0].clone());
    declined.push(two.to_vec().unwrap());
    let mut v1 = common.clone();
    let mut edns = Edns::new();
    edns.set_version(1);
    v1.set_edns(edns);
    declined.push(v1.to_vec().unwrap());
    let mut cookie = common.clone();
    let mut edns = Edns::new();
    edns.options_mut().insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    cookie.set_edns(edns);
    declined.push(cookie.to_vec().unwrap());
    let plain = common.to_vec().unwrap();
    let mut tc = plain.clone();
    tc[2] |= 0x02;
    declined.push(tc);
    let mut trailing = plain.clone();
    trailing.push(0);
    declined.push(trailing);
    // The question name as a compression pointer to itself, after a copy in front.
    let mut pointer = plain[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 35, 0, 1]);
    declined.push(pointer);
    for packet in &declined {
        assert!(!pair.check(packet, &ctx), "the fast path took {packet:02x?}");
    }
    assert!(pair.check(&plain, &ctx));
}

/// A query the fast path takes whose answer is over the UDP limit goes to hickory to be
/// truncated, and its call is counted once (the velocity counters).
#[test]
fn an_oversized_answer_is_truncated_by_hickory_and_counted_once() {
    let lists = tempfile::tempdir().unwrap();
    let config: EnumConfig = toml::from_str(&format!(
        "[naptr]\nservice = \"E2U+{}\"\n[answers]\nallow = {{ kind = \"naptr\", uri = \"sip:{{dest}}@{}.example.net\" }}\n{}",
        "s".repeat(240),
        "a".repeat(200),
        "terminate = { kind = \"naptr\", uri = \"{intercept}\" }\nreject = { kind = \"naptr\", uri = \"sip:{cause}@r.invalid\" }\nredirect = { kind = \"naptr\", uri = \"sip:{target}@10.0.0.1\" }\nredirect_uri = { kind = \"naptr\", uri = \"{target}\" }\n"
    ))
    .unwrap();
    let mut pair = Pair::new(config, &lists);
    let long_name = format!("{}src-14155550100.e164.arpa.", "1.".repeat(15));
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(&long_name).unwrap(), RecordType::NAPTR));
    let packet = m.to_vec().unwrap();
    let ctx = context(Transport::Udp, times()[0]);
    assert!(pair.check(&packet, &ctx));
    let a = pair.fast.respond(&packet, &ctx).unwrap();
    let b = pair.reference.respond_hickory(&packet, &ctx).unwrap();
    assert_eq!(a.bytes, b.bytes);
    assert!(Message::from_vec(&a.bytes).unwrap().metadata.truncation);
    assert!(!a.fast_path);
    assert!(pair.check(&packet, &context(Transport::Tcp, times()[0])));
    // Three calls from +14155550100 through each responder; the fast one counted each once.
    let counted = |r: &Responder| r.velocity().snapshot().iter().map(|e| e.times.len()).sum::<usize>();
    assert_eq!((counted(&pair.fast), counted(&pair.reference)), (3, 3));
}

/// Bytes near the common query: the realistic packets with bytes changed, cut or added.
fn mutated() -> impl Strategy<Value = (usize, Vec<(usize, u8)>, usize, Vec<u8>, bool)> {
    (
        0..shapes().len(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<usize>(),
        prop::collection::vec(any::<u8>(), 0..3),
        any::<bool>(),
    )
}

/// A generated query: labels, type, class, the two flag bytes, and an EDNS option.
type Generated = (Vec<String>, u16, u16, u8, u8, Option<(u16, Vec<u8>)>);

/// Structured queries: random labels, types, classes and flags.
fn structured() -> impl Strategy<Value = Generated> {
    (
        (
            prop::collection::vec("[0-9]|[0-9]{2}|src-[0-9]{0,14}|[a-zA-Z_-]{1,5}|E164|e164|arpa|ARPA", 0..20),
            any::<bool>(),
        )
            .prop_map(|(mut labels, under_suffix)| {
                if under_suffix {
                    labels.extend(["e164".to_string(), "arpa".to_string()]);
                }
                labels
            }),
        prop::sample::select(vec![35u16, 255, 1, 16, 0]),
        prop::sample::select(vec![1u16, 3, 255, 254]),
        any::<u8>(),
        any::<u8>(),
        prop::option::of((
            prop::sample::select(vec![4u16, 3, 8, 10, 65001]),
            prop::collection::vec(any::<u8>(), 0..40),
        )),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn near_misses_are_answered_alike((shape, changes, cut, extra, tcp) in mutated()) {
        let config = EnumConfig::default();
        let mut packet = build(shapes()[shape], &config, "e164.arpa.", 77);
        for (at, byte) in changes {
            let at = at % packet.len();
            packet[at] = byte;
        }
        if cut % 4 == 0 {
            packet.truncate(cut % (packet.len() + 1));
        }
        packet.extend_from_slice(&extra);
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        with_pair(|pair| pair.check(&packet, &context(transport, times()[0])));
    }

    #[test]
    fn generated_queries_are_answered_alike((labels, qtype, qclass, flags2, flags3, option) in structured()) {
        let mut packet = vec![0x12, 0x34, flags2 & 0x7f, flags3, 0, 1, 0, 0, 0, 0, 0, u8::from(option.is_some())];
        for label in &labels {
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
        packet.push(0);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&qclass.to_be_bytes());
        if let Some((code, data)) = option {
            packet.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
            packet.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
            packet.extend_from_slice(&code.to_be_bytes());
            packet.extend_from_slice(&(data.len() as u16).to_be_bytes());
            packet.extend_from_slice(&data);
        }
        with_pair(|pair| pair.check(&packet, &context(Transport::Udp, times()[0])));
    }
}

thread_local! {
    /// One pair (default configuration) per test thread for the generated cases: both
    /// responders see every case in the same order.
    static PAIR: std::cell::RefCell<Option<(tempfile::TempDir, Pair)>> = const { std::cell::RefCell::new(None) };
}

fn with_pair(f: impl FnOnce(&mut Pair) -> bool) -> bool {
    PAIR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (_, pair) = slot.get_or_insert_with(|| {
            let lists = tempfile::tempdir().unwrap();
            let pair = Pair::new(EnumConfig::default(), &lists);
            (lists, pair)
        });
        f(pair)
    })
}

/// The `enum_fastpath` fuzz seeds (and any crash inputs saved next to them) replayed through
/// the same comparison as the fuzz target; the `fast_` seeds are common queries and must be
/// taken by the fast path (but the one that carries a cookie option).
#[test]
fn the_fuzz_seeds_are_answered_alike() {
    let lists = tempfile::tempdir().unwrap();
    let mut pair = Pair::new(EnumConfig::default(), &lists);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/enum_fastpath");
    let mut fast = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Some((t, packet)) = data.split_first() else { continue };
        let transport = if t & 1 == 0 { Transport::Udp } else { Transport::Tcp };
        let accepted = pair.check(packet, &context(transport, times()[0]));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.starts_with("fast_") {
            assert_eq!(accepted, !file.contains("declined"), "{file}");
            fast += usize::from(accepted);
        }
    }
    assert!(fast >= 18, "{fast} fast-path seeds");
}
