//! A small pool of connections (readers, so analytics requests do not queue behind each other;
//! writers, so concurrent batches stream in parallel):
//! connections are opened on demand up to a bound, kept while healthy, and replaced when the
//! server closed them.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};

use postgres::Client;

use crate::StoreError;

/// Opens one connection.
pub(super) type Connect = std::sync::Arc<dyn Fn() -> Result<Client, StoreError> + Send + Sync>;

/// Idle connections and how many exist.
struct Slots {
    idle: Vec<Client>,
    open: usize,
}

/// Connections, at most `max` at once.
pub(super) struct Pool {
    connect: Connect,
    max: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

/// A connection taken from the pool; it goes back when dropped (unless the server closed it).
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Pool {
    /// A pool of at most `max` (at least 1) connections, holding `first` already.
    pub(super) fn new(connect: Connect, max: usize, first: Client) -> Pool {
        Pool {
            connect,
            max: max.max(1),
            slots: Mutex::new(Slots { idle: vec![first], open: 1 }),
            freed: Condvar::new(),
        }
    }

    /// An idle connection, a new one while fewer than `max` are open, or the next one returned.
    pub(super) fn get(&self) -> Result<Lease<'_>, StoreError> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(client) = slots.idle.pop() {
                if client.is_closed() {
                    slots.open -= 1;
                    continue;
                }
                return Ok(Lease { pool: self, client: Some(client) });
            }
            if slots.open < self.max {
                slots.open += 1;
                drop(slots);
                return match (self.connect)() {
                    Ok(client) => Ok(Lease { pool: self, client: Some(client) }),
                    Err(e) => {
                        self.slots.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            slots = self.freed.wait(slots).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Connections open now (idle or leased).
    pub(super) fn open(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).open
    }
}

impl Deref for Lease<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a lease holds its client until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a lease holds its client until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut slots = self.pool.slots.lock().unwrap_or_else(|e| e.into_inner());
        match self.client.take() {
            Some(client) if !client.is_closed() => slots.idle.push(client),
            _ => slots.open -= 1,
        }
        drop(slots);
        self.pool.freed.notify_one();
    }
}
