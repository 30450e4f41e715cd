//! Alarms about answers that analytics will not show as they were: 72006 RECORDS_NOT_WRITTEN
//! (answered queries or seen calls whose record the spool could not write, for lack of file
//! descriptors or a disk error) and 72009 STALE_ANSWERS (queries answered later than
//! `enum.stale_after_ms` after the kernel received them).
//!
//! Both watch counters once a second. An alarm is raised when its counter grows and cleared
//! once it has not grown for [`HOLD`], so a burst is seen on the Alarms page (and kept in its
//! history) instead of flickering for one second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_enum::metrics::{EnumMetrics, RecordsNotWritten};
use tollgate_manager::alarms::{self, Alarms};

/// How long an alarm stays raised after its counter last grew.
pub const HOLD: Duration = Duration::from_secs(60);

/// Whether a counter grew within the hold time.
#[derive(Debug, Default)]
struct Growth {
    last: u64,
    grew_at: Option<Instant>,
}

impl Growth {
    /// Takes the counter's value at `now`; true while it grew within [`HOLD`].
    fn step(&mut self, value: u64, now: Instant) -> bool {
        if value > self.last {
            self.grew_at = Some(now);
        }
        self.last = value;
        self.grew_at.is_some_and(|t| now.duration_since(t) < HOLD)
    }
}

/// Raises and clears RECORDS_NOT_WRITTEN and STALE_ANSWERS for `node`.
pub fn watch(alarms: Arc<Alarms>, node: String, not_written: RecordsNotWritten, engine: Option<Arc<EnumMetrics>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (mut lost, mut stale) = (Growth::default(), Growth::default());
        loop {
            tick.tick().await;
            let now = Instant::now();
            let total = not_written.io_errors();
            let on = lost.step(total, now);
            alarms.set(alarms::RECORDS_NOT_WRITTEN, &node, on, || {
                format!("{total} records not written since start (see tollgate_records_not_written_total)")
            });
            if let Some(m) = &engine {
                let total = m.stale_answers.get();
                let on = stale.step(total, now);
                alarms.set(alarms::STALE_ANSWERS, &node, on, || {
                    format!("{total} answers later than enum.stale_after_ms since start")
                });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_holds_while_its_counter_grew_within_the_hold_time() {
        let start = Instant::now();
        let mut g = Growth::default();
        assert!(!g.step(0, start));
        assert!(g.step(3, start + Duration::from_secs(1)));
        assert!(g.step(3, start + Duration::from_secs(30)));
        assert!(!g.step(3, start + Duration::from_secs(62)));
        assert!(g.step(4, start + Duration::from_secs(63)));
    }
}
