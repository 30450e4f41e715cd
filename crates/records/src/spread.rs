//! Several collectors behind one [`Uplink`]: batches spread over the healthy ones, failing over
//! when one fails.
//!
//! Each batch goes to the healthy collector with the fewest batches in flight (ties taken in
//! turn), so with the shipper's several batches in flight every collector stores at once. A
//! collector whose delivery fails is *down*: it is skipped until its retry time (1 s after the
//! first failure, doubling up to [`SpreadOptions::max_retry`]), and the batch goes at once to the
//! next healthy collector. A down collector past its retry time is tried again with the next
//! batch; one success makes it healthy. When every collector is down the collector whose retry
//! comes first is tried anyway (so one collector behaves as it would alone), and when it fails
//! too the delivery fails: the records stay in the spool and the shipper retries.
//!
//! A collector that refuses a batch as holding records of a newer format than it reads
//! ([`DeliveryError::RefusedNewer`], a collector of an older release) answered: it is not down,
//! and it keeps taking other batches. The refused batch is offered to the other healthy
//! collectors in turn (during a rolling upgrade one of them may read it already); when none
//! stores it, and at least one refused it so, the delivery is [`DeliveryError::RefusedNewer`]
//! (only that batch's lane waits, see [`crate::pipeline`]), even if others were down: the
//! batch could not be stored by the ones that answer. Only when every collector tried failed
//! is it [`DeliveryError::Failed`].
//!
//! A batch delivered to one collector and re-sent to another after a lost answer is stored
//! once: collectors of one deployment share the store, whose record ids are primary keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ship::{DeliveryError, Uplink};

/// Retry pacing of down collectors.
#[derive(Debug, Clone)]
pub struct SpreadOptions {
    /// Pause before a failed collector is tried again the first time.
    pub first_retry: Duration,
    /// Longest pause between tries of a collector that keeps failing.
    pub max_retry: Duration,
}

impl Default for SpreadOptions {
    fn default() -> Self {
        SpreadOptions { first_retry: Duration::from_secs(1), max_retry: Duration::from_secs(30) }
    }
}

/// One collector's health, as the spread sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorHealth {
    /// The collector's name (its URL).
    pub name: String,
    /// False from a failed delivery until a successful one.
    pub up: bool,
    /// Batches delivered to it.
    pub batches: u64,
    /// Failed deliveries to it.
    pub failures: u64,
    /// Its last failure.
    pub last_error: Option<String>,
}

struct Member {
    name: String,
    uplink: Arc<dyn Uplink>,
    in_flight: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Consecutive failures (0: healthy).
    failing: u32,
    retry_at: Option<Instant>,
    batches: u64,
    failures: u64,
    last_error: Option<String>,
}

/// Several collectors as one [`Uplink`] (see the module doc).
pub struct Spread {
    members: Vec<Member>,
    opts: SpreadOptions,
    turn: AtomicUsize,
}

impl Spread {
    /// The collectors `(name, uplink)`, in the configured order.
    pub fn new(collectors: Vec<(String, Arc<dyn Uplink>)>, opts: SpreadOptions) -> Spread {
        let members = collectors
            .into_iter()
            .map(|(name, uplink)| Member { name, uplink, in_flight: AtomicUsize::new(0), state: Mutex::default() })
            .collect();
        Spread { members, opts, turn: AtomicUsize::new(0) }
    }

    /// Each collector's health, in the configured order.
    pub fn health(&self) -> Vec<CollectorHealth> {
        self.members
            .iter()
            .map(|m| {
                let s = m.state.lock().unwrap_or_else(|p| p.into_inner());
                CollectorHealth {
                    name: m.name.clone(),
                    up: s.failing == 0,
                    batches: s.batches,
                    failures: s.failures,
                    last_error: s.last_error.clone(),
                }
            })
            .collect()
    }

    /// The collector to try next, not one of `tried`: the healthy (or due for a retry) one with
    /// the fewest batches in flight; when none is, and nothing was tried yet, the one whose
    /// retry comes first.
    fn pick(&self, tried: &[usize], now: Instant) -> Option<usize> {
        let n = self.members.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, usize)> = None;
        let mut soonest: Option<(Instant, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if tried.contains(&i) {
                continue;
            }
            let m = &self.members[i];
            let retry_at = m.state.lock().unwrap_or_else(|p| p.into_inner()).retry_at;
            match retry_at {
                Some(at) if at > now => {
                    if soonest.is_none_or(|(s, _)| at < s) {
                        soonest = Some((at, i));
                    }
                }
                _ => {
                    let load = m.in_flight.load(Ordering::Relaxed);
                    if best.is_none_or(|(l, _)| load < l) {
                        best = Some((load, i));
                    }
                }
            }
        }
        match (best, soonest) {
            (Some((_, i)), _) => Some(i),
            (None, Some((_, i))) if tried.is_empty() => Some(i),
            _ => None,
        }
    }

    fn record(&self, i: usize, result: &Result<(), DeliveryError>) {
        let mut s = self.members[i].state.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) | Err(DeliveryError::RefusedNewer(_)) => {
                // A refusal of newer records is an answer: the collector is up.
                if s.failing > 0 {
                    tracing::info!(collector = %self.members[i].name, "collector answers again");
                }
                s.failing = 0;
                s.retry_at = None;
                if result.is_ok() {
                    s.batches += 1;
                }
            }
            Err(DeliveryError::Failed(e)) => {
                let pause = self.opts.first_retry.saturating_mul(1 << s.failing.min(16)).min(self.opts.max_retry);
                if s.failing == 0 && self.members.len() > 1 {
                    tracing::warn!(collector = %self.members[i].name, error = %e, retry_in = ?pause, "collector failed; its batches go to the others");
                }
                s.failing = s.failing.saturating_add(1);
                s.retry_at = Some(Instant::now() + pause);
                s.failures += 1;
                s.last_error = Some(e.clone());
            }
        }
    }
}

impl Uplink for Spread {
    fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError> {
        let mut tried = Vec::new();
        let mut errors = Vec::new();
        let mut refusals = Vec::new();
        while let Some(i) = self.pick(&tried, Instant::now()) {
            tried.push(i);
            let m = &self.members[i];
            m.in_flight.fetch_add(1, Ordering::Relaxed);
            let result = m.uplink.deliver(ndjson, records);
            m.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.record(i, &result);
            match result {
                Ok(()) => return Ok(()),
                Err(DeliveryError::Failed(e)) => errors.push(e),
                Err(DeliveryError::RefusedNewer(e)) => refusals.push(e),
            }
        }
        if !refusals.is_empty() {
            return Err(DeliveryError::RefusedNewer(refusals.into_iter().chain(errors).collect::<Vec<_>>().join("; ")));
        }
        Err(DeliveryError::Failed(match errors.len() {
            0 => "no collector configured".to_string(),
            1 if self.members.len() == 1 => errors.remove(0),
            _ if tried.len() < self.members.len() => {
                format!("{}; the other collectors are down, waiting for their retry", errors.join("; "))
            }
            _ => errors.join("; "),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[derive(Default)]
    struct Fake {
        down: AtomicBool,
        /// An older release: refuses every batch as of a newer format.
        old: AtomicBool,
        batches: AtomicUsize,
    }

    impl Uplink for Fake {
        fn deliver(&self, _: &[u8], _: usize) -> Result<(), DeliveryError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(DeliveryError::Failed("connection refused".into()));
            }
            if self.old.load(Ordering::Relaxed) {
                return Err(DeliveryError::RefusedNewer(
                    "records of format version 3 come from a newer release".into(),
                ));
            }
            self.batches.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn spread(n: usize, opts: SpreadOptions) -> (Spread, Vec<Arc<Fake>>) {
        let fakes: Vec<Arc<Fake>> = (0..n).map(|_| Arc::new(Fake::default())).collect();
        let members = fakes.iter().enumerate().map(|(i, f)| (format!("c{i}"), f.clone() as Arc<dyn Uplink>)).collect();
        (Spread::new(members, opts), fakes)
    }

    #[test]
    fn batches_take_turns_over_healthy_collectors() {
        let (s, fakes) = spread(3, SpreadOptions::default());
        for _ in 0..30 {
            s.deliver(b"x\n", 1).unwrap();
        }
        let counts: Vec<usize> = fakes.iter().map(|f| f.batches.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![10, 10, 10]);
    }

    #[test]
    fn a_failed_collector_is_skipped_until_its_retry_then_tried_again() {
        let (s, fakes) = spread(2, SpreadOptions { first_retry: Duration::from_secs(3600), ..Default::default() });
        fakes[1].down.store(true, Ordering::Relaxed);
        for _ in 0..10 {
            s.deliver(b"x\n", 1).unwrap();
        }
        assert_eq!(fakes[0].batches.load(Ordering::Relaxed), 10, "every batch reached the healthy one");
        let h = s.health();
        assert!(h[0].up && !h[1].up);
        assert_eq!(h[1].failures, 1, "tried once, then skipped until its retry: {h:?}");
        assert_eq!(h[1].last_error.as_deref(), Some("connection refused"));
        // Its retry time has come: it is tried with the next batch and is healthy again.
        s.members[1].state.lock().unwrap().retry_at = Some(Instant::now());
        fakes[1].down.store(false, Ordering::Relaxed);
        for _ in 0..4 {
            s.deliver(b"x\n", 1).unwrap();
        }
        assert!(s.health()[1].up);
        assert!(fakes[1].batches.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn all_down_fails_and_names_every_collector_error() {
        // Retries far off: a slow second delivery must not find both due again.
        let (s, fakes) = spread(2, SpreadOptions { first_retry: Duration::from_secs(3600), ..Default::default() });
        fakes.iter().for_each(|f| f.down.store(true, Ordering::Relaxed));
        let e = s.deliver(b"x\n", 1).unwrap_err();
        assert_eq!(e, DeliveryError::Failed("connection refused; connection refused".into()));
        // Both wait for their retry: the next delivery tries the one due first, and only it.
        let e = s.deliver(b"x\n", 1).unwrap_err().to_string();
        assert!(e.ends_with("the other collectors are down, waiting for their retry"), "{e}");
        assert_eq!(s.health().iter().map(|h| h.failures).sum::<u64>(), 3);
    }

    #[test]
    fn one_collector_is_always_tried() {
        let (s, fakes) = spread(1, SpreadOptions { first_retry: Duration::from_secs(3600), ..Default::default() });
        fakes[0].down.store(true, Ordering::Relaxed);
        assert_eq!(s.deliver(b"x\n", 1).unwrap_err(), DeliveryError::Failed("connection refused".into()));
        fakes[0].down.store(false, Ordering::Relaxed);
        s.deliver(b"x\n", 1).unwrap();
        assert!(s.health()[0].up);
    }

    #[test]
    fn a_collector_refusing_newer_records_is_not_down_and_another_one_may_take_them() {
        let (s, fakes) = spread(2, SpreadOptions { first_retry: Duration::from_secs(3600), ..Default::default() });
        // Mid-upgrade: c0 is of the older release, c1 reads the newer format.
        fakes[0].old.store(true, Ordering::Relaxed);
        for _ in 0..10 {
            s.deliver(b"x\n", 1).unwrap();
        }
        assert_eq!(fakes[1].batches.load(Ordering::Relaxed), 10, "every batch stored by the upgraded one");
        let h = s.health();
        assert!(h[0].up && h[1].up, "a refusal is an answer, not an outage: {h:?}");
        assert_eq!((h[0].failures, h[0].batches), (0, 0));

        // Both old (and then one of them down too): refused, not failed.
        fakes[1].old.store(true, Ordering::Relaxed);
        let e = s.deliver(b"x\n", 1).unwrap_err();
        assert!(matches!(&e, DeliveryError::RefusedNewer(m) if m.contains("format version 3")), "{e:?}");
        fakes[1].down.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            assert!(matches!(s.deliver(b"x\n", 1), Err(DeliveryError::RefusedNewer(_))));
        }
        assert!(s.health()[0].up && !s.health()[1].up);
        // Every collector down: failed.
        fakes[0].down.store(true, Ordering::Relaxed);
        s.members[1].state.lock().unwrap().retry_at = Some(Instant::now());
        assert!(matches!(s.deliver(b"x\n", 1), Err(DeliveryError::Failed(_))));
    }
}
