//! Prometheus metrics of the ENUM server, and the count of records that could not be written
//! (shared with the probe, so one metric says how many answered queries and seen calls are
//! missing from analytics).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use tollgate_logthrottle::LogThrottle;

use crate::respond::{Answered, Outcome};

/// One line per 10 s about answers sent after an internal failure (the rest are counted).
static FAIL_OPEN_LOG: LogThrottle = LogThrottle::new(10_000);
/// One line per 10 s about calling numbers that are not numbers.
static UNREADABLE_SOURCE_LOG: LogThrottle = LogThrottle::new(10_000);

/// Labels of the query counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// See [`Outcome::as_str`].
    pub outcome: &'static str,
}

/// Labels of the decision counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow`, `terminate` or `redirect`.
    pub action: &'static str,
    /// `inbound`, `outbound`, `internal` or `transit`.
    pub direction: &'static str,
}

/// Labels of the drop counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why a packet got no answer.
    pub reason: &'static str,
}

/// Labels of the answer-path counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// `fast` (the borrowed fast path) or `hickory` (everything else, and the fast path's
    /// fallbacks).
    pub path: &'static str,
}

/// Labels of the records-not-written counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotWrittenLabels {
    /// `ENUM` (an answered query) or `SIP` (a call the probe saw).
    pub dataset: &'static str,
    /// `spool_full` (refused at the spool's disk limit, alarm SPOOL_FULL) or `io_error` (the
    /// spool could not write it: no descriptors, disk error; alarm RECORDS_NOT_WRITTEN).
    pub reason: &'static str,
}

/// Records that could not be written to the spool although their query was answered (or their
/// call seen): `tollgate_records_not_written_total{dataset, reason}`. Cheap to clone; every
/// clone counts into the same metric, so the engine and the probe of one process share it.
#[derive(Debug, Clone, Default)]
pub struct RecordsNotWritten(Family<NotWrittenLabels, Counter>);

impl RecordsNotWritten {
    /// Creates the counter and registers it in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let c = RecordsNotWritten::default();
        registry.register(
            "tollgate_records_not_written",
            "Records not written to the spool although the query was answered or the call seen, by dataset and reason (spool_full, io_error)",
            c.0.clone(),
        );
        c
    }

    /// Counts one record of `dataset` that `error` kept out of the spool; returns the reason.
    pub fn count(&self, dataset: &'static str, error: &std::io::Error) -> &'static str {
        // The spool's own refusal at its limit carries no OS error; ENOSPC from a full disk
        // (also StorageFull) is an I/O error.
        let refused = error.kind() == std::io::ErrorKind::StorageFull && error.raw_os_error().is_none();
        let reason = if refused { "spool_full" } else { "io_error" };
        self.0.get_or_create(&NotWrittenLabels { dataset, reason }).inc();
        reason
    }

    /// Records of every dataset not written because of an I/O error (what alarm 72006
    /// RECORDS_NOT_WRITTEN watches; refusals at the disk limit have SPOOL_FULL).
    pub fn io_errors(&self) -> u64 {
        ["ENUM", "SIP"]
            .into_iter()
            .map(|dataset| self.0.get_or_create(&NotWrittenLabels { dataset, reason: "io_error" }).get())
            .sum()
    }
}

/// Labels of the TCP refusal counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `per_source` (the source address holds `tcp_max_connections_per_source`) or `limit`
    /// (the listener holds `tcp_max_connections`).
    pub reason: &'static str,
}

/// The ENUM server's metrics.
#[derive(Debug)]
pub struct EnumMetrics {
    /// Queries answered, by transport and outcome.
    pub queries: Family<QueryLabels, Counter>,
    /// Policy decisions, by action and direction.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Packets not answered, by reason.
    pub dropped: Family<DropLabels, Counter>,
    /// Time from receiving a query to handing the answer to the kernel.
    pub latency: Histogram,
    /// Records that could not be written to the spool.
    pub spool_errors: Counter,
    /// Open TCP connections.
    pub tcp_connections: Gauge,
    /// Answered queries whose record could not be written (shared with the probe).
    pub records_not_written: RecordsNotWritten,
    /// Answers sent later than `stale_after_ms` after the kernel received the query.
    pub stale_answers: Counter,
    /// Queries whose calling number (label or Source-URI) is not a number.
    pub source_unreadable: Counter,
    /// TCP connections refused at a limit, by reason.
    pub tcp_refused: Family<RefusedLabels, Counter>,
    /// TCP connections closed because they reached `tcp_max_connection_secs`.
    pub tcp_lifetime_closed: Counter,
    /// Failed TCP accepts (out of descriptors, ...), each followed by a pause.
    pub tcp_accept_errors: Counter,
    /// Answers by the path that wrote them (fast path or hickory-proto).
    pub answer_path: Family<PathLabels, Counter>,
}

impl EnumMetrics {
    /// Creates the metrics and registers them in `registry`; records that cannot be written
    /// are counted in `not_written` (registered by the caller, shared with the probe).
    pub fn register(registry: &mut Registry, not_written: RecordsNotWritten) -> std::sync::Arc<Self> {
        let m = EnumMetrics {
            queries: Family::default(),
            decisions: Family::default(),
            dropped: Family::default(),
            latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            spool_errors: Counter::default(),
            tcp_connections: Gauge::default(),
            records_not_written: not_written,
            stale_answers: Counter::default(),
            source_unreadable: Counter::default(),
            tcp_refused: Family::default(),
            tcp_lifetime_closed: Counter::default(),
            tcp_accept_errors: Counter::default(),
            answer_path: Family::default(),
        };
        registry.register(
            "tollgate_enum_queries",
            "ENUM queries answered, by transport and outcome",
            m.queries.clone(),
        );
        registry.register(
            "tollgate_enum_decisions",
            "Policy decisions answered, by action and direction",
            m.decisions.clone(),
        );
        registry.register("tollgate_enum_dropped", "Packets that got no answer, by reason", m.dropped.clone());
        registry.register(
            "tollgate_enum_answer_latency_seconds",
            "Time from receiving a query to sending its answer",
            m.latency.clone(),
        );
        registry.register(
            "tollgate_enum_spool_errors",
            "Records that could not be written to the spool",
            m.spool_errors.clone(),
        );
        registry.register("tollgate_enum_tcp_connections", "Open ENUM TCP connections", m.tcp_connections.clone());
        registry.register(
            "tollgate_enum_stale_answers",
            "Answers sent later than enum.stale_after_ms after the kernel received the query (their records are marked stale)",
            m.stale_answers.clone(),
        );
        registry.register(
            "tollgate_enum_source_unreadable",
            "Queries whose calling number (src- label or Source-URI) is not a number; decided without a caller",
            m.source_unreadable.clone(),
        );
        registry.register(
            "tollgate_enum_tcp_refused",
            "ENUM TCP connections refused at a limit, by reason (per_source, limit)",
            m.tcp_refused.clone(),
        );
        registry.register(
            "tollgate_enum_tcp_lifetime_closed",
            "ENUM TCP connections closed at enum.tcp_max_connection_secs",
            m.tcp_lifetime_closed.clone(),
        );
        registry.register(
            "tollgate_enum_tcp_accept_errors",
            "Failed ENUM TCP accepts (e.g. out of file descriptors), each followed by a pause",
            m.tcp_accept_errors.clone(),
        );
        registry.register(
            "tollgate_enum_answer_path",
            "ENUM answers by the path that wrote them: fast (the common query) or hickory (everything else)",
            m.answer_path.clone(),
        );
        std::sync::Arc::new(m)
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> std::sync::Arc<Self> {
        Self::register(&mut Registry::default(), RecordsNotWritten::default())
    }

    /// Counts one answer.
    pub fn answered(&self, transport: &'static str, answer: &Answered, seconds: f64) {
        self.queries.get_or_create(&QueryLabels { transport, outcome: answer.outcome.as_str() }).inc();
        let path = if answer.fast_path { "fast" } else { "hickory" };
        self.answer_path.get_or_create(&PathLabels { path }).inc();
        if let Some(d) = &answer.decision {
            self.decisions
                .get_or_create(&DecisionLabels { action: d.action.name(), direction: d.direction.as_str() })
                .inc();
        }
        self.latency.observe(seconds);
        if answer.stale {
            self.stale_answers.inc();
        }
        if answer.outcome == Outcome::FailOpen
            && let Some(left_out) = FAIL_OPEN_LOG.allow()
        {
            tracing::warn!(left_out, "answered allow after an internal failure (fail-open)");
        }
        if let Some(sent) = &answer.unreadable_source {
            self.source_unreadable.inc();
            if let Some(left_out) = UNREADABLE_SOURCE_LOG.allow() {
                tracing::warn!(
                    caller = %sent.escape_debug(),
                    left_out,
                    "the calling number of a query is not a number (the src- label holds E.164 digits, country code first); decided without a caller"
                );
            }
        }
    }

    /// Counts a packet that got no answer.
    pub fn unanswered(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
