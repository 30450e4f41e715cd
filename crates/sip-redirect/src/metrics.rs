//! Prometheus metrics of the SIP redirect server.
//!
//! (Skeleton laid out by the lead; the helper of issue 19's listeners completes it.)

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tollgate_enum::metrics::RecordsNotWritten;

/// The SIP redirect server's counters.
#[derive(Debug, Default)]
pub struct RedirectMetrics {
    /// Records the spool did not take (shared with the ENUM server: `dataset="ENUM"`).
    pub records_not_written: RecordsNotWritten,
}

impl RedirectMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(_registry: &mut Registry, not_written: RecordsNotWritten) -> Arc<Self> {
        Arc::new(RedirectMetrics { records_not_written: not_written })
    }
}
