//! The checks of the `probe_takeover` fuzz target, shared with the `cargo test` that replays
//! its seeds (fuzz/seeds/probe_takeover): open calls as a probe pair's mate checkpoints them
//! (a JSON list of [`OpenCallCheckpoint`], the SRP session values), taken over by a probe that
//! then hears one more message of each (an RTP packet, a ringing, an answer, a BYE or a
//! failure), its timeouts, and the end of its input.
//!
//! Checked: whatever the values (times at the ends of `i64`, odd Call-IDs, too many endpoints
//! or streams), no panic; each call taken over is reported at most once; none is left open.

use tollgate_sip::dialog::OpenCallCheckpoint;

use super::example_settings;
use crate::decode::{Datagram, Transport};
use crate::pipeline::{AtEnd, Probe};

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Calls in the input.
    pub calls: usize,
    /// Calls taken over.
    pub taken: usize,
    /// Calls reported (ended, timed out or finalized).
    pub reported: usize,
}

/// One more message of call `c`; which one is `i`'s turn.
fn message(c: &OpenCallCheckpoint, i: usize) -> String {
    let id = &c.call.call_id;
    let start = match i % 4 {
        0 => "SIP/2.0 180 Ringing".to_string(),
        1 => "SIP/2.0 200 OK".to_string(),
        2 => format!("BYE sip:{} SIP/2.0", c.call.ruri_user.as_deref().unwrap_or("x")),
        _ => "SIP/2.0 503 Service Unavailable".to_string(),
    };
    let cseq = if i % 4 == 2 {
        format!("{} BYE", c.invite_cseq.saturating_add(1))
    } else {
        format!("{} INVITE", c.invite_cseq)
    };
    format!("{start}\r\nCall-ID: {id}\r\nCSeq: {cseq}\r\nTo: <sip:b@c>;tag=z\r\nContent-Length: 0\r\n\r\n")
}

/// An RTP packet of the call's first stream (or a new one) to its first media endpoint.
fn rtp(c: &OpenCallCheckpoint) -> Option<(Vec<u8>, std::net::SocketAddr)> {
    let to = *c.media.first()?;
    let ssrc = c.streams.first().map_or(7, |s| s.ssrc);
    let seq = c.streams.first().map_or(1, |s| s.max_seq().wrapping_add(5));
    let mut p = vec![0x80u8, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&160u32.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0; 160]);
    Some((p, to))
}

/// Runs the input through a probe (see the module documentation). Input that is not such a
/// list is refused by the JSON reader, as the SRP runtime refuses it.
pub fn takeover(data: &[u8]) -> Outcome {
    let Ok(calls) = serde_json::from_slice::<Vec<OpenCallCheckpoint>>(data) else { return Outcome::default() };
    let mut probe = Probe::new(example_settings("fuzz"));
    let mut outcome = Outcome { calls: calls.len(), ..Outcome::default() };
    outcome.taken = probe.restore_open(calls.clone());
    assert!(outcome.taken <= outcome.calls);
    for (i, c) in calls.iter().enumerate() {
        let ts_us = c.last_us.saturating_add(1_000);
        let (src, dst) = (c.call.to_addr, c.call.from_addr);
        if let Some((packet, to)) = rtp(c) {
            let d = Datagram { ts_us, src, dst: to, transport: Transport::Udp, payload: &packet };
            outcome.reported += probe.on_datagram(&d).len();
        }
        let text = message(c, i);
        let d = Datagram { ts_us, src, dst, transport: Transport::Udp, payload: text.as_bytes() };
        outcome.reported += probe.on_datagram(&d).len();
    }
    let latest = calls.iter().map(|c| c.last_us).max().unwrap_or(0);
    outcome.reported += probe.expire(latest.saturating_add(1_000_000)).len();
    outcome.reported += probe.expire(i64::MAX).len();
    outcome.reported += probe.finish(AtEnd::Finalize).len();
    assert!(outcome.reported <= outcome.taken, "{outcome:?}: a call reported twice");
    assert_eq!(probe.tracker().open_calls(), 0, "no call left open");
    outcome
}
