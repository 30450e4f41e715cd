//! Login sessions kept in memory.
//!
//! A session holds who logged in (the user name), a fingerprint of the password hash they
//! logged in with, its CSRF token and when it was last used; never the role. The caller checks
//! the user against the current user database on every request (see `Auth::session`), so a
//! removed user, a changed password or a changed role takes effect on the next request, also
//! when the change was made by another process (`tollgate user ...`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a session lasts without use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Sessions one user may hold; logging in again beyond this ends the least recently used.
pub const PER_USER: usize = 16;

/// SHA-256 of a stored password hash: changes whenever the password is set again.
pub type Fingerprint = [u8; 32];

/// The fingerprint of a stored (PHC) password hash.
pub fn fingerprint(password_hash: &str) -> Fingerprint {
    Sha256::digest(password_hash.as_bytes()).into()
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    fingerprint: Fingerprint,
    csrf: String,
    last_used: Instant,
}

/// What a live session says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The user who logged in.
    pub user: String,
    /// Fingerprint of the password hash they logged in with.
    pub fingerprint: Fingerprint,
    /// The session's CSRF token (in every form of its pages).
    pub csrf: String,
}

/// The sessions of one server.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for `user` and returns its id.
    pub fn open(&self, user: &str, fingerprint: Fingerprint, now: Instant) -> String {
        let id = super::random_secret();
        let mut map = self.lock();
        map.retain(|_, s| now.saturating_duration_since(s.last_used) < IDLE);
        let mut own: Vec<(Instant, String)> =
            map.iter().filter(|(_, s)| s.user == user).map(|(id, s)| (s.last_used, id.clone())).collect();
        if own.len() >= PER_USER {
            own.sort();
            for (_, old) in own.iter().take(own.len() + 1 - PER_USER) {
                map.remove(old);
            }
        }
        map.insert(
            id.clone(),
            Session { user: user.to_string(), fingerprint, csrf: super::random_secret(), last_used: now },
        );
        id
    }

    /// The holder of a live session, extending it.
    pub fn touch(&self, id: &str, now: Instant) -> Option<Holder> {
        self.holder(id, now, true)
    }

    /// The holder of a live session without extending it: for requests a page makes on its
    /// own (the Dashboard's refresh), which must not keep an unattended session alive.
    pub fn peek(&self, id: &str, now: Instant) -> Option<Holder> {
        self.holder(id, now, false)
    }

    fn holder(&self, id: &str, now: Instant, extend: bool) -> Option<Holder> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if now.saturating_duration_since(s.last_used) >= IDLE {
            map.remove(id);
            return None;
        }
        if extend {
            s.last_used = s.last_used.max(now);
        }
        Some(Holder { user: s.user.clone(), fingerprint: s.fingerprint, csrf: s.csrf.clone() })
    }

    /// Ends one session.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of `user` except `keep`.
    pub fn end_user(&self, user: &str, keep: Option<&str>) {
        self.lock().retain(|id, s| s.user != user || Some(id.as_str()) == keep);
    }

    /// Records that `user`, holding `id`, changed their password (the session stays valid).
    pub fn set_fingerprint(&self, id: &str, user: &str, fingerprint: Fingerprint) {
        if let Some(s) = self.lock().get_mut(id).filter(|s| s.user == user) {
            s.fingerprint = fingerprint;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_end_and_each_user_holds_a_bounded_number() {
        let s = Sessions::default();
        let now = Instant::now();
        let first = s.open("erin", fingerprint("h"), now);
        assert_eq!(s.touch(&first, now + IDLE / 2).unwrap().user, "erin");
        assert!(s.touch(&first, now + IDLE / 2 + IDLE).is_none(), "idle too long");
        let ids: Vec<String> =
            (0..PER_USER as u64 + 3).map(|i| s.open("erin", fingerprint("h"), now + Duration::from_secs(i))).collect();
        let live = ids.iter().filter(|id| s.touch(id, now + Duration::from_secs(100)).is_some()).count();
        assert_eq!(live, PER_USER);
        assert!(s.touch(&ids[0], now).is_none(), "the least recently used went first");
        let other = s.open("otto", fingerprint("h"), now);
        s.end_user("erin", Some(&ids[PER_USER + 2]));
        assert!(s.touch(&ids[PER_USER + 2], now + Duration::from_secs(100)).is_some());
        assert!(s.touch(&ids[PER_USER + 1], now + Duration::from_secs(100)).is_none());
        assert!(s.touch(&other, now).is_some());
    }

    #[test]
    fn automatic_refreshes_do_not_extend_a_session() {
        let s = Sessions::default();
        let now = Instant::now();
        let id = s.open("erin", fingerprint("h"), now);
        // A page refreshing itself every 5 s for the whole idle time: the session still ends
        // when the idle time since the operator's last own request has passed.
        let mut t = now;
        while t < now + IDLE {
            assert_eq!(s.peek(&id, t).unwrap().user, "erin");
            t += Duration::from_secs(5 * 60);
        }
        assert!(s.peek(&id, now + IDLE).is_none(), "ended after the idle time");
        assert!(s.touch(&id, now + IDLE / 2).is_none(), "and stays ended");
        // The operator's own requests extend it; refreshes in between do not shorten it.
        let id = s.open("erin", fingerprint("h"), now);
        assert!(s.touch(&id, now + IDLE / 2).is_some());
        assert!(s.peek(&id, now + IDLE / 2 + IDLE / 4).is_some());
        assert!(s.peek(&id, now + IDLE + IDLE / 4).is_some(), "extended by the own request at IDLE/2");
        assert!(s.peek(&id, now + IDLE / 2 + IDLE).is_none());
        assert!(s.peek("no-such-session", now).is_none());
    }

    #[test]
    fn every_session_has_its_own_csrf_token() {
        let s = Sessions::default();
        let now = Instant::now();
        let a = s.open("erin", fingerprint("h"), now);
        let b = s.open("erin", fingerprint("h"), now);
        let (ha, hb) = (s.touch(&a, now).unwrap(), s.touch(&b, now).unwrap());
        assert_ne!(ha.csrf, hb.csrf);
        assert_eq!(ha.csrf.len(), 64);
    }
}
