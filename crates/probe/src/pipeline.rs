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
use tollgate_sip::dialog::{Call, CheckpointChanges, OpenCallCheckpoint, Outcome, PacketInfo, Tracker, TrackerConfig};
use tollgate_sip::{StartLine, parse_datagram};

use crate::decode::{Datagram, Packet};
use crate::ladder::LadderStore;
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
    /// A call whose worst RTP stream has an estimated MOS below this is of poor quality
    /// (counted in [`ProbeCounters::poor_quality_calls`]).
    pub mos_poor: f64,
    /// Bounds of SIP over TCP reassembly.
    pub tcp: TcpLimits,
}

/// The default [`ProbeSettings::mos_poor`]: 3.6, below which G.107 Annex B expects many
/// users to be dissatisfied (R below 70).
pub const DEFAULT_MOS_POOR: f64 = 3.6;

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
    /// Calls finished, by disposition (calls still open at the end of an input are not here
    /// unless finalized: see [`ProbeCounters::open`]).
    pub calls: BTreeMap<String, u64>,
    /// Calls still open when the input ended, reported as open ([`AtEnd::ReportOpen`]): a
    /// state, not a disposition; not in `calls`, nor in ASR or NER.
    pub open: u64,
    /// Calls still open when the input ended that were closed there with their disposition so
    /// far ([`AtEnd::Finalize`]); they are also counted in `calls`.
    pub finalized: u64,
    /// Calls open when a probe pair's chassis stopped serving, forgotten without a record
    /// ([`Probe::abandon_open`]): the mate records what follows.
    pub abandoned: u64,
    /// Calls taken over from a probe pair's mate when this chassis began to serve
    /// ([`Probe::restore_open`]): recorded here when they end.
    pub recovered: u64,
    /// Calls finished with an RTP stream whose estimated MOS was below the `mos_poor`
    /// threshold.
    pub poor_quality_calls: u64,
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

/// A finished call (or one still open at the end of the input): the record to store, and
/// what the tracker saw.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The record. For an open call ([`CallReport::open`]) it holds what was seen so far and
    /// its disposition is not final.
    pub record: SipCallRecord,
    /// The tracker's view (addresses, raw user parts, close reason).
    pub call: Call,
    /// The call was still open when the input ended and is reported as such
    /// ([`AtEnd::ReportOpen`]): it has no disposition yet and its record must not be stored
    /// as final.
    pub open: bool,
}

/// What becomes of the calls still open when an input (a capture, or a set of captures read
/// as one) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtEnd {
    /// Reported as open (a state, not a disposition): counted in
    /// [`ProbeCounters::open`], not in the calls by disposition, and not to be stored. A call
    /// that goes on past the end of a capture is not a failed one.
    #[default]
    ReportOpen,
    /// Closed at the end of the input with their disposition so far (an unanswered call is
    /// `no_answer`, an answered one has no end time), counted and stored as finished calls.
    Finalize,
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
    /// Recent calls' messages, for their ladders (none: not kept).
    ladder: Option<LadderStore>,
    /// SIP over TCP: segments to whole messages.
    tcp: TcpReassembler,
    /// The changes noted when the chassis last stopped serving, not drained yet
    /// ([`Probe::abandon_open`]).
    last_changes: Option<CheckpointChanges>,
    last_tcp_expire_us: i64,
}

/// Locks a probe shared between threads (live sources, timers, metrics, an SRP pair's
/// checkpoints). A panic in another holder does not stop the others: the lock is taken
/// anyway, as every packet after it must still be counted.
pub fn lock(probe: &std::sync::Mutex<Probe>) -> std::sync::MutexGuard<'_, Probe> {
    probe.lock().unwrap_or_else(|e| e.into_inner())
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
        let tcp = TcpReassembler::new(settings.tcp);
        Probe {
            settings,
            tracker,
            counters: ProbeCounters::default(),
            last_expire_us: 0,
            in_progress: None,
            setup_sources: Default::default(),
            open_sources: Default::default(),
            ladder: None,
            tcp,
            last_tcp_expire_us: 0,
            last_changes: None,
        }
    }

    /// Keeps calls' messages in `store` (bounded by its limits), for their ladders.
    pub fn with_ladder(mut self, store: LadderStore) -> Self {
        self.ladder = Some(store);
        self
    }

    /// The calls' messages kept, if any are.
    pub fn ladder(&self) -> Option<&LadderStore> {
        self.ladder.as_ref()
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

    /// Notes the callers of calls the tracker just opened (they start once they ring). The
    /// tracker's list is drained also without a hook, else it would grow by one entry per call.
    fn note_opened(&mut self) {
        let opened = self.tracker.drain_opened();
        if self.in_progress.is_none() {
            return;
        }
        for o in opened {
            if let Some(s) = self.caller(&o.pai_user, &o.from_user) {
                self.setup_sources.insert(o.call_id, s);
            }
        }
    }

    /// The caller's number, from P-Asserted-Identity or From as the settings say.
    fn caller(&self, pai_user: &Option<String>, from_user: &Option<String>) -> Option<E164> {
        match self.settings.source {
            SourceHeader::PaiThenFrom => self.number(pai_user).or_else(|| self.number(from_user)),
            SourceHeader::From => self.number(from_user),
        }
    }

    /// A call left the tracker: the calls-in-progress hook is told it ended (if it had
    /// started).
    fn call_gone(&mut self, call_id: &str) {
        self.setup_sources.remove(call_id);
        if let Some(hook) = &self.in_progress
            && let Some(s) = self.open_sources.remove(call_id)
        {
            hook.ended(s);
        }
    }

    /// A call left the tracker without a record: its calls-in-progress state and its ladder
    /// go too.
    fn forget_call(&mut self, call_id: &str) {
        self.call_gone(call_id);
        if let Some(ladder) = self.ladder.as_mut() {
            ladder.finish(call_id);
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
            // Where the message being read starts in the payload (messages follow one another).
            let mut from = 0;
            for msg in parse_datagram(d.payload) {
                match msg {
                    Ok(m) => {
                        // It ends where its body ends (the body borrows from the payload).
                        let end = (m.body.as_ptr() as usize + m.body.len()).saturating_sub(d.payload.as_ptr() as usize);
                        let raw = d.payload.get(from..end).unwrap_or_default();
                        from = end;
                        self.counters.messages += 1;
                        match m.start {
                            StartLine::Request { method, .. } => {
                                match self.counters.requests.get_mut(method.as_str()) {
                                    // Counted without a new String per request.
                                    Some(n) => *n += 1,
                                    None => {
                                        self.counters.requests.insert(method.as_str().to_string(), 1);
                                    }
                                }
                            }
                            StartLine::Response { code, .. } => *self.counters.responses.entry(code).or_default() += 1,
                        }
                        let closed = self.tracker.on_message(&m, &pkt);
                        self.note_opened();
                        self.note_progress(&m);
                        for call in closed {
                            out.push(self.report(call));
                        }
                        if let (Some(ladder), Some(call_id)) = (self.ladder.as_mut(), m.call_id()) {
                            ladder.record(call_id, self.tracker.is_open(call_id), d, raw);
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
        for call_id in self.tracker.drain_unconfirmed() {
            self.forget_call(&call_id);
        }
        out
    }

    /// Notes which open calls change, for [`Probe::drain_checkpoint`]: a probe pair's chassis
    /// checkpoints its open calls to its mate.
    pub fn note_changes(&mut self, on: bool) {
        self.tracker.note_changes(on);
    }

    /// The open calls that changed, and those that closed, since the last call (first the
    /// changes noted before the chassis stopped serving, if it just did: see
    /// [`Probe::abandon_open`]).
    pub fn drain_checkpoint(&mut self) -> CheckpointChanges {
        let now = self.tracker.drain_checkpoint();
        match self.last_changes.take() {
            Some(mut last) => {
                last.changed.extend(now.changed);
                last.closed.extend(now.closed);
                last
            }
            None => now,
        }
    }

    /// Every open call, as it is now; the changes noted so far are dropped (a full
    /// checkpoint holds them).
    pub fn checkpoint_open(&mut self) -> Vec<OpenCallCheckpoint> {
        self.tracker.clear_changes();
        self.last_changes = None;
        self.tracker.checkpoint_open()
    }

    /// Takes over the calls a probe pair's mate had open (its checkpoints), as this chassis
    /// begins to serve: their later messages complete them here, and they are recorded when
    /// they end (see [`Tracker::restore_open`]). Those that had rung or been answered are
    /// told to the calls-in-progress hook as started. Returns how many were taken over.
    pub fn restore_open(&mut self, calls: Vec<OpenCallCheckpoint>) -> usize {
        // Changes from when this chassis last served are the mate's to have sent, or stale.
        self.last_changes = None;
        let restored = self.tracker.restore_open(calls);
        for c in &restored {
            let Some(s) = self.caller(&c.call.pai_user, &c.call.from_user) else { continue };
            match &self.in_progress {
                Some(hook) if c.call.ringing_us.is_some() || c.call.answered_us.is_some() => {
                    hook.started(s);
                    self.open_sources.insert(c.call.call_id.clone(), s);
                }
                Some(_) => {
                    self.setup_sources.insert(c.call.call_id.clone(), s);
                }
                None => {}
            }
        }
        self.counters.recovered += restored.len() as u64;
        restored.len()
    }

    /// Forgets every open call without a record, and what the TCP reassembly holds: a probe
    /// pair's chassis that stops serving (a switchover), whose mate records from then on. The
    /// calls-in-progress hook is told they ended; they are counted in
    /// [`ProbeCounters::abandoned`]. Returns how many calls were forgotten.
    ///
    /// The changes noted until then are kept for the next [`Probe::drain_checkpoint`]: a
    /// planned switchover releases the service before its last flush of checkpoints, which
    /// must still carry them to the mate that takes the calls over.
    pub fn abandon_open(&mut self) -> u64 {
        self.tcp.clear();
        let last = self.tracker.drain_checkpoint();
        let calls = self.tracker.finish();
        // Forgetting them here is not their end: the mate's copies must stay.
        self.tracker.clear_changes();
        self.last_changes = Some(last);
        for call in &calls {
            self.forget_call(&call.call_id);
        }
        self.counters.abandoned += calls.len() as u64;
        calls.len() as u64
    }

    /// The end of the input: the TCP reassembly delivers what it still can, then every call
    /// still open is returned, reported as open or finalized as `at_end` says (see [`AtEnd`]).
    pub fn finish(&mut self, at_end: AtEnd) -> Vec<CallReport> {
        let mut out = Vec::new();
        let mut tcp = std::mem::take(&mut self.tcp);
        tcp.finish(|d| out.extend(self.on_datagram(&d)));
        self.tcp = tcp;
        let calls = self.tracker.finish();
        match at_end {
            AtEnd::Finalize => {
                self.counters.finalized += calls.len() as u64;
                out.extend(calls.into_iter().map(|c| self.report(c)).collect::<Vec<_>>());
            }
            AtEnd::ReportOpen => {
                self.counters.open += calls.len() as u64;
                out.extend(calls.into_iter().map(|c| self.open_report(c)).collect::<Vec<_>>());
            }
        }
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

    /// The report of a finished call, counted by its disposition.
    fn report(&mut self, call: Call) -> CallReport {
        if let Some(ladder) = self.ladder.as_mut() {
            ladder.finish(&call.call_id);
        }
        let report = self.describe(call, false);
        *self.counters.calls.entry(report.record.disposition.as_str().to_string()).or_default() += 1;
        if report.call.rtp.is_some_and(|r| r.min_mos < self.settings.mos_poor) {
            self.counters.poor_quality_calls += 1;
        }
        report
    }

    /// The report of a call still open at the end of the input (counted as open by the
    /// caller).
    fn open_report(&mut self, call: Call) -> CallReport {
        self.describe(call, true)
    }

    /// A call's record (its calls-in-progress hook told that it ended).
    fn describe(&mut self, call: Call, open: bool) -> CallReport {
        self.call_gone(&call.call_id);
        let source = self.caller(&call.pai_user, &call.from_user);
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
                .map(|r| (r.saturating_sub(call.invite_us).max(0) / 1000) as u32),
            duration_ms: match (call.answered_us, call.ended_us) {
                (Some(a), Some(e)) => Some((e.saturating_sub(a).max(0) / 1000) as u64),
                _ => None,
            },
            answered_at: call.answered_us.map(time),
            ended_at: call.ended_us.map(time),
            rtp_packets: call.rtp.map(|r| r.packets),
            rtp_lost: call.rtp.map(|r| r.lost),
            rtp_jitter_ms: call.rtp.map(|r| (r.max_jitter_ms * 100.0).round() / 100.0),
            mos: call.rtp.map(|r| (r.min_mos * 100.0).round() / 100.0),
        };
        CallReport { record, call, open }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Transport;
    use tollgate_sip::dialog::Closed;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            device: "probe-1".into(),
            plan: DialingPlan::nanp(),
            internal: InternalNumbers::parse(&["+1212555*".into()], &DialingPlan::nanp()).unwrap(),
            trunks: vec!["192.0.2.0/24".parse().unwrap()],
            source: SourceHeader::PaiThenFrom,
            destination: DestinationPart::RequestUri,
            tracker: TrackerConfig::default(),
            mos_poor: DEFAULT_MOS_POOR,
            tcp: TcpLimits::default(),
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
        p.finish(AtEnd::ReportOpen);
        let events = hook.0.lock().unwrap().clone();
        assert_eq!(events.iter().filter(|e| e.1).count(), events.iter().filter(|e| !e.1).count());
    }

    /// Counts calls in progress, whoever the callers.
    #[derive(Default)]
    struct Up(std::sync::Mutex<i64>);

    impl CallsInProgress for Up {
        fn started(&self, _: E164) {
            *self.0.lock().unwrap() += 1;
        }
        fn ended(&self, _: E164) {
            *self.0.lock().unwrap() -= 1;
        }
    }

    /// Three calls: `done` busy, `up` answered and not hung up, `ringing` not answered yet.
    fn three_calls(p: &mut Probe) -> Vec<CallReport> {
        let invite = |id: &str| {
            format!(
                "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let response = |id: &str, code: u16| {
            format!(
                "SIP/2.0 {code} X\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let mut out = Vec::new();
        for id in ["done", "up", "ringing"] {
            out.extend(p.on_datagram(&d(0, "192.0.2.9:5060", &invite(id))));
        }
        out.extend(p.on_datagram(&d(10, "10.0.0.2:5060", &response("done", 486))));
        out.extend(p.on_datagram(&d(20, "10.0.0.2:5060", &response("up", 180))));
        out.extend(p.on_datagram(&d(30, "10.0.0.2:5060", &response("up", 200))));
        out.extend(p.on_datagram(&d(40, "10.0.0.2:5060", &response("ringing", 180))));
        out
    }

    #[test]
    fn a_chassis_that_stops_serving_forgets_its_open_calls_without_records() {
        let up = std::sync::Arc::new(Up::default());
        let mut p = Probe::new(settings()).with_calls_in_progress(up.clone());
        let finished = three_calls(&mut p);
        assert_eq!(finished.len(), 1);
        assert_eq!(*up.0.lock().unwrap(), 2, "two calls rang: in progress");
        assert_eq!(p.abandon_open(), 2);
        assert_eq!(*up.0.lock().unwrap(), 0, "no call stays in progress");
        assert_eq!(p.counters().abandoned, 2);
        // Nothing is left to report, now or at the end; the calls' later messages are late.
        assert!(p.expire(10_000_000_000).is_empty());
        assert!(p.finish(AtEnd::Finalize).is_empty());
        assert_eq!(p.counters().total_calls(), 1);
    }

    #[test]
    fn a_mates_calls_taken_over_are_in_progress_as_they_were_and_unheard_ones_go_without_a_record() {
        let mut mate = Probe::new(settings());
        mate.note_changes(true);
        three_calls(&mut mate);
        let setup = "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: setup\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        mate.on_datagram(&d(50, "192.0.2.9:5060", setup));
        let calls = mate.checkpoint_open();
        assert_eq!(calls.len(), 3, "up, ringing and setup are open");

        let up = std::sync::Arc::new(Up::default());
        let mut p = Probe::new(settings()).with_calls_in_progress(up.clone());
        assert_eq!(p.restore_open(calls.clone()), 3);
        assert_eq!(p.restore_open(calls), 0, "taken over once");
        assert_eq!(*up.0.lock().unwrap(), 2, "the two calls that had rung are in progress here");
        assert_eq!(p.counters().recovered, 3);
        let bye = "BYE sip:3125550666@192.0.2.9 SIP/2.0\r\nCall-ID: up\r\nCSeq: 2 BYE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        let done = p.on_datagram(&d(60_000, "10.0.0.2:5060", bye));
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].record.disposition, done[0].record.duration_ms), (Disposition::Answered, Some(59_970)));
        assert_eq!(*up.0.lock().unwrap(), 1);
        // Nothing more is heard of the other two: past their setup timeout they go, without a
        // record (the mate may have recorded their end), and are no longer in progress.
        assert!(p.expire(200_000_000).is_empty());
        assert_eq!(*up.0.lock().unwrap(), 0);
        assert_eq!(p.tracker().stats().recovered_unconfirmed, 2);
        assert_eq!(p.tracker().open_calls(), 0);
        assert_eq!(p.counters().total_calls(), 1);
    }

    #[test]
    fn calls_still_open_at_the_end_are_open_not_no_answer() {
        let mut p = Probe::new(settings());
        let finished = three_calls(&mut p);
        assert_eq!(finished.len(), 1);
        assert!(!finished[0].open);
        let mut open = p.finish(AtEnd::ReportOpen);
        open.sort_by(|a, b| a.record.call_id.cmp(&b.record.call_id));
        let ids: Vec<&str> = open.iter().map(|r| r.record.call_id.as_str()).collect();
        assert_eq!(ids, ["ringing", "up"]);
        assert!(open.iter().all(|r| r.open && r.call.closed == Closed::EndOfInput));
        // What was seen so far is kept (the answer), but the call has no end.
        assert_eq!((open[1].record.final_code, open[1].record.ended_at), (Some(200), None));
        let c = p.counters();
        assert_eq!(c.calls, BTreeMap::from([("busy".to_string(), 1)]), "open calls have no disposition");
        assert_eq!((c.open, c.finalized, c.total_calls()), (2, 0, 1));
        assert_eq!((c.asr(), c.ner()), (0.0, 1.0), "ASR and NER over finished calls only");
    }

    #[test]
    fn finalize_closes_open_calls_with_their_disposition_so_far() {
        let mut p = Probe::new(settings());
        three_calls(&mut p);
        let closed = p.finish(AtEnd::Finalize);
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|r| !r.open && r.call.closed == Closed::EndOfInput));
        let c = p.counters();
        let expected = [("answered", 1), ("busy", 1), ("no_answer", 1)].map(|(k, v)| (k.to_string(), v));
        assert_eq!(c.calls, BTreeMap::from(expected));
        assert_eq!((c.open, c.finalized, c.total_calls()), (0, 2, 3));
        assert!((c.asr() - 1.0 / 3.0).abs() < 1e-9);
    }

    /// An answered call from 10.0.0.1 (media 10.0.0.1:`port`) with RTP to its media endpoint,
    /// `lose` of every 10 packets lost; returns its record.
    fn call_with_rtp(p: &mut Probe, id: &str, port: u16, lose: u16) -> SipCallRecord {
        let sdp = format!("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio {port} RTP/AVP 0\r\n");
        let invite = format!(
            "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:2125550111@10.0.0.1>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        p.on_datagram(&d(0, "10.0.0.1:5060", &invite));
        let ok = format!(
            "SIP/2.0 200 OK\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n"
        );
        p.on_datagram(&d(100, "10.0.0.2:5060", &ok));
        for seq in 0..200u16 {
            if (1..=lose).contains(&(seq % 10)) {
                continue;
            }
            let mut rtp = vec![0x80u8, 0];
            rtp.extend_from_slice(&seq.to_be_bytes());
            rtp.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            rtp.extend_from_slice(&[0, 0, 0, 42]);
            rtp.extend_from_slice(&[0xff; 160]);
            let dgram = Datagram {
                ts_us: 200_000 + i64::from(seq) * 20_000,
                src: "10.0.0.2:7000".parse().unwrap(),
                dst: format!("10.0.0.1:{port}").parse().unwrap(),
                transport: Transport::Udp,
                payload: &rtp,
            };
            p.on_datagram(&dgram);
        }
        let bye = format!(
            "BYE sip:x@y SIP/2.0\r\nCall-ID: {id}\r\nCSeq: 2 BYE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n"
        );
        let done = p.on_datagram(&d(5000, "10.0.0.1:5060", &bye));
        done.into_iter().next().expect("the BYE ends the call").record
    }

    #[test]
    fn records_carry_the_mos_of_their_worst_stream_and_poor_calls_are_counted() {
        let mut p = Probe::new(settings());
        let clean = call_with_rtp(&mut p, "clean", 6000, 0);
        assert_eq!((clean.rtp_packets, clean.rtp_lost, clean.mos), (Some(200), Some(0), Some(4.41)));
        assert_eq!(p.counters().poor_quality_calls, 0);
        // 10 % lost (G.711): Ie_eff = 95 * 10 / 35.1 = 27.07, R 66.1, MOS 3.41 < 3.6.
        let lossy = call_with_rtp(&mut p, "lossy", 6002, 1);
        assert_eq!(lossy.rtp_lost, Some(20));
        assert_eq!(lossy.mos, Some(3.41));
        assert_eq!(p.counters().poor_quality_calls, 1);
        // The threshold is the operator's: at 3.0 the same call is not poor.
        let mut lenient = Probe::new(ProbeSettings { mos_poor: 3.0, ..settings() });
        call_with_rtp(&mut lenient, "lossy", 6002, 1);
        assert_eq!(lenient.counters().poor_quality_calls, 0);
        // A call without RTP has no MOS and is not counted.
        let invite = "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: quiet\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(0, "192.0.2.9:5060", invite));
        let busy = "SIP/2.0 486 Busy Here\r\nCall-ID: quiet\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        let done = p.on_datagram(&d(10, "10.0.0.2:5060", busy));
        assert_eq!(done[0].record.mos, None);
        assert_eq!(p.counters().poor_quality_calls, 1);
    }

    #[test]
    fn the_ladder_keeps_each_message_of_a_tracked_call_with_its_bytes() {
        let mut p =
            Probe::new(settings()).with_ladder(LadderStore::new(crate::ladder::LadderLimits::recent(10, 1 << 20)));
        let invite = "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: b1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let options = "OPTIONS sip:x SIP/2.0\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(0, "192.0.2.9:5060", &format!("{options}\r\n{invite}")));
        let busy = "SIP/2.0 486 Busy Here\r\nCall-ID: b1\r\nCSeq: 1 INVITE\r\nTo: <sip:x@y>;tag=2\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(p.on_datagram(&d(1500, "10.0.0.2:5060", busy)).len(), 1);
        let ack = "ACK sip:2125550100@10.0.0.2 SIP/2.0\r\nCall-ID: b1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
        p.on_datagram(&d(1501, "192.0.2.9:5060", ack));
        let ladder = p.ladder().unwrap();
        assert!(ladder.call("o1").is_none(), "not a call");
        let call = ladder.call("b1").unwrap();
        assert!(!call.open);
        let texts: Vec<&str> = call.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, [invite, busy, ack], "each message's own bytes, also the ACK after the end");
    }

    #[test]
    fn opened_calls_are_not_kept_without_a_calls_in_progress_hook() {
        let mut p = Probe::new(settings());
        for i in 0..50 {
            let invite = format!(
                "INVITE sip:2125550100@10.0.0.2 SIP/2.0\r\nFrom: <sip:3125550666@192.0.2.9>;tag=1\r\nTo: <sip:2125550100@10.0.0.2>\r\nCall-ID: o{i}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            p.on_datagram(&d(i, "192.0.2.9:5060", &invite));
        }
        assert_eq!(p.tracker().open_calls(), 50);
        assert_eq!(p.counters().requests.get("INVITE"), Some(&50));
        assert!(p.tracker.drain_opened().is_empty(), "the opened-call list is drained as calls open");
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
