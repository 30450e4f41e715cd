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

/// The policy both ENUM fuzz targets answer with.
const POLICY: &str = include_str!("../policies/enum.toml");

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
