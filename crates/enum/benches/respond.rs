//! Cost of answering one ENUM query in the responder (decode, evaluate, render, encode, record),
//! without sockets. Run: `cargo bench -p tollgate-enum --bench respond`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::{CompileOptions, InstalledPolicy, PolicySource, compile};
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

fn respond(c: &mut Criterion) {
    let plan = DialingPlan::nanp();
    let policy = compile(
        &PolicySource::from_text("bench.toml", POLICY, BTreeMap::new()),
        CompileOptions { plan: &plan, intercepts: None },
    )
    .unwrap();
    let r = Responder::new(EnumConfig::default(), plan, Arc::new(InstalledPolicy::new(Some(1), policy)), "bench");
    let mut group = c.benchmark_group("respond");
    group.throughput(Throughput::Elements(1));
    for (label, name) in [
        ("allow (NXDOMAIN)", "0.0.1.0.5.5.5.2.1.2.1.e164.arpa."),
        ("terminate (NAPTR)", "1.1.1.0.5.5.5.2.1.2.1.e164.arpa."),
        ("redirect (NAPTR)", "2.2.1.0.5.5.5.2.1.2.1.e164.arpa."),
        ("reject by source label", "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa."),
    ] {
        let packet = query(name);
        group.bench_function(label, |b| {
            b.iter(|| {
                let ctx = QueryContext {
                    peer: "127.0.0.1:5000".parse().unwrap(),
                    transport: Transport::Udp,
                    received: Instant::now(),
                    now: chrono::Utc::now(),
                };
                r.respond(black_box(&packet), &ctx)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, respond);
criterion_main!(benches);
