//! CONNECTION_LIMIT (72008): raised while a listener turns connections away (refused at its
//! connection limit, or failing to accept for lack of descriptors), cleared once it has turned
//! none away for [`QUIET_SECS`] seconds, so a listener hovering at its limit does not flap.

use std::time::Duration;

use tollgate_listener::ListenerStats;
use tollgate_manager::alarms::{self, Alarms};

/// Seconds without a connection turned away before the alarm clears.
pub const QUIET_SECS: u32 = 10;

/// What one second of a listener's counters means for its alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Raise,
    Clear,
    Keep,
}

/// The alarm state of one listener, stepped once a second.
#[derive(Debug, Default)]
struct ListenerAlarm {
    seen: u64,
    quiet_secs: u32,
    raised: bool,
}

impl ListenerAlarm {
    fn step(&mut self, turned_away: u64) -> Change {
        if turned_away > self.seen {
            self.seen = turned_away;
            self.quiet_secs = 0;
            if !self.raised {
                self.raised = true;
                return Change::Raise;
            }
            return Change::Keep;
        }
        self.quiet_secs = self.quiet_secs.saturating_add(1);
        if self.raised && self.quiet_secs >= QUIET_SECS {
            self.raised = false;
            return Change::Clear;
        }
        Change::Keep
    }
}

/// Watches `listeners` (name, counters) every second and raises or clears CONNECTION_LIMIT
/// for each, scoped `<node>/<listener>`.
pub fn watch<A: AsRef<Alarms> + Send + 'static>(alarms: A, node: String, listeners: Vec<(String, ListenerStats)>) {
    tokio::spawn(async move {
        let mut state: Vec<ListenerAlarm> = listeners
            .iter()
            .map(|(_, stats)| ListenerAlarm { seen: stats.turned_away(), ..Default::default() })
            .collect();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for ((name, stats), alarm) in listeners.iter().zip(&mut state) {
                let scope = format!("{node}/{name}");
                match alarm.step(stats.turned_away()) {
                    Change::Raise => {
                        alarms.as_ref().raise(
                            alarms::CONNECTION_LIMIT,
                            &scope,
                            format!(
                                "listener {name} turns connections away: {} refused at its connection limit, {} \
                                 accepts failed (e.g. no file descriptors) so far",
                                stats.refused.get(),
                                stats.accept_errors.get()
                            ),
                        );
                    }
                    Change::Clear => {
                        alarms.as_ref().clear(alarms::CONNECTION_LIMIT, &scope);
                    }
                    Change::Keep => {}
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_at_the_first_refusal_and_cleared_after_a_quiet_spell() {
        let mut a = ListenerAlarm::default();
        assert_eq!(a.step(0), Change::Keep);
        assert_eq!(a.step(3), Change::Raise);
        for _ in 1..QUIET_SECS {
            assert_eq!(a.step(3), Change::Keep);
        }
        assert_eq!(a.step(5), Change::Keep, "still turning clients away: stays raised, the quiet spell restarts");
        for _ in 1..QUIET_SECS {
            assert_eq!(a.step(5), Change::Keep);
        }
        assert_eq!(a.step(5), Change::Clear);
        assert_eq!(a.step(5), Change::Keep);
        assert_eq!(a.step(6), Change::Raise);
    }
}
