//! Metrics read at scrape time: the spool (and what waits for the collector), the shipper,
//! the record store, the installed policy, the TLS material and the shared counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tollgate_policy::service::PolicyService;
use tollgate_records::ship::ShipperStats;
use tollgate_records::spool::Spool;
use tollgate_store::Store;

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn gauge_f64(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// Spool activity and usage.
struct SpoolCollector(Spool);

impl fmt::Debug for SpoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpoolCollector({})", self.0.dir().display())
    }
}

impl Collector for SpoolCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = self.0.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut e, "tollgate_spool_records", "Records appended to the spool", load(&s.records))?;
        counter(&mut e, "tollgate_spool_bytes", "Bytes appended to the spool", load(&s.bytes))?;
        counter(&mut e, "tollgate_spool_fsyncs", "Spool fsync calls", load(&s.fsyncs))?;
        counter(&mut e, "tollgate_spool_errors", "Failed spool appends or fsyncs", load(&s.errors))?;
        counter(
            &mut e,
            "tollgate_spool_refused",
            "Records refused because the spool held its limit of unacknowledged records",
            load(&s.refused),
        )?;
        counter(
            &mut e,
            "tollgate_spool_segments_unlinked",
            "Open spool segments found deleted by another process (their records since are lost)",
            load(&s.unlinked),
        )?;
        let usage = self.0.usage();
        gauge(
            &mut e,
            "tollgate_spool_unacked_bytes",
            "Bytes of spooled records not yet acknowledged by the collector (what the limit applies to)",
            usage.unacked_bytes,
        )?;
        gauge(
            &mut e,
            "tollgate_spool_disk_bytes",
            "Bytes of spool segments on disk (acknowledged records in open segments included)",
            usage.disk_bytes,
        )?;
        gauge(&mut e, "tollgate_spool_segments", "Spool segment files on disk", usage.segments)?;
        // What waits for the collector, exact at scrape time (open segments and a shipping
        // pass in progress included).
        let backlog = self.0.backlog();
        gauge(
            &mut e,
            "tollgate_shipper_backlog_records",
            "Records in the spool not yet acknowledged by the collector",
            backlog.records,
        )?;
        gauge(
            &mut e,
            "tollgate_shipper_backlog_bytes",
            "Spool bytes of records not yet acknowledged by the collector",
            backlog.bytes,
        )?;
        let age = ConstGauge::new(backlog.oldest_age(std::time::SystemTime::now()).as_secs_f64());
        age.encode(e.encode_descriptor(
            "tollgate_shipper_backlog_oldest_seconds",
            "Age of the oldest record not yet acknowledged by the collector (0: none waits; at most 1 s too old)",
            None,
            age.metric_type(),
        )?)?;
        gauge(
            &mut e,
            "tollgate_spool_disk_limit_bytes",
            "Limit on unacknowledged spool bytes, spool.max_disk_mb (0: none)",
            usage.max_bytes,
        )
    }
}

/// Shipping to the collector.
#[derive(Debug)]
struct ShipperCollector(Arc<ShipperStats>);

impl Collector for ShipperCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut e, "tollgate_shipper_records", "Records acknowledged by the collector", load(&s.shipped))?;
        counter(&mut e, "tollgate_shipper_batches", "Batches acknowledged by the collector", load(&s.batches))?;
        counter(&mut e, "tollgate_shipper_failures", "Failed deliveries (retried)", load(&s.failures))?;
        counter(
            &mut e,
            "tollgate_shipper_refused_newer",
            "Batches the collector refused as holding records of a newer format than it reads (they wait in the spool for its upgrade)",
            load(&s.refused_newer),
        )?;
        gauge(
            &mut e,
            "tollgate_shipper_holding_newer",
            "1 while records the collector refused as of a newer format wait in the spool",
            u64::from(s.holding_newer.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut e,
            "tollgate_shipper_damaged_bytes",
            "Spool bytes set aside as unreadable",
            load(&s.damaged_bytes),
        )?;
        gauge(
            &mut e,
            "tollgate_shipper_connected",
            "1 if the last delivery succeeded",
            u64::from(s.connected.load(Ordering::Relaxed)),
        )
    }
}

/// The record store's deferred rollups ([`Store::stats`]), labelled with its backend.
struct StoreCollector(Arc<dyn Store>);

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreCollector({})", self.0.backend())
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = self.0.stats();
        let labels = [("backend", self.0.backend())];
        let g = ConstGauge::new(i64::try_from(s.pending_records).unwrap_or(i64::MAX));
        g.encode(
            e.encode_descriptor(
                "tollgate_store_pending_rollup_records",
                "Raw records stored whose rollups are not applied yet",
                None,
                g.metric_type(),
            )?
            .encode_family(&labels)?,
        )?;
        let c = ConstCounter::new(s.flushes);
        c.encode(
            e.encode_descriptor(
                "tollgate_store_rollup_flushes",
                "Times pending rollups were applied",
                None,
                c.metric_type(),
            )?
            .encode_family(&labels)?,
        )?;
        let c = ConstCounter::new(s.flush_seconds_total);
        c.encode(
            e.encode_descriptor(
                "tollgate_store_rollup_flush_seconds",
                "Seconds spent applying pending rollups",
                None,
                c.metric_type(),
            )?
            .encode_family(&labels)?,
        )?;
        let g = ConstGauge::new(i64::try_from(s.last_flush_keys).unwrap_or(i64::MAX));
        g.encode(
            e.encode_descriptor(
                "tollgate_store_last_flush_keys",
                "Rollup keys written by the last flush",
                None,
                g.metric_type(),
            )?
            .encode_family(&labels)?,
        )?;
        let c = ConstCounter::new(s.folded_hours);
        c.encode(
            e.encode_descriptor(
                "tollgate_store_number_folded_hours",
                "Hours of number rollups folded into day rollups by this process",
                None,
                c.metric_type(),
            )?
            .encode_family(&labels)?,
        )?;
        let c = ConstCounter::new(s.fold_seconds_total);
        c.encode(
            e.encode_descriptor(
                "tollgate_store_number_fold_seconds",
                "Seconds spent folding hours of number rollups into day rollups",
                None,
                c.metric_type(),
            )?
            .encode_family(&labels)?,
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
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let active = self.0.installed().snapshot();
        gauge(
            &mut e,
            "tollgate_policy_version",
            "Installed policy version (0: none, default allow)",
            active.version.unwrap_or(0),
        )?;
        gauge(
            &mut e,
            "tollgate_policy_rules",
            "Enabled rules in the installed policy",
            active.policy.meta().enabled_rules as u64,
        )?;
        gauge(
            &mut e,
            "tollgate_policy_load_failed",
            "1 if the stored policy could not be put in force at start",
            u64::from(self.0.load_error().is_some()),
        )
    }
}

/// The TLS material in force: time to expiry and reloads.
#[derive(Debug)]
struct TlsCollector(tollgate_tls::TlsMaterial);

impl Collector for TlsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        if let Some(leaf) = self.0.leaf() {
            let now = std::time::SystemTime::now();
            let left = match leaf.not_after.duration_since(now) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
            };
            let g = ConstGauge::new(left);
            g.encode(e.encode_descriptor(
                "tollgate_tls_certificate_expiry_seconds",
                "Seconds until the TLS certificate this process presents expires (negative once it has)",
                None,
                g.metric_type(),
            )?)?;
        }
        counter(
            &mut e,
            "tollgate_tls_reloads",
            "TLS material reloads that put new material in force",
            self.0.reloads(),
        )?;
        counter(
            &mut e,
            "tollgate_tls_reload_failures",
            "TLS material reloads that failed (the material in force stayed)",
            self.0.reload_failures(),
        )
    }
}

/// Registers the TLS material's scrape-time metrics.
pub fn register_tls(registry: &mut Registry, material: tollgate_tls::TlsMaterial) {
    registry.register_collector(Box::new(TlsCollector(material)));
}

/// The exchange of shared counters through Redis.
#[derive(Debug)]
struct SharedCountersCollector(Arc<tollgate_shared_counters::SyncStatus>, Arc<tollgate_policy::VelocityTable>);

impl Collector for SharedCountersCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let last = s.last_ok_us();
        let age = if last > 0 { (chrono::Utc::now().timestamp_micros() - last) as f64 / 1e6 } else { -1.0 };
        gauge(&mut e, "tollgate_shared_counters_up", "1 while Redis answers, 0 when not", u64::from(s.is_up()))?;
        gauge_f64(
            &mut e,
            "tollgate_shared_counters_sync_age_seconds",
            "Seconds since the last successful exchange with Redis (-1: none yet)",
            age,
        )?;
        gauge_f64(
            &mut e,
            "tollgate_shared_counters_lag_seconds",
            "Age of the newest call read from another engine when it was applied here",
            s.lag_us() as f64 / 1e6,
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_batch_events",
            "Counted calls in the last batch sent",
            s.batch_events(),
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_pending_events",
            "Counted calls waiting to be sent (Redis unreachable)",
            s.pending(),
        )?;
        counter(&mut e, "tollgate_shared_counters_published_events", "Counted calls sent to Redis", s.published())?;
        counter(
            &mut e,
            "tollgate_shared_counters_received_events",
            "Counted calls read from the other engines",
            s.received(),
        )?;
        counter(
            &mut e,
            "tollgate_shared_counters_errors",
            "Exchanges with Redis that failed or timed out",
            s.errors(),
        )?;
        counter(
            &mut e,
            "tollgate_shared_counters_dropped_events",
            "Counted calls dropped unsent (more than shared_counters.max_pending waiting, older than their window, or not drained from the table in time)",
            s.dropped() + self.1.counted_dropped(),
        )?;
        counter(
            &mut e,
            "tollgate_shared_counters_refused_batches",
            "Entries read from Redis that were not batches (named in the log)",
            s.refused(),
        )?;
        counter(
            &mut e,
            "tollgate_shared_counters_calls_in_progress_ignored",
            "Calls in progress published by probes elsewhere and ignored: more than 4,096 probes or 2,000,000 entries",
            self.1.remote_calls_ignored(),
        )
    }
}

/// Registers the scrape-time metrics of the shared counters' exchange (of `table`).
pub fn register_shared_counters(
    registry: &mut Registry,
    status: Arc<tollgate_shared_counters::SyncStatus>,
    table: Arc<tollgate_policy::VelocityTable>,
) {
    registry.register_collector(Box::new(SharedCountersCollector(status, table)));
}

/// Registers the spool's scrape-time metrics.
pub fn register_spool(registry: &mut Registry, spool: Spool) {
    registry.register_collector(Box::new(SpoolCollector(spool)));
}

/// Registers the record store's scrape-time metrics (the collector role).
pub fn register_store(registry: &mut Registry, store: Arc<dyn Store>) {
    registry.register_collector(Box::new(StoreCollector(store)));
}

/// Registers the installed policy's scrape-time metrics, and the histogram
/// `tollgate_policy_install_seconds` of how long each successful install took (compile, store,
/// swap; 10 ms to 20 s buckets).
pub fn register_policy(registry: &mut Registry, policy: Arc<PolicyService>) {
    let install_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
    registry.register(
        "tollgate_policy_install_seconds",
        "Seconds each successful policy install took, from compiling it to its being in force",
        install_seconds.clone(),
    );
    policy.on_install(Box::new(move |took| install_seconds.observe(took.as_secs_f64())));
    registry.register_collector(Box::new(PolicyCollector(policy)));
}

/// Registers the shipper's metrics.
pub fn register_shipper(registry: &mut Registry, stats: Arc<ShipperStats>) {
    registry.register_collector(Box::new(ShipperCollector(stats)));
}
