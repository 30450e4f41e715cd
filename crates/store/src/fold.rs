//! The day fold of number rollups: ingest writes per-number rows of grain `hour` only, and a
//! fold later sums a finished hour's rows into the `day` rows, once per hour instead of once per
//! record (each record would otherwise touch up to four more rows).
//!
//! Per dataset, `rollup_number_folds.folded_through` (the watermark W) is the last hour bucket
//! whose number rows are included in the day rows. The rules, in one place:
//! * an increment of hour bucket `h` also goes to its day row when `h <= W`
//!   ([`day_numbers_too`]): a late record for an hour already folded is not lost from day views;
//! * a fold sums the hour rows of `(W, L]` into day rows and sets W = L in one transaction
//!   ([`run`]), L from [`fold_limit`]: an hour is folded once a full later hour of data exists;
//! * a day D's number counts are its day rows plus the hour rows of hours of D above W (the
//!   analytics read W in the same snapshot as the rows).
//!
//! PostgreSQL with several collectors: a transaction that applies increments reads W with
//! `FOR SHARE`, the fold takes it `FOR UPDATE`, so a fold never runs between an apply's reading
//! of W and its commit, and (READ COMMITTED) sees every committed hour row.

use std::time::Instant;

use crate::StoreError;
use crate::model::{Dataset, Grouping};
use crate::sql::{Sql, Value};

/// W of a dataset with nothing folded (a new store): every number increment is hour-only.
pub const NOTHING_FOLDED: i64 = i64::MIN;

/// An hour is folded once data exists this long after its start (the hour itself and a full
/// later one).
pub const FOLD_LAG_SECS: i64 = 2 * 3600;

/// Per dataset, the last hour bucket whose number rows are in the day rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folds {
    enum_: i64,
    sip: i64,
}

impl Default for Folds {
    fn default() -> Self {
        Folds { enum_: NOTHING_FOLDED, sip: NOTHING_FOLDED }
    }
}

impl Folds {
    /// W of `dataset`.
    pub fn get(&self, dataset: Dataset) -> i64 {
        match dataset {
            Dataset::Enum => self.enum_,
            Dataset::Sip => self.sip,
        }
    }

    /// Sets W of `dataset`.
    pub fn set(&mut self, dataset: Dataset, folded_through: i64) {
        match dataset {
            Dataset::Enum => self.enum_ = folded_through,
            Dataset::Sip => self.sip = folded_through,
        }
    }

    /// W of the dataset named `name` (`ENUM`, `SIP`), if it is one.
    pub fn get_named(&self, name: &str) -> i64 {
        Dataset::ALL.into_iter().find(|d| d.as_str() == name).map_or(NOTHING_FOLDED, |d| self.get(d))
    }
}

/// Whether a number increment of hour bucket `hour` is also written to its day row: only when
/// that hour is already folded (`hour <= folded_through`); otherwise the fold carries it there.
pub fn day_numbers_too(hour: i64, folded_through: i64) -> bool {
    hour <= folded_through
}

/// The last hour bucket a fold may include: two hours before the earlier of the newest hour with
/// data and the current hour (data time matters: a replay of old traffic folds as it goes; a
/// clock behind the data does not fold hours still arriving). `None`: no data.
pub fn fold_limit(newest_hour: Option<i64>, now_secs: i64) -> Option<i64> {
    let newest = newest_hour?.min(Grouping::Hour.bucket_of(now_secs));
    Some(Grouping::Hour.bucket_of(newest) - FOLD_LAG_SECS)
}

/// What one fold pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FoldOutcome {
    /// Hours folded (over both datasets).
    pub hours: u64,
    /// Day rows inserted or increased.
    pub rows: u64,
    /// Seconds the folding statements took (0 when nothing was due).
    pub seconds: f64,
}

/// Reads W of every dataset, with `lock` appended to the query (`""`, `" FOR SHARE"`,
/// `" FOR UPDATE"`; SQLite has no row locks: its writer is single).
pub(crate) fn read(db: &dyn Sql, lock: &str) -> Result<Folds, StoreError> {
    let mut folds = Folds::default();
    for r in
        db.query(&format!("SELECT dataset, folded_through FROM rollup_number_folds ORDER BY dataset{lock}"), &[])?
    {
        let name = r[0].text();
        match Dataset::ALL.into_iter().find(|d| d.as_str() == name) {
            Some(d) => folds.set(d, r[1].i64()),
            None => {
                return Err(StoreError::BadQuery(format!(
                    "rollup_number_folds: unknown dataset {name:?} (expected ENUM or SIP): the schema is damaged"
                )));
            }
        }
    }
    Ok(folds)
}

/// The fold of one dataset's, side's and device's hours `($4, $5]`: a range of the primary key
/// (dataset, grain, side, device, bucket, ...), so it reads only the hours folded, however many
/// hours the table keeps; rows in primary-key order (the B-tree is walked from left to right,
/// and row locks are taken in the order every upsert takes them).
const FOLD: &str = "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) \
SELECT dataset, 'day', side, device, bucket - bucket % 86400, number, direction, SUM(n) FROM rollup_numbers \
WHERE dataset = $1 AND grain = 'hour' AND side = $2 AND device = $3 AND bucket > $4 AND bucket <= $5 \
GROUP BY dataset, side, device, bucket - bucket % 86400, number, direction \
ORDER BY dataset, side, device, bucket - bucket % 86400, number, direction \
ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + excluded.n";

/// Sides of number rollups, in primary-key order.
const SIDES: [&str; 2] = ["destination", "source"];

/// Whether [`run`] would fold anything now, read without locks (a store with several writers
/// checks this before taking the watermarks `FOR UPDATE`; W only grows, so a stale answer only
/// delays a fold to the next check).
pub(crate) fn due(db: &dyn Sql, now_secs: i64) -> Result<bool, StoreError> {
    let folds = read(db, "")?;
    for dataset in Dataset::ALL {
        if limit(db, dataset, now_secs, None)?.is_some_and(|l| l > folds.get(dataset)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The last hour bucket a fold of `dataset` would include now (see [`fold_limit`]), at least
/// `at_least`.
fn limit(db: &dyn Sql, dataset: Dataset, now_secs: i64, at_least: Option<i64>) -> Result<Option<i64>, StoreError> {
    let newest = db
        .query(
            "SELECT MAX(bucket) FROM rollup_counts WHERE dataset = $1 AND grain = 'hour' AND device = '*'",
            &[dataset.as_str().into()],
        )?
        .first()
        .and_then(|r| match r[0] {
            Value::Null => None,
            ref v => Some(v.i64()),
        });
    Ok(match (fold_limit(newest, now_secs), at_least) {
        (Some(l), Some(a)) => Some(l.max(a)),
        (l, a) => l.or(a),
    })
}

/// Folds every hour that is due (see [`fold_limit`]), and, with `at_least`, every hour up to that
/// bucket (retention folds the hours it is about to delete). Runs in the caller's transaction:
/// the day rows and the new W commit together. `lock` is appended to the read of W
/// (`" FOR UPDATE"` on PostgreSQL). Cheap when nothing is due: two index lookups per dataset.
pub(crate) fn run(db: &dyn Sql, lock: &str, now_secs: i64, at_least: Option<i64>) -> Result<FoldOutcome, StoreError> {
    let folds = read(db, lock)?;
    let mut outcome = FoldOutcome::default();
    for dataset in Dataset::ALL {
        let w = folds.get(dataset);
        let Some(limit) = limit(db, dataset, now_secs, at_least)?.filter(|l| *l > w) else {
            continue;
        };
        let started = Instant::now();
        // The devices with records in those hours (and `*`), from the small count rollups.
        let devices = db.query(
            "SELECT DISTINCT device FROM rollup_counts WHERE dataset = $1 AND grain = 'hour' AND bucket > $2 AND bucket <= $3 ORDER BY device",
            &[dataset.as_str().into(), w.into(), limit.into()],
        )?;
        let mut rows = 0;
        for side in SIDES {
            for device in &devices {
                rows += db.execute(
                    FOLD,
                    &[dataset.as_str().into(), side.into(), device[0].clone(), w.into(), limit.into()],
                )?;
            }
        }
        db.execute(
            "UPDATE rollup_number_folds SET folded_through = $1 WHERE dataset = $2",
            &[limit.into(), dataset.as_str().into()],
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let hours = if w == NOTHING_FOLDED { 0 } else { ((limit - w) / 3600) as u64 };
        tracing::info!(
            dataset = dataset.as_str(),
            through = limit,
            day_rows = rows,
            seconds,
            "number rollups folded into days"
        );
        outcome.hours += hours;
        outcome.rows += rows;
        outcome.seconds += seconds;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    #[test]
    fn an_increment_goes_to_the_day_row_exactly_when_its_hour_is_folded() {
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        for w in [NOTHING_FOLDED, day - H, day, day + H, day + 23 * H] {
            for h in (-2..26).map(|i| day + i * H) {
                assert_eq!(day_numbers_too(h, w), w != NOTHING_FOLDED && h <= w, "hour {h}, folded through {w}");
            }
        }
        assert!(!day_numbers_too(i64::MIN + 1, NOTHING_FOLDED));
    }

    #[test]
    fn an_hour_is_folded_once_a_full_later_hour_of_data_exists_and_not_ahead_of_the_clock() {
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        assert_eq!(fold_limit(None, day), None);
        for newest in (0..30).map(|i| day + i * H) {
            for now in (0..30).map(|i| day + i * H + 1234) {
                let expected = newest.min(now - now % H) - 2 * H;
                assert_eq!(fold_limit(Some(newest), now), Some(expected), "newest {newest}, now {now}");
                // The newest hour and the one before it are never folded.
                assert!(expected < newest - H);
            }
        }
    }

    #[test]
    fn folds_are_per_dataset() {
        let mut f = Folds::default();
        f.set(Dataset::Sip, 7200);
        assert_eq!((f.get(Dataset::Enum), f.get(Dataset::Sip), f.get_named("SIP")), (NOTHING_FOLDED, 7200, 7200));
        assert_eq!(f.get_named("nope"), NOTHING_FOLDED);
    }
}
