//! The retransmission window: the answers to recent INVITEs, kept so a retransmission (same
//! top Via branch, Call-ID, CSeq number and sender) gets the very same bytes without being
//! decided, counted or recorded again (RFC 3261 17.2.1 and 8.2.6: a stateless server answers
//! a retransmission as it answered the request), and a CANCEL knows the INVITE was answered.
//!
//! Bounded: at most `entries` answers, and at most `entries` KiB of keys and answers together;
//! the oldest is forgotten first (and counted). An answer is kept for `window`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;

/// Which INVITE an answer was for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The top Via's branch (empty when it has none).
    pub branch: Box<str>,
    /// The Call-ID.
    pub call_id: Box<str>,
    /// The CSeq number.
    pub cseq: u32,
    /// Who sent it.
    pub sender: SocketAddr,
}

impl Key {
    fn bytes(&self) -> usize {
        self.branch.len() + self.call_id.len() + 64
    }
}

/// An answer kept: `None` while its INVITE is still being decided.
struct Entry {
    at: Instant,
    answer: Option<(Vec<u8>, SocketAddr)>,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.answer.as_ref().map_or(0, |(b, _)| b.len()) + 48
    }
}

/// What the window knows of an INVITE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not answered within the window: it is now reserved for the caller to answer
    /// ([`Window::answered`]) or give up ([`Window::forget`]).
    New,
    /// Being decided (a copy that arrived at the same time): nothing to send yet.
    InProgress,
    /// Answered: these bytes, to this address.
    Answered(Vec<u8>, SocketAddr),
}

struct Inner {
    map: LinkedHashMap<Key, Entry>,
    bytes: usize,
}

/// The window.
pub(crate) struct Window {
    inner: Mutex<Inner>,
    window: Duration,
    max_entries: usize,
    max_bytes: usize,
    evicted: AtomicU64,
}

impl Window {
    /// A window keeping answers for `window`, at most `max_entries` of them.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Window {
            inner: Mutex::new(Inner { map: LinkedHashMap::new(), bytes: 0 }),
            window,
            max_entries: max_entries.max(1),
            max_bytes: max_entries.max(1).saturating_mul(1024),
            evicted: AtomicU64::new(0),
        }
    }

    /// Answers still within the window forgotten to keep the bounds.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Answers kept (and INVITEs in progress).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (no method panics midway).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks `key` up at `now`; a new (or expired) key is reserved.
    pub fn check(&self, key: &Key, now: Instant) -> Seen {
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if let Some(entry) = inner.map.get(key)
            && !self.expired(entry, now)
        {
            return match &entry.answer {
                Some((bytes, to)) => Seen::Answered(bytes.clone(), *to),
                None => Seen::InProgress,
            };
        }
        if let Some(old) = inner.map.remove(key) {
            inner.bytes -= key.bytes() + old.bytes();
        }
        let entry = Entry { at: now, answer: None };
        inner.bytes += key.bytes() + entry.bytes();
        inner.map.insert(key.clone(), entry);
        self.bound(&mut inner);
        Seen::New
    }

    /// True if `key` was answered (or is being decided) within the window.
    pub fn contains(&self, key: &Key, now: Instant) -> bool {
        self.lock().map.get(key).is_some_and(|e| !self.expired(e, now))
    }

    /// Keeps the answer to a reserved key (if it is still there).
    pub fn answered(&self, key: &Key, bytes: &[u8], to: SocketAddr) {
        let mut inner = self.lock();
        let Some(entry) = inner.map.get_mut(key) else { return };
        let before = entry.bytes();
        entry.answer = Some((bytes.to_vec(), to));
        let after = entry.bytes();
        inner.bytes = inner.bytes + after - before;
        self.bound(&mut inner);
    }

    /// Forgets a reserved key that will not be answered.
    pub fn forget(&self, key: &Key) {
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(key) {
            inner.bytes -= key.bytes() + old.bytes();
        }
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.checked_duration_since(entry.at).is_some_and(|age| age >= self.window)
    }

    /// Drops the expired answers at the front (the oldest).
    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((key, entry)) = inner.map.front() {
            if !self.expired(entry, now) {
                break;
            }
            let freed = key.bytes() + entry.bytes();
            inner.map.pop_front();
            inner.bytes -= freed;
        }
    }

    /// Drops the oldest answers while over a bound (never the newest one).
    fn bound(&self, inner: &mut Inner) {
        while inner.map.len() > 1 && (inner.map.len() > self.max_entries || inner.bytes > self.max_bytes) {
            if let Some((key, entry)) = inner.map.pop_front() {
                inner.bytes -= key.bytes() + entry.bytes();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        Key {
            branch: "z9hG4bK-1".into(),
            call_id: "c".into(),
            cseq: n,
            sender: SocketAddr::from(([127, 0, 0, 1], 5060)),
        }
    }

    #[test]
    fn keeps_answers_for_the_window_and_within_bounds() {
        let w = Window::new(Duration::from_secs(32), 2);
        let t0 = Instant::now();
        assert_eq!(w.check(&key(1), t0), Seen::New);
        assert_eq!(w.check(&key(1), t0), Seen::InProgress);
        w.answered(&key(1), b"SIP/2.0 302", key(1).sender);
        assert_eq!(
            w.check(&key(1), t0 + Duration::from_secs(31)),
            Seen::Answered(b"SIP/2.0 302".to_vec(), key(1).sender)
        );
        assert_eq!(w.check(&key(1), t0 + Duration::from_secs(32)), Seen::New, "expired: a new INVITE");
        assert_eq!(w.check(&key(2), t0 + Duration::from_secs(32)), Seen::New);
        assert_eq!(w.check(&key(3), t0 + Duration::from_secs(32)), Seen::New);
        assert_eq!(w.len(), 2);
        assert_eq!(w.evicted(), 1);
        assert!(!w.contains(&key(1), t0 + Duration::from_secs(32)));
        w.forget(&key(3));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn bytes_are_bounded_too() {
        let w = Window::new(Duration::from_secs(32), 4);
        let t0 = Instant::now();
        for n in 0..4 {
            assert_eq!(w.check(&key(n), t0), Seen::New);
            w.answered(&key(n), &[b'x'; 2000], key(n).sender);
        }
        // 4 KiB in all: at most one 2000-byte answer and its key fit beside the newest.
        assert!(w.len() <= 2, "{}", w.len());
        assert!(w.lock().bytes <= 4 * 1024 || w.len() == 1);
    }
}
