//! One SIP message in, one response and one record out. No I/O.
//!
//! (Skeleton laid out by the lead; the helper of issue 19's responder implements it.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tollgate_enum::Responder;
use tollgate_policy::Decision;
use tollgate_records::{Record, Transport};

use crate::config::RedirectConfig;

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
    /// Not answerable (not SIP, a response, no Via): dropped.
    Dropped,
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
}

impl Redirector {
    /// A redirector for a validated configuration, deciding through the engine's responder
    /// (its policy, dialing plan, intercepts, devices and velocity counters).
    pub fn new(config: RedirectConfig, responder: Arc<Responder>) -> Self {
        Redirector { config, responder }
    }

    /// The configuration.
    pub fn config(&self) -> &RedirectConfig {
        &self.config
    }

    /// The ENUM responder deciding the calls.
    pub fn responder(&self) -> &Arc<Responder> {
        &self.responder
    }

    /// Handles one message (a datagram's, or one framed from a TCP stream).
    pub fn handle(&self, _message: &[u8], _ctx: &RequestContext) -> Handled {
        Handled { outcome: Outcome::Dropped, response: None, record: None, decision: None }
    }
}
