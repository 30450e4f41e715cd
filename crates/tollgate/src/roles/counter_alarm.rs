//! The rule shared by alarms that follow a counter of bad events (records not written, stale
//! answers, connections turned away): raised when the counter grows, cleared once it has not
//! grown for a hold time, so a burst is seen on the Alarms page (and kept in its history)
//! instead of flickering on and off with every second of the condition.

use std::time::{Duration, Instant};

/// Whether a counter grew within the hold time; stepped once a second by a watcher.
#[derive(Debug)]
pub struct CounterAlarm {
    hold: Duration,
    last: u64,
    grew_at: Option<Instant>,
}

impl CounterAlarm {
    /// Follows a counter that stands at `start` now (growth before this is not counted), held
    /// `hold` after its last growth.
    pub fn new(hold: Duration, start: u64) -> Self {
        CounterAlarm { hold, last: start, grew_at: None }
    }

    /// Takes the counter's value at `now`; true while it grew within the hold time.
    pub fn step(&mut self, value: u64, now: Instant) -> bool {
        if value > self.last {
            self.grew_at = Some(now);
        }
        self.last = value;
        self.grew_at.is_some_and(|t| now.duration_since(t) < self.hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_holds_while_its_counter_grew_within_the_hold_time() {
        let start = Instant::now();
        let mut g = CounterAlarm::new(Duration::from_secs(60), 0);
        assert!(!g.step(0, start));
        assert!(g.step(3, start + Duration::from_secs(1)));
        assert!(g.step(3, start + Duration::from_secs(30)));
        assert!(!g.step(3, start + Duration::from_secs(62)));
        assert!(g.step(4, start + Duration::from_secs(63)));
    }

    #[test]
    fn raised_at_the_first_growth_and_cleared_after_a_quiet_spell() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut a = CounterAlarm::new(Duration::from_secs(10), 0);
        assert!(!a.step(0, at(0)));
        assert!(a.step(3, at(1)), "raised at the first refusal");
        for s in 2..11 {
            assert!(a.step(3, at(s)));
        }
        assert!(a.step(5, at(11)), "still turning clients away: stays raised, the quiet spell restarts");
        for s in 12..21 {
            assert!(a.step(5, at(s)));
        }
        assert!(!a.step(5, at(21)), "cleared after ten quiet seconds");
        assert!(!a.step(5, at(22)));
        assert!(a.step(6, at(23)), "raised again");
    }

    #[test]
    fn what_the_counter_stood_at_when_watching_began_does_not_raise() {
        let mut a = CounterAlarm::new(Duration::from_secs(10), 7);
        assert!(!a.step(7, Instant::now()));
    }
}
