//! One SIP message in, one response and one record out. No I/O.
//!
//! Answer rules (RFC 3261 8.2, 8.1.3.4, 21.3; RFC 3581), in order:
//! * not a SIP message, a response, or a request without a Via: dropped (nothing to answer);
//! * ACK: absorbed, nothing sent (it acknowledges a 3xx-6xx sent here);
//! * a source address in no configured client: 403 Forbidden (no decision, no record);
//! * no From, To, Call-ID or CSeq, a CSeq method other than the request's, a branch or Call-ID
//!   over 256 bytes: 400 Bad Request; copied headers over 3 KiB: dropped;
//! * OPTIONS: 200 with Allow and Accept (SBC health checks); CANCEL: 200 if this server
//!   answered the INVITE (same branch, Call-ID, CSeq number, sender) within the window, else
//!   481; any other method but INVITE: 405 with Allow;
//! * INVITE retransmitted within the window: the first answer's bytes again (no decision, no
//!   record, no velocity count);
//! * INVITE with Max-Forwards 0: 483; a Request-URI scheme other than sip/sips/tel: 416; a
//!   Request-URI with characters a Contact cannot carry: 400;
//! * INVITE whose callee (the Request-URI's user part, else the To URI's) is not a number:
//!   404 Not Found, or 484 Address Incomplete when it is digits the dialing plan cannot make
//!   a number of (too short, not a national length); no decision;
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
use tollgate_number::NumberError;
use tollgate_number::uri::number_from_uri;
use tollgate_policy::Decision;
use tollgate_records::{Protocol, Record, Transport};
use tollgate_sip::message::{HeaderName, Method, parse_one};
use tollgate_sip::uri::{name_addr, user_part};

use self::answer::{Renderer, SipAnswer};
use self::request::{MAX_COPIED, Request, check_request_uri, uri_host};
use self::response::{ALLOW, Status, build};
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
    /// A request from an address outside every configured client: 403.
    Forbidden,
    /// A request missing what a response needs, or otherwise malformed, answered 400.
    BadRequest,
    /// An INVITE answered without a decision: 483 (Max-Forwards 0), 416 (not a sip, sips or
    /// tel Request-URI), 404 or 484 (the callee is not a number).
    NotDecided,
    /// Not answerable (not SIP, a response, no Via, headers too long to copy): dropped.
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
        let window = Window::new(Duration::from_secs(config.retransmission_window_secs), config.retransmission_entries);
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
    /// (`retransmission_entries`): a retransmission of one would be decided again.
    pub fn retransmissions_evicted(&self) -> u64 {
        self.window.evicted()
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
        if req.copied_len() > MAX_COPIED {
            return Handled::nothing(Outcome::Dropped);
        }
        let Some(client) = self.config.client(ctx.peer.ip()) else {
            return self.answer(&req, ctx, Outcome::Forbidden, Status { code: 403, headers: &[] });
        };
        if let Some(problem) = req.malformed() {
            return self.answer(
                &req,
                ctx,
                Outcome::BadRequest,
                Status { code: 400, headers: &[("Warning", &warning(problem))] },
            );
        }
        match req.method {
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
        if let Err(code) = check_request_uri(req.uri) {
            return self.answer(req, ctx, Outcome::NotDecided, Status { code, headers: &[] });
        }
        let plan = self.responder.plan();
        let callee_uri = match user_part(req.uri) {
            Some(_) => req.uri,
            None => name_addr(req.header(HeaderName::To).unwrap_or("")).uri,
        };
        let destination = match number_from_uri(callee_uri, plan) {
            Ok(number) => number,
            Err(e) => {
                let code = match e {
                    NumberError::TooShort { .. } | NumberError::NotInPlan { .. } => 484,
                    _ => 404,
                };
                return self.answer(req, ctx, Outcome::NotDecided, Status { code, headers: &[] });
            }
        };
        let caller = req.header(HeaderName::PAssertedIdentity).or_else(|| req.header(HeaderName::From)).unwrap_or("");
        let source = number_from_uri(name_addr(caller).uri, plan).ok();
        let renderer = Renderer {
            answers: &self.config.answers,
            client,
            intercepts: &self.responder.config().intercepts,
            ruri: req.uri,
            ruri_host: uri_host(req.uri),
        };
        let query = QueryContext { peer: ctx.peer, transport: ctx.transport, received: ctx.received, now: ctx.now };
        let decided = self.responder.decide(destination, source, &query, |d, call| renderer.render(d, call));
        let fail_open = decided.fail_open || decided.rendered.is_none();
        let answer = decided.rendered.unwrap_or_else(|| SipAnswer::builtin_allow(req.uri));
        let contact;
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(1);
        if let Some(uri) = &answer.contact {
            contact = format!("<{uri}>");
            headers.push(("Contact", &contact));
        }
        if let Some(reason) = &answer.reason {
            headers.push(("Reason", reason));
        }
        let outcome = if fail_open { Outcome::FailOpen } else { Outcome::Decision };
        let mut handled = self.answer(req, ctx, outcome, Status { code: answer.code, headers: &headers });
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

    /// A response to `req`, sent where RFC 3261 18.2.2 and RFC 3581 say.
    fn answer(&self, req: &Request<'_>, ctx: &RequestContext, outcome: Outcome, status: Status<'_>) -> Handled {
        let bytes = build(req, ctx.peer, status);
        let to = match ctx.transport {
            Transport::Tcp => ctx.peer,
            Transport::Udp if req.top.rport => ctx.peer,
            Transport::Udp => SocketAddr::new(ctx.peer.ip(), req.top.port.filter(|p| *p != 0).unwrap_or(5060)),
        };
        Handled { outcome, response: Some((bytes, to)), record: None, decision: None }
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
