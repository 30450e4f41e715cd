//! The velocity condition (policy schema 2): a rule with `velocity = { calls = N, window = "60s" }`
//! matches a call when its caller has placed more than N calls that reached this rule within
//! the window, this call included: the classic robocall signal.
//!
//! Velocity needs memory of past calls, so evaluation takes a [`VelocityCounters`]. The engine
//! uses a [`VelocityTable`]: per (rule name, calling number), the times of the last N+1 calls,
//! in memory, sharded so UDP workers rarely contend. The table is session state in the SRP
//! sense: it records which entries changed ([`VelocityTable::drain_changes`]) so a standby can
//! be kept in step with micro-checkpoints, gives a full snapshot for full checkpoints, and
//! applies what it receives. Counters are keyed by rule *name*, so they survive installing a
//! new policy version that keeps the rule.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use tollgate_number::E164;

/// A rule's velocity condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Velocity {
    /// The rule matches above this many calls in the window.
    pub calls: u32,
    /// The sliding window, in seconds.
    pub window_secs: u32,
}

impl Velocity {
    /// The window in microseconds.
    pub fn window_us(self) -> i64 {
        i64::from(self.window_secs) * 1_000_000
    }
}

/// Memory of past calls for velocity rules.
pub trait VelocityCounters: Send + Sync {
    /// Counts a call from `source` reaching rule `rule` at `at_us` (µs since the epoch) and
    /// returns how many calls (this one included) fall in the window, capped at
    /// `velocity.calls + 1`.
    fn count(&self, rule: &str, source: E164, at_us: i64, velocity: Velocity) -> u32;

    /// What [`VelocityCounters::count`] would return, without counting (for `explain`).
    fn peek(&self, rule: &str, source: E164, at_us: i64, velocity: Velocity) -> u32;

    /// Calls from `source` in progress now (from a probe's open dialogs); 0 when unknown.
    fn concurrent(&self, _source: E164) -> u32 {
        0
    }
}

/// No memory: every call is the caller's first, so velocity rules never match. For checking
/// and explaining policies away from an engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCounters;

impl VelocityCounters for NoCounters {
    fn count(&self, _: &str, _: E164, _: i64, _: Velocity) -> u32 {
        1
    }

    fn peek(&self, _: &str, _: E164, _: i64, _: Velocity) -> u32 {
        1
    }
}

/// Counters looked at but never changed: `count` answers what `peek` does. For explaining a
/// call (`tollgate lookup`) without it counting as a call.
#[derive(Clone, Copy)]
pub struct PeekOnly<'a>(pub &'a dyn VelocityCounters);

impl std::fmt::Debug for PeekOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeekOnly")
    }
}

impl VelocityCounters for PeekOnly<'_> {
    fn count(&self, rule: &str, source: E164, at_us: i64, velocity: Velocity) -> u32 {
        self.0.peek(rule, source, at_us, velocity)
    }

    fn peek(&self, rule: &str, source: E164, at_us: i64, velocity: Velocity) -> u32 {
        self.0.peek(rule, source, at_us, velocity)
    }

    fn concurrent(&self, source: E164) -> u32 {
        self.0.concurrent(source)
    }
}

/// One counter as replicated between servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VelocityEntry {
    /// Rule name.
    pub rule: String,
    /// Calling number.
    pub source: E164,
    /// The rule's window, µs (entries older than it are dropped).
    pub window_us: i64,
    /// Times of the most recent calls, µs, oldest first (at most `calls + 1`). Empty: the entry
    /// was removed.
    pub times: Vec<i64>,
}

#[derive(Debug, Clone)]
struct Slot {
    window_us: i64,
    times: SmallVec<[i64; 8]>,
}

type Key = (Arc<str>, u64);

#[derive(Debug, Default)]
struct Shard {
    slots: FxHashMap<Key, Slot>,
    dirty: FxHashSet<Key>,
}

const SHARDS: usize = 32;

/// Calls in progress per calling number, with the numbers changed since the last drain.
#[derive(Debug, Default)]
struct Concurrent {
    calls: FxHashMap<u64, u32>,
    dirty: FxHashSet<u64>,
}

/// The engine's velocity counters and calls in progress per caller: bounded, sharded,
/// replicable.
#[derive(Debug)]
pub struct VelocityTable {
    concurrent: Mutex<Concurrent>,
    shards: Vec<Mutex<Shard>>,
    /// Most entries kept; beyond it the oldest entries of a shard are dropped.
    max_entries_per_shard: usize,
    track_changes: bool,
}

/// The cap on `calls` in a velocity condition (so an entry stays small).
pub const MAX_VELOCITY_CALLS: u32 = 10_000;

impl Default for VelocityTable {
    fn default() -> Self {
        VelocityTable::new(1_000_000, false)
    }
}

fn count_in(times: &[i64], at_us: i64, window_us: i64) -> usize {
    times.iter().filter(|&&t| t > at_us - window_us && t <= at_us).count()
}

impl VelocityTable {
    /// A table holding at most about `max_entries` counters; `track_changes` records changed
    /// entries for [`VelocityTable::drain_changes`] (on when a standby is kept in step).
    pub fn new(max_entries: usize, track_changes: bool) -> Self {
        VelocityTable {
            concurrent: Mutex::new(Concurrent::default()),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_entries_per_shard: (max_entries / SHARDS).max(16),
            track_changes,
        }
    }

    fn shard(&self, rule: &str, source: u64) -> std::sync::MutexGuard<'_, Shard> {
        let mut h = FxHasher::default();
        rule.hash(&mut h);
        source.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn concurrent_lock(&self) -> std::sync::MutexGuard<'_, Concurrent> {
        self.concurrent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call from `source` started (a probe saw its INVITE).
    pub fn call_started(&self, source: E164) {
        let mut c = self.concurrent_lock();
        *c.calls.entry(source.as_u64()).or_default() += 1;
        if self.track_changes {
            c.dirty.insert(source.as_u64());
        }
    }

    /// A call from `source` ended.
    pub fn call_ended(&self, source: E164) {
        let mut c = self.concurrent_lock();
        let key = source.as_u64();
        if let Some(n) = c.calls.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.calls.remove(&key);
            }
        }
        if self.track_changes {
            c.dirty.insert(key);
        }
    }

    /// Calls in progress per caller, for a full checkpoint.
    pub fn concurrent_snapshot(&self) -> Vec<(E164, u32)> {
        let c = self.concurrent_lock();
        let mut v: Vec<(E164, u32)> = c.calls.iter().filter_map(|(k, n)| E164::from_u64(*k).map(|e| (e, *n))).collect();
        v.sort();
        v
    }

    /// Callers whose calls in progress changed since the last drain (0: none left).
    pub fn drain_concurrent_changes(&self) -> Vec<(E164, u32)> {
        let mut c = self.concurrent_lock();
        let dirty = std::mem::take(&mut c.dirty);
        dirty
            .into_iter()
            .filter_map(|k| E164::from_u64(k).map(|e| (e, c.calls.get(&k).copied().unwrap_or(0))))
            .collect()
    }

    /// Sets callers' calls in progress from replicated values (0 removes).
    pub fn apply_concurrent(&self, entries: &[(E164, u32)], replace_all: bool) {
        let mut c = self.concurrent_lock();
        if replace_all {
            c.calls.clear();
            c.dirty.clear();
        }
        for (source, n) in entries {
            if *n == 0 {
                c.calls.remove(&source.as_u64());
            } else {
                c.calls.insert(source.as_u64(), *n);
            }
        }
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).slots.len()).sum()
    }

    /// True when no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries changed since the last call (removed ones with no times), for micro-checkpoints.
    pub fn drain_changes(&self) -> Vec<VelocityEntry> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let dirty = std::mem::take(&mut s.dirty);
            for key in dirty {
                let (window_us, times) = match s.slots.get(&key) {
                    Some(slot) => (slot.window_us, slot.times.to_vec()),
                    None => (0, Vec::new()),
                };
                if let Some(source) = E164::from_u64(key.1) {
                    out.push(VelocityEntry { rule: key.0.to_string(), source, window_us, times });
                }
            }
        }
        out
    }

    /// Every counter, for a full checkpoint or an audit.
    pub fn snapshot(&self) -> Vec<VelocityEntry> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let s = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, slot) in &s.slots {
                if let Some(source) = E164::from_u64(key.1) {
                    out.push(VelocityEntry {
                        rule: key.0.to_string(),
                        source,
                        window_us: slot.window_us,
                        times: slot.times.to_vec(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.rule, a.source).cmp(&(&b.rule, b.source)));
        out
    }

    /// Applies replicated entries (an entry without times removes the counter).
    pub fn apply(&self, entries: &[VelocityEntry]) {
        for e in entries {
            let mut s = self.shard(&e.rule, e.source.as_u64());
            let key: Key = (Arc::from(e.rule.as_str()), e.source.as_u64());
            if e.times.is_empty() {
                s.slots.remove(&key);
            } else {
                s.slots.insert(key, Slot { window_us: e.window_us, times: e.times.iter().copied().collect() });
            }
        }
    }

    /// Replaces everything with a full checkpoint.
    pub fn replace_all(&self, entries: &[VelocityEntry]) {
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            s.slots.clear();
            s.dirty.clear();
        }
        self.apply(entries);
    }

    /// Drops counters whose newest call left its window before `now_us`. Returns how many.
    pub fn purge(&self, now_us: i64) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|e| e.into_inner());
            let stale: Vec<Key> = s
                .slots
                .iter()
                .filter(|(_, slot)| slot.times.last().is_none_or(|&t| t <= now_us - slot.window_us))
                .map(|(k, _)| k.clone())
                .collect();
            removed += stale.len();
            for k in stale {
                s.slots.remove(&k);
                if self.track_changes {
                    s.dirty.insert(k);
                }
            }
        }
        removed
    }
}

impl VelocityCounters for VelocityTable {
    fn count(&self, rule: &str, source: E164, at_us: i64, v: Velocity) -> u32 {
        let keep = (v.calls.min(MAX_VELOCITY_CALLS) + 1) as usize;
        let window_us = v.window_us();
        let mut s = self.shard(rule, source.as_u64());
        let key: Key = (Arc::from(rule), source.as_u64());
        if !s.slots.contains_key(&key) && s.slots.len() >= self.max_entries_per_shard {
            // Full: drop the entry whose newest call is oldest.
            if let Some(oldest) = s
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.times.last().copied().unwrap_or(i64::MIN))
                .map(|(k, _)| k.clone())
            {
                s.slots.remove(&oldest);
            }
        }
        let slot = s.slots.entry(key.clone()).or_insert_with(|| Slot { window_us, times: SmallVec::new() });
        slot.window_us = window_us;
        slot.times.retain(|t| *t > at_us - window_us);
        slot.times.push(at_us);
        slot.times.sort_unstable();
        while slot.times.len() > keep {
            slot.times.remove(0);
        }
        let n = count_in(&slot.times, at_us, window_us) as u32;
        if self.track_changes {
            s.dirty.insert(key);
        }
        n
    }

    fn concurrent(&self, source: E164) -> u32 {
        self.concurrent_lock().calls.get(&source.as_u64()).copied().unwrap_or(0)
    }

    fn peek(&self, rule: &str, source: E164, at_us: i64, v: Velocity) -> u32 {
        let s = self.shard(rule, source.as_u64());
        let key: Key = (Arc::from(rule), source.as_u64());
        let before = s.slots.get(&key).map_or(0, |slot| count_in(&slot.times, at_us, v.window_us()));
        (before as u32 + 1).min(v.calls.min(MAX_VELOCITY_CALLS) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        s.parse().unwrap()
    }

    const V: Velocity = Velocity { calls: 3, window_secs: 10 };

    #[test]
    fn more_than_n_calls_in_the_window_and_the_window_slides() {
        let t = VelocityTable::default();
        let s = n("+13125550666");
        let counts: Vec<u32> = (0..5).map(|i| t.count("robo", s, i * 1_000_000, V)).collect();
        assert_eq!(counts, vec![1, 2, 3, 4, 4], "capped at calls + 1");
        // Ten seconds after the third call, only the fourth and fifth remain, plus this one.
        assert_eq!(t.peek("robo", s, 12_500_000, V), 3);
        assert_eq!(t.count("robo", s, 12_500_000, V), 3);
        // Another rule and another caller count separately.
        assert_eq!(t.count("other", s, 12_500_000, V), 1);
        assert_eq!(t.count("robo", n("+13125550667"), 12_500_000, V), 1);
    }

    #[test]
    fn changes_snapshot_apply_and_purge() {
        let active = VelocityTable::new(1000, true);
        let s = n("+13125550666");
        for i in 0..3 {
            active.count("robo", s, i * 1_000_000, V);
        }
        let changes = active.drain_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].times, vec![0, 1_000_000, 2_000_000]);
        assert!(active.drain_changes().is_empty());

        let standby = VelocityTable::new(1000, false);
        standby.apply(&changes);
        assert_eq!(standby.snapshot(), active.snapshot());
        assert_eq!(standby.count("robo", s, 3_000_000, V), 4, "the standby continues where the active was");

        assert_eq!(active.purge(30_000_000), 1);
        let removal = active.drain_changes();
        assert!(removal[0].times.is_empty());
        standby.apply(&removal);
        assert!(standby.is_empty());
        standby.replace_all(&changes);
        assert_eq!(standby.len(), 1);
    }

    #[test]
    fn calls_in_progress_are_counted_and_replicated() {
        let active = VelocityTable::new(1000, true);
        let s = n("+13125550666");
        active.call_started(s);
        active.call_started(s);
        active.call_ended(s);
        active.call_started(s);
        assert_eq!(active.concurrent(s), 2);
        let standby = VelocityTable::new(1000, false);
        standby.apply_concurrent(&active.drain_concurrent_changes(), false);
        assert_eq!(standby.concurrent(s), 2);
        active.call_ended(s);
        active.call_ended(s);
        active.call_ended(s); // an end without a start is not negative
        assert_eq!(active.concurrent(s), 0);
        let changes = active.drain_concurrent_changes();
        assert_eq!(changes, vec![(s, 0)]);
        standby.apply_concurrent(&changes, false);
        assert_eq!(standby.concurrent(s), 0);
        assert!(standby.concurrent_snapshot().is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let t = VelocityTable::new(SHARDS * 16, false);
        for i in 0..10_000u64 {
            t.count("robo", E164::from_u64(13_125_550_000 + i).unwrap(), i as i64, V);
        }
        assert!(t.len() <= SHARDS * 16, "{}", t.len());
    }
}
