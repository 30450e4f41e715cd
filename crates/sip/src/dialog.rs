//! The call tracker: SIP messages in, finished calls out.
//!
//! A call starts with an INVITE without a To-tag and is keyed by its Call-ID. Provisional
//! responses mark ringing (the first 18x), a 2xx answers it, a BYE ends an answered call, and a
//! 3xx-6xx final response ends an unanswered one (401/407 wait for the re-sent INVITE). Calls
//! that never end are closed by timeouts; when more calls are open than the cap allows, the
//! least recently active one is closed and counted as evicted. Media endpoints from SDP
//! offers and answers tie RTP packets to their call by (address, port, SSRC, time): see
//! [`crate::media`].
//!
//! The tracker is a pure state machine: time comes from the packets, so a capture file replays
//! the same way every time.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::media::MediaMap;
use crate::message::{HeaderName, Method, SipMessage, StartLine};
use crate::rtp::{RtpHeader, StreamStats};
use crate::sdp::media_endpoints;
use crate::uri::{name_addr, user_part};

mod checkpoint;

pub use checkpoint::{CheckpointChanges, OpenCallCheckpoint};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx.
    Answered,
    /// 486 Busy Here or 600 Busy Everywhere.
    Busy,
    /// 408, 480, or no final response before the setup timeout.
    NoAnswer,
    /// CANCEL / 487.
    Cancelled,
    /// 3xx.
    Redirected,
    /// Any other final response.
    Failed,
}

impl Outcome {
    /// From a final response code (and whether the caller had sent CANCEL).
    pub fn from_code(code: u16, cancelled: bool) -> Outcome {
        match code {
            200..=299 => Outcome::Answered,
            300..=399 => Outcome::Redirected,
            486 | 600 => Outcome::Busy,
            487 => Outcome::Cancelled,
            // A proxy's no-answer timer answers 408 upstream and cancels downstream: seen from
            // both legs (HEP from the proxy) that is still no answer.
            408 | 480 => Outcome::NoAnswer,
            _ if cancelled => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }
}

/// Why a call record was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// By its signalling (final response, BYE).
    Signalled,
    /// By a timeout.
    Timeout,
    /// To make room (the open-call cap).
    Evicted,
    /// At the end of the input.
    EndOfInput,
}

/// RTP seen for a call.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RtpSummary {
    /// Streams (SSRCs).
    pub streams: u32,
    /// Packets received.
    pub packets: u64,
    /// Packets lost (from sequence numbers).
    pub lost: u64,
    /// Highest interarrival jitter of the streams, ms.
    pub max_jitter_ms: f64,
    /// The lowest estimated MOS of the streams ([`crate::mos`]), 1 to 4.5.
    pub min_mos: f64,
}

/// A finished call (or, in an [`OpenCallCheckpoint`], one so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Call-ID.
    pub call_id: String,
    /// Who sent the first INVITE, and to whom.
    pub from_addr: SocketAddr,
    /// Destination of the first INVITE.
    pub to_addr: SocketAddr,
    /// User part of the From URI.
    pub from_user: Option<String>,
    /// User part of the P-Asserted-Identity URI.
    pub pai_user: Option<String>,
    /// User part of the Request-URI of the first INVITE.
    pub ruri_user: Option<String>,
    /// User part of the To URI.
    pub to_user: Option<String>,
    /// First INVITE, microseconds since the epoch.
    pub invite_us: i64,
    /// First 18x.
    pub ringing_us: Option<i64>,
    /// First 2xx.
    pub answered_us: Option<i64>,
    /// BYE, or the failure response.
    pub ended_us: Option<i64>,
    /// Final response code to the INVITE.
    pub final_code: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why the record was closed.
    pub closed: Closed,
    /// RTP, if any was seen for its media endpoints.
    pub rtp: Option<RtpSummary>,
}

/// Tracker limits.
#[derive(Debug, Clone, Copy)]
pub struct TrackerConfig {
    /// Most calls open at once; beyond it the least recently active is closed.
    pub max_open: usize,
    /// A call without a final response is closed as no answer after this long (µs).
    pub setup_timeout_us: i64,
    /// An answered call without BYE is closed after this long without any message (µs).
    pub idle_timeout_us: i64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { max_open: 200_000, setup_timeout_us: 180_000_000, idle_timeout_us: 4 * 3600 * 1_000_000 }
    }
}

/// Where a packet came from and went, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Capture time, µs since the epoch.
    pub ts_us: i64,
    /// Source.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
}

/// Counters of what the tracker saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Messages without Call-ID or CSeq.
    pub unusable: u64,
    /// Messages of calls that began before the capture (no INVITE seen).
    pub unknown_call: u64,
    /// Messages of calls that had already ended: retransmissions, the ACK of a final
    /// response, a proxy's second-leg copies arriving late.
    pub after_end: u64,
    /// Calls closed to make room.
    pub evicted: u64,
    /// Calls closed by a timeout.
    pub timed_out: u64,
    /// RTP packets tied to a call.
    pub rtp_packets: u64,
    /// RTP packets to the media endpoints of a call that had already ended (in flight when
    /// the BYE passed): not in any call's record, counted here so that every packet is
    /// accounted for.
    pub rtp_after_end: u64,
    /// RTP packets to or from a known media endpoint that no call's claim on it covered
    /// (sent before any SDP announced it).
    pub rtp_unattributed: u64,
    /// Media endpoints not tracked because the endpoint bound was reached.
    pub media_refused: u64,
    /// Calls taken over from a probe pair's mate ([`Tracker::restore_open`]) that timed out
    /// before any message of theirs arrived here: forgotten without a record, as the mate may
    /// have recorded their end just before it failed.
    pub recovered_unconfirmed: u64,
}

#[derive(Debug)]
struct Open {
    key: u64,
    call: Call,
    invite_cseq: u32,
    cancelled: bool,
    challenged: bool,
    last_us: i64,
    media: SmallVec<[SocketAddr; 4]>,
    streams: SmallVec<[StreamStats; 2]>,
    /// Taken over from a mate, and no message of it seen here since.
    recovered: bool,
}

/// What is remembered of an ended call.
#[derive(Debug)]
struct Ended {
    /// Its INVITE's CSeq.
    invite_cseq: u32,
    /// Its media endpoints, whose claims stay in `media` while the Call-ID is remembered, so
    /// that RTP in flight at the BYE is recognised as late, not as unknown traffic.
    media: SmallVec<[SocketAddr; 4]>,
}

/// The tracker.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    open: FxHashMap<Box<str>, Open>,
    /// (last activity, key) -> Call-ID: the least recently active call first.
    by_activity: BTreeMap<(i64, u64), Box<str>>,
    media: MediaMap,
    /// Calls ended in the last [`LINGER_US`], by Call-ID, with the order they ended in. A copy
    /// of their INVITE (a retransmission, or the other leg of a proxy seen late through HEP)
    /// must not start a new call.
    recent: FxHashMap<Box<str>, Ended>,
    recent_order: std::collections::VecDeque<(i64, Box<str>)>,
    next_key: u64,
    stats: TrackerStats,
    /// Calls opened since the last [`Tracker::drain_opened`].
    opened: Vec<OpenedCall>,
    /// Calls changed and closed since the last [`Tracker::drain_checkpoint`] (none: not noted).
    changes: Option<checkpoint::Changes>,
    /// Recovered calls forgotten unconfirmed since the last [`Tracker::drain_unconfirmed`].
    unconfirmed: Vec<String>,
    /// Calls were taken over from a mate at some time ([`Tracker::restore_open`]).
    took_over: bool,
}

/// A call that just started (its first INVITE), for counting calls in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedCall {
    /// Call-ID.
    pub call_id: String,
    /// User part of the From URI.
    pub from_user: Option<String>,
    /// User part of the P-Asserted-Identity URI.
    pub pai_user: Option<String>,
}

/// How long an ended call's Call-ID is remembered: 32 s, RFC 3261's Timer B / Timer H (64*T1),
/// past which no retransmission of its transaction can arrive.
pub const LINGER_US: i64 = 32_000_000;

/// Most media endpoints tracked per call (SDP `m=` lines beyond it are ignored).
pub const MAX_MEDIA_PER_CALL: usize = 8;

/// Most RTP streams (SSRCs) measured per call.
pub const MAX_STREAMS_PER_CALL: usize = 8;

fn user(value: Option<&str>) -> Option<String> {
    value.map(name_addr).and_then(|na| user_part(na.uri)).map(str::to_string)
}

impl Tracker {
    /// A tracker with these limits.
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            open: FxHashMap::default(),
            by_activity: BTreeMap::new(),
            // Each open or remembered call has at most MAX_MEDIA_PER_CALL endpoints, most of
            // them one or two.
            media: MediaMap::new(config.max_open.saturating_mul(4).max(1024)),
            recent: FxHashMap::default(),
            recent_order: std::collections::VecDeque::new(),
            next_key: 0,
            stats: TrackerStats::default(),
            opened: Vec::new(),
            changes: None,
            unconfirmed: Vec::new(),
            took_over: false,
        }
    }

    /// Counters.
    pub fn stats(&self) -> TrackerStats {
        let media = self.media.stats();
        TrackerStats { rtp_unattributed: media.unattributed, media_refused: media.refused, ..self.stats }
    }

    /// Calls opened since the last call (each exactly once; every one of them is later
    /// returned closed by `on_message`, `expire` or `finish`).
    pub fn drain_opened(&mut self) -> Vec<OpenedCall> {
        std::mem::take(&mut self.opened)
    }

    /// Calls open now.
    pub fn open_calls(&self) -> usize {
        self.open.len()
    }

    /// True if the call with this Call-ID is open.
    pub fn is_open(&self, call_id: &str) -> bool {
        self.open.contains_key(call_id)
    }

    fn touch(&mut self, call_id: &str, ts: i64) {
        if let Some(o) = self.open.get_mut(call_id)
            && ts > o.last_us
            && let Some(k) = self.by_activity.remove(&(o.last_us, o.key))
        {
            o.last_us = ts;
            self.by_activity.insert((ts, o.key), k);
        }
    }

    /// Forgets ended calls older than [`LINGER_US`] at `now_us`, and the oldest beyond the
    /// open-call cap (memory stays bounded).
    fn forget_ended(&mut self, now_us: i64) {
        while let Some((at, _)) = self.recent_order.front() {
            if now_us.saturating_sub(*at) < LINGER_US && self.recent_order.len() <= self.config.max_open {
                break;
            }
            if let Some((_, id)) = self.recent_order.pop_front()
                && let Some(ended) = self.recent.remove(&id)
                // A Call-ID open again (a new INVITE, or a call taken back from a mate) keeps
                // its claims: they are forgotten when it ends and lingers in turn.
                && !self.open.contains_key(&id)
            {
                self.media.forget(&id, &ended.media);
            }
        }
    }

    /// Closes the least recently active call to make room; one taken over from a mate and not
    /// confirmed since goes without a record (see [`Tracker::restore_open`]).
    fn evict_oldest(&mut self) -> Option<Call> {
        let oldest = self.by_activity.values().next()?.clone();
        if self.open.get(&oldest).is_some_and(|o| o.recovered) {
            self.forget_unconfirmed(&oldest);
            return None;
        }
        self.close(&oldest, Closed::Evicted)
    }

    /// Forgets, without a record, a call taken over from a mate that no message confirmed.
    fn forget_unconfirmed(&mut self, call_id: &str) {
        if self.remove_open(call_id).is_some() {
            self.stats.recovered_unconfirmed += 1;
            self.unconfirmed.push(call_id.into());
        }
    }

    /// Counts a message for a call that is not open: one that ended, or one never seen.
    fn not_open(&mut self, call_id: &str) {
        if self.recent.contains_key(call_id) {
            self.stats.after_end += 1;
        } else {
            self.stats.unknown_call += 1;
        }
    }

    /// Takes an open call out: its endpoints' claims end, its Call-ID is remembered as ended
    /// (with its media endpoints, which the returned call no longer holds).
    fn remove_open(&mut self, call_id: &str) -> Option<Open> {
        let mut o = self.open.remove(call_id)?;
        self.note_closed(call_id);
        self.by_activity.remove(&(o.last_us, o.key));
        let media = std::mem::take(&mut o.media);
        self.media.end(call_id, &media, o.call.ended_us.unwrap_or(o.last_us));
        // The endpoints stay mapped while the Call-ID is remembered.
        match self.recent.get_mut(call_id) {
            Some(ended) => {
                ended.invite_cseq = o.invite_cseq;
                for m in media {
                    if !ended.media.contains(&m) {
                        ended.media.push(m);
                    }
                }
            }
            None => {
                self.recent.insert(call_id.into(), Ended { invite_cseq: o.invite_cseq, media });
                self.recent_order.push_back((o.last_us, call_id.into()));
            }
        }
        Some(o)
    }

    fn close(&mut self, call_id: &str, closed: Closed) -> Option<Call> {
        let o = self.remove_open(call_id)?;
        let mut call = o.call;
        call.closed = closed;
        if call.final_code.is_none() && call.answered_us.is_none() {
            call.outcome = if o.cancelled { Outcome::Cancelled } else { Outcome::NoAnswer };
        }
        if !o.streams.is_empty() {
            call.rtp = Some(RtpSummary {
                streams: o.streams.len() as u32,
                packets: o.streams.iter().fold(0u64, |n, s| n.saturating_add(s.received)),
                lost: o.streams.iter().fold(0u64, |n, s| n.saturating_add(s.lost())),
                max_jitter_ms: o.streams.iter().map(|s| s.jitter_ms()).fold(0.0, f64::max),
                min_mos: o.streams.iter().map(|s| s.mos()).fold(4.5, f64::min),
            });
        }
        match closed {
            Closed::Timeout => self.stats.timed_out += 1,
            Closed::Evicted => self.stats.evicted += 1,
            _ => {}
        }
        Some(call)
    }

    fn add_media(&mut self, call_id: &str, body: &[u8], ts_us: i64) {
        let endpoints = media_endpoints(body);
        if endpoints.is_empty() {
            return;
        }
        let Some(o) = self.open.get_mut(call_id) else { return };
        for e in endpoints {
            if !o.media.contains(&e.addr) {
                if o.media.len() >= MAX_MEDIA_PER_CALL {
                    continue;
                }
                o.media.push(e.addr);
            }
            self.media.announce(e.addr, call_id, ts_us);
        }
    }

    /// Feeds one SIP message; returns the calls it finished (usually none, at most two: one
    /// evicted to make room and one ended).
    pub fn on_message(&mut self, msg: &SipMessage<'_>, pkt: &PacketInfo) -> SmallVec<[Call; 1]> {
        let mut done = SmallVec::new();
        let (Some(call_id), Some((cseq, cseq_method))) = (msg.call_id(), msg.cseq()) else {
            self.stats.unusable += 1;
            return done;
        };
        match msg.start {
            StartLine::Request { method: Method::Invite, uri } => {
                let to_tag = msg.header(HeaderName::To).map(name_addr).and_then(|na| na.tag);
                match self.open.get_mut(call_id) {
                    None if self.recent.get(call_id).is_some_and(|e| cseq <= e.invite_cseq) => {
                        self.stats.after_end += 1
                    }
                    None if to_tag.is_none() => {
                        self.forget_ended(pkt.ts_us);
                        if self.open.len() >= self.config.max_open
                            && let Some(c) = self.evict_oldest()
                        {
                            done.push(c);
                        }
                        let key = self.next_key;
                        self.next_key += 1;
                        let call = Call {
                            call_id: call_id.to_string(),
                            from_addr: pkt.src,
                            to_addr: pkt.dst,
                            from_user: user(msg.header(HeaderName::From)),
                            pai_user: user(msg.header(HeaderName::PAssertedIdentity)),
                            ruri_user: user_part(uri).map(str::to_string),
                            to_user: user(msg.header(HeaderName::To)),
                            invite_us: pkt.ts_us,
                            ringing_us: None,
                            answered_us: None,
                            ended_us: None,
                            final_code: None,
                            outcome: Outcome::NoAnswer,
                            closed: Closed::Signalled,
                            rtp: None,
                        };
                        self.open.insert(
                            call_id.into(),
                            Open {
                                key,
                                call,
                                invite_cseq: cseq,
                                cancelled: false,
                                challenged: false,
                                last_us: pkt.ts_us,
                                media: SmallVec::new(),
                                streams: SmallVec::new(),
                                recovered: false,
                            },
                        );
                        self.by_activity.insert((pkt.ts_us, key), call_id.into());
                        if let Some(o) = self.open.get(call_id) {
                            self.opened.push(OpenedCall {
                                call_id: call_id.to_string(),
                                from_user: o.call.from_user.clone(),
                                pai_user: o.call.pai_user.clone(),
                            });
                        }
                    }
                    None => self.stats.unknown_call += 1,
                    Some(o) => {
                        // A new INVITE after a challenge (401/407) continues the same call.
                        if to_tag.is_none() && cseq > o.invite_cseq {
                            o.invite_cseq = cseq;
                            o.challenged = false;
                            o.call.final_code = None;
                        }
                    }
                }
                self.add_media(call_id, msg.body, pkt.ts_us);
            }
            StartLine::Request { method: Method::Cancel, .. } => {
                if let Some(o) = self.open.get_mut(call_id) {
                    o.cancelled = true;
                } else {
                    self.not_open(call_id);
                }
            }
            StartLine::Request { method: Method::Bye, .. } => {
                if let Some(o) = self.open.get_mut(call_id) {
                    o.call.ended_us = Some(pkt.ts_us);
                    if let Some(c) = self.close(call_id, Closed::Signalled) {
                        done.push(c);
                    }
                    return done;
                }
                self.not_open(call_id);
            }
            StartLine::Request { .. } => {}
            StartLine::Response { code, .. } if cseq_method == Method::Invite => {
                let Some(o) = self.open.get_mut(call_id) else {
                    self.not_open(call_id);
                    return done;
                };
                if cseq != o.invite_cseq {
                    // A response to a re-INVITE (or a stale one): no change to the call.
                } else if (180..=199).contains(&code) {
                    o.call.ringing_us.get_or_insert(pkt.ts_us);
                } else if (200..=299).contains(&code) {
                    if o.call.answered_us.is_none() {
                        o.call.answered_us = Some(pkt.ts_us);
                        o.call.final_code = Some(code);
                        o.call.outcome = Outcome::Answered;
                    }
                } else if code >= 300 && o.call.answered_us.is_none() && o.call.final_code.is_none() {
                    o.call.final_code = Some(code);
                    if code == 401 || code == 407 {
                        o.challenged = true;
                    } else {
                        o.call.outcome = Outcome::from_code(code, o.cancelled);
                        o.call.ended_us = Some(pkt.ts_us);
                        if let Some(c) = self.close(call_id, Closed::Signalled) {
                            done.push(c);
                        }
                        return done;
                    }
                }
                if (180..=299).contains(&code) {
                    self.add_media(call_id, msg.body, pkt.ts_us);
                }
            }
            StartLine::Response { .. } => {}
        }
        self.touch(call_id, pkt.ts_us);
        // Only a probe pair's chassis notes changes, or has calls taken over from a mate.
        if (self.changes.is_some() || self.took_over)
            && let Some(o) = self.open.get_mut(call_id)
        {
            // What shows a call taken over went on past the mate's checkpoint: a request
            // other than ACK, or a response to its INVITE. An ACK or a response to a BYE may
            // be the tail of an end the mate saw.
            let confirms = match msg.start {
                StartLine::Request { method, .. } => method != Method::Ack,
                StartLine::Response { .. } => cseq_method == Method::Invite,
            };
            if confirms {
                o.recovered = false;
            }
            self.note_changed(call_id);
        }
        done
    }

    /// Feeds a UDP payload that was not SIP: if it is RTP to or from a known media endpoint,
    /// counts it for the call it belongs to by (address, port, SSRC, time). Returns true if it
    /// was counted for an open call.
    pub fn on_udp(&mut self, payload: &[u8], pkt: &PacketInfo) -> bool {
        if self.media.is_empty() {
            return false;
        }
        let Some(h) = crate::rtp::parse(payload) else { return false };
        let Some(call_id) = self.media.attribute(pkt.dst, pkt.src, h.ssrc, h.seq, pkt.ts_us) else {
            return false;
        };
        let Some(o) = self.open.get_mut(&call_id) else {
            if self.recent.contains_key(&call_id) {
                self.stats.rtp_after_end += 1;
            }
            return false;
        };
        update_streams(&mut o.streams, &h, pkt.ts_us);
        self.stats.rtp_packets += 1;
        // Not a change to checkpoint: a stream's counts travel with the call's next SIP
        // change (at most one checkpoint per message, not one per packet), and a mate that
        // takes the stream over counts what it did not see as unseen, not lost.
        true
    }

    /// Closes calls whose timeouts have passed at `now_us`.
    pub fn expire(&mut self, now_us: i64) -> Vec<Call> {
        self.forget_ended(now_us);
        let mut out = Vec::new();
        let oldest_allowed = now_us.saturating_sub(self.config.setup_timeout_us.min(self.config.idle_timeout_us));
        let stale: Vec<Box<str>> =
            self.by_activity.range(..(oldest_allowed, u64::MAX)).map(|(_, v)| v.clone()).collect();
        for call_id in stale {
            let Some(o) = self.open.get(&*call_id) else { continue };
            let idle = now_us.saturating_sub(o.last_us);
            let answered = o.call.answered_us.is_some();
            let limit = if answered { self.config.idle_timeout_us } else { self.config.setup_timeout_us };
            if idle >= limit && o.recovered {
                self.forget_unconfirmed(&call_id);
            } else if idle >= limit {
                let final_code = o.call.final_code;
                if let Some(mut c) = self.close(&call_id, Closed::Timeout) {
                    if !answered && final_code.is_some() {
                        // A challenged call whose INVITE never came back.
                        c.outcome = Outcome::Failed;
                    }
                    out.push(c);
                }
            }
        }
        out
    }

    /// Closes every open call (end of a capture file).
    pub fn finish(&mut self) -> Vec<Call> {
        let ids: Vec<Box<str>> = self.by_activity.values().cloned().collect();
        ids.iter().filter_map(|id| self.close(id, Closed::EndOfInput)).collect()
    }
}

fn update_streams(streams: &mut SmallVec<[StreamStats; 2]>, h: &RtpHeader, ts: i64) {
    if let Some(s) = streams.iter_mut().find(|s| s.ssrc == h.ssrc) {
        s.update(h, ts);
    } else if streams.len() < MAX_STREAMS_PER_CALL {
        streams.push(StreamStats::new(h, ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_one;

    fn pkt(ts_ms: i64) -> PacketInfo {
        PacketInfo { ts_us: ts_ms * 1000, src: "10.0.0.1:5060".parse().unwrap(), dst: "10.0.0.2:5060".parse().unwrap() }
    }

    fn invite(call: &str, cseq: u32, to_tag: Option<&str>) -> String {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\n";
        format!(
            "INVITE sip:+12125550100@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:+13125550666@10.0.0.1>;tag=a\r\nTo: <sip:+12125550100@10.0.0.2>{tag}\r\nP-Asserted-Identity: <sip:+13125550000@10.0.0.1>\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    fn response(call: &str, code: u16, method: &str, cseq: u32) -> String {
        format!(
            "SIP/2.0 {code} X\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\nTo: <sip:b@c>;tag=z\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn request(call: &str, method: &str, cseq: u32) -> String {
        format!(
            "{method} sip:x@y SIP/2.0\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\nTo: <sip:b@c>;tag=z\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn feed(t: &mut Tracker, text: &str, ms: i64) -> Vec<Call> {
        let (m, _) = parse_one(text.as_bytes()).unwrap();
        t.on_message(&m, &pkt(ms)).into_vec()
    }

    #[test]
    fn answered_call_with_times_and_numbers() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert!(feed(&mut t, &invite("c1", 1, None), 0).is_empty());
        feed(&mut t, &invite("c1", 1, None), 500); // retransmission
        feed(&mut t, &response("c1", 100, "INVITE", 1), 10);
        feed(&mut t, &response("c1", 180, "INVITE", 1), 800);
        feed(&mut t, &response("c1", 183, "INVITE", 1), 900);
        feed(&mut t, &response("c1", 200, "INVITE", 1), 3000);
        feed(&mut t, &request("c1", "ACK", 1), 3010);
        let done = feed(&mut t, &request("c1", "BYE", 2), 33_000);
        assert_eq!(done.len(), 1);
        let c = &done[0];
        assert_eq!((c.outcome, c.final_code, c.closed), (Outcome::Answered, Some(200), Closed::Signalled));
        assert_eq!(
            (c.invite_us, c.ringing_us, c.answered_us, c.ended_us),
            (0, Some(800_000), Some(3_000_000), Some(33_000_000))
        );
        assert_eq!(c.from_user.as_deref(), Some("+13125550666"));
        assert_eq!(c.pai_user.as_deref(), Some("+13125550000"));
        assert_eq!(c.ruri_user.as_deref(), Some("+12125550100"));
        assert_eq!(t.open_calls(), 0);
    }

    #[test]
    fn failures_busy_cancel_redirect_and_challenge() {
        let mut t = Tracker::new(TrackerConfig::default());
        for (id, code) in [("busy", 486), ("na", 480), ("redir", 302), ("fail", 503)] {
            feed(&mut t, &invite(id, 1, None), 0);
            let done = feed(&mut t, &response(id, code, "INVITE", 1), 100);
            assert_eq!(done.len(), 1, "{id}");
        }
        feed(&mut t, &invite("can", 1, None), 0);
        feed(&mut t, &request("can", "CANCEL", 1), 50);
        feed(&mut t, &response("can", 200, "CANCEL", 1), 51);
        let done = feed(&mut t, &response("can", 487, "INVITE", 1), 60);
        assert_eq!(done[0].outcome, Outcome::Cancelled);
        // 407 then a new INVITE with CSeq 2: still one call, answered.
        feed(&mut t, &invite("auth", 1, None), 0);
        assert!(feed(&mut t, &response("auth", 407, "INVITE", 1), 10).is_empty());
        feed(&mut t, &invite("auth", 2, None), 20);
        feed(&mut t, &response("auth", 200, "INVITE", 2), 30);
        let done = feed(&mut t, &request("auth", "BYE", 3), 40);
        assert_eq!(done[0].outcome, Outcome::Answered);
        assert_eq!(Outcome::from_code(486, false), Outcome::Busy);
        assert_eq!(Outcome::from_code(480, false), Outcome::NoAnswer);
        assert_eq!(Outcome::from_code(302, false), Outcome::Redirected);
        assert_eq!(Outcome::from_code(503, false), Outcome::Failed);
        assert_eq!(Outcome::from_code(500, true), Outcome::Cancelled);
        assert_eq!(Outcome::from_code(408, true), Outcome::NoAnswer);
    }

    #[test]
    fn timeouts_and_eviction_bound_memory() {
        let mut t =
            Tracker::new(TrackerConfig { max_open: 3, setup_timeout_us: 10_000_000, idle_timeout_us: 60_000_000 });
        feed(&mut t, &invite("a", 1, None), 0);
        feed(&mut t, &invite("b", 1, None), 1);
        feed(&mut t, &invite("c", 1, None), 2);
        let done = feed(&mut t, &invite("d", 1, None), 3);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].call_id.as_str(), done[0].closed), ("a", Closed::Evicted));
        assert_eq!(t.open_calls(), 3);
        feed(&mut t, &response("b", 200, "INVITE", 1), 5);
        let expired = t.expire(20_000_000);
        let ids: Vec<&str> = expired.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids, vec!["c", "d"], "unanswered calls time out; the answered one is idle-limited");
        assert!(expired.iter().all(|c| c.outcome == Outcome::NoAnswer && c.closed == Closed::Timeout));
        let rest = t.finish();
        assert_eq!((rest.len(), rest[0].outcome, rest[0].closed), (1, Outcome::Answered, Closed::EndOfInput));
        assert_eq!(t.stats().evicted, 1);
        assert_eq!(t.stats().timed_out, 2);
    }

    #[test]
    fn a_late_copy_of_an_ended_calls_invite_does_not_start_a_new_call() {
        // HEP from a proxy: the caller's INVITE, the callee's 486 and the 486 to the caller
        // arrive before the proxy's copy of the INVITE to the callee.
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("late", 1, None), 0);
        let done = feed(&mut t, &response("late", 486, "INVITE", 1), 5);
        assert_eq!(done.len(), 1);
        assert!(feed(&mut t, &response("late", 486, "INVITE", 1), 6).is_empty());
        assert!(feed(&mut t, &invite("late", 1, None), 7).is_empty());
        assert_eq!(t.open_calls(), 0);
        assert_eq!((t.stats().after_end, t.stats().unknown_call), (2, 0));
        // After Timer H the Call-ID is forgotten: memory stays bounded.
        t.expire(LINGER_US + 10_000);
        assert!(t.recent.is_empty());
        feed(&mut t, &request("late", "BYE", 2), LINGER_US / 1000 + 20);
        assert_eq!(t.stats().unknown_call, 1);
    }

    #[test]
    fn mid_dialog_messages_of_unknown_calls_are_counted() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &request("x", "BYE", 2), 0);
        feed(&mut t, &invite("y", 2, Some("remote")), 0);
        assert_eq!(t.stats().unknown_call, 2);
        let (m, _) = parse_one(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n").unwrap();
        t.on_message(&m, &pkt(0));
        assert_eq!(t.stats().unusable, 1);
    }

    #[test]
    fn rtp_to_negotiated_endpoints_is_counted() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("m", 1, None), 0);
        feed(&mut t, &response("m", 200, "INVITE", 1), 100);
        let to_caller =
            PacketInfo { ts_us: 200_000, src: "10.0.0.2:7000".parse().unwrap(), dst: "10.0.0.1:6000".parse().unwrap() };
        let mut rtp = vec![0x80u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        rtp.extend_from_slice(&[0; 160]);
        assert!(t.on_udp(&rtp, &to_caller));
        let elsewhere = PacketInfo { dst: "10.0.0.9:6000".parse().unwrap(), ..to_caller };
        assert!(!t.on_udp(&rtp, &elsewhere));
        let done = feed(&mut t, &request("m", "BYE", 2), 1000);
        let rtp = done[0].rtp.unwrap();
        assert_eq!((rtp.streams, rtp.packets, rtp.lost), (1, 1, 0));
        // A packet in flight when the BYE passed: not in the record, counted as late.
        let late = PacketInfo { ts_us: 1_001_000, ..to_caller };
        assert!(!t.on_udp(&rtp_packet(2), &late));
        assert_eq!((t.stats().rtp_packets, t.stats().rtp_after_end), (1, 1));
        // Once the Call-ID is forgotten, its endpoints are too (memory stays bounded).
        t.expire(1_001_000 + LINGER_US + 1);
        assert!(t.media.is_empty() && t.recent.is_empty());
        assert!(!t.on_udp(&rtp_packet(3), &late));
        assert_eq!(t.stats().rtp_after_end, 1);
    }

    fn rtp_packet(seq: u8) -> Vec<u8> {
        let mut rtp = vec![0x80u8, 0, 0, seq, 0, 0, 0, 0, 0, 0, 0, 9];
        rtp.extend_from_slice(&[0; 160]);
        rtp
    }

    fn rtp_of(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut rtp = vec![0x80u8, 0];
        rtp.extend_from_slice(&seq.to_be_bytes());
        rtp.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend_from_slice(&[0; 160]);
        rtp
    }

    /// RTP from the callee's endpoint to the caller's one (10.0.0.1:6000 in every INVITE
    /// here: all these calls reuse one media endpoint) at `ms`.
    fn to_caller(ms: i64) -> PacketInfo {
        PacketInfo { ts_us: ms * 1000, src: "10.0.0.2:7000".parse().unwrap(), dst: "10.0.0.1:6000".parse().unwrap() }
    }

    fn rtp_summary(done: &[Call]) -> RtpSummary {
        done[0].rtp.expect("RTP in the record")
    }

    #[test]
    fn overlapping_calls_on_one_media_endpoint_keep_their_own_streams() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("a", 1, None), 0);
        feed(&mut t, &response("a", 200, "INVITE", 1), 100);
        for i in 0..50u16 {
            assert!(t.on_udp(&rtp_of(0xa, i), &to_caller(200 + i64::from(i) * 20)));
        }
        // A second call announces the same endpoint while the first still runs.
        feed(&mut t, &invite("b", 1, None), 1000);
        feed(&mut t, &response("b", 200, "INVITE", 1), 1100);
        for i in 50..100u16 {
            let at = 200 + i64::from(i) * 20;
            assert!(t.on_udp(&rtp_of(0xa, i), &to_caller(at)));
            assert!(t.on_udp(&rtp_of(0xb, i - 50), &to_caller(at)));
        }
        let a = rtp_summary(&feed(&mut t, &request("a", "BYE", 2), 3000));
        let b = rtp_summary(&feed(&mut t, &request("b", "BYE", 2), 3000));
        assert_eq!((a.streams, a.packets, a.lost), (1, 100, 0), "a keeps its whole stream");
        assert_eq!((b.streams, b.packets, b.lost), (1, 50, 0), "b gets only its own");
        assert_eq!(t.stats().rtp_packets, 150);
        assert!((a.min_mos - 4.41).abs() < 0.01, "clean G.711: {}", a.min_mos);
    }

    #[test]
    fn late_rtp_of_an_ended_call_is_not_counted_for_the_next_call_on_its_endpoint() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("old", 1, None), 0);
        feed(&mut t, &response("old", 200, "INVITE", 1), 100);
        for i in 0..10u16 {
            t.on_udp(&rtp_of(1, i), &to_caller(200 + i64::from(i) * 20));
        }
        feed(&mut t, &request("old", "BYE", 2), 500);
        // The next call takes the relay port at once; the old stream's last packets are still
        // in flight.
        feed(&mut t, &invite("new", 1, None), 510);
        feed(&mut t, &response("new", 200, "INVITE", 1), 520);
        assert!(!t.on_udp(&rtp_of(1, 10), &to_caller(530)));
        assert!(!t.on_udp(&rtp_of(1, 11), &to_caller(550)));
        for i in 0..20u16 {
            assert!(t.on_udp(&rtp_of(2, 100 + i), &to_caller(540 + i64::from(i) * 20)));
        }
        let new = rtp_summary(&feed(&mut t, &request("new", "BYE", 2), 2000));
        assert_eq!((new.streams, new.packets, new.lost), (1, 20, 0));
        assert_eq!((t.stats().rtp_packets, t.stats().rtp_after_end, t.stats().rtp_unattributed), (30, 2, 0));
    }

    #[test]
    fn back_to_back_calls_replaying_one_recording_each_get_their_own_packets() {
        // SIPp's play_pcap_audio: every call sends the same SSRC and sequence numbers from and
        // to the same ports; the next call starts as soon as the last one ended.
        let mut t = Tracker::new(TrackerConfig::default());
        let mut records = Vec::new();
        for (n, id) in ["r1", "r2", "r3"].iter().enumerate() {
            let t0 = n as i64 * 1500;
            feed(&mut t, &invite(id, 1, None), t0);
            feed(&mut t, &response(id, 200, "INVITE", 1), t0 + 10);
            for i in 0..50u16 {
                assert!(t.on_udp(&rtp_of(0x5eed, 100 + i), &to_caller(t0 + 20 + i64::from(i) * 20)), "{id} {i}");
            }
            records.extend(feed(&mut t, &request(id, "BYE", 2), t0 + 1020));
            // One packet in flight at the BYE.
            assert!(!t.on_udp(&rtp_of(0x5eed, 150), &to_caller(t0 + 1030)));
        }
        for r in &records {
            let rtp = r.rtp.unwrap();
            assert_eq!((rtp.streams, rtp.packets, rtp.lost), (1, 50, 0), "{}", r.call_id);
        }
        assert_eq!((t.stats().rtp_packets, t.stats().rtp_after_end), (150, 3));
    }

    #[test]
    fn an_ssrc_change_mid_call_is_a_second_stream_of_the_same_call() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("c", 1, None), 0);
        feed(&mut t, &response("c", 200, "INVITE", 1), 100);
        for i in 0..10u16 {
            assert!(t.on_udp(&rtp_of(7, i), &to_caller(200 + i64::from(i) * 20)));
        }
        // Every other packet of the second stream lost: its MOS is the call's.
        for i in 0..10u16 {
            assert!(t.on_udp(&rtp_of(8, i * 2), &to_caller(400 + i64::from(i) * 40)));
        }
        let c = rtp_summary(&feed(&mut t, &request("c", "BYE", 2), 2000));
        assert_eq!((c.streams, c.packets, c.lost), (2, 20, 9));
        // Stream 8: 9 of 19 expected lost (47 %): Ie_eff = 95 * 47.4 / 72.5 = 62.1, MOS 1.6.
        assert!(c.min_mos < 2.0, "{}", c.min_mos);
    }

    #[test]
    fn rtp_before_any_sdp_for_a_known_endpoint_is_counted_as_unattributed() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("d", 1, None), 1000);
        assert!(!t.on_udp(&rtp_of(5, 1), &to_caller(500)));
        assert_eq!(t.stats().rtp_unattributed, 1);
        assert!(t.on_udp(&rtp_of(5, 2), &to_caller(1500)));
    }

    #[test]
    fn a_newer_call_on_the_same_media_endpoint_keeps_it_when_the_old_one_is_forgotten() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("old", 1, None), 0);
        feed(&mut t, &response("old", 200, "INVITE", 1), 100);
        feed(&mut t, &request("old", "BYE", 2), 200);
        feed(&mut t, &invite("new", 1, None), 300);
        feed(&mut t, &response("new", 200, "INVITE", 1), 400);
        t.expire(200_000 + LINGER_US + 1);
        let to_caller =
            PacketInfo { ts_us: 500_000, src: "10.0.0.2:7000".parse().unwrap(), dst: "10.0.0.1:6000".parse().unwrap() };
        assert!(t.on_udp(&rtp_packet(1), &to_caller), "the endpoint belongs to the open call");
    }

    fn ids(changes: &CheckpointChanges) -> (Vec<&str>, Vec<&str>) {
        let mut changed: Vec<&str> = changes.changed.iter().map(|c| c.call.call_id.as_str()).collect();
        let mut closed: Vec<&str> = changes.closed.iter().map(String::as_str).collect();
        changed.sort_unstable();
        closed.sort_unstable();
        (changed, closed)
    }

    #[test]
    fn changes_are_noted_only_when_asked_and_name_each_call_once() {
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("quiet", 1, None), 0);
        assert!(ids(&t.drain_checkpoint()).0.is_empty(), "nothing is noted unless asked");
        t.note_changes(true);
        feed(&mut t, &invite("a", 1, None), 0);
        feed(&mut t, &response("a", 180, "INVITE", 1), 10);
        feed(&mut t, &invite("b", 1, None), 20);
        feed(&mut t, &response("b", 486, "INVITE", 1), 30);
        let changes = t.drain_checkpoint();
        assert_eq!(ids(&changes), (vec!["a"], vec!["b"]));
        assert_eq!(changes.changed[0].call.ringing_us, Some(10_000), "the call as it is now");
        assert!(ids(&t.drain_checkpoint()).0.is_empty(), "drained");
        // Past the ended call's claim on the shared media endpoint: the stream is "a"'s.
        assert!(t.on_udp(&rtp_of(7, 1), &to_caller(3000)));
        assert_eq!(ids(&t.drain_checkpoint()), (vec![], vec![]), "RTP is not checkpointed packet by packet");
        feed(&mut t, &response("a", 200, "INVITE", 1), 3010);
        let changes = t.drain_checkpoint();
        assert_eq!(changes.changed[0].streams.len(), 1, "the streams go with the next SIP change");
        feed(&mut t, &request("a", "BYE", 2), 3020);
        assert_eq!(ids(&t.drain_checkpoint()), (vec![], vec!["a"]));
        t.finish();
        assert_eq!(ids(&t.drain_checkpoint()), (vec![], vec!["quiet"]), "closed at the end too");
        feed(&mut t, &invite("c", 1, None), 3030);
        t.clear_changes();
        assert_eq!(ids(&t.drain_checkpoint()), (vec![], vec![]));
    }

    #[test]
    fn a_mates_open_calls_are_recorded_whole_when_their_later_messages_arrive() {
        let mut active = Tracker::new(TrackerConfig::default());
        active.note_changes(true);
        feed(&mut active, &invite("up", 1, None), 0);
        feed(&mut active, &response("up", 180, "INVITE", 1), 800);
        feed(&mut active, &response("up", 200, "INVITE", 1), 3000);
        for i in 0..5 {
            assert!(active.on_udp(&rtp_of(9, i), &to_caller(3100 + i64::from(i) * 20)));
        }
        feed(&mut active, &invite("ringing", 1, None), 100);
        feed(&mut active, &response("ringing", 183, "INVITE", 1), 200);
        feed(&mut active, &invite("auth", 1, None), 300);
        feed(&mut active, &response("auth", 407, "INVITE", 1), 310);

        let mut standby = Tracker::new(TrackerConfig::default());
        let restored = standby.restore_open(active.checkpoint_open());
        assert_eq!(restored.len(), 3);
        assert_eq!(standby.open_calls(), 3);
        assert!(standby.restore_open(active.checkpoint_open()).is_empty(), "a call open here stays as it is");

        // The answered call: its BYE reaches the new Active, with more RTP before it.
        for i in 5..10 {
            assert!(standby.on_udp(&rtp_of(9, i), &to_caller(3200 + i64::from(i) * 20)));
        }
        let done = feed(&mut standby, &request("up", "BYE", 2), 60_000);
        assert_eq!(done.len(), 1);
        let c = &done[0];
        assert_eq!(
            (c.outcome, c.final_code, c.invite_us, c.ringing_us, c.answered_us, c.ended_us),
            (Outcome::Answered, Some(200), 0, Some(800_000), Some(3_000_000), Some(60_000_000))
        );
        assert_eq!(c.from_addr, pkt(0).src);
        assert_eq!(c.pai_user.as_deref(), Some("+13125550000"));
        let rtp = c.rtp.expect("the streams continue");
        assert_eq!((rtp.streams, rtp.packets, rtp.lost), (1, 10, 0));
        // The ringing call is answered and hung up there.
        feed(&mut standby, &response("ringing", 200, "INVITE", 1), 5000);
        let done = feed(&mut standby, &request("ringing", "BYE", 2), 9000);
        assert_eq!((done[0].outcome, done[0].ringing_us), (Outcome::Answered, Some(200_000)));
        // The challenged one is re-sent with CSeq 2 and refused.
        feed(&mut standby, &invite("auth", 2, None), 400);
        let done = feed(&mut standby, &response("auth", 486, "INVITE", 2), 500);
        assert_eq!(done[0].outcome, Outcome::Busy);
        assert_eq!(standby.stats().unknown_call, 0, "no message of theirs was unknown");
    }

    #[test]
    fn a_recovered_call_that_hears_nothing_times_out_without_a_record() {
        let config = TrackerConfig { max_open: 10, setup_timeout_us: 10_000_000, idle_timeout_us: 60_000_000 };
        let mut active = Tracker::new(config);
        for id in ["silent", "heard", "tail"] {
            feed(&mut active, &invite(id, 1, None), 0);
        }
        let mut standby = Tracker::new(config);
        standby.note_changes(true);
        standby.restore_open(active.checkpoint_open());
        feed(&mut standby, &response("heard", 100, "INVITE", 1), 10);
        // What may be the tail of an end the mate saw confirms nothing: an ACK, a BYE's 200.
        feed(&mut standby, &request("tail", "ACK", 1), 20);
        feed(&mut standby, &response("tail", 200, "BYE", 2), 30);
        let expired = standby.expire(20_000_000);
        let ids_expired: Vec<&str> = expired.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids_expired, vec!["heard"], "a call heard here is recorded at its timeout");
        let mut unconfirmed = standby.drain_unconfirmed();
        unconfirmed.sort();
        assert_eq!(unconfirmed, ["silent", "tail"]);
        assert_eq!((standby.stats().recovered_unconfirmed, standby.stats().timed_out), (2, 1));
        assert_eq!(standby.open_calls(), 0);
        let changes = standby.drain_checkpoint();
        assert_eq!(ids(&changes).1, vec!["heard", "silent", "tail"], "all leave the mate's copy");
    }

    #[test]
    fn an_unconfirmed_recovered_call_makes_room_without_a_record() {
        let config = TrackerConfig { max_open: 2, ..TrackerConfig::default() };
        let mut mate = Tracker::new(config);
        feed(&mut mate, &invite("old", 1, None), 0);
        feed(&mut mate, &invite("heard", 1, None), 10);
        let mut t = Tracker::new(config);
        t.restore_open(mate.checkpoint_open());
        feed(&mut t, &response("heard", 180, "INVITE", 1), 20);
        assert!(feed(&mut t, &invite("new", 1, None), 30).is_empty(), "no record of the unconfirmed one");
        assert_eq!((t.stats().recovered_unconfirmed, t.stats().evicted), (1, 0));
        assert_eq!(t.drain_unconfirmed(), ["old"]);
        let evicted = feed(&mut t, &invite("newer", 1, None), 40);
        assert_eq!((evicted.len(), evicted[0].call_id.as_str()), (1, "heard"), "a confirmed one is recorded");
    }

    #[test]
    fn a_call_taken_back_keeps_its_media_when_its_old_end_is_forgotten() {
        // Served here until a switchover (which forgot it), then taken back from the mate a
        // minute later: its earlier end here lingers out without taking its media along.
        let mut t = Tracker::new(TrackerConfig::default());
        feed(&mut t, &invite("long", 1, None), 0);
        feed(&mut t, &response("long", 200, "INVITE", 1), 100);
        let copy = t.checkpoint_open();
        t.finish();
        t.restore_open(copy);
        t.expire(60_000_000);
        assert!(t.on_udp(&rtp_of(4, 1), &to_caller(60_010)), "its media endpoint is still claimed");
        let done = feed(&mut t, &request("long", "BYE", 2), 90_000);
        assert_eq!(done[0].rtp.map(|r| r.packets), Some(1));
        t.expire(90_000_000 + LINGER_US + 1);
        assert!(t.media.is_empty(), "forgotten once it ended and lingered");
    }

    #[test]
    fn restoring_respects_the_cap_and_takes_back_a_call_ended_here_before() {
        let config = TrackerConfig { max_open: 2, ..TrackerConfig::default() };
        let mut mate = Tracker::new(TrackerConfig::default());
        for id in ["a", "b", "c"] {
            feed(&mut mate, &invite(id, 1, None), 0);
        }
        let mut t = Tracker::new(config);
        // "a" was served here until a switchover, which forgot it.
        feed(&mut t, &invite("a", 1, None), 0);
        t.finish();
        let mut calls = mate.checkpoint_open();
        calls.sort_by(|x, y| x.call.call_id.cmp(&y.call.call_id));
        let restored: Vec<String> = t.restore_open(calls).into_iter().map(|c| c.call.call_id).collect();
        assert_eq!(restored, vec!["a", "b"], "beyond the cap the rest are left out");
        assert!(t.is_open("a"));
        assert!(t.on_udp(&rtp_of(3, 1), &to_caller(10)), "its media endpoint is claimed again");
        let done = feed(&mut t, &response("a", 486, "INVITE", 1), 20);
        assert_eq!(done.len(), 1, "its answer is not taken for a late copy of an ended call");
    }
}
