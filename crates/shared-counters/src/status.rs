//! How the exchange with Redis is going: read by `lookup`, the metrics and the alarm.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tollgate_policy::velocity::{SharedState, SharedView, SyncReport};

/// Counters and gauges of the exchange, updated by the sync task.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// The Redis URL, without its password.
    pub url: String,
    pub(crate) up: AtomicBool,
    /// µs since the epoch of the last successful exchange (0: none).
    pub(crate) last_ok_us: AtomicI64,
    /// The age of the newest call read from another engine when it was applied, µs.
    pub(crate) lag_us: AtomicI64,
    pub(crate) batch_events: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) pending: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) last_error: Mutex<String>,
}

impl SyncStatus {
    /// A status for the Redis at `url` (shown without its password).
    pub fn new(url: String) -> SyncStatus {
        SyncStatus { url, ..Default::default() }
    }

    /// What `lookup` shows, at `now_us`.
    pub fn view(&self, now_us: i64) -> SharedView {
        SyncReport::view(self, now_us)
    }

    /// True while Redis answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Exchanges that failed.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Counted calls sent to Redis.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Counted calls read from the other engines.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Entries read from Redis that were not batches.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The last error, if any.
    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl SyncReport for SyncStatus {
    fn view(&self, now_us: i64) -> SharedView {
        let last = self.last_ok_us.load(Ordering::Relaxed);
        SharedView {
            state: if self.is_up() { SharedState::InStep } else { SharedState::Unreachable },
            age_ms: (last > 0).then(|| ((now_us - last).max(0) / 1000) as u64),
            url: self.url.clone(),
        }
    }
}

/// The metrics of the exchange, read at scrape time (register with
/// [`prometheus_client::registry::Registry::register_collector`]).
#[derive(Debug)]
pub struct SyncCollector(pub std::sync::Arc<SyncStatus>);

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for SyncCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let now = chrono::Utc::now().timestamp_micros();
        let last = s.last_ok_us.load(Ordering::Relaxed);
        gauge(
            &mut e,
            "tollgate_shared_counters_up",
            "1 while Redis answers, 0 when not",
            f64::from(u8::from(s.is_up())),
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_sync_age_seconds",
            "Seconds since the last successful exchange with Redis (-1: none yet)",
            if last > 0 { (now - last) as f64 / 1e6 } else { -1.0 },
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_lag_seconds",
            "Age of the newest call read from another engine when it was applied here",
            s.lag_us.load(Ordering::Relaxed) as f64 / 1e6,
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_batch_events",
            "Counted calls in the last batch sent",
            s.batch_events.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut e,
            "tollgate_shared_counters_pending_events",
            "Counted calls waiting to be sent (Redis unreachable)",
            s.pending.load(Ordering::Relaxed) as f64,
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
            "Counted calls dropped unsent (more than shared_counters.max_pending waiting, or older than their window)",
            s.dropped.load(Ordering::Relaxed),
        )?;
        counter(
            &mut e,
            "tollgate_shared_counters_refused_batches",
            "Batches read from Redis that were not readable (named in the log)",
            s.refused.load(Ordering::Relaxed),
        )
    }
}
