//! Metrics read at scrape time: spool counters and the installed policy.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tollgate_policy::service::PolicyService;
use tollgate_records::spool::Spool;

/// Spool activity.
struct SpoolCollector(Spool);

impl fmt::Debug for SpoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpoolCollector({})", self.0.dir().display())
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for SpoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = self.0.stats();
        counter(
            &mut encoder,
            "tollgate_spool_records",
            "Records appended to the spool",
            s.records.load(Ordering::Relaxed),
        )?;
        counter(&mut encoder, "tollgate_spool_bytes", "Bytes appended to the spool", s.bytes.load(Ordering::Relaxed))?;
        counter(&mut encoder, "tollgate_spool_fsyncs", "Spool fsync calls", s.fsyncs.load(Ordering::Relaxed))?;
        counter(
            &mut encoder,
            "tollgate_spool_errors",
            "Failed spool appends or fsyncs",
            s.errors.load(Ordering::Relaxed),
        )
    }
}

/// The policy in force.
struct PolicyCollector(Arc<PolicyService>);

impl fmt::Debug for PolicyCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyCollector")
    }
}

impl Collector for PolicyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let active = self.0.installed().snapshot();
        let version = active.version.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&mut encoder, "tollgate_policy_version", "Installed policy version (0: none, default allow)", version)?;
        gauge(
            &mut encoder,
            "tollgate_policy_rules",
            "Enabled rules in the installed policy",
            active.policy.meta().enabled_rules as i64,
        )?;
        gauge(
            &mut encoder,
            "tollgate_policy_load_failed",
            "1 if the stored policy could not be put in force at start",
            i64::from(self.0.load_error().is_some()),
        )
    }
}

/// Registers the scrape-time collectors.
pub fn register(registry: &mut Registry, spool: Spool, policy: Arc<PolicyService>) {
    registry.register_collector(Box::new(SpoolCollector(spool)));
    registry.register_collector(Box::new(PolicyCollector(policy)));
}
