//! Deferred rollups shared safely by several collectors on one database.
//!
//! Every ingested batch gets a number from the `ingest_batches` sequence; its new raw records
//! carry that number, and a `rollup_pending_batches (batch, collector)` row is committed in the
//! same transaction. The batch's rollup increments are summed in memory with those of the
//! following batches for about a second; a flush then upserts them and deletes the pending rows
//! in one transaction. Deleting a pending row is the right to apply its increments: a flush that
//! deletes fewer rows than it holds batches (another collector recovered some) recomputes the
//! increments of the rows it did delete from the raw records instead, so every increment is
//! applied exactly once whatever crashes and races happen.
//!
//! A live collector holds a session advisory lock on its name. Recovery (at open and
//! periodically) recomputes from raw records the pending batches of collectors whose lock is
//! free (they are gone) and this collector's own batches it no longer holds in memory.

use std::collections::HashSet;
use std::time::Instant;

use postgres::Client;

use super::rollups;
use crate::StoreError;
use crate::rollup::Deltas;

/// Rollup increments committed as raw records but not yet applied.
#[derive(Default)]
pub(super) struct Pending {
    /// Batch numbers whose increments `deltas` holds.
    pub batches: Vec<i64>,
    /// Summed increments.
    pub deltas: Deltas,
    /// Records they count.
    pub records: u64,
    /// When the oldest batch was added.
    pub since: Option<Instant>,
}

impl Pending {
    /// Rollup rows the deltas would touch.
    pub fn keys(&self) -> u64 {
        rollups::keys(&self.deltas)
    }

    /// Adds another pending set (a flush that failed gives its batches back).
    pub fn absorb(&mut self, other: Pending) {
        self.batches.extend(other.batches);
        rollups::merge(&mut self.deltas, other.deltas);
        self.records += other.records;
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The advisory lock key of a collector name (64-bit FNV-1a).
pub(super) fn lock_key(collector: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in collector.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// What a flush or a recovery wrote.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Applied {
    /// Batches whose pending rows were deleted.
    pub batches: u64,
    /// Rollup rows upserted.
    pub keys: u64,
}

/// Applies `pending` in one transaction: deletes its pending rows, upserts its increments (or,
/// for the rows still there when some were taken by a recovery, increments recomputed from raw
/// records), commits. On error nothing is applied and the pending rows stay.
pub(super) fn flush(client: &mut Client, pending: &Pending) -> Result<Applied, StoreError> {
    let mut tx = client.transaction()?;
    let deleted: Vec<i64> = tx
        .query("DELETE FROM rollup_pending_batches WHERE batch = ANY($1) RETURNING batch", &[&pending.batches])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keys = if deleted.len() == pending.batches.len() {
        rollups::apply(&mut tx, &pending.deltas)?
    } else {
        tracing::warn!(
            held = pending.batches.len(),
            still_pending = deleted.len(),
            "some pending rollup batches were recovered by another collector; recomputing the rest from raw records"
        );
        let deltas = rollups::recompute(&mut tx, &deleted)?;
        rollups::apply(&mut tx, &deltas)?
    };
    tx.commit()?;
    Ok(Applied { batches: deleted.len() as u64, keys })
}

/// Recovers pending batches of collectors that are gone (their advisory lock is free) and of
/// `me` that are not in `held` (this collector's batches it lost track of: a failed commit, a
/// crash before its restart under the same name). One transaction; returns what it applied.
pub(super) fn recover(client: &mut Client, me: &str, held: &HashSet<i64>) -> Result<Applied, StoreError> {
    let mut tx = client.transaction()?;
    let owners: Vec<String> =
        tx.query("SELECT DISTINCT collector FROM rollup_pending_batches", &[])?.iter().map(|r| r.get(0)).collect();
    let mut taken = Vec::new();
    for owner in owners {
        if owner != me {
            // Held for the rest of the transaction: a collector of that name cannot start meanwhile.
            let free: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&lock_key(&owner)])?.get(0);
            if !free {
                continue;
            }
        }
        let batches: Vec<i64> = tx
            .query("SELECT batch FROM rollup_pending_batches WHERE collector = $1", &[&owner])?
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .filter(|b| owner != me || !held.contains(b))
            .collect();
        if batches.is_empty() {
            continue;
        }
        let deleted = tx.query(
            "DELETE FROM rollup_pending_batches WHERE batch = ANY($1) AND collector = $2 RETURNING batch",
            &[&batches, &owner],
        )?;
        if !deleted.is_empty() {
            tracing::info!(collector = %owner, batches = deleted.len(), "recovering pending rollups");
        }
        taken.extend(deleted.iter().map(|r| r.get::<_, i64>(0)));
    }
    if taken.is_empty() {
        return Ok(Applied::default());
    }
    taken.sort_unstable();
    let deltas = rollups::recompute(&mut tx, &taken)?;
    let keys = rollups::apply(&mut tx, &deltas)?;
    tx.commit()?;
    Ok(Applied { batches: taken.len() as u64, keys })
}
