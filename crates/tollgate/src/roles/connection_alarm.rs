//! CONNECTION_LIMIT (72008): raised while a listener turns connections away (refused at its
//! connection limit, or failing to accept for lack of descriptors), cleared once it has turned
//! none away for [`QUIET_SECS`] seconds, so a listener hovering at its limit does not flap.

use std::time::{Duration, Instant};

use tollgate_alarms::{self as alarms, Alarms};
use tollgate_listener::ListenerStats;

use crate::roles::counter_alarm::CounterAlarm;

/// Seconds without a connection turned away before the alarm clears.
pub const QUIET_SECS: u64 = 10;

/// Watches `listeners` (name, counters) every second and raises or clears CONNECTION_LIMIT
/// for each, scoped `<node>/<listener>`.
pub fn watch<A: AsRef<Alarms> + Send + 'static>(alarms: A, node: String, listeners: Vec<(String, ListenerStats)>) {
    tokio::spawn(async move {
        let mut state: Vec<CounterAlarm> = listeners
            .iter()
            .map(|(_, stats)| CounterAlarm::new(Duration::from_secs(QUIET_SECS), stats.turned_away()))
            .collect();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            for ((name, stats), alarm) in listeners.iter().zip(&mut state) {
                let on = alarm.step(stats.turned_away(), now);
                alarms.as_ref().set(alarms::CONNECTION_LIMIT, &format!("{node}/{name}"), on, || {
                    format!(
                        "listener {name} turns connections away: {} refused at its connection limit, {} accepts \
                         failed (e.g. no file descriptors) so far",
                        stats.refused.get(),
                        stats.accept_errors.get()
                    )
                });
            }
        }
    });
}
