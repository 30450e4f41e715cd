//! Fuzzes the ENUM fast path against the hickory path: for any bytes the fast path accepts,
//! its answer must be byte-identical to the hickory path's, with the same record (but for its
//! random id and measured latency), decision and outcome; whatever it declines the hickory
//! path answers. Deterministic: no velocity rule, a fixed clock.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_number::DialingPlan;
use tollgate_policy::{CompileOptions, InstalledPolicy, PolicySource, compile};
use tollgate_records::{Record, Transport};

const POLICY: &str = r#"
schema = 1
[[internal]]
prefix = "+1212555"
[[rule]]
name = "intercept"
destination = "+12125550111"
action = "terminate"
[[rule]]
name = "reject"
source = "+1312*"
action = "terminate"
cause = 603
[[rule]]
name = "redirect"
destination = "+1212555012*"
time = { days = ["mon-fri"], hours = "09:00-17:00", zone = "America/New_York" }
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

fn responder() -> &'static Responder {
    static R: OnceLock<Responder> = OnceLock::new();
    R.get_or_init(|| {
        let plan = DialingPlan::nanp();
        let policy = compile(
            &PolicySource::from_text("fuzz.toml", POLICY, BTreeMap::new()),
            CompileOptions { plan: &plan, intercepts: None },
        )
        .expect("fuzz policy compiles");
        Responder::new(EnumConfig::default(), plan, Arc::new(InstalledPolicy::new(Some(1), policy)), "fuzz")
    })
}

/// The record with the fields that differ by construction taken from `like`.
fn comparable(record: Option<Record>, like: &Option<Record>) -> Option<Record> {
    match (record, like) {
        (Some(Record::EnumQuery { v, mut record }), Some(Record::EnumQuery { record: other, .. })) => {
            record.id = other.id;
            record.latency_us = other.latency_us;
            Some(Record::EnumQuery { v, record })
        }
        (record, _) => record,
    }
}

fuzz_target!(|data: &[u8]| {
    let (transport, packet) = match data.split_first() {
        Some((t, rest)) => (if t & 1 == 0 { Transport::Udp } else { Transport::Tcp }, rest),
        None => return,
    };
    let ctx = QueryContext {
        peer: "127.0.0.1:5000".parse().unwrap(),
        transport,
        received: Instant::now(),
        // A Wednesday, 15:00 UTC: inside the New York office hours.
        now: Utc.with_ymd_and_hms(2026, 12, 2, 15, 0, 0).unwrap(),
    };
    let r = responder();
    match r.respond_fast(packet, &ctx, Vec::new()) {
        Ok(fast) => {
            let slow = r.respond_hickory(packet, &ctx).expect("hickory answers what the fast path answers");
            assert_eq!(fast.bytes, slow.bytes, "answers differ");
            assert_eq!(comparable(fast.record, &slow.record), slow.record, "records differ");
            assert_eq!(fast.decision, slow.decision);
            assert_eq!(fast.outcome, slow.outcome);
            assert_eq!(fast.unreadable_source, slow.unreadable_source);
        }
        Err(_) => {
            // Declined: the hickory path answers (and must not panic).
            let _ = r.respond_hickory(packet, &ctx);
        }
    }
});
