//! The SIP messages of open and recently finished calls, in memory bounded whatever the
//! traffic: many calls, huge messages, calls that never end.
//!
//! Bounds, all counted when they bite ([`LadderStats`]):
//! * per message: its text is cut at [`LadderLimits::message_bytes`] (marked `truncated`);
//! * per call: at most [`LadderLimits::messages_per_call`] messages; past it the first half is
//!   kept (the call's setup) and the oldest of the rest are dropped, so the ladder shows how
//!   the call began and how it is going now, with the gap between them counted;
//! * finished calls: the most recent [`LadderLimits::calls`] are kept, older ones forgotten in
//!   the order they finished (turnover, not a loss);
//! * in total: texts plus a fixed cost per message and per call stay under
//!   [`LadderLimits::total_bytes`]; past it whole calls are dropped, the oldest finished first,
//!   then the oldest open ones.
//!
//! A call enters the store with the first message the dialog tracker counts as a call (its
//! INVITE); later messages with its Call-ID (also after it ended: the ACK of a failure,
//! retransmissions) are added while it is kept. A store for one call ([`LadderStore::one_call`])
//! takes every message with that Call-ID, tracked or not (an OPTIONS or REGISTER exchange too).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use serde::Serialize;

use crate::decode::{Datagram, Transport};

/// Bytes counted for each message besides its text (its fields and their allocations).
const MESSAGE_OVERHEAD: usize = 160;
/// Bytes counted for each call besides its Call-ID and its messages (map and index entries).
const CALL_OVERHEAD: usize = 256;
/// Longest first line kept, bytes (a Request-URI can be long; the text keeps the rest).
const FIRST_LINE_BYTES: usize = 512;
/// How many earlier messages of a call a message is compared with to see whether it is a
/// retransmission (retransmissions follow their original closely; the bound keeps the work
/// per message constant).
const RETRANSMISSION_WINDOW: usize = 64;

/// The store's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderLimits {
    /// Finished calls kept (the most recent); 0 turns the store off (no call kept, open or
    /// finished).
    pub calls: usize,
    /// Bytes of text kept per message; the rest is cut and the message marked `truncated`.
    pub message_bytes: usize,
    /// Messages kept per call (at least 2): the first half, then the most recent.
    pub messages_per_call: usize,
    /// Bytes kept in all: message texts plus a fixed cost per message and per call.
    pub total_bytes: usize,
}

impl LadderLimits {
    /// Bytes of text kept per message by a running probe: 4 KiB (an INVITE with SDP fits).
    pub const MESSAGE_BYTES: usize = 4096;
    /// Messages kept per call by a running probe.
    pub const MESSAGES_PER_CALL: usize = 200;

    /// A running probe's limits: `calls` finished calls, `total_bytes` in all, 4 KiB per
    /// message, 200 messages per call.
    pub fn recent(calls: usize, total_bytes: usize) -> Self {
        LadderLimits {
            calls,
            message_bytes: Self::MESSAGE_BYTES,
            messages_per_call: Self::MESSAGES_PER_CALL,
            total_bytes,
        }
    }
}

/// One SIP message of a call, as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LadderMessage {
    /// Capture time, µs since the Unix epoch.
    pub ts_us: i64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// The request line (method, Request-URI) or status line (code, reason), cut at 512 bytes.
    pub first_line: String,
    /// The message (head and body), cut at the store's `message_bytes`; bytes that are not
    /// UTF-8 are replaced with U+FFFD.
    pub text: String,
    /// True when `text` was cut.
    pub truncated: bool,
    /// True when the same bytes went from the same sender to the same receiver shortly before
    /// (a retransmission).
    pub retransmission: bool,
    /// Hash of the whole message, to recognise retransmissions.
    #[serde(skip)]
    digest: u64,
}

impl LadderMessage {
    /// A message from its bytes as captured; `max_text` bounds the text kept.
    pub fn new(
        ts_us: i64,
        src: SocketAddr,
        dst: SocketAddr,
        transport: Transport,
        raw: &[u8],
        max_text: usize,
    ) -> Self {
        let start = raw.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(raw.len());
        let raw = &raw[start..];
        let line_end = memchr_line_end(raw);
        let first_line = cut(&String::from_utf8_lossy(&raw[..line_end.min(FIRST_LINE_BYTES * 4)]), FIRST_LINE_BYTES);
        let text = String::from_utf8_lossy(&raw[..raw.len().min(max_text)]);
        let text = cut(&text, max_text);
        let mut h = std::hash::DefaultHasher::new();
        raw.hash(&mut h);
        LadderMessage {
            ts_us,
            src,
            dst,
            transport: match transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            },
            first_line,
            truncated: raw.len() > max_text,
            text,
            retransmission: false,
            digest: h.finish(),
        }
    }

    /// The method of a request (from the request line).
    pub fn method(&self) -> Option<&str> {
        if self.first_line.starts_with("SIP/") {
            return None;
        }
        self.first_line.split_whitespace().next()
    }

    /// The status code of a response (from the status line).
    pub fn status(&self) -> Option<u16> {
        self.first_line.strip_prefix("SIP/")?.split_whitespace().nth(1)?.parse().ok()
    }

    /// Bytes this message counts for.
    fn cost(&self) -> usize {
        MESSAGE_OVERHEAD + self.text.len() + self.first_line.len()
    }
}

/// Where the first line ends (or the whole message, for one without a line end).
fn memchr_line_end(raw: &[u8]) -> usize {
    raw.iter().position(|b| matches!(b, b'\r' | b'\n')).unwrap_or(raw.len())
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One call's messages, copied out of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallMessages {
    /// Call-ID.
    pub call_id: String,
    /// True while the call has not ended.
    pub open: bool,
    /// The messages kept, in time order (those of the same time in the order they came).
    pub messages: Vec<LadderMessage>,
    /// Messages dropped to keep the call under its cap.
    pub dropped: u64,
    /// Where they were: between `messages[dropped_at - 1]` and `messages[dropped_at]`.
    pub dropped_at: usize,
}

/// What the store holds and what it had to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LadderStats {
    /// Calls held now (open and finished).
    pub calls: u64,
    /// Bytes held now, as counted against the total.
    pub bytes: u64,
    /// Whole calls dropped to stay under the total.
    pub calls_dropped: u64,
    /// Messages dropped: of calls past their per-call cap, and of the calls dropped whole.
    pub messages_dropped: u64,
    /// Messages whose text was cut.
    pub messages_truncated: u64,
}

struct Entry {
    messages: VecDeque<LadderMessage>,
    dropped: u64,
    bytes: usize,
    open: bool,
    /// Key in `open_order` or `finished_order`.
    seq: u64,
}

/// Recent calls' messages.
pub struct LadderStore {
    limits: LadderLimits,
    /// The one Call-ID kept (`--call`), else every tracked call.
    only: Option<String>,
    calls: HashMap<Box<str>, Entry>,
    /// Open calls, oldest first.
    open_order: BTreeMap<u64, Box<str>>,
    /// Finished calls, in the order they finished.
    finished_order: BTreeMap<u64, Box<str>>,
    next_seq: u64,
    bytes: usize,
    stats: LadderStats,
}

impl std::fmt::Debug for LadderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LadderStore").field("limits", &self.limits).field("stats", &self.stats()).finish()
    }
}

impl LadderStore {
    /// A store of the messages of open calls and the most recent finished ones.
    pub fn new(limits: LadderLimits) -> Self {
        let limits = LadderLimits { messages_per_call: limits.messages_per_call.max(2), ..limits };
        LadderStore {
            limits,
            only: None,
            calls: HashMap::new(),
            open_order: BTreeMap::new(),
            finished_order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            stats: LadderStats::default(),
        }
    }

    /// A store of every message with this Call-ID (a call read from a file): whole messages
    /// up to 64 KiB (the largest datagram), up to 100,000 messages, 1 GiB in all.
    pub fn one_call(call_id: &str) -> Self {
        let mut store = LadderStore::new(LadderLimits {
            calls: 1,
            message_bytes: 64 << 10,
            messages_per_call: 100_000,
            total_bytes: 1 << 30,
        });
        store.only = Some(call_id.to_string());
        store
    }

    /// The limits in force.
    pub fn limits(&self) -> LadderLimits {
        self.limits
    }

    /// Adds the message `raw` (one SIP message, as captured in `d`) of call `call_id`.
    /// `tracked`: the dialog tracker has this call open, so a call not yet held starts here.
    pub fn record(&mut self, call_id: &str, tracked: bool, d: &Datagram<'_>, raw: &[u8]) {
        match &self.only {
            Some(only) if only != call_id => return,
            Some(_) => {}
            None if self.limits.calls == 0 => return,
            None if !tracked && !self.calls.contains_key(call_id) => return,
            None => {}
        }
        let mut msg = LadderMessage::new(d.ts_us, d.src, d.dst, d.transport, raw, self.limits.message_bytes);
        if msg.truncated {
            self.stats.messages_truncated += 1;
        }
        if !self.calls.contains_key(call_id) {
            let seq = self.seq();
            self.open_order.insert(seq, call_id.into());
            self.calls.insert(
                call_id.into(),
                Entry { messages: VecDeque::new(), dropped: 0, bytes: CALL_OVERHEAD + call_id.len(), open: true, seq },
            );
            self.bytes += CALL_OVERHEAD + call_id.len();
        }
        let Some(entry) = self.calls.get_mut(call_id) else { return };
        msg.retransmission = entry
            .messages
            .iter()
            .rev()
            .take(RETRANSMISSION_WINDOW)
            .any(|m| m.digest == msg.digest && m.src == msg.src && m.dst == msg.dst);
        let cost = msg.cost();
        // In time order: copies that arrive late (HEP from several senders, each stamping
        // with its own clock) go where their time puts them, after those of the same time.
        let at = entry.messages.iter().rposition(|m| m.ts_us <= msg.ts_us).map_or(0, |i| i + 1);
        entry.messages.insert(at, msg);
        entry.bytes += cost;
        self.bytes += cost;
        if entry.messages.len() > self.limits.messages_per_call
            && let Some(gone) = entry.messages.remove(self.limits.messages_per_call / 2)
        {
            entry.bytes -= gone.cost();
            self.bytes -= gone.cost();
            entry.dropped += 1;
            self.stats.messages_dropped += 1;
        }
        while self.bytes > self.limits.total_bytes && self.drop_oldest() {}
    }

    /// The call ended: it now counts among the finished calls (the oldest of which are
    /// forgotten past the limit).
    pub fn finish(&mut self, call_id: &str) {
        let seq = self.seq();
        if let Some(entry) = self.calls.get_mut(call_id)
            && entry.open
        {
            entry.open = false;
            if let Some(id) = self.open_order.remove(&entry.seq) {
                entry.seq = seq;
                self.finished_order.insert(seq, id);
            }
        }
        if self.only.is_none() {
            while self.finished_order.len() > self.limits.calls {
                let Some((_, id)) = self.finished_order.pop_first() else { break };
                self.forget(&id);
            }
        }
    }

    /// The messages of call `call_id`, if it is held.
    pub fn call(&self, call_id: &str) -> Option<CallMessages> {
        let entry = self.calls.get(call_id)?;
        Some(CallMessages {
            call_id: call_id.to_string(),
            open: entry.open,
            messages: entry.messages.iter().cloned().collect(),
            dropped: entry.dropped,
            dropped_at: if entry.dropped > 0 { self.limits.messages_per_call / 2 } else { 0 },
        })
    }

    /// Counters, and what is held now.
    pub fn stats(&self) -> LadderStats {
        LadderStats { calls: self.calls.len() as u64, bytes: self.bytes as u64, ..self.stats }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Removes a call; returns how many messages it held.
    fn forget(&mut self, call_id: &str) -> usize {
        let Some(entry) = self.calls.remove(call_id) else { return 0 };
        self.bytes -= entry.bytes;
        entry.messages.len()
    }

    /// Drops the oldest finished call, else the oldest open one, to make room (counted).
    fn drop_oldest(&mut self) -> bool {
        let Some((_, id)) = self.finished_order.pop_first().or_else(|| self.open_order.pop_first()) else {
            return false;
        };
        let messages = self.forget(&id);
        self.stats.calls_dropped += 1;
        self.stats.messages_dropped += messages as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(ms: i64, src: &str, dst: &str) -> Datagram<'static> {
        Datagram {
            ts_us: ms * 1000,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            transport: Transport::Udp,
            payload: b"",
        }
    }

    const A: &str = "10.0.0.1:5060";
    const B: &str = "10.0.0.2:5060";

    fn invite(call: &str, cseq: u32) -> String {
        format!("INVITE sip:bob@b SIP/2.0\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\nContent-Length: 0\r\n\r\n")
    }

    fn limits(calls: usize, total: usize) -> LadderLimits {
        LadderLimits { calls, message_bytes: 64, messages_per_call: 6, total_bytes: total }
    }

    #[test]
    fn keeps_a_tracked_call_and_its_messages_after_it_ended() {
        let mut s = LadderStore::new(limits(10, 1 << 20));
        s.record("x", false, &datagram(0, A, B), invite("x", 1).as_bytes());
        assert!(s.call("x").is_none(), "an untracked Call-ID (OPTIONS, REGISTER) starts nothing");
        s.record("c1", true, &datagram(0, A, B), invite("c1", 1).as_bytes());
        s.record("c1", true, &datagram(1, B, A), b"SIP/2.0 486 Busy Here\r\nCall-ID: c1\r\n\r\n");
        s.finish("c1");
        s.record("c1", false, &datagram(2, A, B), b"ACK sip:bob@b SIP/2.0\r\nCall-ID: c1\r\n\r\n");
        let c = s.call("c1").unwrap();
        assert!(!c.open);
        let lines: Vec<&str> = c.messages.iter().map(|m| m.first_line.as_str()).collect();
        assert_eq!(lines, ["INVITE sip:bob@b SIP/2.0", "SIP/2.0 486 Busy Here", "ACK sip:bob@b SIP/2.0"]);
        assert_eq!((c.messages[1].src.to_string(), c.messages[1].ts_us), (B.to_string(), 1000));
        assert_eq!(c.messages[0].transport, "udp");
    }

    #[test]
    fn messages_are_kept_in_time_order_whatever_order_they_come_in() {
        let mut s = LadderStore::new(limits(10, 1 << 20));
        for (ms, cseq) in [(10, 1), (30, 3), (20, 2), (30, 4), (5, 0)] {
            s.record("c1", true, &datagram(ms, A, B), invite("c1", cseq).as_bytes());
        }
        let order: Vec<String> = s.call("c1").unwrap().messages.iter().map(|m| m.text[39..46].to_string()).collect();
        assert_eq!(order, ["CSeq: 0", "CSeq: 1", "CSeq: 2", "CSeq: 3", "CSeq: 4"]);
    }

    #[test]
    fn a_retransmission_is_marked() {
        let mut s = LadderStore::new(limits(10, 1 << 20));
        s.record("c1", true, &datagram(0, A, B), invite("c1", 1).as_bytes());
        s.record("c1", true, &datagram(500, A, B), invite("c1", 1).as_bytes());
        s.record("c1", true, &datagram(600, B, A), invite("c1", 1).as_bytes());
        s.record("c1", true, &datagram(700, A, B), invite("c1", 2).as_bytes());
        let flags: Vec<bool> = s.call("c1").unwrap().messages.iter().map(|m| m.retransmission).collect();
        assert_eq!(flags, [false, true, false, false], "same bytes, same direction only");
    }

    #[test]
    fn a_huge_message_is_cut_and_counted() {
        let mut s = LadderStore::new(limits(10, 1 << 20));
        let big = format!("{}{}", invite("c1", 1), "é".repeat(1000));
        s.record("c1", true, &datagram(0, A, B), big.as_bytes());
        let m = &s.call("c1").unwrap().messages[0];
        assert!(m.truncated && m.text.len() <= 64 && big.starts_with(&m.text), "{m:?}");
        assert_eq!(s.stats().messages_truncated, 1);
    }

    #[test]
    fn an_endless_call_keeps_its_start_and_its_latest_messages() {
        let mut s = LadderStore::new(limits(10, 1 << 20));
        for i in 0..20 {
            s.record("c1", true, &datagram(i, A, B), invite("c1", i as u32).as_bytes());
        }
        let c = s.call("c1").unwrap();
        let cseqs: Vec<i64> = c.messages.iter().map(|m| m.ts_us / 1000).collect();
        assert_eq!(cseqs, [0, 1, 2, 17, 18, 19]);
        assert_eq!((c.dropped, c.dropped_at), (14, 3));
        assert_eq!(s.stats().messages_dropped, 14);
    }

    #[test]
    fn only_the_most_recent_finished_calls_are_kept() {
        let mut s = LadderStore::new(limits(2, 1 << 20));
        for c in ["c1", "c2", "c3"] {
            s.record(c, true, &datagram(0, A, B), invite(c, 1).as_bytes());
        }
        s.finish("c2");
        s.finish("c1");
        s.finish("c3");
        assert!(s.call("c2").is_none(), "the first to finish goes first");
        assert!(s.call("c1").is_some() && s.call("c3").is_some());
        assert_eq!(s.stats().calls_dropped, 0, "turnover is not a loss");
        assert_eq!(s.stats().calls, 2);
    }

    #[test]
    fn the_total_bound_holds_whatever_comes_and_drops_the_oldest_first() {
        let total = 20_000;
        let mut s = LadderStore::new(LadderLimits {
            calls: 1000,
            message_bytes: 4096,
            messages_per_call: 200,
            total_bytes: total,
        });
        let body = "x".repeat(10_000);
        for i in 0..500 {
            let id = format!("call-{i}");
            let text = format!("{}{body}", invite(&id, 1));
            s.record(&id, true, &datagram(i, A, B), text.as_bytes());
            if i % 2 == 0 {
                s.finish(&id);
            }
            assert!(s.stats().bytes as usize <= total, "{:?}", s.stats());
        }
        let st = s.stats();
        assert!(st.calls >= 2 && st.calls_dropped == 500 - st.calls, "{st:?}");
        assert!(s.call("call-499").is_some(), "the newest call is kept");
        // Finished calls go before open ones: the open call-497 outlives the finished call-498.
        assert!(s.call("call-497").is_some() && s.call("call-498").is_none(), "{st:?}");
        let mut s2 = LadderStore::new(limits(0, 1 << 20));
        s2.record("c1", true, &datagram(0, A, B), invite("c1", 1).as_bytes());
        assert_eq!(s2.stats(), LadderStats::default(), "0 calls: off");
    }

    #[test]
    fn forgetting_gives_back_every_byte() {
        let mut s = LadderStore::new(limits(1, 1 << 20));
        for c in ["c1", "c2"] {
            s.record(c, true, &datagram(0, A, B), invite(c, 1).as_bytes());
            s.finish(c);
        }
        let one = s.stats().bytes;
        s.record("c3", true, &datagram(0, A, B), invite("c3", 1).as_bytes());
        s.finish("c3");
        assert_eq!(s.stats().bytes, one);
        assert_eq!(s.stats().calls, 1);
    }

    #[test]
    fn one_call_keeps_every_message_of_its_call_only() {
        let mut s = LadderStore::one_call("c2");
        s.record("c1", true, &datagram(0, A, B), invite("c1", 1).as_bytes());
        s.record("c2", false, &datagram(0, A, B), b"OPTIONS sip:b SIP/2.0\r\nCall-ID: c2\r\n\r\n");
        s.finish("c2");
        s.record("c2", false, &datagram(1, B, A), b"SIP/2.0 200 OK\r\nCall-ID: c2\r\n\r\n");
        assert!(s.call("c1").is_none());
        assert_eq!(s.call("c2").unwrap().messages.len(), 2);
    }

    #[test]
    fn leading_line_ends_and_binary_bytes_are_harmless() {
        let m = LadderMessage::new(
            0,
            A.parse().unwrap(),
            B.parse().unwrap(),
            Transport::Tcp,
            b"\r\n\r\nBYE x SIP/2.0\r\n\r\n\xff\x00",
            4096,
        );
        assert_eq!(m.first_line, "BYE x SIP/2.0");
        assert_eq!((m.method(), m.status()), (Some("BYE"), None));
        let r = LadderMessage::new(
            0,
            A.parse().unwrap(),
            B.parse().unwrap(),
            Transport::Udp,
            b"SIP/2.0 180 Ringing\r\n\r\n",
            9,
        );
        assert_eq!((r.method(), r.status(), r.text.as_str(), r.truncated), (None, Some(180), "SIP/2.0 1", true));
        assert!(m.text.starts_with("BYE") && m.text.ends_with("\u{fffd}\0"));
        assert_eq!(m.transport, "tcp");
        let m = LadderMessage::new(0, A.parse().unwrap(), B.parse().unwrap(), Transport::Udp, b"", 4096);
        assert_eq!((m.first_line.as_str(), m.text.as_str()), ("", ""));
    }
}
