//! Fuzzes the ENUM fast path against the hickory path: for any bytes the fast path accepts,
//! its answer must be byte-identical to the hickory path's, with the same record (but for its
//! random id and measured latency), decision and outcome; whatever it declines the hickory
//! path answers. Deterministic: no velocity rule, a fixed clock.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use tollgate_enum::respond::fuzzing::{self, compare_paths};
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_records::Transport;

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
    R.get_or_init(|| fuzzing::responder(EnumConfig::default(), POLICY, BTreeMap::new(), 1, "fuzz"))
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
    // No velocity rule: one responder serves as both the fast and the reference one.
    let r = responder();
    compare_paths(r, r, packet, &ctx);
});
