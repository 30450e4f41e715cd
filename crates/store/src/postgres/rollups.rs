//! Rollups in PostgreSQL: summed increments upserted with one statement per rollup table, rows
//! in key order (so concurrent collectors take row locks in the same order and never deadlock),
//! and increments recomputed from the raw records of given batches (recovery after a crash).

use std::cell::RefCell;

use postgres::Transaction;

use super::Pg;
use crate::model::Dataset;
use crate::rollup::{DEFAULT_RULE, Deltas, Flat};
use crate::{StoreError, fold};

/// Rollup rows that `deltas` touches.
pub(super) fn keys(deltas: &Deltas) -> u64 {
    (deltas.counts.len() + deltas.numbers.len() + deltas.outcomes.len()) as u64
}

/// Adds `from` to `into`.
pub(super) fn merge(into: &mut Deltas, from: Deltas) {
    for (k, n) in from.counts {
        *into.counts.entry(k).or_default() += n;
    }
    for (k, n) in from.numbers {
        *into.numbers.entry(k).or_default() += n;
    }
    for (k, d) in from.outcomes {
        let o = into.outcomes.entry(k).or_default();
        o.n += d.n;
        o.stale += d.stale;
    }
}

/// The rollup increments of the raw records stored under `batches`, read back from the raw
/// tables (the batch column is BRIN-indexed: the range condition lets the index skip the rest).
pub(super) fn recompute(tx: &mut Transaction<'_>, batches: &[i64]) -> Result<Deltas, StoreError> {
    let mut deltas = Deltas::default();
    let (Some(lo), Some(hi)) = (batches.iter().min(), batches.iter().max()) else {
        return Ok(deltas);
    };
    let range = "batch BETWEEN $1 AND $2 AND batch = ANY($3)";
    for row in tx.query(
        &format!("SELECT id, ts, device, source, destination, direction, COALESCE(rule, $4), action, stale FROM enum_queries WHERE {range}"),
        &[lo, hi, &batches, &DEFAULT_RULE],
    )? {
        deltas.add(&Flat {
            dataset: Dataset::Enum,
            id: row.get(0),
            ts_us: row.get(1),
            device: row.get(2),
            source: row.get(3),
            destination: row.get(4),
            direction: row.get(5),
            okey: row.get(6),
            odetail: row.get(7),
            stale: row.get::<_, i64>(8) != 0,
        });
    }
    for row in tx.query(
        &format!("SELECT id, ts, device, source, destination, direction, disposition FROM sip_calls WHERE {range}"),
        &[lo, hi, &batches],
    )? {
        deltas.add(&Flat {
            dataset: Dataset::Sip,
            id: row.get(0),
            ts_us: row.get(1),
            device: row.get(2),
            source: row.get(3),
            destination: row.get(4),
            direction: row.get(5),
            okey: row.get(6),
            odetail: String::new(),
            stale: false,
        });
    }
    Ok(deltas)
}

/// Applies `deltas` (hour-grain number increments, as [`Deltas::add`] makes them) in `tx`: reads
/// the fold watermarks `FOR SHARE` first (a fold waits for this transaction, and this one for a
/// fold under way), then upserts the increments and the day increments of hours already folded.
/// Returns the rollup rows touched.
pub(super) fn apply(tx: &mut Transaction<'_>, deltas: &Deltas) -> Result<u64, StoreError> {
    let folds = fold::read(&Pg(RefCell::new(&mut *tx)), " FOR SHARE")?;
    upsert(tx, deltas)?;
    // Day rows last, in the same order in every collector's transactions (no deadlock).
    let day = deltas.day_numbers(&folds);
    upsert(tx, &day)?;
    Ok(keys(deltas) + keys(&day))
}

/// Upserts the rollups, one statement per table, rows in key order (so concurrent writers take
/// row locks in the same order and cannot deadlock).
pub(super) fn upsert(tx: &mut Transaction<'_>, deltas: &Deltas) -> Result<(), StoreError> {
    let mut counts: Vec<_> = deltas.counts.iter().collect();
    counts.sort_by(|a, b| {
        (a.0.dataset, a.0.grain, &a.0.device, a.0.bucket).cmp(&(b.0.dataset, b.0.grain, &b.0.device, b.0.bucket))
    });
    if !counts.is_empty() {
        let ds: Vec<&str> = counts.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = counts.iter().map(|(k, _)| k.grain).collect();
        let device: Vec<&str> = counts.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = counts.iter().map(|(k, _)| k.bucket).collect();
        let n: Vec<i64> = counts.iter().map(|(_, n)| **n).collect();
        tx.execute(
            "INSERT INTO rollup_counts (dataset, grain, device, bucket, n) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
             ON CONFLICT (dataset, grain, device, bucket) DO UPDATE SET n = rollup_counts.n + EXCLUDED.n",
            &[&ds, &grain, &device, &bucket, &n],
        )?;
    }
    let mut numbers: Vec<_> = deltas.numbers.iter().collect();
    numbers.sort_by(|a, b| {
        let ka = (a.0.dataset, a.0.grain, a.0.side, &a.0.device, a.0.bucket, &a.0.number, &a.0.direction);
        let kb = (b.0.dataset, b.0.grain, b.0.side, &b.0.device, b.0.bucket, &b.0.number, &b.0.direction);
        ka.cmp(&kb)
    });
    if !numbers.is_empty() {
        let ds: Vec<&str> = numbers.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = numbers.iter().map(|(k, _)| k.grain).collect();
        let side: Vec<&str> = numbers.iter().map(|(k, _)| k.side).collect();
        let device: Vec<&str> = numbers.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = numbers.iter().map(|(k, _)| k.bucket).collect();
        let number: Vec<&str> = numbers.iter().map(|(k, _)| k.number.as_str()).collect();
        let direction: Vec<&str> = numbers.iter().map(|(k, _)| k.direction.as_str()).collect();
        let n: Vec<i64> = numbers.iter().map(|(_, n)| **n).collect();
        tx.execute(
            "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[]) \
             ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + EXCLUDED.n",
            &[&ds, &grain, &side, &device, &bucket, &number, &direction, &n],
        )?;
    }
    let mut outcomes: Vec<_> = deltas.outcomes.iter().collect();
    outcomes.sort_by(|a, b| {
        let ka = (a.0.dataset, a.0.grain, &a.0.device, a.0.bucket, &a.0.okey, &a.0.odetail);
        let kb = (b.0.dataset, b.0.grain, &b.0.device, b.0.bucket, &b.0.okey, &b.0.odetail);
        ka.cmp(&kb)
    });
    if !outcomes.is_empty() {
        let ds: Vec<&str> = outcomes.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = outcomes.iter().map(|(k, _)| k.grain).collect();
        let device: Vec<&str> = outcomes.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = outcomes.iter().map(|(k, _)| k.bucket).collect();
        let okey: Vec<&str> = outcomes.iter().map(|(k, _)| k.okey.as_str()).collect();
        let odetail: Vec<&str> = outcomes.iter().map(|(k, _)| k.odetail.as_str()).collect();
        let n: Vec<i64> = outcomes.iter().map(|(_, d)| d.n).collect();
        let stale: Vec<i64> = outcomes.iter().map(|(_, d)| d.stale).collect();
        tx.execute(
            "INSERT INTO rollup_outcomes (dataset, grain, device, bucket, okey, odetail, n, stale) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) \
             ON CONFLICT (dataset, grain, device, bucket, okey, odetail) DO UPDATE SET n = rollup_outcomes.n + EXCLUDED.n, stale = rollup_outcomes.stale + EXCLUDED.stale",
            &[&ds, &grain, &device, &bucket, &okey, &odetail, &n, &stale],
        )?;
    }
    Ok(())
}
