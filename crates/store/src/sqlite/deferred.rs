//! Deferred rollups: the raw rows of a batch are committed with the batch, their rollup
//! increments wait in an [`Accumulator`] and are written later, many batches at once, in one
//! transaction that also moves the watermark.
//!
//! The watermark (`rollup_watermark`, one row per raw table) is the highest rowid whose
//! increments are in the rollups. SQLite gives a new row the highest rowid plus one, so the raw
//! rows not yet rolled up are exactly those above the watermark. The in-memory accumulator holds
//! the increments of exactly those rows; when it cannot be trusted (the store was just opened,
//! possibly after a crash, or a transaction failed half way), it is rebuilt from the rows above
//! the watermark inside the flush transaction. Either way each row's increments are applied once:
//! in the transaction that moves the watermark past it.
//!
//! Retention can delete the rows with the highest rowids, after which SQLite would hand out
//! rowids at or below the watermark again; [`reset_after_delete`] lowers the watermark to the
//! rows left (everything is rolled up then: retention flushes first).

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tollgate_records::Record;

use super::accumulator::{Accumulator, Facts, Num, Row};
use crate::model::Dataset;
use crate::sqlite::{UPSERT_COUNT, UPSERT_NUMBER, UPSERT_OUTCOME};
use crate::{StoreError, StoreStats, fold};

/// The raw tables whose rows are rolled up, in the order of [`Pending`]'s watermarks.
pub(crate) const RAW_TABLES: [(&str, Dataset); 2] = [("enum_queries", Dataset::Enum), ("sip_calls", Dataset::Sip)];

fn table_index(dataset: Dataset) -> usize {
    match dataset {
        Dataset::Enum => 0,
        Dataset::Sip => 1,
    }
}

/// Increments of stored raw rows that are not yet in the rollups.
#[derive(Debug)]
pub(crate) struct Pending {
    acc: Accumulator,
    /// Raw rows whose increments are held.
    records: u64,
    /// Per raw table: the highest rowid whose increments are held (0: none).
    high: [i64; 2],
    /// When the oldest held increment was added.
    since: Option<Instant>,
    /// The accumulator may not match the rows above the watermark: rebuild it from them.
    rebuild: bool,
    stats: StoreStats,
    max_age: Duration,
    key_budget: usize,
}

impl Pending {
    /// Nothing held yet; increments are written once `max_age` old or `key_budget` keys.
    pub fn new(max_age: Duration, key_budget: usize) -> Self {
        Pending {
            acc: Accumulator::default(),
            records: 0,
            high: [0; 2],
            since: None,
            // Opened: rows a crash left above the watermark are rolled up by the first flush.
            rebuild: true,
            stats: StoreStats::default(),
            max_age,
            key_budget,
        }
    }

    /// Adds a record just inserted as row `rowid` of its raw table (in a transaction not yet
    /// committed: call [`Pending::broken`] if it fails).
    pub fn add(&mut self, record: &Record, rowid: i64) {
        let facts = Facts::of(record);
        let i = table_index(facts.dataset);
        self.high[i] = self.high[i].max(rowid);
        self.acc.add(&facts);
        self.records += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// A transaction failed: what is held may disagree with the database.
    pub fn broken(&mut self) {
        self.rebuild = true;
    }

    /// True when something is to be written.
    pub fn any(&self) -> bool {
        self.rebuild || self.records > 0
    }

    /// True when the held increments should be written now: old enough, or too many keys.
    pub fn due(&self) -> bool {
        self.rebuild || self.acc.keys() >= self.key_budget || self.since.is_some_and(|t| t.elapsed() >= self.max_age)
    }

    /// The counters, with the records held now.
    pub fn stats(&self) -> StoreStats {
        StoreStats { pending_records: self.records, ..self.stats }
    }

    /// Counts a fold pass done outside a flush (retention).
    pub fn count_fold(&mut self, f: &fold::FoldOutcome) {
        self.stats.count_fold(f);
    }

    fn reset(&mut self) {
        self.acc.clear();
        self.records = 0;
        self.high = [0; 2];
        self.since = None;
    }
}

/// Writes the held increments (rebuilding them first if needed) and moves the watermarks, in
/// one transaction. On failure nothing is written and the next flush rebuilds.
pub(crate) fn flush(conn: &mut Connection, p: &mut Pending) -> Result<(), StoreError> {
    if !p.any() {
        return Ok(());
    }
    let started = Instant::now();
    let result = (|| -> Result<(usize, fold::FoldOutcome), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if p.rebuild {
            p.reset();
            recover(&tx, p)?;
        }
        // Hours already folded get their day increments now (W cannot move before this
        // transaction commits: only this writer folds, below).
        p.acc.add_day_numbers(&fold::read(&*tx, "")?);
        let keys = p.acc.keys();
        write(&tx, &p.acc)?;
        for (i, (table, _)) in RAW_TABLES.iter().enumerate() {
            if p.high[i] > 0 {
                tx.prepare_cached("UPDATE rollup_watermark SET last_rowid = ?1 WHERE tbl = ?2")?
                    .execute(params![p.high[i], table])?;
            }
        }
        // With the increments written, fold the hours now due, in the same transaction.
        let folded = fold::run(&*tx, "", chrono::Utc::now().timestamp(), None)?;
        tx.commit()?;
        Ok((keys, folded))
    })();
    match result {
        Ok((keys, folded)) => {
            if keys > 0 {
                p.stats.flushes += 1;
                p.stats.flush_seconds_total += started.elapsed().as_secs_f64();
                p.stats.last_flush_keys = keys as u64;
            }
            p.stats.count_fold(&folded);
            p.reset();
            p.rebuild = false;
            Ok(())
        }
        Err(e) => {
            p.rebuild = true;
            Err(e)
        }
    }
}

fn write(tx: &Transaction<'_>, acc: &Accumulator) -> Result<(), StoreError> {
    let mut counts = tx.prepare_cached(UPSERT_COUNT)?;
    let mut outcomes = tx.prepare_cached(UPSERT_OUTCOME)?;
    let mut numbers = tx.prepare_cached(UPSERT_NUMBER)?;
    acc.for_each_sorted(|row| -> Result<(), rusqlite::Error> {
        match row {
            Row::Count { dataset, grain, device, bucket, n } => {
                counts.execute(params![dataset, grain, device, bucket, n])?;
            }
            Row::Outcome { dataset, grain, device, bucket, okey, odetail, n, stale } => {
                outcomes.execute(params![dataset, grain, device, bucket, okey, odetail, n, stale])?;
            }
            Row::Number { dataset, grain, side, device, bucket, number, direction, n } => {
                numbers.execute(params![dataset, grain, side, device, bucket, number, direction, n])?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

fn watermark(tx: &Transaction<'_>, table: &str) -> Result<i64, StoreError> {
    tx.query_row("SELECT last_rowid FROM rollup_watermark WHERE tbl = ?1", [table], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::BadQuery(format!("rollup_watermark has no row for {table}: the schema is damaged")))
}

/// Reads the raw rows above each watermark into `p`.
fn recover(tx: &Transaction<'_>, p: &mut Pending) -> Result<(), StoreError> {
    for (i, (table, dataset)) in RAW_TABLES.iter().enumerate() {
        let from = watermark(tx, table)?;
        let sql = match dataset {
            Dataset::Enum => {
                "SELECT rowid, ts, device, source, destination, direction, COALESCE(rule, '(default)'), action, stale FROM enum_queries WHERE rowid > ?1 ORDER BY rowid"
            }
            Dataset::Sip => {
                "SELECT rowid, ts, device, source, destination, direction, disposition, '', 0 FROM sip_calls WHERE rowid > ?1 ORDER BY rowid"
            }
        };
        let mut stmt = tx.prepare(sql)?;
        let mut rows = stmt.query([from])?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            let ts: i64 = r.get(1)?;
            let text = |i: usize| -> Result<Option<&str>, rusqlite::Error> { Ok(r.get_ref(i)?.as_str_or_null()?) };
            let facts = Facts {
                dataset: *dataset,
                secs: ts.div_euclid(1_000_000),
                device: text(2)?.unwrap_or_default(),
                source: Num::from_column(text(3)?),
                destination: Num::from_column(text(4)?),
                direction: text(5)?.unwrap_or_default(),
                okey: text(6)?.unwrap_or_default(),
                odetail: text(7)?.unwrap_or_default(),
                stale: r.get::<_, i64>(8)? != 0,
            };
            p.acc.add(&facts);
            p.high[i] = p.high[i].max(rowid);
            p.records += 1;
            n += 1;
        }
        if n > 0 {
            tracing::info!(table, records = n, "sqlite store: rolling up records stored before a restart");
        }
    }
    Ok(())
}

/// After rows were deleted (everything rolled up before): lowers each watermark to the highest
/// rowid left, so the rowids SQLite hands out next are above it.
pub(crate) fn reset_after_delete(tx: &Transaction<'_>) -> Result<(), StoreError> {
    for (table, _) in RAW_TABLES {
        tx.execute(
            &format!(
                "UPDATE rollup_watermark SET last_rowid = (SELECT COALESCE(MAX(rowid), 0) FROM {table}) WHERE tbl = ?1"
            ),
            [table],
        )?;
    }
    Ok(())
}
