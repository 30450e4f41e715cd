//! Calls in progress published by probes in other processes, per probe, summed per caller.
//!
//! Each probe publishes absolute counts (its calls in progress per caller), either the callers
//! that changed or a full snapshot, and is heard from regularly. A probe not heard from for a
//! while is forgotten with all its calls, so a probe that dies does not leave calls "in
//! progress" forever. Absolute counts make a repeated or late message harmless: it sets what
//! was already set.

use rustc_hash::FxHashMap;
use tollgate_number::E164;

/// One probe's calls in progress.
#[derive(Debug, Default)]
struct Probe {
    heard_us: i64,
    calls: FxHashMap<u64, u32>,
}

/// Most probes remembered (a new one beyond it is ignored until a silent one is forgotten).
pub const MAX_PROBES: usize = 4_096;
/// Most (probe, caller) entries remembered in all: memory stays bounded whatever is written to
/// the shared store; entries beyond it are ignored and counted.
pub const MAX_ENTRIES: usize = 2_000_000;

/// Calls in progress of probes elsewhere: per probe, and their sum per caller.
#[derive(Debug, Default)]
pub struct RemoteCalls {
    probes: FxHashMap<String, Probe>,
    totals: FxHashMap<u64, u32>,
    entries: usize,
    ignored: u64,
}

impl RemoteCalls {
    /// Sets `origin`'s calls in progress for the listed callers (0: none), or for all callers
    /// when `full`, as published at `heard_us`. A message older than one already applied for
    /// the same probe is ignored.
    pub fn apply(&mut self, origin: &str, heard_us: i64, calls: &[(E164, u32)], full: bool) {
        if !self.probes.contains_key(origin) && self.probes.len() >= MAX_PROBES {
            self.ignored += calls.len().max(1) as u64;
            return;
        }
        let probe = self.probes.entry(origin.to_string()).or_default();
        if heard_us < probe.heard_us {
            return;
        }
        probe.heard_us = heard_us;
        if full {
            self.entries -= probe.calls.len();
            for (caller, n) in probe.calls.drain() {
                subtract(&mut self.totals, caller, n);
            }
        }
        for (caller, n) in calls {
            let key = caller.as_u64();
            let before = if *n == 0 {
                probe.calls.remove(&key)
            } else if probe.calls.contains_key(&key) || self.entries < MAX_ENTRIES {
                probe.calls.insert(key, *n)
            } else {
                self.ignored += 1;
                continue;
            };
            match (before, *n) {
                (None, 0) => {}
                (None, _) => self.entries += 1,
                (Some(_), 0) => self.entries -= 1,
                (Some(_), _) => {}
            }
            if let Some(before) = before {
                subtract(&mut self.totals, key, before);
            }
            if *n > 0 {
                let total = self.totals.entry(key).or_default();
                *total = total.saturating_add(*n);
            }
        }
    }

    /// Entries ignored because [`MAX_PROBES`] or [`MAX_ENTRIES`] was reached.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Forgets probes not heard from since `silent_since_us`; returns their names.
    pub fn expire(&mut self, silent_since_us: i64) -> Vec<String> {
        let silent: Vec<String> =
            self.probes.iter().filter(|(_, p)| p.heard_us < silent_since_us).map(|(k, _)| k.clone()).collect();
        for origin in &silent {
            if let Some(p) = self.probes.remove(origin) {
                self.entries -= p.calls.len();
                for (caller, n) in p.calls {
                    subtract(&mut self.totals, caller, n);
                }
            }
        }
        silent
    }

    /// Calls in progress of `caller`, summed over probes.
    pub fn total(&self, caller: E164) -> u32 {
        self.totals.get(&caller.as_u64()).copied().unwrap_or(0)
    }

    /// Every caller with calls in progress, summed over probes, in number order.
    pub fn totals(&self) -> Vec<(E164, u32)> {
        let mut v: Vec<(E164, u32)> =
            self.totals.iter().filter_map(|(k, n)| E164::from_u64(*k).map(|e| (e, *n))).collect();
        v.sort();
        v
    }
}

fn subtract(totals: &mut FxHashMap<u64, u32>, caller: u64, n: u32) {
    if let Some(t) = totals.get_mut(&caller) {
        *t = t.saturating_sub(n);
        if *t == 0 {
            totals.remove(&caller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        s.parse().unwrap()
    }

    #[test]
    fn probes_add_up_per_caller_and_silent_probes_are_forgotten() {
        let robo = n("+13125550666");
        let other = n("+13125550667");
        let mut r = RemoteCalls::default();
        r.apply("probe-a", 10, &[(robo, 2)], false);
        r.apply("probe-b", 10, &[(robo, 1), (other, 1)], false);
        assert_eq!(r.total(robo), 3);
        // Absolute counts: the same message again changes nothing; a late, older one is ignored.
        r.apply("probe-b", 10, &[(robo, 1), (other, 1)], false);
        r.apply("probe-b", 5, &[(robo, 7)], false);
        assert_eq!(r.total(robo), 3);
        // A change, then a full snapshot that no longer lists `other`.
        r.apply("probe-a", 20, &[(robo, 1)], false);
        assert_eq!(r.total(robo), 2);
        r.apply("probe-b", 20, &[(robo, 1)], true);
        assert_eq!(r.totals(), vec![(robo, 2)]);
        // probe-a keeps talking (a heartbeat lists nothing); probe-b falls silent.
        r.apply("probe-a", 40, &[], false);
        assert_eq!(r.expire(30), vec!["probe-b".to_string()]);
        assert_eq!(r.total(robo), 1);
        assert_eq!(r.total(other), 0);
        r.apply("probe-a", 50, &[(robo, 0)], false);
        assert!(r.totals().is_empty());
        assert_eq!(r.probes.keys().collect::<Vec<_>>(), vec!["probe-a"]);
        assert_eq!(r.probes["probe-a"].heard_us, 50);
        assert_eq!(r.entries, 0);
    }

    #[test]
    fn memory_is_bounded_whatever_is_published() {
        let mut r = RemoteCalls::default();
        for i in 0..MAX_PROBES + 10 {
            r.apply(&format!("probe-{i}"), 1, &[], false);
        }
        assert_eq!(r.probes.len(), MAX_PROBES);
        assert_eq!(r.ignored(), 10);
        let many: Vec<(E164, u32)> =
            (0..(MAX_ENTRIES as u64 + 5)).map(|i| (E164::from_u64(14_155_000_000 + i).unwrap(), 1)).collect();
        r.apply("probe-0", 2, &many, false);
        assert_eq!(r.entries, MAX_ENTRIES);
        assert_eq!(r.ignored(), 15);
        // A full snapshot replaces, an expiry frees.
        r.apply("probe-0", 3, &many[..10], true);
        assert_eq!(r.entries, 10);
        r.expire(10);
        assert_eq!(r.entries, 0);
        assert!(r.totals().is_empty());
    }
}
