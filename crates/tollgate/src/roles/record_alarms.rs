//! Alarms about answers that analytics will not show as they were: 72006 RECORDS_NOT_WRITTEN
//! (answered queries or seen calls whose record the spool could not write, for lack of file
//! descriptors or a disk error) and 72009 STALE_ANSWERS (queries answered later than
//! `enum.stale_after_ms` after the kernel received them).
//!
//! Both watch counters once a second ([`CounterAlarm`]): an alarm is raised when its counter
//! grows and cleared once it has not grown for [`HOLD`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_alarms::{self as alarms, Alarms};
use tollgate_enum::metrics::{EnumMetrics, RecordsNotWritten};

use crate::roles::counter_alarm::CounterAlarm;

/// How long an alarm stays raised after its counter last grew.
pub const HOLD: Duration = Duration::from_secs(60);

/// Raises and clears RECORDS_NOT_WRITTEN and STALE_ANSWERS for `node`.
pub fn watch(alarms: Arc<Alarms>, node: String, not_written: RecordsNotWritten, engine: Option<Arc<EnumMetrics>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (mut lost, mut stale) = (CounterAlarm::new(HOLD, 0), CounterAlarm::new(HOLD, 0));
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
