//! Prometheus metrics of the SIP redirect server (`tollgate_sip_redirect_*`).
//!
//! Decisions have a family of their own, `tollgate_sip_redirect_decisions_total{action,
//! direction}`, beside ENUM's `tollgate_enum_decisions_total` (same labels): adding a protocol
//! label to ENUM's family would change a series dashboards and alarms already read. The sum of
//! both is the engine's decisions. Records the spool does not take are counted in the metric
//! the ENUM server shares, `tollgate_records_not_written_total{dataset="ENUM"}` (SIP decisions
//! are ENUM-dataset records with `protocol = "sip"`). TCP and TLS connections are counted per
//! listener by `tollgate-listener` (`tollgate_connections_*{listener="sip_redirect_tcp"}` and
//! `{listener="sip_redirect_tls"}`: open, accepted, refused at `tcp_max_connections`, closed
//! idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tollgate_enum::metrics::{DecisionLabels, RecordsNotWritten};
use tollgate_listener::{ConnectionMetrics, ListenerStats};
use tollgate_logthrottle::LogThrottle;

use crate::respond::{Handled, Outcome};

/// The listener name of the TCP connection metrics (`tollgate_connections_*{listener}`).
pub const TCP_LISTENER: &str = "sip_redirect_tcp";
/// The listener name of the TLS connection metrics (`tollgate_connections_*{listener}`).
pub const TLS_LISTENER: &str = "sip_redirect_tls";

/// One line per 10 s about answers sent after an internal failure (the rest are counted).
static FAIL_OPEN_LOG: LogThrottle = LogThrottle::new(10_000);

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The request's method (`INVITE`, `ACK`, `CANCEL`, `OPTIONS`, `BYE`, `REGISTER`, ...),
    /// `other` for any other token, `response` for a response, `unknown` for what is not SIP.
    pub method: &'static str,
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
}

/// Labels of the response counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    /// The status code sent (100 to 699).
    pub code: u16,
}

/// Labels of the outcome counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// See [`Outcome::as_str`].
    pub outcome: &'static str,
}

/// Labels of counters with a reason (drops, refusals, closes).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

/// The SIP redirect server's counters.
#[derive(Debug)]
pub struct RedirectMetrics {
    /// Messages received (framed), by method and transport.
    pub requests: Family<RequestLabels, Counter>,
    /// Responses sent, by status code.
    pub responses: Family<ResponseLabels, Counter>,
    /// Messages handled, by outcome.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Policy decisions answered, by action and direction.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Retransmitted requests answered again with the first answer's bytes.
    pub retransmissions: Counter,
    /// Requests from addresses outside every configured client, answered 403.
    pub forbidden: Counter,
    /// Messages that got no answer, by reason (`oversized`, `unanswerable`, `send_error`,
    /// `receive_error`, `no_content_length`, `bad_content_length`).
    pub dropped: Family<ReasonLabels, Counter>,
    /// Time from receiving a request to handing its answer to the kernel.
    pub latency: Histogram,
    /// TCP connections refused at accept: beyond `tcp_max_connections_per_source`
    /// (`per_source`), or from an address in no client (`not_client`); those
    /// beyond `tcp_max_connections` are in `tollgate_connections_refused_total`.
    pub tcp_refused: Family<ReasonLabels, Counter>,
    /// TCP connections closed by the server, by reason (`idle`, `lifetime`, `oversized`,
    /// `no_content_length`, `bad_content_length`, `unanswerable`).
    pub tcp_closed: Family<ReasonLabels, Counter>,
    /// The TCP listeners' connection counters (`listener="sip_redirect_tcp"`).
    pub tcp: ListenerStats,
    /// The TLS listeners' connection counters (`listener="sip_redirect_tls"`).
    pub tls: ListenerStats,
    /// Records the spool did not take (shared with the ENUM server: `dataset="ENUM"`).
    pub records_not_written: RecordsNotWritten,
    /// INVITE answers forgotten before their retransmission window ended (the window's
    /// bounds): a retransmission of one is decided and recorded again. Non-zero: raise
    /// `retransmission_entries` / `retransmission_max_mb`.
    pub retransmissions_evicted: Counter,
    /// The redirector's eviction total last added to `retransmissions_evicted`.
    evicted_seen: AtomicU64,
}

impl RedirectMetrics {
    /// Registers the metrics in `registry`; records not written are counted in `not_written`
    /// (shared with the ENUM server) and TCP connections in `connections`.
    pub fn register(
        registry: &mut Registry,
        not_written: RecordsNotWritten,
        connections: &ConnectionMetrics,
    ) -> Arc<Self> {
        let m = RedirectMetrics {
            requests: Family::default(),
            responses: Family::default(),
            outcomes: Family::default(),
            decisions: Family::default(),
            retransmissions: Counter::default(),
            forbidden: Counter::default(),
            dropped: Family::default(),
            latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            tcp_refused: Family::default(),
            tcp_closed: Family::default(),
            tcp: connections.listener(TCP_LISTENER),
            tls: connections.listener(TLS_LISTENER),
            records_not_written: not_written,
            retransmissions_evicted: Counter::default(),
            evicted_seen: AtomicU64::new(0),
        };
        registry.register(
            "tollgate_sip_redirect_requests",
            "SIP messages received by the redirect server, by method and transport",
            m.requests.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_responses",
            "SIP responses sent by the redirect server, by status code",
            m.responses.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_outcomes",
            "SIP messages handled by the redirect server, by outcome",
            m.outcomes.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_decisions",
            "Policy decisions answered over SIP, by action and direction",
            m.decisions.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_retransmissions",
            "Retransmitted SIP requests answered again with the first answer, without a second record",
            m.retransmissions.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_retransmissions_evicted",
            "INVITE answers forgotten before their retransmission window ended (retransmission_entries or \
             retransmission_max_mb reached): a retransmission of one is decided and recorded again",
            m.retransmissions_evicted.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_forbidden",
            "SIP requests from addresses outside every sip_redirect client, answered 403",
            m.forbidden.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_dropped",
            "SIP messages the redirect server did not answer, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_answer_latency_seconds",
            "Time from receiving a SIP request to sending its answer",
            m.latency.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_tcp_refused",
            "SIP TCP connections refused at accept: per_source (sip_redirect.tcp_max_connections_per_source), not_client (an address in no sip_redirect client)",
            m.tcp_refused.clone(),
        );
        registry.register(
            "tollgate_sip_redirect_tcp_closed",
            "SIP TCP connections closed by the server, by reason (idle, lifetime, oversized, no_content_length, ...)",
            m.tcp_closed.clone(),
        );
        Arc::new(m)
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Arc<Self> {
        Self::register(&mut Registry::default(), RecordsNotWritten::default(), &ConnectionMetrics::default())
    }

    /// Brings `retransmissions_evicted` up to the redirector's eviction total `total`
    /// ([`crate::Redirector::retransmissions_evicted`]); called by every worker, each adding
    /// only what no other has added.
    pub fn sync_evicted(&self, total: u64) {
        let seen = self.evicted_seen.fetch_max(total, Ordering::Relaxed);
        if total > seen {
            self.retransmissions_evicted.inc_by(total - seen);
        }
    }

    /// Counts one message handled (`method` its [`method_label`]), and its answer if one was
    /// sent `seconds` after the message was received.
    pub fn handled(&self, transport: &'static str, method: &'static str, handled: &Handled, seconds: Option<f64>) {
        self.requests.get_or_create(&RequestLabels { method, transport }).inc();
        self.outcomes.get_or_create(&OutcomeLabels { outcome: handled.outcome.as_str() }).inc();
        match handled.outcome {
            Outcome::Retransmission => {
                self.retransmissions.inc();
            }
            Outcome::Forbidden => {
                self.forbidden.inc();
            }
            Outcome::Dropped => self.dropped("unanswerable"),
            Outcome::FailOpen => {
                if let Some(left_out) = FAIL_OPEN_LOG.allow() {
                    tracing::warn!(left_out, "SIP redirect: answered allow after an internal failure (fail-open)");
                }
            }
            _ => {}
        }
        if let Some(d) = &handled.decision
            && handled.record.is_some()
        {
            self.decisions
                .get_or_create(&DecisionLabels { action: d.action.name(), direction: d.direction.as_str() })
                .inc();
        }
        if let Some((bytes, _)) = &handled.response {
            if let Some(code) = status_code(bytes) {
                self.responses.get_or_create(&ResponseLabels { code }).inc();
            }
            if let Some(s) = seconds {
                self.latency.observe(s);
            }
        }
    }

    /// Counts a message that got no answer.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a TCP connection the server closed.
    pub fn tcp_closed(&self, reason: &'static str) {
        self.tcp_closed.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// The method label of a message: its first token when it is a known method, `other` for
/// another token, `response` for a status line, `unknown` for anything else. A fixed set, so
/// no sender can grow the metric's series.
pub fn method_label(message: &[u8]) -> &'static str {
    let start = tollgate_sip::stream::leading_line_ends(message);
    let message = &message[start..];
    let token = message.split(|b| *b == b' ').next().unwrap_or_default();
    match token {
        b"INVITE" => "INVITE",
        b"ACK" => "ACK",
        b"CANCEL" => "CANCEL",
        b"OPTIONS" => "OPTIONS",
        b"BYE" => "BYE",
        b"REGISTER" => "REGISTER",
        b"SUBSCRIBE" => "SUBSCRIBE",
        b"NOTIFY" => "NOTIFY",
        b"MESSAGE" => "MESSAGE",
        b"INFO" => "INFO",
        b"PRACK" => "PRACK",
        b"UPDATE" => "UPDATE",
        b"REFER" => "REFER",
        b"PUBLISH" => "PUBLISH",
        _ if message.starts_with(b"SIP/2.0 ") => "response",
        t if !t.is_empty() && t.len() <= 32 && t.iter().all(u8::is_ascii_uppercase) => "other",
        _ => "unknown",
    }
}

/// The status code of a response's bytes (`SIP/2.0 302 ...`).
fn status_code(response: &[u8]) -> Option<u16> {
    let code = response.strip_prefix(b"SIP/2.0 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok().filter(|c| (100..=699).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_a_fixed_set_of_labels() {
        assert_eq!(method_label(b"INVITE sip:1@x SIP/2.0\r\n"), "INVITE");
        assert_eq!(method_label(b"\r\nOPTIONS sip:x SIP/2.0\r\n"), "OPTIONS");
        assert_eq!(method_label(b"SIP/2.0 200 OK\r\n"), "response");
        assert_eq!(method_label(b"FOOBAR sip:x SIP/2.0\r\n"), "other");
        assert_eq!(method_label(b"\x00\x01garbage"), "unknown");
        assert_eq!(method_label(b""), "unknown");
    }

    #[test]
    fn the_status_code_is_read_from_the_status_line() {
        assert_eq!(status_code(b"SIP/2.0 302 Moved Temporarily\r\n"), Some(302));
        assert_eq!(status_code(b"SIP/2.0 9x"), None);
        assert_eq!(status_code(b"INVITE"), None);
    }
}
