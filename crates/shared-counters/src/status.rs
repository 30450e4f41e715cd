//! How the exchange with Redis is going: read by `lookup`, the metrics and the alarm.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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

    /// Counted calls dropped unsent.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries read from Redis that were not batches.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// µs since the epoch of the last successful exchange (0: none yet).
    pub fn last_ok_us(&self) -> i64 {
        self.last_ok_us.load(Ordering::Relaxed)
    }

    /// The age of the newest call read from another engine when it was applied, µs.
    pub fn lag_us(&self) -> i64 {
        self.lag_us.load(Ordering::Relaxed)
    }

    /// Counted calls in the last batch sent.
    pub fn batch_events(&self) -> u64 {
        self.batch_events.load(Ordering::Relaxed)
    }

    /// Counted calls waiting to be sent.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
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
