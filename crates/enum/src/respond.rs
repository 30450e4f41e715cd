//! One DNS query in, one answer and one record out. No I/O.
//!
//! Answer rules:
//! * fewer than 12 bytes, or a message with QR=1: no answer (nothing to reply to, or a reply);
//! * undecodable message: FORMERR; opcode other than QUERY: NOTIMP; not exactly one question:
//!   FORMERR; EDNS version above 0: BADVERS; class other than IN: REFUSED;
//! * the health-check name: A 127.0.0.1 / TXT "tollgate ok" (NODATA for other types);
//! * a name outside every suffix: REFUSED (tollgate is not a resolver);
//! * a name under a suffix that is not a valid number: NXDOMAIN;
//! * a valid number, type other than NAPTR/ANY: NOERROR with no answer (NODATA);
//! * a valid number, NAPTR: the policy's decision rendered by the action's template. If
//!   evaluation or rendering fails in any way, the allow answer is sent (fail-open) and the
//!   record says so.
//!
//! The calling number comes from the EDNS0 Source-URI option, else from the query-name label
//! `src-<digits>`, whose digits are an E.164 number, country code first, with no dialing plan
//! applied (`src-442079460000` is +44 20 7946 0000), unless `source_label_numbers =
//! "dialing-plan"`. A caller that cannot be read is not guessed: the call is decided without
//! one and [`Answered::unreadable_source`] says what was sent.
//!
//! Two paths give these answers: the fast path (module `fast`) parses the common query in
//! place and writes its answer into a reused buffer; hickory-proto decodes and encodes every
//! other query, and is the reference the fast path must equal byte for byte. Both ask the
//! policy and render the answer through the same code (`Responder::evaluate`).
//!
//! Latency is measured from [`QueryContext::received`], which the listeners set to the moment
//! the kernel received the packet; an answer ready later than `stale_after_ms` after it is
//! [`Answered::stale`], and so is its record.

use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, NAPTR, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tollgate_number::enum_name::{Suffix, number_from_reversed_labels, strip_suffix};
use tollgate_number::uri::number_from_uri;
use tollgate_number::{DialingPlan, E164};
use tollgate_policy::velocity::PeekOnly;
use tollgate_policy::{
    Action, CallQuery, Decision, InstalledPolicy, RedirectTarget, Termination, VelocityCounters, VelocityTable,
};
use tollgate_records::{EnumQueryRecord, Record as SpoolRecord, Transport};

use crate::config::{AnswerTemplate, EnumConfig, NoRecord, SourceLabelNumbers};
use crate::template::Values;

mod fast;

/// The EDNS payload size tollgate advertises (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// Where and how a query arrived.
#[derive(Debug, Clone, Copy)]
pub struct QueryContext {
    /// The client's address.
    pub peer: SocketAddr,
    /// UDP or TCP (UDP answers are size-limited and may be truncated).
    pub transport: Transport,
    /// When the packet was received, as early as known (the kernel's receive time for UDP),
    /// for the latency in the record and the stale bound.
    pub received: Instant,
    /// Wall-clock time of receipt (for time windows and the record).
    pub now: DateTime<Utc>,
}

/// The class of an answer, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A policy decision was answered.
    Decision,
    /// Decision answered with the allow answer after an internal failure.
    FailOpen,
    /// The health-check name.
    Health,
    /// A number under a suffix, asked for a type other than NAPTR.
    NoData,
    /// Under a suffix but not a number.
    NxDomain,
    /// Outside every suffix, or not class IN.
    Refused,
    /// Undecodable or malformed.
    FormErr,
    /// Opcode not supported.
    NotImp,
    /// EDNS version not supported.
    BadVers,
}

impl Outcome {
    /// Lowercase label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Decision => "decision",
            Outcome::FailOpen => "fail_open",
            Outcome::Health => "health",
            Outcome::NoData => "nodata",
            Outcome::NxDomain => "nxdomain",
            Outcome::Refused => "refused",
            Outcome::FormErr => "formerr",
            Outcome::NotImp => "notimp",
            Outcome::BadVers => "badvers",
        }
    }
}

/// A finished answer.
#[derive(Debug)]
pub struct Answered {
    /// Wire bytes to send (without the TCP length prefix).
    pub bytes: Vec<u8>,
    /// The record of the decision, for queries that reached the policy.
    pub record: Option<SpoolRecord>,
    /// The class of answer.
    pub outcome: Outcome,
    /// The decision, when the policy was asked (for `lookup` and tests).
    pub decision: Option<Decision>,
    /// The answer was ready later than `stale_after_ms` after the query was received: the
    /// SBC most likely gave up on it.
    pub stale: bool,
    /// A calling number the query carried that is not a number (the `src-` label's text or
    /// the Source-URI): the call was decided without a caller.
    pub unreadable_source: Option<String>,
    /// Answered by the fast path (not hickory-proto), for the path metric.
    pub fast_path: bool,
}

/// Turns queries into answers using the installed policy.
pub struct Responder {
    config: EnumConfig,
    suffixes: Vec<Suffix>,
    health_name: String,
    plan: DialingPlan,
    policy: Arc<InstalledPolicy>,
    node: String,
    soa: Record,
    velocity: Arc<VelocityTable>,
    /// What the fast path writes verbatim (built from the same configuration and SOA).
    templates: fast::Templates,
}

/// The header fields read before decoding, so even undecodable queries get an answer.
#[derive(Debug, Clone, Copy)]
struct Head {
    id: u16,
    op_code: OpCode,
    rd: bool,
}

/// Why a query name did not yield a call.
enum NameError {
    Outside,
    NotANumber,
}

/// The calling number a query carried, in the query name or an EDNS option.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// None was sent.
    Absent,
    /// A number.
    Number(E164),
    /// Something that is not a number (the text sent).
    Unreadable(String),
}

impl Caller {
    /// The caller of a query that carried `option` (EDNS0) and `label` (query name): the
    /// option wins over the label; an unreadable one does not hide a readable one.
    fn pick(option: Caller, label: Caller) -> Caller {
        match (option, label) {
            (Caller::Number(n), _) | (_, Caller::Number(n)) => Caller::Number(n),
            (Caller::Absent, label) => label,
            (unreadable, _) => unreadable,
        }
    }

    fn number(&self) -> Option<E164> {
        match self {
            Caller::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl Responder {
    /// A responder for a validated configuration. `node` names this engine in records.
    pub fn new(config: EnumConfig, plan: DialingPlan, policy: Arc<InstalledPolicy>, node: impl Into<String>) -> Self {
        let suffixes = config.parsed_suffixes();
        let mut health_name = config.health_check_name.to_ascii_lowercase();
        if !health_name.ends_with('.') {
            health_name.push('.');
        }
        let apex = suffixes.first().map(|s| s.as_str().to_string()).unwrap_or_else(|| "e164.arpa.".into());
        let name = |s: &str| Name::from_ascii(s).unwrap_or_else(|_| Name::root());
        let soa = Record::from_rdata(
            name(&apex),
            config.soa.negative_ttl,
            RData::SOA(SOA::new(
                name(&config.soa.mname),
                name(&config.soa.rname),
                1,
                3600,
                600,
                86400,
                config.soa.negative_ttl,
            )),
        );
        let templates = fast::Templates::new(&config, &soa);
        Responder {
            templates,
            config,
            suffixes,
            health_name,
            plan,
            policy,
            node: node.into(),
            soa,
            velocity: Arc::new(VelocityTable::default()),
        }
    }

    /// Uses `table` for the velocity counters (shared with SRP checkpointing) instead of a
    /// private one.
    pub fn with_velocity(mut self, table: Arc<VelocityTable>) -> Self {
        self.velocity = table;
        self
    }

    /// The velocity counters.
    pub fn velocity(&self) -> &Arc<VelocityTable> {
        &self.velocity
    }

    /// The installed policy this responder asks.
    pub fn policy(&self) -> &Arc<InstalledPolicy> {
        &self.policy
    }

    /// The configuration.
    pub fn config(&self) -> &EnumConfig {
        &self.config
    }

    /// The dialing plan calling and called numbers are normalised with.
    pub fn plan(&self) -> &DialingPlan {
        &self.plan
    }

    /// This engine's node name (the records' `device`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Answers one query. Returns `None` when nothing should be sent back.
    ///
    /// The common query is answered by the fast path ([`Responder::respond_fast`]), everything
    /// else by hickory-proto ([`Responder::respond_hickory`]); both give the same bytes.
    pub fn respond(&self, packet: &[u8], ctx: &QueryContext) -> Option<Answered> {
        self.respond_reusing(packet, ctx, Vec::new())
    }

    /// Answers one query as [`Responder::respond`] does, writing a fast-path answer into `buf`
    /// (cleared first; its capacity is reused): a listener passes the previous answer's
    /// [`Answered::bytes`] back in, so the common query allocates no answer buffer.
    pub fn respond_reusing(&self, packet: &[u8], ctx: &QueryContext, buf: Vec<u8>) -> Option<Answered> {
        self.respond_counting(packet, ctx, &*self.velocity, buf)
    }

    /// Answers one query as [`Responder::respond`] would, without counting it in the velocity
    /// counters (for `lookup`: asking must not change the answer of the next real call).
    pub fn respond_without_counting(&self, packet: &[u8], ctx: &QueryContext) -> Option<Answered> {
        self.respond_counting(packet, ctx, &PeekOnly(&*self.velocity), Vec::new())
    }

    /// Answers one query with hickory-proto only, never the fast path: the reference the fast
    /// path is tested and fuzzed against. Listeners use [`Responder::respond`].
    pub fn respond_hickory(&self, packet: &[u8], ctx: &QueryContext) -> Option<Answered> {
        self.hickory_counting(packet, ctx, &*self.velocity)
    }

    fn respond_counting(
        &self,
        packet: &[u8],
        ctx: &QueryContext,
        counters: &dyn VelocityCounters,
        buf: Vec<u8>,
    ) -> Option<Answered> {
        match self.fast_counting(packet, ctx, counters, buf) {
            Ok(answer) => Some(answer),
            Err(_) => self.hickory_counting(packet, ctx, counters),
        }
    }

    fn hickory_counting(&self, packet: &[u8], ctx: &QueryContext, counters: &dyn VelocityCounters) -> Option<Answered> {
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return None;
        }
        let head = Head {
            id: u16::from_be_bytes([packet[0], packet[1]]),
            op_code: OpCode::from_u8((packet[2] >> 3) & 0x0f),
            rd: packet[2] & 0x01 != 0,
        };
        let Ok(req) = Message::from_vec(packet) else {
            return Some(self.error(head, None, None, ResponseCode::FormErr, ctx));
        };
        let edns = req.edns.as_ref();
        if req.metadata.op_code != OpCode::Query {
            return Some(self.error(head, req.queries.first(), edns, ResponseCode::NotImp, ctx));
        }
        if req.queries.len() != 1 {
            return Some(self.error(head, None, edns, ResponseCode::FormErr, ctx));
        }
        let query = &req.queries[0];
        if edns.is_some_and(|e| e.version() > 0) {
            return Some(self.error(head, Some(query), edns, ResponseCode::BADVERS, ctx));
        }
        if query.query_class() != DNSClass::IN {
            return Some(self.error(head, Some(query), edns, ResponseCode::Refused, ctx));
        }
        let name = query.name().to_ascii().to_ascii_lowercase();
        if name == self.health_name {
            return Some(self.health(&req, query, ctx));
        }
        let (destination, label_source) = match self.parse_name(&name) {
            Ok(parsed) => parsed,
            Err(NameError::Outside) => {
                return Some(self.error(head, Some(query), edns, ResponseCode::Refused, ctx));
            }
            Err(NameError::NotANumber) => {
                let mut resp = self.response(&req, ResponseCode::NXDomain);
                resp.add_authority(self.soa.clone());
                return Some(self.finish(resp, edns, ctx, None, Outcome::NxDomain, None));
            }
        };
        if !matches!(query.query_type(), RecordType::NAPTR | RecordType::ANY) {
            let mut resp = self.response(&req, ResponseCode::NoError);
            resp.add_authority(self.soa.clone());
            return Some(self.finish(resp, edns, ctx, None, Outcome::NoData, None));
        }
        let caller = Caller::pick(self.edns_source(edns), label_source);
        let mut answer = self.decide_query(&req, query, destination, caller.number(), ctx, counters);
        if let Caller::Unreadable(text) = caller {
            answer.unreadable_source = Some(text);
        }
        Some(answer)
    }

    /// Evaluates the call and renders its answer: the decision-to-answer step both the hickory
    /// path and the fast path (`fast`) encode. Counts the call in `counters` once.
    fn evaluate(
        &self,
        destination: E164,
        source: Option<E164>,
        ctx: &QueryContext,
        counters: &dyn VelocityCounters,
    ) -> Evaluated {
        let Decided { decision, rendered, fail_open, record } =
            self.decide_counting(destination, source, ctx, counters, |d, c| self.render(d, c));
        Evaluated { decision, rendered: rendered.unwrap_or(Rendered::NoRecord), fail_open, record }
    }

    /// Decides one call with the installed policy, counting it once in the engine's velocity
    /// counters, and renders the decision with `render` (the protocol's own answer: a NAPTR
    /// for ENUM, a SIP response for the redirect server). Evaluation and rendering run under
    /// `catch_unwind`; if either fails (a panic, or `render` returning `None`), the call is
    /// answered with the allow decision rendered by `render` (fail-open) and
    /// [`Decided::fail_open`] says so. The record is complete but for what only the answer
    /// knows (`rcode`, `latency_us`, `stale`) and its protocol (ENUM).
    pub fn decide<R>(
        &self,
        destination: E164,
        source: Option<E164>,
        ctx: &QueryContext,
        render: impl Fn(&Decision, &CallQuery) -> Option<R>,
    ) -> Decided<R> {
        self.decide_counting(destination, source, ctx, &*self.velocity, render)
    }

    fn decide_counting<R>(
        &self,
        destination: E164,
        source: Option<E164>,
        ctx: &QueryContext,
        counters: &dyn VelocityCounters,
        render: impl Fn(&Decision, &CallQuery) -> Option<R>,
    ) -> Decided<R> {
        let call = CallQuery { source, destination, at: ctx.now };
        let active = self.policy.guard();
        let version = active.version;
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            let decision = active.policy.evaluate_with(&call, counters);
            let answer = render(&decision, &call);
            (decision, answer)
        }));
        let (decision, rendered, fail_open) = match attempt {
            Ok((decision, Some(answer))) => (decision, Some(answer), false),
            Ok((decision, None)) => {
                let allow = Decision::default_allow(decision.direction);
                let answer = catch_unwind(AssertUnwindSafe(|| render(&allow, &call))).ok().flatten();
                (allow, answer, true)
            }
            Err(_) => {
                let allow = Decision::default_allow(tollgate_policy::Direction::Transit);
                let answer = catch_unwind(AssertUnwindSafe(|| render(&allow, &call))).ok().flatten();
                (allow, answer, true)
            }
        };
        let record = EnumQueryRecord {
            id: ulid::Ulid::new(),
            time: ctx.now,
            device: self.node.clone(),
            client: self
                .config
                .device_name(ctx.peer.ip())
                .map(str::to_string)
                .unwrap_or_else(|| ctx.peer.ip().to_string()),
            client_addr: ctx.peer,
            transport: ctx.transport,
            source,
            destination,
            direction: decision.direction.as_str().to_string(),
            rule: decision.rule.as_ref().map(|r| r.name.to_string()),
            action: decision.action.name().to_string(),
            detail: action_detail(&decision.action),
            rcode: String::new(),
            fail_open,
            latency_us: 0,
            stale: false,
            policy_version: version,
            protocol: Default::default(),
        };
        Decided { decision, rendered, fail_open, record }
    }

    /// The response code of a "no record" answer.
    fn no_record_rcode(&self) -> ResponseCode {
        match self.config.no_record {
            NoRecord::Nxdomain => ResponseCode::NXDomain,
            NoRecord::Nodata => ResponseCode::NoError,
        }
    }

    /// Encodes an evaluated call with hickory-proto.
    fn answer_evaluated(&self, req: &Message, query: &Query, evaluated: Evaluated, ctx: &QueryContext) -> Answered {
        let Evaluated { decision, rendered, fail_open, record } = evaluated;
        let resp = match rendered {
            Rendered::Naptr(regexp) => {
                let mut resp = self.response(req, ResponseCode::NoError);
                let naptr = &self.config.naptr;
                let rdata = NAPTR::new(
                    naptr.order,
                    naptr.preference,
                    naptr.flags.as_bytes().into(),
                    naptr.service.as_bytes().into(),
                    regexp.into_bytes().into_boxed_slice(),
                    Name::root(),
                );
                resp.add_answer(Record::from_rdata(query.name().clone(), self.config.ttl, RData::NAPTR(rdata)));
                resp
            }
            Rendered::NoRecord => {
                let mut resp = self.response(req, self.no_record_rcode());
                resp.add_authority(self.soa.clone());
                resp
            }
        };
        let outcome = if fail_open { Outcome::FailOpen } else { Outcome::Decision };
        self.finish(resp, req.edns.as_ref(), ctx, Some(record), outcome, Some(decision))
    }

    fn decide_query(
        &self,
        req: &Message,
        query: &Query,
        destination: E164,
        source: Option<E164>,
        ctx: &QueryContext,
        counters: &dyn VelocityCounters,
    ) -> Answered {
        let evaluated = self.evaluate(destination, source, ctx, counters);
        self.answer_evaluated(req, query, evaluated, ctx)
    }

    /// Renders a decision; `None` if the action's template cannot be filled (a fail-open case).
    fn render(&self, decision: &Decision, call: &CallQuery) -> Option<Rendered> {
        let answers = &self.config.answers;
        let dest = call.destination.to_string();
        let source = call.source.map(|s| s.to_string()).unwrap_or_default();
        let rule = decision.rule.as_ref().map(|r| r.name.as_ref()).unwrap_or("");
        let mut values = Values { dest: &dest, source: &source, rule, ..Default::default() };
        let target_text;
        let template = match &decision.action {
            Action::Allow => &answers.allow,
            Action::Terminate(Termination::Intercept(name)) => {
                values.intercept = self.config.intercepts.get(name.as_ref())?.as_str();
                &answers.terminate
            }
            Action::Terminate(Termination::Reject(code)) => {
                values.cause = Some(*code);
                &answers.reject
            }
            Action::Redirect(target) => {
                target_text = target.to_string();
                values.target = &target_text;
                match target {
                    RedirectTarget::Number(_) => &answers.redirect,
                    RedirectTarget::Uri(_) => &answers.redirect_uri,
                }
            }
        };
        match template {
            AnswerTemplate::NoRecord => Some(Rendered::NoRecord),
            AnswerTemplate::Naptr { uri } => {
                let mut text = String::with_capacity(64);
                uri.render_into(&values, &mut text);
                if text.is_empty() || text.contains('!') || text.contains('\\') || text.len() > 240 {
                    return None;
                }
                Some(Rendered::Naptr(format!("!^.*$!{text}!")))
            }
        }
    }

    /// The called number and the calling number of the query-name scheme.
    fn parse_name(&self, name: &str) -> Result<(E164, Caller), NameError> {
        let (labels, _) = strip_suffix(name, &self.suffixes).ok_or(NameError::Outside)?;
        if labels.is_empty() {
            return Err(NameError::NotANumber);
        }
        let prefix = self.config.source_label_prefix.as_str();
        let (digits, source) = match labels.rsplit_once('.') {
            Some((rest, last)) if !prefix.is_empty() && last.starts_with(prefix) => {
                (rest, self.label_caller(&last[prefix.len()..]))
            }
            None if !prefix.is_empty() && labels.starts_with(prefix) => return Err(NameError::NotANumber),
            _ => (labels, Caller::Absent),
        };
        let dest = number_from_reversed_labels(digits, name).map_err(|_| NameError::NotANumber)?;
        Ok((dest, source))
    }

    /// The calling number of a `src-` label's digits: E.164 digits (country code first), or
    /// through the dialing plan when so configured.
    fn label_caller(&self, digits: &str) -> Caller {
        let number = match self.config.source_label_numbers {
            SourceLabelNumbers::E164 => E164::from_digits(digits),
            SourceLabelNumbers::DialingPlan => self.plan.normalize(digits),
        };
        match number {
            Ok(n) => Caller::Number(n),
            Err(_) => Caller::Unreadable(format!("{}{digits}", self.config.source_label_prefix)),
        }
    }

    /// The calling number from the EDNS0 Source-URI option.
    fn edns_source(&self, edns: Option<&Edns>) -> Caller {
        let Some(code) = self.config.source_edns_option else { return Caller::Absent };
        let Some(option) = edns.and_then(|e| e.options().get(EdnsCode::from(code))) else { return Caller::Absent };
        let EdnsOption::Unknown(_, data) = option else { return Caller::Absent };
        self.uri_caller(data)
    }

    /// The calling number of a Source-URI option's data.
    fn uri_caller(&self, data: &[u8]) -> Caller {
        let uri = String::from_utf8_lossy(data);
        match number_from_uri(&uri, &self.plan) {
            Ok(n) => Caller::Number(n),
            Err(_) => Caller::Unreadable(uri.chars().take(64).collect()),
        }
    }

    fn health(&self, req: &Message, query: &Query, ctx: &QueryContext) -> Answered {
        let mut resp = self.response(req, ResponseCode::NoError);
        let owner = query.name().clone();
        match query.query_type() {
            RecordType::A => {
                resp.add_answer(Record::from_rdata(owner, 0, RData::A(A(Ipv4Addr::LOCALHOST))));
            }
            RecordType::TXT | RecordType::ANY => {
                resp.add_answer(Record::from_rdata(owner, 0, RData::TXT(TXT::new(vec!["tollgate ok".into()]))));
            }
            _ => {}
        }
        self.finish(resp, req.edns.as_ref(), ctx, None, Outcome::Health, None)
    }

    fn response(&self, req: &Message, rcode: ResponseCode) -> Message {
        let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
        resp.metadata = Metadata::response_from_request(&req.metadata);
        resp.metadata.authoritative = rcode != ResponseCode::Refused;
        resp.metadata.response_code = rcode;
        resp.add_queries(req.queries.iter().cloned());
        resp
    }

    fn error(
        &self,
        head: Head,
        query: Option<&Query>,
        edns: Option<&Edns>,
        rcode: ResponseCode,
        ctx: &QueryContext,
    ) -> Answered {
        let mut resp = Message::new(head.id, MessageType::Response, head.op_code);
        resp.metadata.recursion_desired = head.rd;
        resp.metadata.response_code = rcode;
        if let Some(q) = query {
            resp.add_query(q.clone());
        }
        let outcome = match rcode {
            ResponseCode::FormErr => Outcome::FormErr,
            ResponseCode::NotImp => Outcome::NotImp,
            ResponseCode::BADVERS => Outcome::BadVers,
            _ => Outcome::Refused,
        };
        self.finish(resp, edns, ctx, None, outcome, None)
    }

    /// Adds EDNS, encodes, truncates for UDP, completes the record.
    fn finish(
        &self,
        mut resp: Message,
        req_edns: Option<&Edns>,
        ctx: &QueryContext,
        record: Option<EnumQueryRecord>,
        outcome: Outcome,
        decision: Option<Decision>,
    ) -> Answered {
        let limit = match (ctx.transport, req_edns) {
            (Transport::Tcp, _) => u16::MAX as usize,
            (Transport::Udp, Some(e)) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
            (Transport::Udp, None) => 512,
        };
        if req_edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            resp.set_edns(edns);
        }
        let mut bytes = resp.to_vec().unwrap_or_default();
        if bytes.len() > limit || bytes.is_empty() {
            resp.answers.clear();
            resp.authorities.clear();
            resp.metadata.truncation = true;
            bytes = resp.to_vec().unwrap_or_default();
        }
        let (record, stale) = self.complete(record, resp.metadata.response_code, ctx);
        Answered { bytes, record, outcome, decision, stale, unreadable_source: None, fast_path: false }
    }

    /// Completes a record with what is known once its answer is encoded: the response code,
    /// the latency and whether the answer is stale (also returned).
    fn complete(
        &self,
        record: Option<EnumQueryRecord>,
        rcode: ResponseCode,
        ctx: &QueryContext,
    ) -> (Option<SpoolRecord>, bool) {
        let latency = ctx.received.elapsed();
        let stale = latency.as_millis() >= u128::from(self.config.stale_after_ms);
        let record = record.map(|mut r| {
            r.rcode = rcode_mnemonic(rcode).to_string();
            r.latency_us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
            r.stale = stale;
            SpoolRecord::enum_query(r)
        });
        (record, stale)
    }
}

/// A decision's answer before encoding.
enum Rendered {
    /// One NAPTR record whose regexp field is this text (`!^.*$!URI!`).
    Naptr(String),
    /// No record: NXDOMAIN or NODATA (`no_record`) with the SOA.
    NoRecord,
}

/// A call decided through [`Responder::decide`]: the decision, its answer rendered by the
/// caller's `render`, and its record (`rcode`, `latency_us` and `stale` are the caller's to
/// fill in once its answer is encoded).
#[derive(Debug)]
pub struct Decided<R> {
    /// The decision answered: the policy's, or the default allow after a failure.
    pub decision: Decision,
    /// The rendered answer; `None` only when even the allow answer could not be rendered.
    pub rendered: Option<R>,
    /// True when evaluation or rendering failed and the allow decision was answered.
    pub fail_open: bool,
    /// The decision's record (protocol ENUM).
    pub record: EnumQueryRecord,
}

/// A call evaluated: the decision, its answer and its record (rcode, latency and staleness are
/// filled in when the answer is encoded).
struct Evaluated {
    decision: Decision,
    rendered: Rendered,
    fail_open: bool,
    record: EnumQueryRecord,
}

/// The conventional mnemonic of a response code (as dig prints it).
pub fn rcode_mnemonic(rcode: ResponseCode) -> &'static str {
    match u16::from(rcode) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        16 => "BADVERS",
        _ => "OTHER",
    }
}

/// The details of an action for records: `intercept NAME`, `reject CODE` or the target.
fn action_detail(action: &Action) -> Option<String> {
    match action {
        Action::Allow => None,
        Action::Terminate(Termination::Intercept(name)) => Some(format!("intercept {name}")),
        Action::Terminate(Termination::Reject(code)) => Some(format!("reject {code}")),
        Action::Redirect(target) => Some(target.to_string()),
    }
}

/// The differential check of the fast path against the hickory path, shared by the
/// `enum_fastpath` fuzz target and the differential test (`tests/fastpath.rs`): for every query
/// the fast path accepts, the hickory path must give the very same answer bytes, record
/// (but for its random id and measured latency), decision and outcome.
pub mod fuzzing {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use hickory_proto::op::Message;
    use tollgate_number::DialingPlan;
    use tollgate_policy::{CompileOptions, InstalledPolicy, PolicySource, compile};
    use tollgate_records::Record;

    use super::{QueryContext, Responder};
    use crate::EnumConfig;

    /// A responder for tests, fuzz targets and benches: `policy` (a policy file's text, with
    /// its lists by name -> file) compiled with the NANP dialing plan and installed as version
    /// `version`, answering as node `node`. Intercept names are not checked, so a rule naming
    /// an unknown intercept exercises fail-open. Panics, with the diagnostics, if the policy
    /// does not compile.
    pub fn responder(
        config: EnumConfig,
        policy: &str,
        lists: BTreeMap<String, PathBuf>,
        version: u64,
        node: &str,
    ) -> Responder {
        let plan = DialingPlan::nanp();
        let compiled = compile(
            &PolicySource::from_text("policy.toml", policy, lists),
            CompileOptions { plan: &plan, intercepts: None },
        )
        .unwrap_or_else(|diagnostics| panic!("the test policy does not compile: {diagnostics:?}"));
        Responder::new(config, plan, Arc::new(InstalledPolicy::new(Some(version), compiled)), node)
    }

    /// The record without what differs by construction: its random id and the measured latency.
    pub fn comparable(record: Option<Record>) -> Option<Record> {
        record.map(|r| match r {
            Record::EnumQuery { v, mut record } => {
                record.id = ulid::Ulid::nil();
                record.latency_us = 0;
                Record::EnumQuery { v, record }
            }
            other => other,
        })
    }

    /// Answers `packet` through the fast path of `fast` and, if it accepts, through the hickory
    /// path of `reference` (a responder with the same configuration and policy; the same one
    /// where no velocity rule counts calls), and panics, naming the query, where they differ.
    /// A query the fast path declines is answered by both responders' hickory paths, which must
    /// agree. Returns whether the fast path took the query.
    pub fn compare_paths(fast: &Responder, reference: &Responder, packet: &[u8], ctx: &QueryContext) -> bool {
        match fast.respond_fast(packet, ctx, Vec::with_capacity(512)) {
            Ok(fast) => {
                let slow = reference.respond_hickory(packet, ctx).expect("hickory answers what the fast path answers");
                assert_eq!(
                    fast.bytes,
                    slow.bytes,
                    "answers differ for query {packet:02x?}\nfast:    {:?}\nhickory: {:?}",
                    Message::from_vec(&fast.bytes),
                    Message::from_vec(&slow.bytes)
                );
                assert_eq!(comparable(fast.record), comparable(slow.record), "records differ for {packet:02x?}");
                assert_eq!(fast.decision, slow.decision);
                assert_eq!((fast.outcome, fast.stale), (slow.outcome, slow.stale));
                assert_eq!(fast.unreadable_source, slow.unreadable_source);
                assert!(!slow.fast_path);
                true
            }
            Err(_) => {
                let a = fast.respond_hickory(packet, ctx).map(|a| a.bytes);
                let b = reference.respond_hickory(packet, ctx).map(|a| a.bytes);
                assert_eq!(a, b, "the hickory path differs between the two responders");
                false
            }
        }
    }
}
