//! Repeated-event log summaries.
//!
//! What this crate owns: deciding whether one more log line about an event that repeats (a full
//! spool refusing records, a listener out of descriptors, a client sending garbage) is written
//! now or only counted. The first occurrence is logged at once; later ones within the interval
//! are counted, and the next line written after the interval carries how many were left out.
//! So a condition that repeats 14,000 times in 25 s produces a handful of lines, each saying how
//! many it stands for, and nothing is silently dropped from the count.
//!
//! What it must not do: log by itself, keep metrics, or block. Counting what happened belongs to
//! the caller's metrics (every occurrence is still counted there); this only keeps the log
//! readable. [`LogThrottle::allow`] is two relaxed atomic operations on the common path, so it is
//! safe on the answer path.
//!
//! # Wiring
//!
//! ```
//! use tollgate_logthrottle::LogThrottle;
//!
//! static SPOOL_REFUSED: LogThrottle = LogThrottle::new(10_000);
//!
//! fn on_refused(e: &std::io::Error) {
//!     if let Some(left_out) = SPOOL_REFUSED.allow() {
//!         eprintln!("record refused: {e} ({left_out} similar lines left out since the last)");
//!     }
//! }
//! # on_refused(&std::io::Error::other("full"));
//! ```

#![warn(missing_docs)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Milliseconds since the first use of any throttle in this process (never 0).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    start.elapsed().as_millis() as u64 + 1
}

/// One repeated event's log budget: at most one line per interval.
#[derive(Debug)]
pub struct LogThrottle {
    interval_ms: u64,
    /// When the last line was allowed (0: never).
    last_ms: AtomicU64,
    /// Occurrences not logged since the last line.
    left_out: AtomicU64,
}

impl LogThrottle {
    /// A throttle allowing one line per `interval_ms` milliseconds.
    pub const fn new(interval_ms: u64) -> Self {
        LogThrottle { interval_ms, last_ms: AtomicU64::new(0), left_out: AtomicU64::new(0) }
    }

    /// Called at each occurrence. `Some(n)`: write the line now; `n` occurrences since the last
    /// written line were left out (say so in the line). `None`: counted, do not write.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One caller wins the interval; the others count as left out.
        match self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => Some(self.left_out.swap(0, Ordering::Relaxed)),
            Err(_) => {
                self.left_out.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Occurrences counted but not yet reported in a written line.
    pub fn left_out(&self) -> u64 {
        self.left_out.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_at_once_then_one_per_interval_carrying_the_count() {
        let t = LogThrottle::new(1000);
        assert_eq!(t.allow_at(5), Some(0));
        for ms in 6..1004 {
            assert_eq!(t.allow_at(ms), None);
        }
        assert_eq!(t.left_out(), 998);
        assert_eq!(t.allow_at(1005), Some(998), "the next line says how many were left out");
        assert_eq!(t.left_out(), 0);
        assert_eq!(t.allow_at(1006), None);
    }

    #[test]
    fn every_occurrence_is_either_written_or_counted_across_threads() {
        let t = std::sync::Arc::new(LogThrottle::new(60_000));
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (t, written) = (t.clone(), written.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if t.allow().is_some() {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let written = written.load(Ordering::Relaxed);
        assert_eq!(written, 1, "one line per minute");
        assert_eq!(written + t.left_out(), 40_000, "nothing uncounted");
    }
}
