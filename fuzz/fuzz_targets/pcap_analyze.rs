//! Fuzzes the whole offline path: capture file parsing (pcap, pcapng), link/IP/UDP decoding
//! with fragment reassembly, SIP over UDP and TCP, RTP, the call tracker and the call ladders'
//! store (the TCP reassembly and the ladders with small limits, so their bounds are hit). Any bytes give calls or an error, never a panic, never more
//! calls than INVITEs, and never more ladder bytes than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_number::DialingPlan;
use tollgate_policy::InternalNumbers;
use tollgate_probe::analyze::analyze;
use tollgate_probe::ladder::{LadderLimits, LadderStore};
use tollgate_probe::{Probe, ProbeSettings};

fuzz_target!(|data: &[u8]| {
    let plan = DialingPlan::nanp();
    let settings = ProbeSettings {
        device: "fuzz".into(),
        internal: InternalNumbers::parse(&["+1212555*".into()], &plan).unwrap(),
        plan,
        trunks: vec!["192.0.2.0/24".parse().unwrap()],
        source: Default::default(),
        destination: Default::default(),
        tracker: Default::default(),
        mos_poor: tollgate_probe::pipeline::DEFAULT_MOS_POOR,
        // The TCP fuzz target's small bounds, so they are hit here too.
        tcp: tollgate_probe::fuzzing::LIMITS,
    };
    let ladder = LadderLimits { calls: 4, message_bytes: 256, messages_per_call: 8, total_bytes: 4096 };
    let mut probe = Probe::new(settings).with_ladder(LadderStore::new(ladder));
    let mut calls = 0u64;
    if analyze(data, &mut probe, |_| calls += 1, |_| {}).is_ok() {
        let invites = probe.counters().requests.get("INVITE").copied().unwrap_or(0);
        assert!(calls <= invites, "{calls} calls from {invites} INVITEs");
    }
    let held = probe.ladder().map(|l| l.stats()).unwrap_or_default();
    assert!(held.bytes <= ladder.total_bytes as u64, "{held:?}");
});
