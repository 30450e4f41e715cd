//! Tokio timers for the election machine: carries out [`Action::StartTimer`] and
//! [`Action::CancelTimer`] and turns expiries back into [`Event::TimerExpired`].
//!
//! A restarted timer (the dead interval restarts on every Hello) may have fired an instant before
//! it was restarted; its expiry is then already queued. Each start gets a generation, and
//! [`Timers::expired`] drops expiries of an older generation, so the machine never sees a stale one.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::election::{Action, Event, Timer};

/// A timer that fired; pass it to [`Timers::expired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    timer: Timer,
    generation: u64,
}

/// The running timers of one machine.
#[derive(Debug)]
pub struct Timers {
    tx: mpsc::UnboundedSender<Fired>,
    running: HashMap<Timer, (u64, JoinHandle<()>)>,
    next_generation: u64,
}

impl Drop for Timers {
    fn drop(&mut self) {
        for (_, (_, h)) in self.running.drain() {
            h.abort();
        }
    }
}

impl Timers {
    /// No timers running; expiries arrive on the returned channel.
    pub fn new() -> (Timers, mpsc::UnboundedReceiver<Fired>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Timers { tx, running: HashMap::new(), next_generation: 1 }, rx)
    }

    /// Carries out a timer action; returns false for any other action.
    pub fn apply(&mut self, action: &Action) -> bool {
        match action {
            Action::StartTimer { timer, after } => {
                self.start(*timer, *after);
                true
            }
            Action::CancelTimer(timer) => {
                self.cancel(*timer);
                true
            }
            _ => false,
        }
    }

    /// Starts (or restarts) a timer.
    pub fn start(&mut self, timer: Timer, after: Duration) {
        self.cancel(timer);
        let generation = self.next_generation;
        self.next_generation += 1;
        let tx = self.tx.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Fired { timer, generation });
        });
        self.running.insert(timer, (generation, handle));
    }

    /// Cancels a timer.
    pub fn cancel(&mut self, timer: Timer) {
        if let Some((_, h)) = self.running.remove(&timer) {
            h.abort();
        }
    }

    /// The event to feed the machine for an expiry, or `None` when it is stale.
    pub fn expired(&mut self, fired: Fired) -> Option<Event> {
        match self.running.get(&fired.timer) {
            Some((g, _)) if *g == fired.generation => {
                self.running.remove(&fired.timer);
                Some(Event::TimerExpired(fired.timer))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn restarts_and_cancels_drop_stale_expiries() {
        let (mut t, mut rx) = Timers::new();
        t.start(Timer::DeadInterval, Duration::from_secs(3));
        t.start(Timer::GuardPeriod, Duration::from_secs(1));
        assert!(t.apply(&Action::CancelTimer(Timer::GuardPeriod)));
        assert!(!t.apply(&Action::SendHello));
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Restart just as... a stale expiry may be queued: simulate one.
        let stale = Fired { timer: Timer::DeadInterval, generation: 1 };
        assert!(t.apply(&Action::StartTimer { timer: Timer::DeadInterval, after: Duration::from_secs(3) }));
        assert_eq!(t.expired(stale), None);
        let fired = rx.recv().await.unwrap();
        assert_eq!(t.expired(fired), Some(Event::TimerExpired(Timer::DeadInterval)));
        assert!(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.is_err(), "guard was cancelled");
    }
}
