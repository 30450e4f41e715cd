//! Which call an RTP packet belongs to, by (address, port, SSRC, time).
//!
//! A media endpoint (an address and port from SDP) may belong to several calls over time: an
//! SBC's relay port is reused by the next call while the last RTP of the previous one is still
//! in flight, and a media server answers two calls on one port. Each call's claim on an
//! endpoint is a time window: from the SDP that announced it to the end of the call plus
//! [`RTP_LINGER_US`]. A packet is attributed, at its destination endpoint first, then at its
//! source endpoint:
//!
//! 1. a stream (SSRC) already tied to a call at that endpoint stays with that call while the
//!    call's window contains the packet's time; but once that call has ended, a packet whose
//!    sequence number does not continue the stream (a jump back, or ahead by more than 3000)
//!    while a newer call's window contains it is the newer call's: a sender that reuses its
//!    SSRC for the next call (a replayed recording, SIPp's `play_pcap_audio`) restarts its
//!    sequence;
//! 2. otherwise (a new SSRC, or one whose call's window has passed: a sender reusing its SSRC
//!    for the next call) to the newest call whose window contains the time, and the SSRC is
//!    tied to it;
//! 3. otherwise to the newest call that ended before the packet and is still remembered: late
//!    RTP of an ended call, which the tracker counts but keeps out of every record;
//! 4. otherwise (a packet older than every claim) it is unattributed, and counted.
//!
//! Memory is bounded: [`MAX_CLAIMS_PER_ENDPOINT`] calls and [`MAX_SSRCS_PER_ENDPOINT`] streams
//! per endpoint (the oldest are dropped), and at most `max_endpoints` endpoints in total (a new
//! endpoint beyond it is refused and counted). Claims go when the tracker forgets their call.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// How long after its call ended a claim still takes packets of its streams (RTP in flight
/// when the BYE passed): 2 s.
pub const RTP_LINGER_US: i64 = 2_000_000;

/// Most calls with a claim on one endpoint at once; the oldest ended call's claim goes first
/// (else the oldest).
pub const MAX_CLAIMS_PER_ENDPOINT: usize = 16;

/// Most streams (SSRCs) tied to calls at one endpoint; the least recently tied goes first.
pub const MAX_SSRCS_PER_ENDPOINT: usize = 32;

/// One call's claim on an endpoint.
#[derive(Debug, Clone)]
struct Claim {
    call_id: Box<str>,
    /// When its SDP announced the endpoint, µs.
    from_us: i64,
    /// When the call ended, µs; `None` while it is open.
    until_us: Option<i64>,
}

impl Claim {
    fn contains(&self, ts_us: i64) -> bool {
        ts_us >= self.from_us && self.until_us.is_none_or(|u| ts_us <= u.saturating_add(RTP_LINGER_US))
    }
}

#[derive(Debug, Default)]
struct Endpoint {
    /// In the order they were announced (oldest first).
    claims: SmallVec<[Claim; 2]>,
    /// Streams tied to calls, oldest tie first.
    ssrcs: SmallVec<[Tie; 2]>,
}

/// A stream (SSRC) tied to a call at an endpoint.
#[derive(Debug, Clone)]
struct Tie {
    ssrc: u32,
    call_id: Box<str>,
    /// Highest sequence number seen (modulo 2^16).
    last_seq: u16,
}

/// Most a sequence number may jump ahead and still continue its stream (RFC 3550 A.1's
/// MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3000;

/// True if `seq` continues a stream whose highest sequence number is `last` (a duplicate, or
/// ahead by at most [`MAX_DROPOUT`]).
fn continues(last: u16, seq: u16) -> bool {
    seq.wrapping_sub(last) <= MAX_DROPOUT
}

impl Endpoint {
    fn claim(&self, call_id: &str) -> Option<&Claim> {
        // The newest claim of that call (a Call-ID may have an ended and a new claim).
        self.claims.iter().rev().find(|c| &*c.call_id == call_id)
    }

    fn tie(&mut self, ssrc: u32, call_id: &str, seq: u16) {
        self.ssrcs.retain(|t| t.ssrc != ssrc);
        if self.ssrcs.len() >= MAX_SSRCS_PER_ENDPOINT {
            self.ssrcs.remove(0);
        }
        self.ssrcs.push(Tie { ssrc, call_id: call_id.into(), last_seq: seq });
    }

    /// The call of the stream tied to `ssrc`, if the packet is still that stream's (rule 1).
    fn tied(&mut self, ssrc: u32, seq: u16, ts_us: i64) -> Option<Box<str>> {
        let tie = self.ssrcs.iter().find(|t| t.ssrc == ssrc)?;
        let claim = self.claim(&tie.call_id).filter(|c| c.contains(ts_us))?;
        let taken_over = claim.until_us.is_some()
            && !continues(tie.last_seq, seq)
            && self.claims.iter().any(|k| k.from_us > claim.from_us && k.contains(ts_us));
        if taken_over {
            return None;
        }
        let tie = self.ssrcs.iter_mut().find(|t| t.ssrc == ssrc)?;
        if continues(tie.last_seq, seq) {
            tie.last_seq = seq;
        }
        Some(tie.call_id.clone())
    }

    fn attribute(&mut self, ssrc: u32, seq: u16, ts_us: i64) -> Option<Box<str>> {
        if let Some(call_id) = self.tied(ssrc, seq, ts_us) {
            return Some(call_id);
        }
        if let Some(c) = self.claims.iter().rev().find(|c| c.contains(ts_us)) {
            let call_id = c.call_id.clone();
            self.tie(ssrc, &call_id, seq);
            return Some(call_id);
        }
        self.claims.iter().rev().find(|c| c.until_us.is_some() && c.from_us <= ts_us).map(|c| c.call_id.clone())
    }
}

/// Counters of the attribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets to or from a known endpoint that no call's claim covers (older than every
    /// claim on it).
    pub unattributed: u64,
    /// Endpoints not mapped because `max_endpoints` were mapped already.
    pub refused: u64,
    /// Claims dropped because an endpoint had [`MAX_CLAIMS_PER_ENDPOINT`] already.
    pub claims_dropped: u64,
}

/// Media endpoints and the calls that claimed them over time.
#[derive(Debug)]
pub struct MediaMap {
    endpoints: FxHashMap<SocketAddr, Endpoint>,
    max_endpoints: usize,
    stats: MediaStats,
}

impl MediaMap {
    /// An empty map of at most `max_endpoints` endpoints.
    pub fn new(max_endpoints: usize) -> Self {
        MediaMap { endpoints: FxHashMap::default(), max_endpoints, stats: MediaStats::default() }
    }

    /// Counters.
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// True when no endpoint is mapped (RTP then needs no look-up).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Endpoints mapped.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Claims on all endpoints.
    pub fn claims(&self) -> usize {
        self.endpoints.values().map(|e| e.claims.len()).sum()
    }

    /// `call_id` announced `addr` at `ts_us` (SDP). An open claim of the same call stays as it
    /// is; false when the endpoint was refused (the map is full).
    pub fn announce(&mut self, addr: SocketAddr, call_id: &str, ts_us: i64) -> bool {
        if !self.endpoints.contains_key(&addr) && self.endpoints.len() >= self.max_endpoints {
            self.stats.refused += 1;
            return false;
        }
        let e = self.endpoints.entry(addr).or_default();
        if e.claim(call_id).is_some_and(|c| c.until_us.is_none()) {
            return true;
        }
        if e.claims.len() >= MAX_CLAIMS_PER_ENDPOINT {
            // The oldest ended call's claim, else the oldest claim.
            let i = e.claims.iter().position(|c| c.until_us.is_some()).unwrap_or(0);
            let gone = e.claims.remove(i);
            e.ssrcs.retain(|t| t.call_id != gone.call_id || e.claims.iter().any(|k| k.call_id == gone.call_id));
            self.stats.claims_dropped += 1;
        }
        e.claims.push(Claim { call_id: call_id.into(), from_us: ts_us, until_us: None });
        true
    }

    /// `call_id` ended at `ts_us`: its open claims on `addrs` close (plus the linger).
    pub fn end(&mut self, call_id: &str, addrs: &[SocketAddr], ts_us: i64) {
        for a in addrs {
            if let Some(e) = self.endpoints.get_mut(a) {
                for c in e.claims.iter_mut().filter(|c| &*c.call_id == call_id && c.until_us.is_none()) {
                    c.until_us = Some(ts_us.max(c.from_us));
                }
            }
        }
    }

    /// Ties stream `ssrc`, whose highest sequence number is `seq`, to `call_id` at those of
    /// `addrs` that are mapped: a call taken over from a probe pair's mate, whose streams were
    /// tied there.
    pub fn tie(&mut self, addrs: &[SocketAddr], ssrc: u32, call_id: &str, seq: u16) {
        for a in addrs {
            if let Some(e) = self.endpoints.get_mut(a) {
                e.tie(ssrc, call_id, seq);
            }
        }
    }

    /// Forgets `call_id`'s claims on `addrs` and the streams tied to it there; an endpoint
    /// without claims goes.
    pub fn forget(&mut self, call_id: &str, addrs: &[SocketAddr]) {
        for a in addrs {
            let Some(e) = self.endpoints.get_mut(a) else { continue };
            e.claims.retain(|c| &*c.call_id != call_id);
            e.ssrcs.retain(|t| &*t.call_id != call_id);
            if e.claims.is_empty() {
                self.endpoints.remove(a);
            }
        }
    }

    /// The call an RTP packet (`ssrc`, sequence number `seq`) from `src` to `dst` at `ts_us`
    /// belongs to (see the module docs); `None` if neither endpoint is mapped, or if no claim
    /// covers it (counted as unattributed).
    pub fn attribute(&mut self, dst: SocketAddr, src: SocketAddr, ssrc: u32, seq: u16, ts_us: i64) -> Option<Box<str>> {
        let mut known = false;
        for addr in [dst, src] {
            if let Some(e) = self.endpoints.get_mut(&addr) {
                known = true;
                if let Some(call) = e.attribute(ssrc, seq, ts_us) {
                    return Some(call);
                }
            }
        }
        if known {
            self.stats.unattributed += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const RELAY: &str = "10.0.0.1:6000";
    const PEER: &str = "10.0.0.2:7000";
    const S: i64 = 1_000_000;

    /// The sequence number of a 20 ms stream at `ts_us`.
    fn seq(ts_us: i64) -> u16 {
        (ts_us / 20_000) as u16
    }

    #[test]
    fn late_rtp_of_an_ended_call_does_not_go_to_the_next_call_on_the_same_port() {
        let mut m = MediaMap::new(100);
        m.announce(a(RELAY), "old", 0);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 111, seq(S), S).as_deref(), Some("old"));
        // The old call ends at 10 s; the next call takes the relay port at 10.1 s while the
        // old stream still flows for a moment.
        m.end("old", &[a(RELAY)], 10 * S);
        m.announce(a(RELAY), "new", 10 * S + 100_000);
        assert_eq!(
            m.attribute(a(RELAY), a(PEER), 111, seq(10 * S + 200_000), 10 * S + 200_000).as_deref(),
            Some("old")
        );
        assert_eq!(
            m.attribute(a(RELAY), a(PEER), 222, seq(10 * S + 200_000), 10 * S + 200_000).as_deref(),
            Some("new")
        );
        assert_eq!(m.attribute(a(RELAY), a(PEER), 222, seq(20 * S), 20 * S).as_deref(), Some("new"));
        // Past the linger a stream of the old call is taken as the sender's reuse of its SSRC
        // for the new call (the newest call whose window covers the time).
        assert_eq!(m.attribute(a(RELAY), a(PEER), 111, seq(13 * S), 13 * S).as_deref(), Some("new"));
        assert_eq!(m.stats().unattributed, 0);
    }

    #[test]
    fn overlapping_calls_on_one_media_server_port_keep_their_streams() {
        let mut m = MediaMap::new(100);
        let server = a("10.0.0.9:20000");
        m.announce(server, "a", 0);
        assert_eq!(m.attribute(server, a("10.0.0.3:4000"), 1, seq(S), S).as_deref(), Some("a"));
        m.announce(server, "b", 2 * S);
        // a's stream stays with a; b's new stream goes to the newest call, b.
        for t in [3 * S, 4 * S] {
            assert_eq!(m.attribute(server, a("10.0.0.3:4000"), 1, seq(t), t).as_deref(), Some("a"));
            assert_eq!(m.attribute(server, a("10.0.0.4:4000"), 2, seq(t), t).as_deref(), Some("b"));
        }
        // Packets from the server (source endpoint) are tied the same way.
        assert_eq!(m.attribute(a("10.0.0.3:4000"), server, 1, seq(5 * S), 5 * S).as_deref(), Some("a"));
        m.end("b", &[server], 6 * S);
        assert_eq!(
            m.attribute(server, a("10.0.0.4:4000"), 2, seq(7 * S), 7 * S).as_deref(),
            Some("b"),
            "in flight after the BYE"
        );
        m.forget("b", &[server]);
        assert_eq!(m.attribute(server, a("10.0.0.4:4000"), 2, seq(7 * S), 7 * S).as_deref(), Some("a"), "b forgotten");
    }

    #[test]
    fn an_ssrc_change_mid_call_stays_with_the_call() {
        let mut m = MediaMap::new(100);
        m.announce(a(RELAY), "c", 0);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 5, seq(S), S).as_deref(), Some("c"));
        // The far end re-INVITEs through a new media server: a new SSRC, same endpoint.
        assert_eq!(m.attribute(a(RELAY), a(PEER), 6, seq(2 * S), 2 * S).as_deref(), Some("c"));
        m.announce(a(RELAY), "c", 3 * S); // the same open call announcing again: no new claim
        assert_eq!(m.claims(), 1);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 5, seq(4 * S), 4 * S).as_deref(), Some("c"));
    }

    #[test]
    fn very_late_rtp_goes_to_the_last_ended_call_and_rtp_before_any_sdp_is_unattributed() {
        let mut m = MediaMap::new(100);
        m.announce(a(RELAY), "x", 5 * S);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 9, seq(S), S), None, "before the SDP that announced it");
        assert_eq!(m.stats().unattributed, 1);
        assert_eq!(m.attribute(a("10.9.9.9:1"), a("10.9.9.8:1"), 9, seq(S), S), None, "unknown endpoints");
        assert_eq!(m.stats().unattributed, 1, "traffic to unknown endpoints is not RTP of any call");
        m.end("x", &[a(RELAY)], 6 * S);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 9, seq(30 * S), 30 * S).as_deref(), Some("x"));
        m.forget("x", &[a(RELAY)]);
        assert!(m.is_empty());
        assert_eq!(m.attribute(a(RELAY), a(PEER), 9, seq(31 * S), 31 * S), None);
    }

    #[test]
    fn a_sender_reusing_its_ssrc_for_the_next_call_restarts_its_sequence_and_is_the_new_calls() {
        let mut m = MediaMap::new(100);
        // SIPp's play_pcap_audio replays one recording: the same SSRC and sequence numbers in
        // every call, from the same ports.
        m.announce(a(RELAY), "first", 0);
        for i in 0..50u16 {
            let t = 100_000 + i64::from(i) * 20_000;
            assert_eq!(m.attribute(a(RELAY), a(PEER), 77, 1000 + i, t).as_deref(), Some("first"));
        }
        m.end("first", &[a(RELAY)], 1_100_000);
        // In flight at the BYE: continues the sequence, still the first call's.
        m.announce(a(RELAY), "second", 1_150_000);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 77, 1050, 1_160_000).as_deref(), Some("first"));
        // The replay starts again at 1000: the second call's, and from then on its stream.
        for i in 0..50u16 {
            let t = 1_200_000 + i64::from(i) * 20_000;
            assert_eq!(m.attribute(a(RELAY), a(PEER), 77, 1000 + i, t).as_deref(), Some("second"), "{i}");
        }
        // Without a newer call, a jump in an ended call's stream is still that call's (late).
        m.end("second", &[a(RELAY)], 2_300_000);
        assert_eq!(m.attribute(a(RELAY), a(PEER), 77, 5, 2_400_000).as_deref(), Some("second"));
    }

    #[test]
    fn memory_is_bounded_per_endpoint_and_in_total() {
        let mut m = MediaMap::new(3);
        for i in 0..40 {
            m.announce(a(RELAY), &format!("call-{i}"), i * S);
            m.end(&format!("call-{i}"), &[a(RELAY)], i * S + 1);
        }
        assert_eq!(m.claims(), MAX_CLAIMS_PER_ENDPOINT);
        // An open call's claim outlives ended ones announced after it.
        let mut m2 = MediaMap::new(3);
        m2.announce(a(RELAY), "long", 0);
        for i in 1..40 {
            m2.announce(a(RELAY), &format!("short-{i}"), i * S);
            m2.end(&format!("short-{i}"), &[a(RELAY)], i * S + 1);
        }
        assert_eq!(m2.attribute(a(RELAY), a(PEER), 4242, 0, 45 * S).as_deref(), Some("long"));
        assert_eq!(m.stats().claims_dropped, 40 - MAX_CLAIMS_PER_ENDPOINT as u64);
        for ssrc in 0..100 {
            m.attribute(a(RELAY), a(PEER), ssrc, seq(39 * S), 39 * S);
        }
        assert!(m.endpoints[&a(RELAY)].ssrcs.len() <= MAX_SSRCS_PER_ENDPOINT);
        assert!(m.announce(a("10.0.0.1:6002"), "y", 0));
        assert!(m.announce(a("10.0.0.1:6004"), "y", 0));
        assert!(!m.announce(a("10.0.0.1:6006"), "y", 0), "a fourth endpoint is refused");
        assert_eq!((m.len(), m.stats().refused), (3, 1));
    }
}
