//! The session state roles keep redundant: a keyed store of opaque, versioned values, and the
//! bookkeeping of which changes still have to reach the Standby.
//!
//! A role (for example the engine's velocity counters) writes its per-session state here with
//! [`SessionStore::upsert`] / [`SessionStore::remove`] on the Active chassis; the
//! [`Checkpointer`](crate::checkpoint::Checkpointer) turns the pending changes into micro-checkpoints
//! and the whole store into full checkpoints; the Standby's store is written only by applying them.
//!
//! Each value belongs to a micro-checkpoint command (CMD ID 1..=255, the seed's `micro-chkpt-cmd`),
//! which names its kind of state in `show srp checkpoint info` and lets the operator disable NACKs
//! for one kind. Values are bytes; [`SessionStore::upsert_json`] and [`SessionStore::get_json`]
//! store serde values as JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 256 * 1024;

/// A micro-checkpoint command id, 1..=255 (`srp disable nack micro-chkpt-cmd N`).
pub type CmdId = u8;

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The key is empty or too long.
    #[error("session key must be 1..={MAX_KEY_LEN} bytes (got {0})")]
    BadKey(usize),
    /// The value is too large.
    #[error("session value must be at most {MAX_VALUE_LEN} bytes (got {0})")]
    ValueTooLarge(usize),
    /// CMD ID 0 is reserved.
    #[error("checkpoint command id must be 1..=255 (got 0)")]
    BadCmd,
    /// A value did not (de)serialise.
    #[error("session value is not valid JSON for this type: {0}")]
    Json(#[from] serde_json::Error),
}

/// One session's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// Its micro-checkpoint command id.
    pub cmd: CmdId,
    /// Store-wide increasing version of its last write.
    pub version: u64,
    /// The value.
    pub value: Vec<u8>,
    /// When the session was created (its first write; on a Standby, reconstructed from its age).
    pub created_at: Instant,
    /// When it was last written.
    pub updated_at: Instant,
    replicated: bool,
}

/// One change carried by a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session was created or updated.
    Upsert {
        /// Command id.
        cmd: CmdId,
        /// Session key.
        key: String,
        /// Version.
        version: u64,
        /// Session age when checkpointed, milliseconds.
        age_ms: u64,
        /// Value.
        value: Vec<u8>,
    },
    /// A session ended.
    Remove {
        /// Command id.
        cmd: CmdId,
        /// Session key.
        key: String,
        /// Version of the removal.
        version: u64,
    },
}

impl Change {
    /// The change's command id.
    pub fn cmd(&self) -> CmdId {
        match self {
            Change::Upsert { cmd, .. } | Change::Remove { cmd, .. } => *cmd,
        }
    }
    /// The session key.
    pub fn key(&self) -> &str {
        match self {
            Change::Upsert { key, .. } | Change::Remove { key, .. } => key,
        }
    }
}

/// The session store.
#[derive(Debug, Clone, Default)]
pub struct SessionStore {
    entries: HashMap<String, SessionEntry>,
    /// Keys written since they were last checkpointed.
    dirty: BTreeSet<String>,
    /// Checkpointed keys removed since: command id and removal version.
    removed: BTreeMap<String, (CmdId, u64)>,
    next_version: u64,
}

fn check_key(key: &str) -> Result<(), SessionError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN { Err(SessionError::BadKey(key.len())) } else { Ok(()) }
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> SessionStore {
        SessionStore { next_version: 1, ..SessionStore::default() }
    }

    fn bump(&mut self) -> u64 {
        let v = self.next_version.max(1);
        self.next_version = v.saturating_add(1);
        v
    }

    /// Creates or updates a session; returns its new version.
    pub fn upsert(&mut self, cmd: CmdId, key: &str, value: Vec<u8>, now: Instant) -> Result<u64, SessionError> {
        check_key(key)?;
        if cmd == 0 {
            return Err(SessionError::BadCmd);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(SessionError::ValueTooLarge(value.len()));
        }
        let version = self.bump();
        match self.entries.get_mut(key) {
            Some(e) => {
                e.cmd = cmd;
                e.version = version;
                e.value = value;
                e.updated_at = now;
            }
            None => {
                self.entries.insert(
                    key.to_string(),
                    SessionEntry { cmd, version, value, created_at: now, updated_at: now, replicated: false },
                );
            }
        }
        self.dirty.insert(key.to_string());
        Ok(version)
    }

    /// Creates or updates a session with a serde value stored as JSON.
    pub fn upsert_json<T: Serialize>(
        &mut self,
        cmd: CmdId,
        key: &str,
        value: &T,
        now: Instant,
    ) -> Result<u64, SessionError> {
        let bytes = serde_json::to_vec(value)?;
        self.upsert(cmd, key, bytes, now)
    }

    /// A session.
    pub fn get(&self, key: &str) -> Option<&SessionEntry> {
        self.entries.get(key)
    }

    /// A session's value read back from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        match self.entries.get(key) {
            Some(e) => Ok(Some(serde_json::from_slice(&e.value)?)),
            None => Ok(None),
        }
    }

    /// Ends a session; returns it.
    pub fn remove(&mut self, key: &str) -> Option<SessionEntry> {
        let entry = self.entries.remove(key)?;
        self.dirty.remove(key);
        if entry.replicated {
            let version = self.bump();
            self.removed.insert(key.to_string(), (entry.cmd, version));
        }
        Some(entry)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every session, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SessionEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Changes not yet checkpointed (written or removed sessions).
    pub fn pending_changes(&self) -> usize {
        self.dirty.len() + self.removed.len()
    }

    /// Sessions not checkpointed yet because they are younger than `delay`.
    pub fn delayed_sessions(&self, now: Instant, delay: Duration) -> usize {
        self.dirty
            .iter()
            .filter(|k| self.entries.get(*k).is_some_and(|e| now.saturating_duration_since(e.created_at) < delay))
            .count()
    }

    // ---- replication (used by the checkpointer) ----

    /// The pending changes whose session is at least `delay` old, removals first; marks them sent.
    pub(crate) fn take_changes(&mut self, now: Instant, delay: Duration) -> Vec<Change> {
        let mut out: Vec<Change> = std::mem::take(&mut self.removed)
            .into_iter()
            .map(|(key, (cmd, version))| Change::Remove { cmd, key, version })
            .collect();
        let mut still_young = BTreeSet::new();
        for key in std::mem::take(&mut self.dirty) {
            let Some(e) = self.entries.get_mut(&key) else { continue };
            let age = now.saturating_duration_since(e.created_at);
            if age < delay {
                still_young.insert(key);
                continue;
            }
            e.replicated = true;
            out.push(Change::Upsert {
                cmd: e.cmd,
                key,
                version: e.version,
                age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                value: e.value.clone(),
            });
        }
        self.dirty = still_young;
        out
    }

    /// Every session at least `delay` old, as upserts; everything else pending stays pending.
    pub(crate) fn snapshot(&mut self, now: Instant, delay: Duration) -> Vec<Change> {
        self.removed.clear();
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        let mut sent = Vec::new();
        for key in keys {
            let e = &self.entries[key];
            let age = now.saturating_duration_since(e.created_at);
            if age < delay {
                continue;
            }
            out.push(Change::Upsert {
                cmd: e.cmd,
                key: key.clone(),
                version: e.version,
                age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                value: e.value.clone(),
            });
            sent.push(key.clone());
        }
        for key in sent {
            self.dirty.remove(&key);
            if let Some(e) = self.entries.get_mut(&key) {
                e.replicated = true;
            }
        }
        out
    }

    /// Applies one checkpointed change (Standby side).
    pub(crate) fn apply(&mut self, change: Change, now: Instant) {
        match change {
            Change::Upsert { cmd, key, version, age_ms, value } => {
                let created_at = now.checked_sub(Duration::from_millis(age_ms)).unwrap_or(now);
                self.next_version = self.next_version.max(version.saturating_add(1));
                self.dirty.remove(&key);
                self.removed.remove(&key);
                self.entries
                    .insert(key, SessionEntry { cmd, version, value, created_at, updated_at: now, replicated: true });
            }
            Change::Remove { key, version, .. } => {
                self.next_version = self.next_version.max(version.saturating_add(1));
                self.entries.remove(&key);
                self.dirty.remove(&key);
                self.removed.remove(&key);
            }
        }
    }

    /// Replaces every session by those of a full checkpoint (Standby side).
    pub(crate) fn replace_all(&mut self, changes: Vec<Change>, now: Instant) {
        let next_version = self.next_version;
        *self = SessionStore::new();
        self.next_version = next_version;
        for c in changes {
            self.apply(c, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_json_round_trips() {
        let now = Instant::now();
        let mut s = SessionStore::new();
        let v1 = s.upsert(1, "a", b"x".to_vec(), now).unwrap();
        let v2 = s.upsert(1, "a", b"y".to_vec(), now).unwrap();
        let v3 = s.upsert_json(2, "b", &vec![1, 2, 3], now).unwrap();
        assert!(v1 < v2 && v2 < v3);
        assert_eq!(s.get("a").unwrap().value, b"y");
        assert_eq!(s.get_json::<Vec<i32>>("b").unwrap(), Some(vec![1, 2, 3]));
        assert!(s.get_json::<Vec<i32>>("a").is_err());
        assert_eq!(s.get_json::<i32>("zz").unwrap(), None);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn bad_input_is_refused() {
        let now = Instant::now();
        let mut s = SessionStore::new();
        assert!(matches!(s.upsert(1, "", vec![], now), Err(SessionError::BadKey(0))));
        assert!(s.upsert(1, &"k".repeat(MAX_KEY_LEN + 1), vec![], now).is_err());
        assert!(matches!(s.upsert(0, "k", vec![], now), Err(SessionError::BadCmd)));
        assert!(s.upsert(1, "k", vec![0; MAX_VALUE_LEN + 1], now).is_err());
        assert!(s.is_empty());
    }

    #[test]
    fn changes_respect_the_checkpoint_delay_and_removals_of_unsent_sessions_vanish() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(60);
        let mut s = SessionStore::new();
        s.upsert(1, "old", b"1".to_vec(), t0).unwrap();
        let t1 = t0 + Duration::from_secs(61);
        s.upsert(1, "young", b"2".to_vec(), t1).unwrap();
        s.upsert(1, "gone", b"3".to_vec(), t1).unwrap();
        s.remove("gone");
        assert_eq!(s.delayed_sessions(t1, delay), 1);
        let c = s.take_changes(t1, delay);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key(), "old");
        assert_eq!(s.pending_changes(), 1, "young stays pending");
        // Removing a sent session sends a removal.
        s.remove("old");
        let c = s.take_changes(t1, delay);
        assert!(matches!(&c[..], [Change::Remove { key, .. }] if key == "old"));
        let c = s.take_changes(t1 + delay, delay);
        assert!(matches!(&c[..], [Change::Upsert { key, .. }] if key == "young"));
        assert_eq!(s.pending_changes(), 0);
    }

    #[test]
    fn snapshot_and_apply_rebuild_the_same_store() {
        let t0 = Instant::now();
        let mut a = SessionStore::new();
        for i in 0..10 {
            a.upsert(3, &format!("k{i}"), vec![i as u8; i], t0).unwrap();
        }
        let snap = a.snapshot(t0 + Duration::from_secs(5), Duration::ZERO);
        assert_eq!(a.pending_changes(), 0);
        let mut b = SessionStore::new();
        b.upsert(1, "stale", vec![], t0).unwrap();
        b.replace_all(snap, t0 + Duration::from_secs(5));
        assert_eq!(b.len(), 10);
        assert!(b.get("stale").is_none());
        assert_eq!(b.get("k4").unwrap().value, vec![4; 4]);
        assert_eq!(b.get("k4").unwrap().version, a.get("k4").unwrap().version);
        assert_eq!(b.pending_changes(), 0);
        // After a switchover the new Active continues above every version it saw.
        let v = b.upsert(3, "new", vec![], t0).unwrap();
        assert!(v > a.get("k9").unwrap().version);
    }
}
