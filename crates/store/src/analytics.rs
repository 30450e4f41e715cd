//! Analytics views, computed from the rollups (raw records only for per-minute top lists).
//!
//! The range is widened to whole buckets of the grouping, so every count is exact. Average CPS
//! divides a bucket's count by the bucket's length, or by the time elapsed for the bucket in
//! progress.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, Point, Row, View};
use crate::rollup::{ALL_DEVICES, UNKNOWN_NUMBER};
use crate::sql::{Sql, Value};
use crate::{StoreError, fold};

/// Most buckets one request may span.
pub const MAX_BUCKETS: i64 = 20_000;
/// Most minutes a per-minute top list may span (it reads raw records).
pub const MAX_RAW_MINUTES: i64 = 24 * 60;
/// Rows in a top list.
pub const TOP: usize = 10;

fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// The raw table of a dataset.
pub(crate) fn raw_table(d: Dataset) -> &'static str {
    match d {
        Dataset::Enum => "enum_queries",
        Dataset::Sip => "sip_calls",
    }
}

/// Runs a query against `db` at time `now`.
pub(crate) fn run(db: &dyn Sql, q: &AnalyticsQuery, now: DateTime<Utc>) -> Result<AnalyticsResult, StoreError> {
    match (q.dataset, q.view) {
        (Dataset::Sip, View::ActionsByRule) => {
            return Err(StoreError::BadQuery("Actions by Rule is an ENUM view (SIP calls have dispositions)".into()));
        }
        (Dataset::Enum, View::CallsByDisposition) => {
            return Err(StoreError::BadQuery("Calls by Disposition is a SIP view (ENUM queries have actions)".into()));
        }
        _ => {}
    }
    let len = q.grouping.seconds();
    let from = q.grouping.bucket_of(q.from.timestamp());
    let to = {
        let t = q.to.timestamp();
        let b = q.grouping.bucket_of(t);
        if b == t { b } else { b + len }
    };
    if to <= from {
        return Err(StoreError::BadQuery("the range is empty: `to` must be after `from`".into()));
    }
    if (to - from) / len > MAX_BUCKETS {
        return Err(StoreError::BadQuery(format!(
            "{} buckets of one {} is too many (at most {MAX_BUCKETS}); choose a larger grouping or a shorter range",
            (to - from) / len,
            q.grouping.as_str()
        )));
    }
    let device = q.device.clone().unwrap_or_else(|| ALL_DEVICES.to_string());
    let dataset = q.dataset.as_str();

    // Counts per bucket (every view charts them).
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for row in db.query(
        "SELECT bucket, n FROM rollup_counts WHERE dataset = $1 AND grain = $2 AND device = $3 AND bucket >= $4 AND bucket < $5",
        &[dataset.into(), q.grouping.as_str().into(), device.clone().into(), from.into(), to.into()],
    )? {
        counts.insert(row[0].i64(), row[1].i64().max(0) as u64);
    }
    let now_s = now.timestamp();
    let mut series = Vec::with_capacity(((to - from) / len) as usize);
    let mut b = from;
    while b < to {
        let count = counts.get(&b).copied().unwrap_or(0);
        let value = if q.view == View::AverageCps {
            let elapsed = (now_s - b).clamp(1, len);
            count as f64 / elapsed as f64
        } else {
            count as f64
        };
        series.push(Point { bucket: ts(b), count, value });
        b += len;
    }
    let total = counts.values().sum();

    let (summary, per_bucket) = match q.view {
        View::AverageCps => {
            let rows = series
                .iter()
                .filter(|p| p.count > 0)
                .map(|p| Row {
                    bucket: Some(p.bucket),
                    key: String::new(),
                    detail: String::new(),
                    count: p.count,
                    cps: Some(p.value),
                    stale: None,
                })
                .collect();
            (rows, Vec::new())
        }
        View::TopSource | View::TopDestination => {
            let side = if q.view == View::TopSource { "source" } else { "destination" };
            if q.grouping == Grouping::Minute {
                top_from_raw(db, q, side, &device, from, to)?
            } else {
                top_from_rollups(db, dataset, q.grouping, side, &device, &counts, (from, to))?
            }
        }
        View::ActionsByRule | View::CallsByDisposition => outcomes(db, dataset, q.grouping, &device, from, to)?,
    };
    let mut query = q.clone();
    query.from = ts(from);
    query.to = ts(to);
    Ok(AnalyticsResult { query, series, summary, per_bucket, total })
}

fn row(bucket: Option<i64>, key: String, detail: String, count: i64) -> Row {
    Row { bucket: bucket.map(ts), key, detail, count: count.max(0) as u64, cps: None, stale: None }
}

/// Sorts rows by count (descending), then key and detail, and keeps the first `n`.
fn top(mut rows: Vec<Row>, n: usize) -> Vec<Row> {
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)).then_with(|| a.detail.cmp(&b.detail)));
    rows.truncate(n);
    rows
}

fn top_from_rollups(
    db: &dyn Sql,
    dataset: &str,
    grain: Grouping,
    side: &str,
    device: &str,
    counts: &BTreeMap<i64, u64>,
    (from, to): (i64, i64),
) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
    let key = (dataset, side, device);
    let buckets: Vec<i64> = counts.keys().copied().collect();
    let day = Grouping::Day.seconds();
    let whole_days = grain != Grouping::Day && from % day == 0 && to % day == 0;
    // Day rows hold the hours up to the fold watermark; a day's later hours are read from their
    // hour rows (read in this snapshot with the rows, so a fold cannot count an hour twice).
    let days = if grain == Grouping::Day {
        buckets.clone()
    } else if whole_days {
        (from..to).step_by(day as usize).collect()
    } else {
        Vec::new()
    };
    let day_sources = if days.is_empty() { BTreeMap::new() } else { day_sources(db, dataset, device, &days)? };
    // Per bucket: the ranking of one bucket (an index scan for all devices), or for a day with
    // hours not yet folded, the exact top over its day row and those hours.
    let mut per_bucket = Vec::new();
    if grain == Grouping::Day {
        let single: Vec<Source> = day_sources.values().filter(|s| s.len() == 1).map(|s| s[0]).collect();
        let mut ranked = buckets_top(db, key, &single, TOP)?;
        for (d, sources) in &day_sources {
            let rows: Vec<Row> = if sources.len() == 1 {
                ranked
                    .remove(&sources[0])
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, dt, n)| row(Some(*d), k, dt, n))
                    .collect()
            } else {
                top_over_buckets(db, key, sources)?.into_iter().map(|r| Row { bucket: Some(ts(*d)), ..r }).collect()
            };
            per_bucket.extend(rows);
        }
    } else {
        let sources: Vec<Source> = buckets.iter().map(|b| (grain, *b)).collect();
        for ((_, bucket), rows) in buckets_top(db, key, &sources, TOP)? {
            per_bucket.extend(rows.into_iter().map(|(number, direction, n)| row(Some(bucket), number, direction, n)));
        }
    }
    // Whole range: the exact top 10 over the buckets, without summing every number. Whole days
    // are read from the day rollups (one bucket per day, not 24).
    let summary = if grain == Grouping::Day || whole_days {
        let sources: Vec<Source> = day_sources.into_values().flatten().collect();
        top_over_buckets(db, key, &sources)?
    } else {
        let sources: Vec<Source> = buckets.iter().map(|b| (grain, *b)).collect();
        top_over_buckets(db, key, &sources)?
    };
    Ok((summary, per_bucket))
}

/// Where a ranking is read from: a grain and a bucket of `rollup_numbers`.
type Source = (Grouping, i64);

/// The sources of each day's number counts: its day row, and the hour rows of its hours above
/// the fold watermark that have records (of `device`).
fn day_sources(
    db: &dyn Sql,
    dataset: &str,
    device: &str,
    days: &[i64],
) -> Result<BTreeMap<i64, Vec<Source>>, StoreError> {
    let day = Grouping::Day.seconds();
    let folded = db
        .query("SELECT folded_through FROM rollup_number_folds WHERE dataset = $1", &[dataset.into()])?
        .first()
        .map_or(fold::NOTHING_FOLDED, |r| r[0].i64());
    let mut out: BTreeMap<i64, Vec<Source>> = days.iter().map(|d| (*d, vec![(Grouping::Day, *d)])).collect();
    let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) else {
        return Ok(out);
    };
    let hours = db.query(
        "SELECT bucket FROM rollup_counts WHERE dataset = $1 AND grain = 'hour' AND device = $2 AND bucket >= $3 AND bucket < $4 AND bucket > $5 ORDER BY bucket",
        &[dataset.into(), device.into(), (*first).into(), (last + day).into(), folded.into()],
    )?;
    for r in hours {
        let h = r[0].i64();
        if let Some(sources) = out.get_mut(&Grouping::Day.bucket_of(h)) {
            sources.push((Grouping::Hour, h));
        }
    }
    Ok(out)
}

/// One row of a bucket's ranking: number, direction, count.
type Ranked = (String, String, i64);

/// Buckets per statement when several buckets are read at once (SQLite allows 500 terms in a
/// compound SELECT).
const BUCKETS_PER_STATEMENT: usize = 200;

/// The filter on `rollup_numbers` for one key, with its parameters ($1.. in order); each source
/// adds its grain and bucket.
fn number_filter(dataset: &str, side: &str, device: &str) -> (&'static str, Vec<Value>) {
    if device == ALL_DEVICES {
        ("dataset = $1 AND side = $2 AND device = '*'", vec![dataset.into(), side.into()])
    } else {
        ("dataset = $1 AND side = $2 AND device = $3", vec![dataset.into(), side.into(), device.into()])
    }
}

/// Each source's ranking, best first, `depth` rows each, read in one statement per
/// [`BUCKETS_PER_STATEMENT`] sources. For all devices the partial index `rollup_numbers_top`
/// (device `*`) delivers each bucket's rows in order; a single device's rows come from its part
/// of the primary key. The grain is one of a fixed set of names, written into the statement.
fn buckets_top(
    db: &dyn Sql,
    key: (&str, &str, &str),
    sources: &[Source],
    depth: usize,
) -> Result<BTreeMap<Source, Vec<Ranked>>, StoreError> {
    let (dataset, side, device) = key;
    let mut out: BTreeMap<Source, Vec<Ranked>> = BTreeMap::new();
    for chunk in sources.chunks(BUCKETS_PER_STATEMENT) {
        // Placeholders must first appear in increasing order (see `sql`): the filter's, then the
        // first bucket's, then the depth (reused by every part), then the other buckets'.
        let (filter, mut params) = number_filter(dataset, side, device);
        params.push(chunk[0].1.into());
        let first_bucket = params.len();
        params.push((depth as i64).into());
        let limit = params.len();
        let grain0 = chunk[0].0.as_str();
        let mut parts = vec![format!(
            "SELECT * FROM (SELECT grain, bucket, number, direction, n FROM rollup_numbers WHERE {filter} AND grain = '{grain0}' AND bucket = ${first_bucket} ORDER BY n DESC, number, direction LIMIT ${limit}) t0"
        )];
        for (i, (g, b)) in chunk.iter().enumerate().skip(1) {
            params.push((*b).into());
            parts.push(format!(
                "SELECT * FROM (SELECT grain, bucket, number, direction, n FROM rollup_numbers WHERE {filter} AND grain = '{}' AND bucket = ${} ORDER BY n DESC, number, direction LIMIT ${limit}) t{i}",
                g.as_str(),
                params.len()
            ));
        }
        for r in db.query(&parts.join(" UNION ALL "), &params)? {
            let grain = if r[0].text() == Grouping::Day.as_str() { Grouping::Day } else { Grouping::Hour };
            out.entry((grain, r[1].i64())).or_default().push((r[2].text(), r[3].text(), r[4].i64()));
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)).then_with(|| a.1.cmp(&b.1)));
    }
    Ok(out)
}

/// Each candidate number's counts in each source, summed: per source a primary-key seek per
/// number, all sources of a chunk in one statement (the numbers' parameters are shared).
fn candidate_totals(
    db: &dyn Sql,
    key: (&str, &str, &str),
    sources: &[Source],
    candidates: &mut BTreeMap<(String, String), i64>,
) -> Result<(), StoreError> {
    let (dataset, side, device) = key;
    let mut numbers: Vec<String> = candidates.keys().map(|(n, _)| n.clone()).collect();
    numbers.dedup();
    for numbers in numbers.chunks(2000) {
        for chunk in sources.chunks(BUCKETS_PER_STATEMENT) {
            let (filter, mut params) = number_filter(dataset, side, device);
            let first_bucket = params.len() + 1;
            params.push(chunk[0].1.into());
            let first_number = params.len() + 1;
            params.extend(numbers.iter().map(|n| Value::from(n.as_str())));
            let list: Vec<String> = (0..numbers.len()).map(|i| format!("${}", first_number + i)).collect();
            let list = list.join(", ");
            let mut parts = vec![format!(
                "SELECT number, direction, n FROM rollup_numbers WHERE {filter} AND grain = '{}' AND bucket = ${first_bucket} AND number IN ({list})",
                chunk[0].0.as_str()
            )];
            for (g, b) in &chunk[1..] {
                params.push((*b).into());
                parts.push(format!(
                    "SELECT number, direction, n FROM rollup_numbers WHERE {filter} AND grain = '{}' AND bucket = ${} AND number IN ({list})",
                    g.as_str(),
                    params.len()
                ));
            }
            for r in db.query(&parts.join(" UNION ALL "), &params)? {
                if let Some(total) = candidates.get_mut(&(r[0].text(), r[1].text())) {
                    *total += r[2].i64();
                }
            }
        }
    }
    Ok(())
}

/// The exact top 10 numbers summed over several sources (buckets of a grain), by Fagin's
/// threshold algorithm: read each source's ranking (an index scan) to depth D; a number not seen
/// in a source's first D rows has at most the D-th count there, so no unseen number can total
/// more than the sum of the D-th counts. Once the tenth best candidate beats that bound, the
/// answer is exact; otherwise D grows. Skewed traffic (a few heavy callers) stops after a few
/// dozen rows per source instead of summing every number.
fn top_over_buckets(db: &dyn Sql, key: (&str, &str, &str), sources: &[Source]) -> Result<Vec<Row>, StoreError> {
    if let [source] = sources {
        // One source: its ranking is the answer.
        let list = buckets_top(db, key, &[*source], TOP)?.remove(source).unwrap_or_default();
        return Ok(list.into_iter().map(|(k, d, n)| row(None, k, d, n)).collect());
    }
    let mut depth = 4 * TOP;
    loop {
        let lists = buckets_top(db, key, sources, depth)?;
        let mut threshold = 0i64;
        let mut exhausted = true;
        let mut candidates: BTreeMap<(String, String), i64> = BTreeMap::new();
        for list in lists.values() {
            if list.len() == depth {
                exhausted = false;
                threshold += list.last().map_or(0, |x| x.2);
            }
            for (number, direction, _) in list {
                candidates.entry((number.clone(), direction.clone())).or_insert(0);
            }
        }
        candidate_totals(db, key, sources, &mut candidates)?;
        let best = top(candidates.into_iter().map(|((k, d), n)| row(None, k, d, n)).collect(), TOP);
        let tenth = best.get(TOP - 1).map(|r| r.count as i64);
        if exhausted || tenth.is_some_and(|t| t > threshold) {
            return Ok(best);
        }
        depth *= 4;
    }
}

fn top_from_raw(
    db: &dyn Sql,
    q: &AnalyticsQuery,
    side: &str,
    device: &str,
    from: i64,
    to: i64,
) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
    if (to - from) / 60 > MAX_RAW_MINUTES {
        return Err(StoreError::BadQuery(format!(
            "per-minute top lists are read from raw records and span at most {} hours; choose Hour or Day",
            MAX_RAW_MINUTES / 60
        )));
    }
    let table = raw_table(q.dataset);
    let mut params: Vec<Value> = vec![(from * 1_000_000).into(), (to * 1_000_000).into()];
    let device_filter = if device == ALL_DEVICES {
        ""
    } else {
        params.push(device.into());
        " AND device = $3"
    };
    let sql = format!(
        "SELECT (ts / 60000000) * 60 AS b, COALESCE({side}, '{UNKNOWN_NUMBER}') AS number, direction, COUNT(*) FROM {table} WHERE ts >= $1 AND ts < $2{device_filter} GROUP BY 1, 2, 3"
    );
    let mut by_bucket: BTreeMap<i64, Vec<Row>> = BTreeMap::new();
    let mut total: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in db.query(&sql, &params)? {
        let (b, number, direction, n) = (r[0].i64(), r[1].text(), r[2].text(), r[3].i64());
        *total.entry((number.clone(), direction.clone())).or_default() += n;
        by_bucket.entry(b).or_default().push(row(Some(b), number, direction, n));
    }
    let per_bucket = by_bucket.into_values().flat_map(|rows| top(rows, TOP)).collect();
    let summary = top(total.into_iter().map(|((k, d), n)| row(None, k, d, n)).collect(), TOP);
    Ok((summary, per_bucket))
}

/// Outcome rows: ENUM rows say how many were stale answers, SIP rows have no such count.
fn outcomes(
    db: &dyn Sql,
    dataset: &str,
    grain: Grouping,
    device: &str,
    from: i64,
    to: i64,
) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
    let rows = db.query(
        "SELECT bucket, okey, odetail, n, stale FROM rollup_outcomes WHERE dataset = $1 AND grain = $2 AND device = $3 AND bucket >= $4 AND bucket < $5 ORDER BY bucket, n DESC, okey, odetail",
        &[dataset.into(), grain.as_str().into(), device.into(), from.into(), to.into()],
    )?;
    let with_stale = dataset == Dataset::Enum.as_str();
    let outcome_row = |bucket: Option<i64>, key: String, detail: String, n: i64, stale: i64| Row {
        stale: with_stale.then_some(stale.max(0) as u64),
        ..row(bucket, key, detail, n)
    };
    let mut total: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let per_bucket: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            let sum = total.entry((r[1].text(), r[2].text())).or_default();
            sum.0 += r[3].i64();
            sum.1 += r[4].i64();
            outcome_row(Some(r[0].i64()), r[1].text(), r[2].text(), r[3].i64(), r[4].i64())
        })
        .collect();
    let summary =
        top(total.into_iter().map(|((k, d), (n, stale))| outcome_row(None, k, d, n, stale)).collect(), usize::MAX);
    Ok((summary, per_bucket))
}
