//! Prometheus metrics of the ENUM server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::respond::{Answered, Outcome};

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
}

impl EnumMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> std::sync::Arc<Self> {
        let m = EnumMetrics {
            queries: Family::default(),
            decisions: Family::default(),
            dropped: Family::default(),
            latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            spool_errors: Counter::default(),
            tcp_connections: Gauge::default(),
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
        std::sync::Arc::new(m)
    }

    /// Counts one answer.
    pub fn answered(&self, transport: &'static str, answer: &Answered, seconds: f64) {
        self.queries.get_or_create(&QueryLabels { transport, outcome: answer.outcome.as_str() }).inc();
        if let Some(d) = &answer.decision {
            self.decisions
                .get_or_create(&DecisionLabels { action: d.action.name(), direction: d.direction.as_str() })
                .inc();
        }
        self.latency.observe(seconds);
        if answer.outcome == Outcome::FailOpen {
            tracing::warn!("answered allow after an internal failure (fail-open)");
        }
    }

    /// Counts a packet that got no answer.
    pub fn unanswered(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
