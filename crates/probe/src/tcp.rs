//! SIP over TCP: TCP segments in, whole SIP messages out.
//!
//! One job: per flow (source and destination address, each direction on its own), the bytes
//! are put back in sequence order and cut into SIP messages by their Content-Length (RFC 3261
//! section 18.3), so a segment holding several messages, or part of one, gives whole messages.
//!
//! * Sequence numbers: a SYN sets the start; a flow first seen mid-stream starts at its first
//!   data segment and looks for a SIP start line at the start of a line before framing.
//!   Out-of-order segments are held until the bytes before them arrive; retransmitted and
//!   overlapping bytes are dropped (the first copy wins). FIN and RST close the flow.
//! * A gap (bytes that never arrive: lost by the tap) is skipped when the flow holds too many
//!   out-of-order segments or bytes, when they have waited [`TcpLimits::gap_timeout_us`], or at
//!   the end of the input; the partial message before it is dropped and the flow resynchronises
//!   on the next SIP start line.
//! * Framing: CRLF keep-alives are skipped; a message without Content-Length (required on TCP)
//!   is delivered with an empty body and counted; a message larger than
//!   [`TcpLimits::max_flow_bytes`], or with a Content-Length that is not a number, is dropped and
//!   counted, and the flow resynchronises.
//! * Bounds: at most [`TcpLimits::max_flows`] flows (the least recently active is evicted), at
//!   most [`TcpLimits::max_flow_bytes`] held per flow and [`TcpLimits::max_total_bytes`] in all
//!   (the least recently active flows are evicted until the bytes held fit), flows idle for
//!   [`TcpLimits::idle_timeout_us`] of capture time expired. Every byte that is not delivered
//!   is counted in [`TcpStats::bytes_dropped`].
//!
//! Hand-written rather than taken from a crate: the crates that reassemble TCP either own the
//! capture (libpcap) themselves, are GPL, or keep whole streams without the per-flow and total
//! bounds a probe facing the network needs; SIP framing is tollgate's own part in any case.

use std::net::SocketAddr;

use hashlink::LinkedHashMap;
use serde::Serialize;

use crate::decode::{Datagram, Transport};

/// The TCP control flags the reassembler acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN: the first sequence number of a flow.
    pub syn: bool,
    /// FIN: the sender has no more data.
    pub fin: bool,
    /// RST: the connection is gone.
    pub rst: bool,
}

/// One captured TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<'a> {
    /// Capture time, µs.
    pub ts_us: i64,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Sequence number of the first byte (of the SYN, when `flags.syn`).
    pub seq: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// The segment's payload.
    pub payload: &'a [u8],
}

/// Bounds of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Most flows (one per direction of a connection) tracked at once.
    pub max_flows: usize,
    /// Most bytes held per flow (a partial message and out-of-order segments); also the
    /// largest message delivered.
    pub max_flow_bytes: usize,
    /// Most bytes held by all flows together.
    pub max_total_bytes: usize,
    /// Most out-of-order segments held per flow before the gap before them is skipped.
    pub max_out_of_order: usize,
    /// Out-of-order segments that waited this long (capture time, µs) for the bytes before
    /// them make the flow skip the gap.
    pub gap_timeout_us: i64,
    /// A flow with no segment for this long (capture time, µs) is forgotten.
    pub idle_timeout_us: i64,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_flows: 65_536,
            max_flow_bytes: 256 << 10,
            max_total_bytes: 64 << 20,
            max_out_of_order: 64,
            gap_timeout_us: 3_000_000,
            idle_timeout_us: 300_000_000,
        }
    }
}

/// What the reassembler did; every byte it did not deliver is in `bytes_dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpStats {
    /// Flows seen (each direction of a connection is one).
    pub flows: u64,
    /// Flows first seen after their SYN (picked up mid-stream).
    pub midstream: u64,
    /// Whole SIP messages delivered.
    pub messages: u64,
    /// Segments that arrived before the bytes preceding them (held).
    pub out_of_order: u64,
    /// Bytes seen twice (retransmissions, overlaps), the first copy kept.
    pub retransmitted_bytes: u64,
    /// CRLF keep-alive bytes between messages, skipped.
    pub keepalive_bytes: u64,
    /// Gaps in a flow skipped: bytes that never arrived.
    pub gaps: u64,
    /// Times a flow found a SIP start line again after losing the message boundaries (at a
    /// gap, after a bad or oversized message, or when picked up inside a message).
    pub resyncs: u64,
    /// Bytes received but not delivered in a message: partial messages at a gap, a close, an
    /// eviction or the end of the input; oversized or malformed messages; bytes that were not
    /// SIP.
    pub bytes_dropped: u64,
    /// Messages without a Content-Length header (required on TCP), delivered with no body.
    pub no_content_length: u64,
    /// Messages dropped because larger than the per-flow bound, or with a Content-Length
    /// that is not a number.
    pub oversized: u64,
    /// Flows evicted to stay under the flow or byte bounds.
    pub evicted: u64,
    /// Flows forgotten after being idle.
    pub expired: u64,
    /// Bytes of segments of unknown flows (no SYN seen) without `SIP/2.0` in them: other TCP
    /// traffic on the tap (TLS, HTTP ...) is not given a flow, so it cannot crowd SIP flows out
    /// of the table. A flow picked up mid-stream starts at its first segment holding a start
    /// line's `SIP/2.0`.
    pub not_sip_bytes: u64,
}

/// The longest start line looked for while resynchronising.
const MAX_START_LINE: usize = 8192;

/// Where the framing of the message at the start of a flow's buffer stands.
#[derive(Debug, Clone, Copy, Default)]
struct Framing {
    /// The end of the head has been looked for up to here.
    scanned: usize,
    /// The message's whole length, once its head is complete.
    length: Option<usize>,
    /// The head had no Content-Length.
    no_length: bool,
}

/// One direction of a connection.
#[derive(Debug)]
struct Flow {
    /// The sequence number of the SYN, if seen (to recognise its retransmission).
    isn: Option<u32>,
    /// The sequence number of the next byte expected.
    next_seq: u32,
    /// `buf` starts at a message boundary.
    synced: bool,
    /// When not synced: `buf` starts at the start of a line.
    line_start: bool,
    /// Bytes were skipped since the flow was last synced.
    lost: bool,
    /// Bytes in sequence not yet delivered: the start of a message.
    buf: Vec<u8>,
    framing: Framing,
    /// Segments ahead of `next_seq`.
    ahead: Vec<(u32, Vec<u8>)>,
    ahead_bytes: usize,
    /// Capture time the oldest segment in `ahead` arrived.
    ahead_since_us: i64,
    /// Capture time of the last segment.
    last_us: i64,
    /// A FIN was seen: the flow ends once nothing is held ahead.
    closing: bool,
}

impl Flow {
    fn new(next_seq: u32, synced: bool, now_us: i64) -> Flow {
        Flow {
            isn: None,
            next_seq,
            synced,
            line_start: true,
            lost: false,
            buf: Vec::new(),
            framing: Framing::default(),
            ahead: Vec::new(),
            ahead_bytes: 0,
            ahead_since_us: now_us,
            last_us: now_us,
            closing: false,
        }
    }

    fn held(&self) -> usize {
        self.buf.len() + self.ahead_bytes
    }

    /// Takes the payload of a segment starting at `seq`.
    fn accept(&mut self, seq: u32, payload: &[u8], now_us: i64, limits: &TcpLimits, stats: &mut TcpStats) {
        if payload.is_empty() {
            return;
        }
        let offset = seq.wrapping_sub(self.next_seq) as i32;
        if offset <= 0 {
            self.append(offset, payload, stats);
            self.take_ahead(stats);
            return;
        }
        if self.ahead.iter().any(|(s, p)| *s == seq && p.len() >= payload.len()) {
            stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        if self.ahead.is_empty() {
            self.ahead_since_us = now_us;
        }
        self.ahead.push((seq, payload.to_vec()));
        self.ahead_bytes += payload.len();
        stats.out_of_order += 1;
        if self.ahead.len() > limits.max_out_of_order || self.held() > limits.max_flow_bytes {
            self.skip_gap(stats);
        }
    }

    /// Appends bytes starting `offset` (<= 0) from `next_seq`, without those already had.
    fn append(&mut self, offset: i32, payload: &[u8], stats: &mut TcpStats) {
        let overlap = offset.unsigned_abs() as usize;
        if overlap >= payload.len() {
            stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        stats.retransmitted_bytes += overlap as u64;
        let new = &payload[overlap..];
        self.buf.extend_from_slice(new);
        self.next_seq = self.next_seq.wrapping_add(new.len() as u32);
    }

    /// Moves held segments that are now in sequence to `buf`.
    fn take_ahead(&mut self, stats: &mut TcpStats) {
        while let Some(i) = self.ahead.iter().position(|(s, _)| s.wrapping_sub(self.next_seq) as i32 <= 0) {
            let (s, p) = self.ahead.swap_remove(i);
            self.ahead_bytes -= p.len();
            self.append(s.wrapping_sub(self.next_seq) as i32, &p, stats);
        }
    }

    /// Gives up on the bytes before the first held segment: the partial message before the
    /// gap is dropped and framing resumes at the next SIP start line.
    fn skip_gap(&mut self, stats: &mut TcpStats) {
        let Some(first) = self.ahead.iter().map(|(s, _)| *s).min_by_key(|s| s.wrapping_sub(self.next_seq)) else {
            return;
        };
        stats.gaps += 1;
        stats.bytes_dropped += self.buf.len() as u64;
        self.buf.clear();
        self.framing = Framing::default();
        self.next_seq = first;
        self.synced = false;
        self.line_start = true;
        self.lost = true;
        self.take_ahead(stats);
    }

    /// Delivers every whole message at the start of `buf`.
    fn frame(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        ts_us: i64,
        max: usize,
        stats: &mut TcpStats,
        out: &mut impl FnMut(Datagram<'_>),
    ) {
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if !self.synced {
                match find_start_line(rest, self.line_start) {
                    Search::Found(p) => {
                        if p > 0 || self.lost {
                            stats.resyncs += 1;
                            stats.bytes_dropped += p as u64;
                        }
                        self.lost = false;
                        at += p;
                        self.synced = true;
                        self.framing = Framing::default();
                        continue;
                    }
                    Search::Wait { discard, line_start } => {
                        stats.bytes_dropped += discard as u64;
                        self.lost |= discard > 0;
                        at += discard;
                        self.line_start = line_start;
                        break;
                    }
                }
            }
            let keepalive = rest.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            if keepalive > 0 {
                stats.keepalive_bytes += keepalive as u64;
                at += keepalive;
                self.framing = Framing::default();
                continue;
            }
            if rest.is_empty() {
                break;
            }
            match frame_message(rest, max, &mut self.framing) {
                Frame::Whole(len) => {
                    stats.messages += 1;
                    if self.framing.no_length {
                        stats.no_content_length += 1;
                    }
                    out(Datagram { ts_us, src, dst, transport: Transport::Tcp, payload: &rest[..len] });
                    at += len;
                    self.framing = Framing::default();
                }
                Frame::Incomplete => break,
                Frame::Bad { not_sip } => {
                    if !not_sip {
                        stats.oversized += 1;
                    }
                    // Drop the start line and look for the next one.
                    let line = memchr::memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
                    stats.bytes_dropped += line as u64;
                    at += line;
                    self.synced = false;
                    self.lost = true;
                    self.line_start = line < rest.len() || rest.ends_with(b"\n");
                    self.framing = Framing::default();
                }
            }
        }
        self.buf.drain(..at);
    }
}

/// What a search for a start line found.
enum Search {
    /// A SIP start line begins here.
    Found(usize),
    /// None yet: drop `discard` bytes; what is left starts a line if `line_start`.
    Wait { discard: usize, line_start: bool },
}

/// Looks for a SIP start line at the start of a line (`buf[0]` counts when `line_start`).
fn find_start_line(buf: &[u8], line_start: bool) -> Search {
    let mut candidate = if line_start { Some(0) } else { memchr::memchr(b'\n', buf).map(|n| n + 1) };
    loop {
        let Some(p) = candidate else {
            return Search::Wait { discard: buf.len(), line_start: false };
        };
        let line = &buf[p..];
        match memchr::memchr(b'\n', line) {
            Some(e) if is_start_line(&line[..e]) => return Search::Found(p),
            Some(e) => candidate = Some(p + e + 1),
            None if line.len() > MAX_START_LINE || line.first().is_some_and(|b| !b.is_ascii_uppercase()) => {
                return Search::Wait { discard: buf.len(), line_start: false };
            }
            None => return Search::Wait { discard: p, line_start: true },
        }
    }
}

/// True for `METHOD URI SIP/2.0` and `SIP/2.0 CODE reason` (a line end's CR allowed).
pub(crate) fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) && (rest.len() == 3 || rest[3] == b' ');
    }
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    method.first().is_some_and(u8::is_ascii_uppercase)
        && method.len() <= 32
        && method.iter().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(b))
        && uri.contains(&b':')
        && version == b"SIP/2.0"
}

/// What framing found at the start of a synchronised buffer.
enum Frame {
    /// A whole message of this many bytes.
    Whole(usize),
    /// More bytes are needed.
    Incomplete,
    /// Not a SIP message (`not_sip`), or one too large or with a bad Content-Length.
    Bad { not_sip: bool },
}

/// The value of a Content-Length (or compact `l`) header line, if it is one.
fn content_length(line: &[u8]) -> Option<Option<usize>> {
    let colon = memchr::memchr(b':', line)?;
    let name = line[..colon].trim_ascii();
    if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
        return None;
    }
    let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok();
    Some(value.and_then(|v| v.parse().ok()))
}

/// Frames the message at the start of `buf` (which starts with a non-CRLF byte), resuming
/// the search for the end of its head where `framing` left it.
fn frame_message(buf: &[u8], max: usize, framing: &mut Framing) -> Frame {
    if let Some(length) = framing.length {
        return if buf.len() >= length { Frame::Whole(length) } else { Frame::Incomplete };
    }
    let Some(first) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > MAX_START_LINE { Frame::Bad { not_sip: true } } else { Frame::Incomplete };
    };
    if !is_start_line(&buf[..first]) {
        return Frame::Bad { not_sip: true };
    }
    // The head ends at the first empty line ("\n\r\n" or, leniently, "\n\n").
    let mut i = framing.scanned.max(first);
    let head_end = loop {
        let Some(n) = memchr::memchr(b'\n', &buf[i..]) else {
            framing.scanned = buf.len();
            return if buf.len() > max { Frame::Bad { not_sip: false } } else { Frame::Incomplete };
        };
        let nl = i + n;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => break nl + 2,
            (Some(b'\r'), Some(b'\n')) => break nl + 3,
            (None, _) | (Some(b'\r'), None) => {
                framing.scanned = nl;
                return if buf.len() > max { Frame::Bad { not_sip: false } } else { Frame::Incomplete };
            }
            _ => i = nl + 1,
        }
    };
    let mut body = None;
    for line in buf[first + 1..head_end].split(|b| *b == b'\n') {
        if let Some(v) = content_length(line) {
            body = Some(v);
            break;
        }
    }
    let body = match body {
        None => {
            framing.no_length = true;
            0
        }
        Some(None) => return Frame::Bad { not_sip: false },
        Some(Some(n)) => n,
    };
    let length = head_end.saturating_add(body);
    if length > max {
        return Frame::Bad { not_sip: false };
    }
    framing.length = Some(length);
    if buf.len() >= length { Frame::Whole(length) } else { Frame::Incomplete }
}

/// Flows and their bytes; see the module documentation.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    limits: TcpLimits,
    /// Flows by (source, destination), least recently active first.
    flows: LinkedHashMap<(SocketAddr, SocketAddr), Flow>,
    /// Bytes held by all flows.
    held: usize,
    /// Flows holding out-of-order segments.
    waiting: usize,
    stats: TcpStats,
}

impl TcpReassembler {
    /// A reassembler within `limits`.
    pub fn new(limits: TcpLimits) -> Self {
        TcpReassembler { limits, ..Default::default() }
    }

    /// Counters.
    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    /// Flows tracked now.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Bytes held now (partial messages and out-of-order segments).
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// The bounds.
    pub fn limits(&self) -> TcpLimits {
        self.limits
    }

    /// Takes one segment; calls `out` with each whole SIP message it completes (transport
    /// TCP, the segment's time and addresses).
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, mut out: impl FnMut(Datagram<'_>)) {
        let key = (seg.src, seg.dst);
        if seg.flags.rst {
            self.remove(&key);
            self.remove(&(seg.dst, seg.src));
            return;
        }
        let data_seq = if seg.flags.syn { seg.seq.wrapping_add(1) } else { seg.seq };
        if seg.flags.syn {
            if self.flows.get(&key).is_none_or(|f| f.isn != Some(seg.seq)) {
                self.remove(&key);
                self.create(key, data_seq, true, seg.ts_us).isn = Some(seg.seq);
            }
        } else if !self.flows.contains_key(&key) {
            if seg.payload.is_empty() {
                return;
            }
            if memchr::memmem::find(seg.payload, b"SIP/2.0").is_none() {
                self.stats.not_sip_bytes += seg.payload.len() as u64;
                return;
            }
            self.create(key, data_seq, false, seg.ts_us);
            self.stats.midstream += 1;
        }
        let limits = self.limits;
        let stats = &mut self.stats;
        let Some(flow) = self.flows.to_back(&key) else { return };
        let (before, waited) = (flow.held(), !flow.ahead.is_empty());
        flow.last_us = seg.ts_us;
        flow.accept(data_seq, seg.payload, seg.ts_us, &limits, stats);
        // Capture times come off the wire (a pcapng offset can make them anything): saturating.
        if !flow.ahead.is_empty() && seg.ts_us.saturating_sub(flow.ahead_since_us) >= limits.gap_timeout_us {
            flow.skip_gap(stats);
        }
        flow.closing |= seg.flags.fin;
        flow.frame(seg.src, seg.dst, seg.ts_us, limits.max_flow_bytes, stats, &mut out);
        let (after, waits) = (flow.held(), !flow.ahead.is_empty());
        let close = flow.closing && !waits;
        self.held = self.held + after - before;
        self.waiting = self.waiting + usize::from(waits) - usize::from(waited);
        if close {
            self.remove(&key);
        }
        while self.held > limits.max_total_bytes {
            let Some((_, f)) = self.flows.pop_front() else { break };
            self.stats.evicted += 1;
            self.forget(f);
        }
    }

    /// Skips the gaps of flows whose out-of-order segments waited past the gap timeout at
    /// `now_us` (delivering the messages after them), and forgets flows idle past the idle
    /// timeout.
    pub fn expire(&mut self, now_us: i64, mut out: impl FnMut(Datagram<'_>)) {
        if self.waiting > 0 {
            let gap = self.limits.gap_timeout_us;
            self.flush(|f| now_us.saturating_sub(f.ahead_since_us) >= gap, &mut out);
        }
        let idle = self.limits.idle_timeout_us;
        while self.flows.front().is_some_and(|(_, f)| now_us.saturating_sub(f.last_us) >= idle) {
            if let Some((_, f)) = self.flows.pop_front() {
                self.stats.expired += 1;
                self.forget(f);
            }
        }
    }

    /// The end of the input: the messages after every gap are delivered, and what is left
    /// (partial messages) counted as dropped.
    pub fn finish(&mut self, mut out: impl FnMut(Datagram<'_>)) {
        self.flush(|_| true, &mut out);
        while let Some((_, f)) = self.flows.pop_front() {
            self.forget(f);
        }
    }

    /// Forgets every flow; what they held is counted as dropped (the probe stopped receiving:
    /// a probe pair's chassis that is no longer serving).
    pub fn clear(&mut self) {
        while let Some((_, f)) = self.flows.pop_front() {
            self.forget(f);
        }
    }

    /// Skips the gaps of the flows `due` says, delivering what follows them.
    fn flush(&mut self, due: impl Fn(&Flow) -> bool, out: &mut impl FnMut(Datagram<'_>)) {
        let max = self.limits.max_flow_bytes;
        for (&(src, dst), flow) in self.flows.iter_mut() {
            if flow.ahead.is_empty() || !due(flow) {
                continue;
            }
            let before = flow.held();
            while !flow.ahead.is_empty() {
                flow.skip_gap(&mut self.stats);
                flow.frame(src, dst, flow.last_us, max, &mut self.stats, out);
            }
            self.held = self.held + flow.held() - before;
            self.waiting -= 1;
        }
    }

    fn create(&mut self, key: (SocketAddr, SocketAddr), next_seq: u32, synced: bool, now_us: i64) -> &mut Flow {
        if self.flows.len() >= self.limits.max_flows.max(1)
            && let Some((_, f)) = self.flows.pop_front()
        {
            self.stats.evicted += 1;
            self.forget(f);
        }
        self.stats.flows += 1;
        self.flows.entry(key).or_insert(Flow::new(next_seq, synced, now_us))
    }

    fn remove(&mut self, key: &(SocketAddr, SocketAddr)) {
        if let Some(f) = self.flows.remove(key) {
            self.forget(f);
        }
    }

    /// Accounts for a flow taken out of the table: what it held is dropped.
    fn forget(&mut self, f: Flow) {
        self.held -= f.held();
        self.waiting -= usize::from(!f.ahead.is_empty());
        self.stats.bytes_dropped += f.held() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INVITE whose body (`body_len` bytes) ends with a line end, as SDP does.
    fn invite(call: &str, body_len: usize) -> Vec<u8> {
        let body = if body_len >= 2 { format!("{}\r\n", "v".repeat(body_len - 2)) } else { "v".repeat(body_len) };
        format!(
            "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK{call}\r\nFrom: <sip:3125550666@10.0.0.1>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nContent-Length: {body_len}\r\n\r\n{body}"
        )
        .into_bytes()
    }

    fn ok(call: &str) -> Vec<u8> {
        format!("SIP/2.0 200 OK\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n").into_bytes()
    }

    struct Run {
        r: TcpReassembler,
        got: Vec<Vec<u8>>,
    }

    impl Run {
        fn new(limits: TcpLimits) -> Run {
            Run { r: TcpReassembler::new(limits), got: Vec::new() }
        }

        fn seg(&mut self, ts_ms: i64, flow: u16, seq: u32, flags: TcpFlags, payload: &[u8]) {
            let seg = TcpSegment {
                ts_us: ts_ms * 1000,
                src: SocketAddr::from(([10, 0, 0, 1], flow)),
                dst: "10.0.0.2:5060".parse().unwrap(),
                seq,
                flags,
                payload,
            };
            let got = &mut self.got;
            self.r.on_segment(&seg, |d| {
                assert_eq!(d.transport, Transport::Tcp);
                got.push(d.payload.to_vec())
            });
        }

        fn data(&mut self, seq: u32, payload: &[u8]) {
            self.seg(0, 40000, seq, TcpFlags::default(), payload);
        }

        fn syn(&mut self, isn: u32) {
            self.seg(0, 40000, isn, TcpFlags { syn: true, ..Default::default() }, b"");
        }
    }

    const ISN: u32 = 0xffff_fff0; // wraps within the first message

    #[test]
    fn one_segment_with_two_messages_gives_both() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(ISN);
        let both = [invite("a", 20), ok("a")].concat();
        run.data(ISN.wrapping_add(1), &both);
        assert_eq!(run.got, vec![invite("a", 20), ok("a")]);
        assert_eq!(run.r.stats().messages, 2);
        assert_eq!(run.r.held_bytes(), 0);
    }

    #[test]
    fn one_message_in_three_segments_and_a_body_split_across_them() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(ISN);
        let m = invite("b", 300);
        let head = m.len() - 300;
        // The head split mid-line, then the body split in two.
        let cuts = [0, 40, head + 100, m.len()];
        for w in cuts.windows(2) {
            assert!(run.got.is_empty(), "nothing before the last byte");
            run.data(ISN.wrapping_add(1 + w[0] as u32), &m[w[0]..w[1]]);
        }
        assert_eq!(run.got, vec![m]);
    }

    #[test]
    fn out_of_order_segments_are_put_back_in_order() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(ISN);
        let stream = [invite("c", 10), ok("c"), invite("d", 0)].concat();
        let base = ISN.wrapping_add(1);
        let (a, b) = (50, 130);
        run.data(base.wrapping_add(b as u32), &stream[b..]);
        run.data(base.wrapping_add(a as u32), &stream[a..b]);
        assert!(run.got.is_empty());
        assert_eq!(run.r.stats().out_of_order, 2);
        run.data(base, &stream[..a]);
        assert_eq!(run.got, vec![invite("c", 10), ok("c"), invite("d", 0)]);
        assert_eq!(run.r.held_bytes(), 0);
        assert_eq!(run.r.stats().bytes_dropped, 0);
    }

    #[test]
    fn retransmitted_and_overlapping_bytes_are_dropped_once_seen() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(ISN);
        let m = [invite("e", 40), ok("e")].concat();
        let base = ISN.wrapping_add(1);
        run.data(base, &m[..100]);
        run.data(base, &m[..100]); // retransmission
        run.data(base.wrapping_add(60), &m[60..150]); // overlaps 40 bytes
        run.data(base.wrapping_add(150), &m[150..]);
        run.data(base.wrapping_add(150), &m[150..]); // late retransmission
        assert_eq!(run.got, vec![invite("e", 40), ok("e")]);
        assert_eq!(run.r.stats().retransmitted_bytes, 100 + 40 + (m.len() - 150) as u64);
        // A retransmitted SYN does not reset the flow.
        run.syn(ISN);
        assert_eq!(run.r.stats().flows, 1);
    }

    #[test]
    fn other_tcp_traffic_picked_up_mid_stream_gets_no_flow() {
        let mut run = Run::new(TcpLimits::default());
        // TLS or HTTP on the tap, its SYN not seen: no flow, its bytes counted.
        let tls: &[u8] = b"\x17\x03\x03\x00\x20 encrypted application data .....";
        let http: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
        run.data(1_000, tls);
        run.data(1_100, http);
        let s = run.r.stats();
        assert_eq!((run.r.flows(), s.flows, s.midstream), (0, 0, 0));
        assert_eq!(s.not_sip_bytes, (tls.len() + http.len()) as u64);
        assert!(run.got.is_empty());
    }

    #[test]
    fn a_flow_starting_mid_message_resynchronises_on_the_next_start_line() {
        let mut run = Run::new(TcpLimits::default());
        let stream = [invite("f", 30), ok("f"), invite("g", 5)].concat();
        // No SYN: the capture starts 70 bytes into the first message (mid-line).
        run.data(7_000, &stream[70..]);
        assert_eq!(run.got, vec![ok("f"), invite("g", 5)]);
        let s = run.r.stats();
        assert_eq!((s.midstream, s.resyncs), (1, 1));
        assert_eq!(s.bytes_dropped, (invite("f", 30).len() - 70) as u64);
    }

    #[test]
    fn keepalives_are_skipped_and_a_message_without_content_length_is_counted() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(1);
        let bare = b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: k\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let stream = [b"\r\n\r\n".as_slice(), bare, b"\r\n", &ok("k")].concat();
        run.data(2, &stream);
        assert_eq!(run.got, vec![bare.to_vec(), ok("k")]);
        assert_eq!(run.r.stats().no_content_length, 1);
        assert_eq!(run.r.stats().bytes_dropped, 0);
    }

    #[test]
    fn a_gap_drops_the_partial_message_and_the_rest_is_delivered() {
        let mut run = Run::new(TcpLimits { max_out_of_order: 2, ..Default::default() });
        run.syn(0);
        let stream = [invite("h", 10), ok("h"), invite("i", 0), ok("i")].concat();
        let first = invite("h", 10).len();
        run.data(1, &stream[..20]);
        // Bytes 20..40 never arrive (a tap drop); three segments follow the gap.
        let cut = first + ok("h").len();
        run.data(1 + 40, &stream[40..cut]);
        run.data(1 + cut as u32, &stream[cut..cut + 30]);
        assert!(run.got.is_empty(), "held while the gap may still fill");
        run.data(1 + cut as u32 + 30, &stream[cut + 30..]);
        assert_eq!(run.got, vec![ok("h"), invite("i", 0), ok("i")], "the messages after the gap");
        let s = run.r.stats();
        assert_eq!((s.gaps, s.resyncs), (1, 1));
        assert_eq!(s.bytes_dropped, (20 + first - 40) as u64, "the partial message on both sides of the gap");
        assert_eq!(run.r.held_bytes(), 0);
    }

    #[test]
    fn a_gap_is_skipped_after_the_gap_timeout_and_at_the_end() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(0);
        let m = [ok("j"), ok("k")].concat();
        let one = ok("j").len();
        run.data(1 + one as u32, &m[one..]); // the first message is lost
        assert!(run.got.is_empty());
        let got = &mut run.got;
        run.r.expire(1_000, |d| got.push(d.payload.to_vec()));
        assert!(got.is_empty(), "still waiting");
        run.r.expire(4_000_000, |d| got.push(d.payload.to_vec()));
        assert_eq!(*got, vec![ok("k")]);
        // At the end of the input.
        let mut run = Run::new(TcpLimits::default());
        run.syn(0);
        run.data(1 + one as u32, &m[one..]);
        let got = &mut run.got;
        run.r.finish(|d| got.push(d.payload.to_vec()));
        assert_eq!(*got, vec![ok("k")]);
        assert_eq!(run.r.flows(), 0);
    }

    #[test]
    fn fin_and_rst_close_the_flow_and_count_what_was_left() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(0);
        let m = invite("l", 10);
        run.seg(0, 40000, 1, TcpFlags { fin: true, ..Default::default() }, &m[..30]);
        assert_eq!(run.r.flows(), 0);
        assert_eq!(run.r.stats().bytes_dropped, 30);
        run.syn(100);
        run.data(101, &m[..30]);
        run.seg(0, 40000, 131, TcpFlags { rst: true, ..Default::default() }, b"");
        assert_eq!((run.r.flows(), run.r.held_bytes()), (0, 0));
        assert_eq!(run.r.stats().bytes_dropped, 60);
    }

    #[test]
    fn a_flood_of_flows_stays_within_the_bounds_and_is_counted() {
        let limits =
            TcpLimits { max_flows: 100, max_flow_bytes: 4096, max_total_bytes: 64 << 10, ..Default::default() };
        let mut run = Run::new(limits);
        let head = invite("m", 100);
        for port in 0..5_000u16 {
            // Each flow: the first 200 bytes of a message that never completes.
            run.seg(i64::from(port), port, 1, TcpFlags::default(), &head[..200]);
            assert!(run.r.flows() <= 100 && run.r.held_bytes() <= 64 << 10);
        }
        let s = run.r.stats();
        assert_eq!(s.flows, 5_000);
        assert_eq!(s.evicted, 4_900);
        assert_eq!(s.bytes_dropped, 4_900 * 200);
        assert_eq!(run.r.held_bytes(), 100 * 200);
        // Idle flows are forgotten by capture time.
        run.r.expire(10_000_000_000, |_| {});
        assert_eq!((run.r.flows(), run.r.held_bytes(), run.r.stats().expired), (0, 0, 100));
        assert!(run.got.is_empty());
    }

    #[test]
    fn the_total_bound_evicts_the_least_recently_active_flows() {
        let limits = TcpLimits { max_flow_bytes: 4096, max_total_bytes: 10_000, ..Default::default() };
        let mut run = Run::new(limits);
        let head = &invite("n", 10)[..150];
        for port in 1..=100u16 {
            run.seg(0, port, 1, TcpFlags::default(), head);
            assert!(run.r.held_bytes() <= 10_000);
        }
        assert_eq!(run.r.flows(), 10_000 / 150);
        assert_eq!(run.r.stats().evicted, 100 - 10_000 / 150);
    }

    #[test]
    fn a_never_ending_message_is_dropped_within_the_per_flow_bound() {
        let limits = TcpLimits { max_flow_bytes: 4096, ..Default::default() };
        let mut run = Run::new(limits);
        run.syn(0);
        let mut seq = 1u32;
        let start = b"INVITE sip:x@y SIP/2.0\r\n";
        run.data(seq, start);
        seq += start.len() as u32;
        let line = b"X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for _ in 0..1_000 {
            run.data(seq, line);
            seq += line.len() as u32;
            assert!(run.r.held_bytes() <= 4096 + line.len());
        }
        // A whole message after it is still found.
        run.data(seq, &ok("o"));
        assert_eq!(run.got, vec![ok("o")]);
        let s = run.r.stats();
        assert_eq!(s.oversized, 1);
        assert_eq!(s.bytes_dropped, (start.len() + 1_000 * line.len()) as u64);
        // A Content-Length past the bound, and one that is not a number.
        let big = b"SIP/2.0 200 OK\r\nContent-Length: 999999\r\n\r\n";
        let bad = b"SIP/2.0 200 OK\r\nContent-Length: many\r\n\r\n";
        seq += ok("o").len() as u32;
        run.data(seq, &[big.as_slice(), bad, &ok("p")].concat());
        assert_eq!(run.got.last(), Some(&ok("p")));
        assert_eq!(run.r.stats().oversized, 3);
    }

    #[test]
    fn one_byte_segments_frame_in_linear_time() {
        let mut run = Run::new(TcpLimits::default());
        run.syn(0);
        let m = invite("q", 100_000);
        for (i, b) in m.iter().enumerate() {
            run.data(1 + i as u32, std::slice::from_ref(b));
        }
        assert_eq!(run.got, vec![m]);
    }

    #[test]
    fn start_lines() {
        assert!(is_start_line(b"INVITE sip:a@b SIP/2.0\r"));
        assert!(is_start_line(b"SIP/2.0 180 Ringing"));
        assert!(is_start_line(b"SIP/2.0 200"));
        assert!(!is_start_line(b"SIP/2.0 2000 OK"));
        assert!(!is_start_line(b"v=0"));
        assert!(!is_start_line(b"GET / HTTP/1.1"));
        assert!(!is_start_line(b"invite sip:a@b SIP/2.0"));
    }
}
