//! The bound on concurrent password hashing.
//!
//! Argon2 needs about 19 MiB per check and runs on the blocking pool, which grows to hundreds
//! of threads: without a bound, 300 concurrent logins held 5.9 GB in the process that also
//! answers ENUM. Every Argon2 hash or verification in a server goes through a [`PasswordGate`]:
//! at most [`PERMITS`] run at once, at most [`MAX_WAITING`] more wait, each at most
//! [`MAX_WAIT`]; anyone else is turned away at once (nothing is allocated for them).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Password checks running at once (about 19 MiB each).
pub const PERMITS: usize = 2;
/// Password checks waiting for a permit at most; more are refused at once.
pub const MAX_WAITING: usize = 64;
/// Longest wait for a permit.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// Refused: too many password checks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Counts a waiter while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admission to password hashing.
#[derive(Debug)]
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl Default for PasswordGate {
    fn default() -> Self {
        PasswordGate::new(PERMITS, MAX_WAITING, MAX_WAIT)
    }
}

impl PasswordGate {
    /// A gate letting `permits` checks run, `max_waiting` wait up to `max_wait`.
    pub fn new(permits: usize, max_waiting: usize, max_wait: Duration) -> Self {
        PasswordGate { permits: Arc::new(Semaphore::new(permits)), waiting: AtomicUsize::new(0), max_waiting, max_wait }
    }

    /// A permit to hash one password (held until the hashing is done), or [`Busy`].
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Busy);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_permitted_checks_run_and_the_queue_is_bounded() {
        let gate = Arc::new(PasswordGate::new(2, 1, Duration::from_millis(200)));
        let a = gate.enter().await.unwrap();
        let _b = gate.enter().await.unwrap();
        // A third waits (the one place in the queue) and gets in when a permit is released.
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.enter().await.map(drop) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A fourth finds the queue full and is refused at once.
        assert_eq!(gate.enter().await.map(drop), Err(Busy));
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        // A waiter that does not get a permit in time is refused.
        let _c = gate.enter().await.unwrap();
        assert_eq!(gate.enter().await.map(drop), Err(Busy));
        assert_eq!(gate.waiting.load(Ordering::Relaxed), 0);
    }
}
