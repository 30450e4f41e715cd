//! Datagrams in, call records out: SIP parsing, the dialog tracker, number normalisation and
//! call direction. TCP segments go through the stream reassembly ([`crate::tcp`]) first.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, TimeZone, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tollgate_number::{DialingPlan, E164};
use tollgate_policy::InternalNumbers;
use tollgate_records::{Disposition, SipCallRecord};
use tollgate_sip::dialog::{Call, Outcome, PacketInfo, Tracker, TrackerConfig};
use tollgate_sip::{StartLine, parse_datagram};

use crate::decode::{Datagram, Packet};
use crate::tcp::{TcpLimits, TcpReassembler, TcpSegment};

/// Which header names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SourceHeader {
    /// P-Asserted-Identity when present, else From.
    #[default]
    PaiThenFrom,
    /// From only.
    From,
}

/// Which part names the called number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationPart {
    /// The Request-URI of the first INVITE.
    #[default]
    RequestUri,
    /// The To header.
    To,
}

/// What the probe needs to know.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// This probe's name (the analytics "Device").
    pub device: String,
    /// Dialing plan for numbers.
    pub plan: DialingPlan,
    /// Internal number ranges (direction).
    pub internal: InternalNumbers,
    /// Carrier trunk addresses: INVITEs from them are inbound, to them outbound.
    pub trunks: Vec<IpNet>,
    /// Where the caller's number comes from.
    pub source: SourceHeader,
    /// Where the called number comes from.
    pub destination: DestinationPart,
    /// Tracker limits.
    pub tracker: TrackerConfig,
}

/// Message and call counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeCounters {
    /// SIP messages parsed.
    pub messages: u64,
    /// Requests by method.
    pub requests: BTreeMap<String, u64>,
    /// Responses by status code.
    pub responses: BTreeMap<u16, u64>,
    /// Payloads that looked like SIP but did not parse.
    pub malformed: u64,
    /// RTP packets tied to calls.
    pub rtp_packets: u64,
    /// Calls finished, by disposition.
    pub calls: BTreeMap<String, u64>,
}

impl ProbeCounters {
    /// Calls finished.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Answer-seizure ratio: answered / attempts.
    pub fn asr(&self) -> f64 {
        let total = self.total_calls();
        if total == 0 { 0.0 } else { *self.calls.get("answered").unwrap_or(&0) as f64 / total as f64 }
    }

    /// Network effectiveness ratio: calls the network delivered to the callee (answered, busy,
    /// not answered, or rejected by the user) / attempts.
    pub fn ner(&self) -> f64 {
        let total = self.total_calls();
        let ok: u64 = ["answered", "busy", "no_answer", "cancelled", "redirected"]
            .iter()
            .map(|k| self.calls.get(*k).copied().unwrap_or(0))
            .sum();
        if total == 0 { 0.0 } else { ok as f64 / total as f64 }
    }
}

/// A finished call: the record to store, and what the tracker saw.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The record.
    pub record: SipCallRecord,
    /// The tracker's view (addresses, raw user parts, close reason).
    pub call: Call,
}

/// Told when a call from a caller starts and ends (calls in progress per caller, for the
/// engine's `concurrent` policy condition). A call starts when it first rings or is answered
/// (a response 101-299 to its INVITE), not at its INVITE: the SBC forwards the INVITE only after
/// asking the engine, so the call being decided is never among the calls in progress, whether
/// the probe runs in the engine's process or on another server.
pub trait CallsInProgress: Send + Sync {
    /// A call from `source` started (rings or was answered).
    fn started(&self, source: E164);
    /// A call from `source` ended.
    fn ended(&self, source: E164);
}

/// The probe's processing state.
pub struct Probe {
    settings: ProbeSettings,
    tracker: Tracker,
    counters: ProbeCounters,
    last_expire_us: i64,
    in_progress: Option<std::sync::Arc<dyn CallsInProgress>>,
    /// Call-ID -> caller of each open call that has not rung yet.
    setup_sources: std::collections::HashMap<String, E164>,
    /// Call-ID -> caller of each open call that was reported as started.
    open_sources: std::collections::HashMap<String, E164>,
    /// SIP over TCP: segments to whole messages.
    tcp: TcpReassembler,
    last_tcp_expire_us: i64,
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// True if a payload could be a SIP message (a request method or `SIP/`): cheap, so RTP and
/// other traffic skips the parser.
fn looks_like_sip(p: &[u8]) -> bool {
    let p = match p.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
        Some(i) => &p[i..],
        None => return false,
    };
    p.len() >= 8 && p[0].is_ascii_uppercase() && (p.starts_with(b"SIP/2.0 ") || p[..8].contains(&b' '))
}

impl Probe {
    /// A probe with these settings.
    pub fn new(settings: ProbeSettings) -> Self {
        let tracker = Tracker::new(settings.tracker);
        Probe {
            settings,
            tracker,
            counters: ProbeCounters::default(),
            last_expire_us: 0,
            in_progress: None,
            setup_sources: Default::default(),
            open_sources: Default::default(),
            tcp: TcpReassembler::new(TcpLimits::default()),
            last_tcp_expire_us: 0,
        }
    }

    /// Reassembles SIP over TCP within `limits` (the defaults otherwise).
    pub fn with_tcp_limits(mut self, limits: TcpLimits) -> Self {
        self.tcp = TcpReassembler::new(limits);
        self
    }

    /// The TCP reassembler (its counters, flows and bytes held).
    pub fn tcp(&self) -> &TcpReassembler {
        &self.tcp
    }

    /// Reports calls starting and ending, per caller, to `hook`.
    pub fn with_calls_in_progress(mut self, hook: std::sync::Arc<dyn CallsInProgress>) -> Self {
        self.in_progress = Some(hook);
        self
    }

    /// Notes the callers of calls the tracker just opened (they start once they ring).
    fn note_opened(&mut self) {
        if self.in_progress.is_none() {
            return;
        }
        for o in self.tracker.drain_opened() {
            let source = match self.settings.source {
                SourceHeader::PaiThenFrom => self.number(&o.pai_user).or_else(|| self.number(&o.from_user)),
                SourceHeader::From => self.number(&o.from_user),
            };
            if let Some(s) = source {
                self.setup_sources.insert(o.call_id, s);
            }
        }
    }

    /// Tells the hook a call started when `m` is its first ringing or answer (101-299 to INVITE).
    fn note_progress(&mut self, m: &tollgate_sip::SipMessage<'_>) {
        let Some(hook) = &self.in_progress else { return };
        let StartLine::Response { code: 101..=299, .. } = m.start else { return };
        let (Some(call_id), Some((_, method))) = (m.call_id(), m.cseq()) else { return };
        if method.as_str() != "INVITE" {
            return;
        }
        if let Some((call_id, s)) = self.setup_sources.remove_entry(call_id) {
            hook.started(s);
            self.open_sources.insert(call_id, s);
        }
    }

    /// Counters.
    pub fn counters(&self) -> &ProbeCounters {
        &self.counters
    }

    /// The tracker (open calls, its counters).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Processes one decoded packet: a UDP datagram as it is, a TCP segment through the
    /// stream reassembly; returns the calls it finished.
    pub fn on_packet(&mut self, p: &Packet<'_>) -> Vec<CallReport> {
        match p {
            Packet::Udp(d) => self.on_datagram(d),
            Packet::Tcp(s) => self.on_segment(s),
        }
    }

    /// Processes one TCP segment: every SIP message it completes goes through
    /// [`Probe::on_datagram`]; returns the calls they finished.
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>) -> Vec<CallReport> {
        let mut out = Vec::new();
        let expire = seg.ts_us.saturating_sub(self.last_tcp_expire_us) >= 1_000_000;
        if expire {
            self.last_tcp_expire_us = seg.ts_us;
        }
        // The reassembler lends its buffer to the messages while the rest of the probe takes
        // them: it is taken out of `self` for the call.
        let mut tcp = std::mem::take(&mut self.tcp);
        tcp.on_segment(seg, |d| out.extend(self.on_datagram(&d)));
        if expire {
            tcp.expire(seg.ts_us, |d| out.extend(self.on_datagram(&d)));
        }
        self.tcp = tcp;
        out
    }

    /// Processes one datagram: a UDP payload, or a whole SIP message (from the TCP
    /// reassembly, or HEP); returns the calls it finished.
    pub fn on_datagram(&mut self, d: &Datagram<'_>) -> Vec<CallReport> {
        let pkt = PacketInfo { ts_us: d.ts_us, src: d.src, dst: d.dst };
        let mut out = Vec::new();
        if looks_like_sip(d.payload) {
            for msg in parse_datagram(d.payload) {
                match msg {
                    Ok(m) => {
                        self.counters.messages += 1;
                        match m.start {
                            StartLine::Request { method, .. } => {
                                *self.counters.requests.entry(method.as_str().to_string()).or_default() += 1;
                            }
                            StartLine::Response { code, .. } => *self.counters.responses.entry(code).or_default() += 1,
                        }
                        let closed = self.tracker.on_message(&m, &pkt);
                        self.note_opened();
                        self.note_progress(&m);
                        for call in closed {
                            out.push(self.report(call));
                        }
                    }
                    Err(_) => {
                        self.counters.malformed += 1;
                        break;
                    }
                }
            }
        } else if self.tracker.on_udp(d.payload, &pkt) {
            self.counters.rtp_packets += 1;
        }
        if d.ts_us.saturating_sub(self.last_expire_us) >= 1_000_000 {
            self.last_expire_us = d.ts_us;
            out.extend(self.expire(d.ts_us));
        }
        out
    }

    /// Closes calls whose timeouts passed at `now_us` (and skips TCP gaps that waited past
    /// their timeout, forgets idle TCP flows).
    pub fn expire(&mut self, now_us: i64) -> Vec<CallReport> {
        let mut out = Vec::new();
        let mut tcp = std::mem::take(&mut self.tcp);
        tcp.expire(now_us, |d| out.extend(self.on_datagram(&d)));
        self.tcp = tcp;
        out.extend(self.tracker.expire(now_us).into_iter().map(|c| self.report(c)).collect::<Vec<_>>());
        out
    }

    /// Closes every open call (end of input), after the TCP reassembly has delivered what it
    /// still could.
    pub fn finish(&mut self) -> Vec<CallReport> {
        let mut out = Vec::new();
        let mut tcp = std::mem::take(&mut self.tcp);
        tcp.finish(|d| out.extend(self.on_datagram(&d)));
        self.tcp = tcp;
        out.extend(self.tracker.finish().into_iter().map(|c| self.report(c)).collect::<Vec<_>>());
        out
    }

    fn number(&self, user: &Option<String>) -> Option<E164> {
        user.as_deref().and_then(|u| self.settings.plan.normalize(u).ok())
    }

    fn direction(&self, call: &Call, source: Option<E164>, destination: Option<E164>) -> &'static str {
        let on_trunk = |a: &SocketAddr| self.settings.trunks.iter().any(|n| n.contains(&a.ip()));
        if on_trunk(&call.from_addr) {
            return "inbound";
        }
        if on_trunk(&call.to_addr) {
            return "outbound";
        }
        self.settings.internal.classify(source, destination).as_str()
    }

    fn report(&mut self, call: Call) -> CallReport {
        self.setup_sources.remove(&call.call_id);
        if let Some(hook) = &self.in_progress
            && let Some(s) = self.open_sources.remove(&call.call_id)
        {
            hook.ended(s);
        }
        let source = match self.settings.source {
            SourceHeader::PaiThenFrom => self.number(&call.pai_user).or_else(|| self.number(&call.from_user)),
            SourceHeader::From => self.number(&call.from_user),
        };
        let destination = match self.settings.destination {
            DestinationPart::RequestUri => self.number(&call.ruri_user).or_else(|| self.number(&call.to_user)),
            DestinationPart::To => self.number(&call.to_user),
        };
        let disposition = match call.outcome {
            Outcome::Answered => Disposition::Answered,
            Outcome::Busy => Disposition::Busy,
            Outcome::NoAnswer => Disposition::NoAnswer,
            Outcome::Cancelled => Disposition::Cancelled,
            Outcome::Redirected => Disposition::Redirected,
            Outcome::Failed => Disposition::Failed,
        };
        *self.counters.calls.entry(disposition.as_str().to_string()).or_default() += 1;
        let record = SipCallRecord {
            id: ulid::Ulid::new(),
            time: time(call.invite_us),
            device: self.settings.device.clone(),
            // The Call-ID comes off the wire: bounded so the record passes the collector's checks.
            call_id: tollgate_records::record_text(&call.call_id),
            source,
            destination,
            direction: self.direction(&call, source, destination).to_string(),
            disposition,
            final_code: call.final_code,
            // Post-dial delay: to the first ringing, else to the answer or the final response
            // (a callee may answer or refuse without ringing, and a proxy may drop a 180 that
            // lost the race with the 200).
            pdd_ms: call
                .ringing_us
                .or(call.answered_us)
                .or(call.final_code.and(call.ended_us))
                .map(|r| ((r - call.invite_us).max(0) / 1000) as u32),
            duration_ms: match (call.answered_us, call.ended_us) {
                (Some(a), Some(e)) => Some(((e - a).max(0) / 1000) as u64),
                _ => None,
            },
            answered_at: call.answered_us.map(time),
            ended_at: call.ended_us.map(time),
            rtp_packets: call.rtp.map(|r| r.packets),
            rtp_lost: call.rtp.map(|r| r.lost),
            rtp_jitter_ms: call.rtp.map(|r| (r.max_jitter_ms * 100.0).round() / 100.0),
        };
        CallReport { record, call }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Transport;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            device: "probe-1".into(),
            plan: DialingPlan::nanp(),
            internal: InternalNumbers::parse(&["+1212555*".into()], &DialingPlan::nanp()).unwrap(),
            trunks: vec!["192.0.2.0/24".parse().unwrap()],
            source: SourceHeader::PaiThenFrom,
            destination: DestinationPart::RequestUri,
            tracker: TrackerConfig::default(),
        }
    }

    fn d<'a>(ms: i64, src: &str, payload: &'a str) -> Datagram<'a> {
        Datagram {
            ts_us: ms * 1000,
            src: src.parse().unwrap(),
            dst: "10.0.0.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            payload: payload.as_bytes(),
        }
    }

    #[test]
    fn a_busy_call_from_a_trunk_becomes_a_record() {
        let mut p = Probe::new(settings());
        let invite = "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: b1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert!(p.on_datagram(&d(0, "192.0.2.9:5060", invite)).is_empty());
        let busy = "SIP/2.0 486 Busy Here\r\nCall-ID: b1\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        let done = p.on_datagram(&d(1500, "10.0.0.2:5060", busy));
        assert_eq!(done.len(), 1);
        let r = &done[0].record;
        assert_eq!(r.disposition, Disposition::Busy);
        assert_eq!(r.final_code, Some(486));
        assert_eq!(r.source.unwrap().to_string(), "+13125550666");
        assert_eq!(r.destination.unwrap().to_string(), "+12125550100");
        assert_eq!(r.direction, "inbound");
        assert_eq!(r.device, "probe-1");
        assert_eq!(p.counters().requests.get("INVITE"), Some(&1));
        assert_eq!(p.counters().responses.get(&486), Some(&1));
        assert_eq!(p.counters().calls.get("busy"), Some(&1));
        assert_eq!((p.counters().asr(), p.counters().ner()), (0.0, 1.0));
    }

    #[test]
    fn calls_in_progress_are_reported_per_caller() {
        #[derive(Default)]
        struct Hook(std::sync::Mutex<Vec<(String, bool)>>);
        impl CallsInProgress for Hook {
            fn started(&self, s: E164) {
                self.0.lock().unwrap().push((s.to_string(), true));
            }
            fn ended(&self, s: E164) {
                self.0.lock().unwrap().push((s.to_string(), false));
            }
        }
        let hook = std::sync::Arc::new(Hook::default());
        let mut p = Probe::new(settings()).with_calls_in_progress(hook.clone());
        let invite = "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(0, "192.0.2.9:5060", invite));
        p.on_datagram(&d(1, "192.0.2.9:5060", invite)); // a retransmission: no second start
        assert!(hook.0.lock().unwrap().is_empty(), "an INVITE alone is a call being decided, not in progress");
        let trying = "SIP/2.0 100 Trying\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(2, "10.0.0.2:5060", trying));
        assert!(hook.0.lock().unwrap().is_empty(), "100 Trying is not ringing");
        let ringing =
            "SIP/2.0 180 Ringing\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(3, "10.0.0.2:5060", ringing));
        p.on_datagram(&d(4, "10.0.0.2:5060", ringing)); // again: no second start
        assert_eq!(*hook.0.lock().unwrap(), vec![("+13125550666".to_string(), true)]);
        let busy = "SIP/2.0 486 Busy Here\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(5, "10.0.0.2:5060", busy));
        assert_eq!(hook.0.lock().unwrap().last(), Some(&("+13125550666".to_string(), false)));
        // Every start has its end, also for calls still open at the end of the input; a call
        // that never rang neither starts nor ends.
        p.on_datagram(&d(6, "192.0.2.9:5060", &invite.replace("c1", "c2")));
        p.on_datagram(&d(7, "10.0.0.2:5060", &ringing.replace("c1", "c2")));
        p.on_datagram(&d(8, "192.0.2.9:5060", &invite.replace("c1", "c3")));
        p.finish();
        let events = hook.0.lock().unwrap().clone();
        assert_eq!(events.iter().filter(|e| e.1).count(), events.iter().filter(|e| !e.1).count());
    }

    #[test]
    fn non_sip_and_garbage_are_counted_not_fatal() {
        let mut p = Probe::new(settings());
        p.on_datagram(&d(0, "10.0.0.1:4000", "\u{80}\u{0}binary"));
        p.on_datagram(&d(0, "10.0.0.1:5060", "INVITE sip:x SIP/2.0\r\nno end"));
        assert_eq!(p.counters().malformed, 1);
        assert_eq!(p.counters().messages, 0);
    }
}
