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
//!
//! Shared across engines ([`VelocityTable::with_sharing`]): the table also keeps the calls it
//! counted itself ([`VelocityTable::drain_counted`]) for publishing to the other engines, and
//! merges theirs ([`VelocityTable::merge_counted`]); calls in progress published by probes
//! elsewhere are kept per probe ([`VelocityTable::apply_remote_calls`]) and forgotten when a
//! probe falls silent. Merging is a union of call times, so a batch applied twice, late or out
//! of order changes nothing.

mod remote_calls;
mod shared_view;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use remote_calls::RemoteCalls;
pub use shared_view::{SharedState, SharedView, SyncReport};

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

impl Slot {
    /// Keeps the newest `keep` call times (`times` is sorted, oldest first).
    fn keep_newest(&mut self, keep: usize) {
        let excess = self.times.len().saturating_sub(keep);
        self.times.drain(..excess);
    }
}

type Key = (Arc<str>, u64);

/// A call this engine counted, to be told to the other engines sharing its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedCall {
    /// Rule name.
    pub rule: Arc<str>,
    /// Calling number.
    pub source: E164,
    /// When, µs since the epoch.
    pub at_us: i64,
    /// The rule's condition (its window, and how many call times a counter keeps).
    pub velocity: Velocity,
}

#[derive(Debug, Default)]
struct Shard {
    slots: FxHashMap<Key, Slot>,
    dirty: FxHashSet<Key>,
    /// Calls counted here not yet drained for the other engines (sharing only).
    counted: Vec<CountedCall>,
}

/// Most counted calls a shard keeps for publishing when nobody drains them.
const MAX_COUNTED_PER_SHARD: usize = 65_536;

const SHARDS: usize = 32;

/// Calls in progress per calling number, with the numbers changed since the last drain.
#[derive(Debug, Default)]
struct Concurrent {
    calls: FxHashMap<u64, u32>,
    dirty: FxHashSet<u64>,
    /// Callers changed since the last [`VelocityTable::drain_shared_calls`] (sharing only).
    shared_dirty: FxHashSet<u64>,
}

impl Concurrent {
    /// The calls in progress now of `callers` (0: none).
    fn counts_of(&self, callers: FxHashSet<u64>) -> Vec<(E164, u32)> {
        callers
            .into_iter()
            .filter_map(|k| E164::from_u64(k).map(|e| (e, self.calls.get(&k).copied().unwrap_or(0))))
            .collect()
    }
}

/// The engine's velocity counters and calls in progress per caller: bounded, sharded,
/// replicable.
#[derive(Debug)]
pub struct VelocityTable {
    concurrent: Mutex<Concurrent>,
    /// Calls in progress published by probes in other processes.
    remote_calls: Mutex<RemoteCalls>,
    shards: Vec<Mutex<Shard>>,
    /// Most entries kept; beyond it the oldest entries of a shard are dropped.
    max_entries_per_shard: usize,
    track_changes: bool,
    /// Keep counted calls and changed calls in progress for the other engines.
    sharing: bool,
    /// Counted calls not kept for publishing because nobody drained them.
    counted_dropped: AtomicU64,
    /// How the sharing goes (set once by the sync task).
    sync: std::sync::OnceLock<Arc<dyn SyncReport>>,
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
            remote_calls: Mutex::new(RemoteCalls::default()),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            max_entries_per_shard: (max_entries / SHARDS).max(16),
            track_changes,
            sharing: false,
            counted_dropped: AtomicU64::new(0),
            sync: std::sync::OnceLock::new(),
        }
    }

    /// Keeps the calls this table counts, and the callers whose calls in progress change, for
    /// publishing to the other engines ([`VelocityTable::drain_counted`],
    /// [`VelocityTable::drain_shared_calls`]).
    pub fn with_sharing(mut self) -> Self {
        self.sharing = true;
        self
    }

    /// Attaches the sync task's report (once; later calls are ignored).
    pub fn attach_sync(&self, report: Arc<dyn SyncReport>) {
        let _ = self.sync.set(report);
    }

    /// How the sharing of these counters goes at `now_us` (off when not shared).
    pub fn shared_view(&self, now_us: i64) -> SharedView {
        self.sync.get().map_or_else(SharedView::off, |r| r.view(now_us))
    }

    /// The calls counted here since the last drain, for the other engines.
    pub fn drain_counted(&self) -> Vec<CountedCall> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.append(&mut shard.lock().unwrap_or_else(|e| e.into_inner()).counted);
        }
        out
    }

    /// Counted calls dropped because they were not drained in time (each shard keeps at most
    /// 65,536).
    pub fn counted_dropped(&self) -> u64 {
        self.counted_dropped.load(Ordering::Relaxed)
    }

    /// Adds calls other engines counted. A call already known (same rule, caller and time) is
    /// not added twice; a counter keeps its newest `calls + 1` times, as for calls counted here.
    pub fn merge_counted(&self, calls: &[CountedCall]) {
        for c in calls {
            let keep = (c.velocity.calls.min(MAX_VELOCITY_CALLS) + 1) as usize;
            let window_us = c.velocity.window_us();
            let mut s = self.shard(&c.rule, c.source.as_u64());
            let key: Key = (c.rule.clone(), c.source.as_u64());
            make_room(&mut s, &key, self.max_entries_per_shard);
            let slot = s.slots.entry(key).or_insert_with(|| Slot { window_us, times: SmallVec::new() });
            slot.window_us = window_us;
            if let Err(at) = slot.times.binary_search(&c.at_us) {
                slot.times.insert(at, c.at_us);
            }
            slot.keep_newest(keep);
        }
    }

    /// Sets the calls in progress a probe elsewhere (`origin`) published at `heard_us`: its
    /// changed callers, or all of them when `full` (callers not listed then have none).
    pub fn apply_remote_calls(&self, origin: &str, heard_us: i64, calls: &[(E164, u32)], full: bool) {
        self.remote_calls.lock().unwrap_or_else(|e| e.into_inner()).apply(origin, heard_us, calls, full);
    }

    /// Forgets the calls in progress of probes not heard from since `silent_since_us`. Returns
    /// the probes forgotten.
    pub fn expire_remote_calls(&self, silent_since_us: i64) -> Vec<String> {
        self.remote_calls.lock().unwrap_or_else(|e| e.into_inner()).expire(silent_since_us)
    }

    /// Calls in progress from probes elsewhere ignored at the bounds of [`RemoteCalls`]
    /// (too many probes, or entries).
    pub fn remote_calls_ignored(&self) -> u64 {
        self.remote_calls.lock().unwrap_or_else(|e| e.into_inner()).ignored()
    }

    /// Callers whose calls in progress, as seen here, changed since the last drain, with their
    /// count now (0: none), for the other engines.
    pub fn drain_shared_calls(&self) -> Vec<(E164, u32)> {
        let mut c = self.concurrent_lock();
        let dirty = std::mem::take(&mut c.shared_dirty);
        c.counts_of(dirty)
    }

    /// Calls in progress seen here (by this process's probe or a checkpointed copy), without
    /// those of probes elsewhere.
    pub fn local_concurrent(&self, source: E164) -> u32 {
        self.concurrent_lock().calls.get(&source.as_u64()).copied().unwrap_or(0)
    }

    /// How many of the calls kept for `rule` and `source` fall in the window ending at `at_us`
    /// (at most the rule's `calls + 1`): the count the next call adds to.
    pub fn window_count(&self, rule: &str, source: E164, at_us: i64, v: Velocity) -> u32 {
        let s = self.shard(rule, source.as_u64());
        let key: Key = (Arc::from(rule), source.as_u64());
        s.slots.get(&key).map_or(0, |slot| count_in(&slot.times, at_us, v.window_us())) as u32
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
        if self.sharing {
            c.shared_dirty.insert(source.as_u64());
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
        if self.sharing {
            c.shared_dirty.insert(key);
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
        c.counts_of(dirty)
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

/// Counters looked at to choose one to drop from a full shard.
const EVICTION_SAMPLE: usize = 16;

/// Makes room in a full shard for `key` by dropping, of a sample of its counters, the one whose
/// newest call is oldest (sampled, as Redis evicts: a full table of a million counters costs
/// each new caller 16 looks, not a scan of its shard on the answer path).
fn make_room(s: &mut Shard, key: &Key, max_entries: usize) {
    if !s.slots.contains_key(key)
        && s.slots.len() >= max_entries
        && let Some(oldest) = s
            .slots
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, slot)| slot.times.last().copied().unwrap_or(i64::MIN))
            .map(|(k, _)| k.clone())
    {
        s.slots.remove(&oldest);
    }
}

impl VelocityCounters for VelocityTable {
    fn count(&self, rule: &str, source: E164, at_us: i64, v: Velocity) -> u32 {
        let keep = (v.calls.min(MAX_VELOCITY_CALLS) + 1) as usize;
        let window_us = v.window_us();
        let mut s = self.shard(rule, source.as_u64());
        let key: Key = (Arc::from(rule), source.as_u64());
        make_room(&mut s, &key, self.max_entries_per_shard);
        if self.sharing {
            if s.counted.len() < MAX_COUNTED_PER_SHARD {
                s.counted.push(CountedCall { rule: key.0.clone(), source, at_us, velocity: v });
            } else {
                self.counted_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let slot = s.slots.entry(key.clone()).or_insert_with(|| Slot { window_us, times: SmallVec::new() });
        slot.window_us = window_us;
        slot.times.retain(|t| *t > at_us - window_us);
        slot.times.push(at_us);
        slot.times.sort_unstable();
        slot.keep_newest(keep);
        let n = count_in(&slot.times, at_us, window_us) as u32;
        if self.track_changes {
            s.dirty.insert(key);
        }
        n
    }

    fn concurrent(&self, source: E164) -> u32 {
        let remote = self.remote_calls.lock().unwrap_or_else(|e| e.into_inner()).total(source);
        self.local_concurrent(source).saturating_add(remote)
    }

    fn peek(&self, rule: &str, source: E164, at_us: i64, v: Velocity) -> u32 {
        (self.window_count(rule, source, at_us, v) + 1).min(v.calls.min(MAX_VELOCITY_CALLS) + 1)
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
    fn engines_sharing_counters_see_each_others_calls_once() {
        let a = VelocityTable::new(1000, false).with_sharing();
        let b = VelocityTable::new(1000, false).with_sharing();
        let s = n("+13125550666");
        // Two calls on a, one on b; each tells the other.
        a.count("robo", s, 1_000_000, V);
        a.count("robo", s, 2_000_000, V);
        b.count("robo", s, 2_500_000, V);
        let from_a = a.drain_counted();
        let from_b = b.drain_counted();
        assert_eq!(from_a.len(), 2);
        assert!(a.drain_counted().is_empty(), "drained once");
        a.merge_counted(&from_b);
        b.merge_counted(&from_a);
        // Applied twice, or in another order: the same counts.
        b.merge_counted(&from_a.iter().rev().cloned().collect::<Vec<_>>());
        assert_eq!(a.window_count("robo", s, 3_000_000, V), 3);
        assert_eq!(b.window_count("robo", s, 3_000_000, V), 3);
        // The next call on either is the fourth: above `calls = 3`.
        assert_eq!(b.count("robo", s, 3_000_000, V), 4);
        // Merged calls are not told again: only b's own call goes out.
        assert_eq!(b.drain_counted().len(), 1);
        // A table that does not share keeps nothing for others.
        let local = VelocityTable::default();
        local.count("robo", s, 1, V);
        assert!(local.drain_counted().is_empty());
    }

    #[test]
    fn calls_in_progress_add_up_from_probes_elsewhere() {
        let t = VelocityTable::new(1000, false).with_sharing();
        let s = n("+13125550666");
        t.call_started(s);
        assert_eq!(t.drain_shared_calls(), vec![(s, 1)]);
        t.apply_remote_calls("probe-2", 100, &[(s, 2)], false);
        assert_eq!(t.concurrent(s), 3);
        assert_eq!(t.local_concurrent(s), 1);
        assert_eq!(t.expire_remote_calls(200), vec!["probe-2".to_string()]);
        assert_eq!(t.concurrent(s), 1);
    }

    #[test]
    fn a_full_table_updates_the_counters_it_holds_and_evicts_the_oldest_for_new_ones() {
        // One shard's worth of room: 16 counters per shard.
        let t = VelocityTable::new(SHARDS * 16, false).with_sharing();
        let numbers: Vec<E164> = (0..5_000u64).map(|i| E164::from_u64(13_125_550_000 + i).unwrap()).collect();
        for (i, s) in numbers.iter().enumerate() {
            t.count("robo", *s, i as i64, V);
        }
        assert!(t.len() <= SHARDS * 16, "{}", t.len());
        let full = t.len();
        // The newest caller is held; counting it again (here or merged from another engine)
        // keeps every counter: nothing is evicted for a counter already held.
        let last = *numbers.last().unwrap();
        assert_eq!(t.count("robo", last, 5_000, V), 2);
        t.merge_counted(&[CountedCall { rule: Arc::from("robo"), source: last, at_us: 5_001, velocity: V }]);
        assert_eq!(t.len(), full);
        assert_eq!(t.window_count("robo", last, 5_001, V), 3);
        // A new caller takes the place of an old counter (the oldest of a sample of 16, here the
        // whole shard): the size stays bounded.
        let new = E164::from_u64(13_125_560_000).unwrap();
        t.merge_counted(&[CountedCall { rule: Arc::from("robo"), source: new, at_us: 5_002, velocity: V }]);
        assert_eq!(t.window_count("robo", new, 5_002, V), 1);
        assert!(t.len() <= SHARDS * 16, "{}", t.len());
        assert_eq!(t.count("robo", last, 5_003, V), 4, "the newest caller's counter survived");
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
