//! Cost of answering one ENUM query in the responder (decode, evaluate, render, encode, record),
//! without sockets: the fast path (what listeners use for the common query) against the
//! hickory-proto path (the reference, and everything uncommon), under the small demo-style
//! policy and under the 100,000-rule + 1,000,000-number-list policy of bench/enum-dnsperf.sh.
//! Run: `cargo bench -p tollgate-enum --bench respond`

use std::collections::BTreeMap;
use std::fmt::Write;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tollgate_enum::respond::fuzzing;
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_records::Transport;

const POLICY: &str = r#"
schema = 1
[[internal]]
prefix = "+1212555"
[[rule]]
name = "reject"
source = "+13125550666"
action = "terminate"
cause = 603
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
[[rule]]
name = "redirect"
destination = "+12125550122"
action = "redirect"
target = "+12125550199"
"#;

fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::NAPTR));
    m.to_vec().unwrap()
}

fn responder(policy: &str, lists: BTreeMap<String, std::path::PathBuf>) -> Responder {
    fuzzing::responder(EnumConfig::default(), policy, lists, 1, "bench")
}

/// The policy of bench/enum-dnsperf.sh's large case: 100,000 exact-destination rules
/// (+1718xxxxxxx), a 1,000,000-number list (+1646xxxxxxx) and the demo rules.
fn big(dir: &std::path::Path) -> Responder {
    let list = dir.join("million.txt");
    let mut text = String::with_capacity(14_000_000);
    for i in 0..1_000_000 {
        let _ = writeln!(text, "+1646{i:07}");
    }
    std::fs::write(&list, text).unwrap();
    let mut policy = String::from(
        "schema = 1\nname = \"big\"\n[[internal]]\nprefix = \"+1212555\"\n[lists]\nmillion = \"million.txt\"\n",
    );
    for i in 0..100_000 {
        let _ = write!(
            policy,
            "[[rule]]\nname = \"r{i}\"\ndestination = \"+1718{i:07}\"\naction = \"redirect\"\ntarget = \"+12125550199\"\n"
        );
    }
    policy.push_str("[[rule]]\nname = \"list\"\nsource = \"list:million\"\naction = \"terminate\"\ncause = 486\n");
    policy.push_str(POLICY.trim_start_matches("\nschema = 1\n[[internal]]\nprefix = \"+1212555\"\n"));
    responder(&policy, BTreeMap::from([("million".to_string(), list)]))
}

fn ctx() -> QueryContext {
    QueryContext {
        peer: "127.0.0.1:5000".parse().unwrap(),
        transport: Transport::Udp,
        received: Instant::now(),
        now: chrono::Utc::now(),
    }
}

/// Benchmarks each query both ways.
fn paths(c: &mut Criterion, group: &str, r: &Responder, queries: &[(&str, &str)]) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    for (label, name) in queries {
        let packet = query(name);
        let answer = r.respond(&packet, &ctx()).unwrap();
        assert!(answer.fast_path, "{label}: the fast path answers this query");
        group
            .bench_function(format!("{label} / hickory"), |b| b.iter(|| r.respond_hickory(black_box(&packet), &ctx())));
        let mut buf = Vec::with_capacity(512);
        group.bench_function(format!("{label} / fast"), |b| {
            b.iter(|| {
                let a = r.respond_reusing(black_box(&packet), &ctx(), std::mem::take(&mut buf)).unwrap();
                buf = a.bytes;
            })
        });
    }
    group.finish();
}

fn respond(c: &mut Criterion) {
    let small = responder(POLICY, BTreeMap::new());
    paths(
        c,
        "respond (demo policy)",
        &small,
        &[
            ("allow (NXDOMAIN)", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa."),
            ("terminate (NAPTR)", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."),
            ("redirect (NAPTR)", "2.2.1.0.5.5.5.2.1.2.1.e164.arpa."),
            ("reject by source label", "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa."),
        ],
    );
    let dir = std::env::temp_dir().join(format!("tollgate-bench-respond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = big(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    paths(
        c,
        "respond (100k rules + 1M list)",
        &big,
        &[
            ("allow", "0.0.1.0.5.5.5.2.1.2.1.src-13125550100.e164.arpa."),
            ("exact rule redirect", "4.3.2.1.5.0.0.8.1.7.1.src-13125550100.e164.arpa."),
            ("caller in list", "0.0.1.0.5.5.5.2.1.2.1.src-16460012345.e164.arpa."),
            ("reject by source", "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa."),
        ],
    );
}

criterion_group!(benches, respond);
criterion_main!(benches);
