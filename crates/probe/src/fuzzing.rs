//! The checks of the `sip_tcp` fuzz target, shared with the `cargo test` that replays its
//! seeds (fuzz/seeds/sip_tcp): arbitrary TCP segments of a few flows through the stream
//! reassembly and the probe.
//!
//! Input: records of an 8-byte header and a payload, until the bytes run out:
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bits 0-1: the flow (bit 0 the connection, bit 1 the direction); bits 2-7: capture time step, in 100 ms |
//! | 1 | flags: bit 0 SYN, bit 1 FIN, bit 2 RST |
//! | 2-5 | sequence number, little-endian |
//! | 6-7 | payload length, little-endian (cut to what is left) |

use std::net::SocketAddr;

use tollgate_number::DialingPlan;
use tollgate_policy::InternalNumbers;

use crate::pipeline::{Probe, ProbeSettings};
use crate::tcp::{TcpFlags, TcpLimits, TcpReassembler, TcpSegment, is_start_line};

pub mod takeover;

/// Small bounds, so the fuzzer reaches them.
pub const LIMITS: TcpLimits = TcpLimits {
    max_flows: 3,
    max_flow_bytes: 2048,
    max_total_bytes: 4096,
    max_out_of_order: 4,
    gap_timeout_us: 1_000_000,
    idle_timeout_us: 10_000_000,
};

/// What a run delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Segments read from the input.
    pub segments: u64,
    /// Whole messages delivered.
    pub messages: u64,
    /// Calls the probe reported.
    pub calls: u64,
}

/// Decodes `data` into segments (see the module documentation).
pub fn segments(data: &[u8]) -> Vec<TcpSegment<'_>> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut ts_us = 1_000_000_000_000i64;
    while rest.len() >= 8 {
        let (head, tail) = rest.split_at(8);
        let len = usize::from(u16::from_le_bytes([head[6], head[7]])).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        ts_us += i64::from(head[0] >> 2) * 100_000;
        let client = SocketAddr::from(([10, 0, 0, 1], 40_000 + u16::from(head[0] & 1)));
        let server = SocketAddr::from(([10, 0, 0, 2], 5060));
        let (src, dst) = if head[0] & 2 == 0 { (client, server) } else { (server, client) };
        out.push(TcpSegment {
            ts_us,
            src,
            dst,
            seq: u32::from_le_bytes([head[2], head[3], head[4], head[5]]),
            flags: TcpFlags { syn: head[1] & 1 != 0, fin: head[1] & 2 != 0, rst: head[1] & 4 != 0 },
            payload,
        });
    }
    out
}

/// Encodes segments (header byte 0, flags, sequence number, payload) in the input format, for
/// seeds.
pub fn encode(segments: &[(u8, TcpFlags, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (flow, flags, seq, payload) in segments {
        out.push(*flow);
        out.push(u8::from(flags.syn) | (u8::from(flags.fin) << 1) | (u8::from(flags.rst) << 2));
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// Settings of a probe for the fuzz targets, the crate's tests and examples: the North American
/// dialing plan, `+1212555*` internal, no trunks, the defaults otherwise; calls counted under
/// `device`.
pub fn example_settings(device: &str) -> ProbeSettings {
    let plan = DialingPlan::nanp();
    ProbeSettings {
        device: device.into(),
        internal: InternalNumbers::parse(&["+1212555*".into()], &plan).expect("a valid range"),
        plan,
        trunks: Vec::new(),
        source: Default::default(),
        destination: Default::default(),
        tracker: Default::default(),
        mos_poor: crate::pipeline::DEFAULT_MOS_POOR,
        tcp: TcpLimits::default(),
    }
}

/// Runs the segments of `data` through a reassembler within [`LIMITS`] and a probe, and
/// checks: the bounds hold after every segment; every message delivered starts with a SIP
/// start line and fits the per-flow bound; every payload byte taken is accounted for exactly
/// once (delivered, keep-alive, retransmitted, dropped, or still held); no more calls than
/// INVITEs. Panics when a check fails.
pub fn sip_tcp(data: &[u8]) -> Outcome {
    let mut probe = Probe::new(example_settings("fuzz"));
    let mut tcp = TcpReassembler::new(LIMITS);
    let mut outcome = Outcome::default();
    let (mut taken, mut delivered) = (0u64, 0u64);
    let mut deliver = |d: crate::decode::Datagram<'_>, outcome: &mut Outcome| {
        let line = d.payload.split(|b| *b == b'\n').next().unwrap_or_default();
        assert!(is_start_line(line), "a message starts with a start line: {:?}", String::from_utf8_lossy(line));
        assert!(d.payload.len() <= LIMITS.max_flow_bytes, "a message within the per-flow bound");
        delivered += d.payload.len() as u64;
        outcome.messages += 1;
        outcome.calls += probe.on_datagram(&d).len() as u64;
    };
    for seg in segments(data) {
        outcome.segments += 1;
        tcp.on_segment(&seg, |d| deliver(d, &mut outcome));
        // The reassembler takes every payload but a RST's.
        if !seg.flags.rst {
            taken += seg.payload.len() as u64;
        }
        assert!(tcp.flows() <= LIMITS.max_flows, "flows {}", tcp.flows());
        assert!(tcp.held_bytes() <= LIMITS.max_total_bytes, "held {}", tcp.held_bytes());
        tcp.expire(seg.ts_us, |d| deliver(d, &mut outcome));
    }
    tcp.finish(|d| deliver(d, &mut outcome));
    assert_eq!(tcp.held_bytes(), 0);
    let s = tcp.stats();
    assert_eq!(
        taken,
        delivered + s.keepalive_bytes + s.retransmitted_bytes + s.bytes_dropped + s.not_sip_bytes,
        "every byte taken is accounted for: {s:?}"
    );
    assert_eq!(s.messages, outcome.messages);
    outcome.calls += probe.finish(crate::pipeline::AtEnd::Finalize).len() as u64;
    let invites = probe.counters().requests.get("INVITE").copied().unwrap_or(0);
    assert!(outcome.calls <= invites, "{} calls from {invites} INVITEs", outcome.calls);
    outcome
}
