//! One SIP message in, one response and one record out. No I/O.
//!
//! Answer rules (RFC 3261 8.2, 8.1.3.4, 21.3; RFC 3581), in order:
//! * not a SIP message, a response, or a request without a Via: dropped (nothing to answer);
//! * ACK: absorbed, nothing sent (it acknowledges a 3xx-6xx sent here);
//! * a source address in no configured client: no decision, no record; over UDP dropped
//!   unanswered (a forgeable source must not get a larger answer reflected onto it) unless
//!   `answer_strangers` is on, else 403 Forbidden;
//! * copied headers (Vias, From, To, Call-ID, CSeq) over 3 KiB: 513 Message Too Large with only
//!   the top Via and the short dialog headers (not kept for retransmissions; dropped when the
//!   top Via itself is over 512 bytes);
//! * no From, To, Call-ID or CSeq, a CSeq method other than the request's, a branch or Call-ID
//!   over 256 bytes, a UDP datagram shorter than its Content-Length (RFC 3261 18.3): 400 Bad
//!   Request;
//! * OPTIONS: 200 with Allow and Accept (SBC health checks); CANCEL: 200 if this server
//!   answered the INVITE (same branch, Call-ID, CSeq number, sender) within the window, else
//!   481; any other method but INVITE: 405 with Allow;
//! * INVITE whose To has a tag (a re-INVITE within a dialog this stateless server is not part
//!   of): 481 (RFC 3261 12.2.2), no decision, no count;
//! * INVITE retransmitted within the window: the first answer's bytes again (no decision, no
//!   record, no velocity count);
//! * INVITE with Max-Forwards 0: 483; a Request-URI scheme other than sip/sips/tel/urn: 416;
//!   a Request-URI with characters a Contact cannot carry: 400;
//! * INVITE whose callee (the Request-URI's user part, else the To URI's) is not a number
//!   (`urn:service:sos`, 911, 112, N11 and other short codes, a name): the client's allow
//!   answer, continuing the call as dialled (the number placeholders empty; an answer that
//!   needs the number is replaced by a 302 to the Request-URI); no decision, no record, no
//!   velocity count: refusing emergency calls would be the opposite of fail-open;
//! * INVITE: decided by the engine's policy ([`Responder::decide`]: the same rules, velocity
//!   counters and record as ENUM) with the caller from P-Asserted-Identity, else From (an
//!   unreadable caller: decided without one), and answered with the action's answer; if
//!   anything fails, the allow answer (fail-open).
//!
//! Every response copies the Vias in order (the top one with `received` and `rport`), From,
//! To (with a tag derived from the branch and Call-ID when it had none), Call-ID and CSeq,
//! and ends with `Content-Length: 0`. Over UDP it goes to the source address and port when
//! the top Via has `rport`, else to the source address at the Via's sent-by port (5060 when
//! none; `maddr` is ignored, so no answer can be aimed at a third party).

mod answer;
mod request;
mod response;
mod window;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tollgate_enum::{QueryContext, Responder};
use tollgate_number::uri::number_from_uri;
use tollgate_policy::Decision;
use tollgate_records::{Protocol, Record, Transport};
use tollgate_sip::message::{HeaderName, Method, parse_one};
use tollgate_sip::uri::{name_addr, user_part};

use self::answer::{Renderer, SipAnswer};
use self::request::{MAX_COPIED, Request, check_contact_uri, is_urn, uri_host};
use self::response::{ALLOW, Status, build, build_minimal};
use self::window::{Key, Seen, Window};
use crate::config::{ClientConfig, RedirectConfig};

/// Where and how a message arrived.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// The sender's address (for UDP, the datagram's source; for TCP, the connection's peer).
    pub peer: SocketAddr,
    /// The address the message arrived on (this server's listen address).
    pub local: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// When the message was received, as early as known (latency in the record).
    pub received: Instant,
    /// Wall-clock time of receipt (time windows, the record).
    pub now: DateTime<Utc>,
}

/// What was done with one message, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// An INVITE decided by the policy and answered.
    Decision,
    /// An INVITE answered with the allow answer after an internal failure.
    FailOpen,
    /// A retransmitted INVITE (or CANCEL) answered again with the first answer's bytes.
    Retransmission,
    /// An ACK (for a 3xx-6xx this server sent): absorbed, nothing sent.
    Ack,
    /// OPTIONS answered 200.
    Options,
    /// CANCEL answered (200 for an INVITE answered here, 481 otherwise).
    Cancel,
    /// A method other than INVITE, ACK, CANCEL, OPTIONS: 405.
    MethodNotAllowed,
    /// A request from an address outside every configured client: dropped (UDP, unless
    /// `answer_strangers`) or 403.
    Forbidden,
    /// A request missing what a response needs, or otherwise malformed, answered 400; or one
    /// whose headers are too long to copy, answered 513.
    BadRequest,
    /// An INVITE answered without a decision: 481 (a re-INVITE), 483 (Max-Forwards 0), 416 (not a sip, sips, tel
    /// or urn Request-URI), or the allow answer, continuing as dialled (the callee is not a
    /// number: an emergency or short code, a service URN, a name).
    NotDecided,
    /// Not answerable (not SIP, a response, no Via, a stranger's or a top Via too long to
    /// copy): dropped.
    Dropped,
}

impl Outcome {
    /// Lowercase label (for metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Decision => "decision",
            Outcome::FailOpen => "fail_open",
            Outcome::Retransmission => "retransmission",
            Outcome::Ack => "ack",
            Outcome::Options => "options",
            Outcome::Cancel => "cancel",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::Forbidden => "forbidden",
            Outcome::BadRequest => "bad_request",
            Outcome::NotDecided => "not_decided",
            Outcome::Dropped => "dropped",
        }
    }
}

/// One message handled.
#[derive(Debug)]
pub struct Handled {
    /// What was done.
    pub outcome: Outcome,
    /// The response to send, if any: its bytes and, for UDP, where to send it (RFC 3261 18.2.2,
    /// RFC 3581 rport).
    pub response: Option<(Vec<u8>, SocketAddr)>,
    /// The decision's record (INVITEs decided here, not their retransmissions).
    pub record: Option<Record>,
    /// The decision (for tests and `lookup`).
    pub decision: Option<Decision>,
}

/// Answers SIP requests with the policy's decisions.
pub struct Redirector {
    config: RedirectConfig,
    responder: Arc<Responder>,
    window: Window,
}

impl Redirector {
    /// A redirector for a validated configuration, deciding through the engine's responder
    /// (its policy, dialing plan, intercepts, devices and velocity counters).
    pub fn new(config: RedirectConfig, responder: Arc<Responder>) -> Self {
        let window = Window::new(
            Duration::from_secs(config.retransmission_window_secs),
            config.retransmission_entries,
            usize::try_from(config.retransmission_max_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        );
        Redirector { config, responder, window }
    }

    /// The configuration.
    pub fn config(&self) -> &RedirectConfig {
        &self.config
    }

    /// The ENUM responder deciding the calls.
    pub fn responder(&self) -> &Arc<Responder> {
        &self.responder
    }

    /// INVITE answers forgotten before their window ended, to keep the window's bounds
    /// (`retransmission_entries`, `retransmission_max_mb`): a retransmission of one would be
    /// decided again.
    pub fn retransmissions_evicted(&self) -> u64 {
        self.window.evicted()
    }

    /// Bytes of the INVITE answers (and their keys) kept in the retransmission window now, as
    /// bounded by `retransmission_max_mb`.
    pub fn retransmissions_bytes(&self) -> usize {
        self.window.bytes()
    }

    /// INVITE answers kept in the retransmission window now.
    pub fn retransmissions_kept(&self) -> usize {
        self.window.len()
    }

    /// Handles one message (a datagram's, or one framed from a TCP stream).
    pub fn handle(&self, message: &[u8], ctx: &RequestContext) -> Handled {
        let Ok((message, _)) = parse_one(message) else { return Handled::nothing(Outcome::Dropped) };
        let Some(req) = Request::read(message) else { return Handled::nothing(Outcome::Dropped) };
        if req.method == Method::Ack {
            return Handled::nothing(Outcome::Ack);
        }
        let Some(client) = self.config.client(ctx.peer.ip()) else {
            if ctx.transport == Transport::Udp && !self.config.answer_strangers {
                // A forgeable source: no answer to reflect onto it.
                return Handled::nothing(Outcome::Forbidden);
            }
            if req.copied_len() > MAX_COPIED {
                return Handled::nothing(Outcome::Dropped);
            }
            return self.answer(&req, ctx, Outcome::Forbidden, Status { code: 403, headers: &[] });
        };
        if req.copied_len() > MAX_COPIED {
            // Too long to copy into an answer (or to keep for retransmissions): 513 with only
            // the top Via and the short dialog headers, never kept in the window.
            let Some(bytes) = build_minimal(&req, ctx.peer, Status { code: 513, headers: &[] }) else {
                return Handled::nothing(Outcome::Dropped);
            };
            return Handled {
                outcome: Outcome::BadRequest,
                response: Some((bytes, self.send_to(&req, ctx))),
                record: None,
                decision: None,
            };
        }
        if let Some(problem) = req.malformed() {
            return self.answer(
                &req,
                ctx,
                Outcome::BadRequest,
                Status { code: 400, headers: &[("Warning", &warning(problem))] },
            );
        }
        match req.method {
            // A re-INVITE (its To has a tag) belongs to a dialog this stateless server is not
            // part of (RFC 3261 12.2.2): 481, no decision, no count.
            Method::Invite if req.header(HeaderName::To).and_then(|to| name_addr(to).tag).is_some() => {
                self.answer(&req, ctx, Outcome::NotDecided, Status { code: 481, headers: &[] })
            }
            Method::Invite => self.invite(&req, client, ctx),
            Method::Options => self.answer(
                &req,
                ctx,
                Outcome::Options,
                Status { code: 200, headers: &[("Allow", ALLOW), ("Accept", "application/sdp")] },
            ),
            Method::Cancel => {
                let code = if self.window.contains(&key(&req, ctx), ctx.received) { 200 } else { 481 };
                self.answer(&req, ctx, Outcome::Cancel, Status { code, headers: &[] })
            }
            _ => self.answer(&req, ctx, Outcome::MethodNotAllowed, Status { code: 405, headers: &[("Allow", ALLOW)] }),
        }
    }

    /// An INVITE: its retransmission, or a decision (or a reason not to decide).
    fn invite(&self, req: &Request<'_>, client: &ClientConfig, ctx: &RequestContext) -> Handled {
        let key = key(req, ctx);
        match self.window.check(&key, ctx.received) {
            Seen::Answered(bytes, to) => {
                return Handled {
                    outcome: Outcome::Retransmission,
                    response: Some((bytes, to)),
                    record: None,
                    decision: None,
                };
            }
            Seen::InProgress => return Handled::nothing(Outcome::Retransmission),
            Seen::New => {}
        }
        let handled = self.decide(req, client, ctx);
        match &handled.response {
            Some((bytes, to)) => self.window.answered(&key, bytes, *to),
            None => self.window.forget(&key),
        }
        handled
    }

    fn decide(&self, req: &Request<'_>, client: &ClientConfig, ctx: &RequestContext) -> Handled {
        if req.max_forwards() == Some(0) {
            return self.answer(req, ctx, Outcome::NotDecided, Status { code: 483, headers: &[] });
        }
        if let Err(code) = check_contact_uri(req.uri) {
            return self.answer(req, ctx, Outcome::NotDecided, Status { code, headers: &[] });
        }
        let plan = self.responder.plan();
        let caller = req.header(HeaderName::PAssertedIdentity).or_else(|| req.header(HeaderName::From)).unwrap_or("");
        let source = number_from_uri(name_addr(caller).uri, plan).ok();
        let renderer = Renderer {
            answers: &self.config.answers,
            client,
            intercepts: &self.responder.config().intercepts,
            ruri: req.uri,
            ruri_host: uri_host(req.uri),
        };
        let callee_uri = match user_part(req.uri) {
            Some(_) => req.uri,
            None => name_addr(req.header(HeaderName::To).unwrap_or("")).uri,
        };
        let number = if is_urn(req.uri) { None } else { number_from_uri(callee_uri, plan).ok() };
        let Some(destination) = number else {
            // Emergency (urn:service:sos, 911, 112), N11 and short codes, names: not the
            // policy's to decide; refusing them would be the opposite of fail-open.
            let source = source.map(|s| s.to_string()).unwrap_or_default();
            let answer = renderer.render_continue(&source).unwrap_or_else(|| SipAnswer::builtin_allow(req.uri));
            return self.send_answer(req, ctx, Outcome::NotDecided, &answer);
        };
        let query = QueryContext { peer: ctx.peer, transport: ctx.transport, received: ctx.received, now: ctx.now };
        let decided = self.responder.decide(destination, source, &query, |d, call| renderer.render(d, call));
        let fail_open = decided.fail_open || decided.rendered.is_none();
        let answer = decided.rendered.unwrap_or_else(|| SipAnswer::builtin_allow(req.uri));
        let outcome = if fail_open { Outcome::FailOpen } else { Outcome::Decision };
        let mut handled = self.send_answer(req, ctx, outcome, &answer);
        let mut record = decided.record;
        record.protocol = Protocol::Sip;
        record.client = client.name.clone();
        record.fail_open = fail_open;
        record.rcode = answer.code.to_string();
        let latency = Instant::now().checked_duration_since(ctx.received).unwrap_or_default();
        record.latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        record.stale = latency.as_millis() >= u128::from(self.responder.config().stale_after_ms);
        handled.record = Some(Record::enum_query(record));
        handled.decision = Some(decided.decision);
        handled
    }

    /// A rendered answer (its Contact and Reason) as the response to `req`.
    fn send_answer(&self, req: &Request<'_>, ctx: &RequestContext, outcome: Outcome, answer: &SipAnswer) -> Handled {
        let contact;
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if let Some(uri) = &answer.contact {
            contact = format!("<{uri}>");
            headers.push(("Contact", &contact));
        }
        if let Some(reason) = &answer.reason {
            headers.push(("Reason", reason));
        }
        self.answer(req, ctx, outcome, Status { code: answer.code, headers: &headers })
    }

    /// A response to `req`, sent where RFC 3261 18.2.2 and RFC 3581 say.
    fn answer(&self, req: &Request<'_>, ctx: &RequestContext, outcome: Outcome, status: Status<'_>) -> Handled {
        let bytes = build(req, ctx.peer, status);
        Handled { outcome, response: Some((bytes, self.send_to(req, ctx))), record: None, decision: None }
    }

    /// Where a response to `req` goes (RFC 3261 18.2.2, RFC 3581).
    fn send_to(&self, req: &Request<'_>, ctx: &RequestContext) -> SocketAddr {
        match ctx.transport {
            Transport::Tcp => ctx.peer,
            Transport::Udp if req.top.rport => ctx.peer,
            Transport::Udp => SocketAddr::new(ctx.peer.ip(), req.top.port.filter(|p| *p != 0).unwrap_or(5060)),
        }
    }
}

impl Handled {
    fn nothing(outcome: Outcome) -> Self {
        Handled { outcome, response: None, record: None, decision: None }
    }
}

/// The retransmission window's key of a request (a CANCEL's is its INVITE's).
fn key(req: &Request<'_>, ctx: &RequestContext) -> Key {
    Key {
        branch: req.top.branch.unwrap_or("").into(),
        call_id: req.header(HeaderName::CallId).unwrap_or("").into(),
        cseq: req.message.cseq().map_or(0, |(n, _)| n),
        sender: ctx.peer,
    }
}

/// A Warning header (RFC 3261 20.43) saying what was wrong with a request.
fn warning(problem: &str) -> String {
    format!("399 tollgate \"{problem}\"")
}
