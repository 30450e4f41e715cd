//! Analytics views, computed from the rollups (raw records only for per-minute top lists).
//!
//! The range is widened to whole buckets of the grouping, so every count is exact. Average CPS
//! divides a bucket's count by the bucket's length, or by the time elapsed for the bucket in
//! progress.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use crate::StoreError;
use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, Point, Row, View};
use crate::rollup::{ALL_DEVICES, UNKNOWN_NUMBER};
use crate::sql::{Sql, Value};

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
                })
                .collect();
            (rows, Vec::new())
        }
        View::TopSource | View::TopDestination => {
            let side = if q.view == View::TopSource { "source" } else { "destination" };
            if q.grouping == Grouping::Minute {
                top_from_raw(db, q, side, &device, from, to)?
            } else {
                top_from_rollups(db, dataset, q.grouping, side, &device, from, to, &counts)?
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
    Row { bucket: bucket.map(ts), key, detail, count: count.max(0) as u64, cps: None }
}

/// Sorts rows by count (descending), then key and detail, and keeps the first `n`.
fn top(mut rows: Vec<Row>, n: usize) -> Vec<Row> {
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)).then_with(|| a.detail.cmp(&b.detail)));
    rows.truncate(n);
    rows
}

#[allow(clippy::too_many_arguments)]
fn top_from_rollups(
    db: &dyn Sql,
    dataset: &str,
    grain: Grouping,
    side: &str,
    device: &str,
    from: i64,
    to: i64,
    counts: &BTreeMap<i64, u64>,
) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
    // Per bucket: the index (dataset, grain, side, device, bucket, n DESC) yields the top rows
    // of one bucket directly.
    let mut per_bucket = Vec::new();
    for &bucket in counts.keys() {
        let rows = db.query(
            "SELECT number, direction, n FROM rollup_numbers WHERE dataset = $1 AND grain = $2 AND side = $3 AND device = $4 AND bucket = $5 ORDER BY n DESC, number, direction LIMIT 10",
            &[dataset.into(), grain.as_str().into(), side.into(), device.into(), bucket.into()],
        )?;
        per_bucket.extend(rows.into_iter().map(|r| row(Some(bucket), r[0].text(), r[1].text(), r[2].i64())));
    }
    // Whole range: sum per number over the buckets of the grouping.
    let summed = db.query(
        "SELECT number, direction, CAST(SUM(n) AS BIGINT) AS total FROM rollup_numbers WHERE dataset = $1 AND grain = $2 AND side = $3 AND device = $4 AND bucket >= $5 AND bucket < $6 GROUP BY number, direction ORDER BY total DESC, number, direction LIMIT 10",
        &[dataset.into(), grain.as_str().into(), side.into(), device.into(), from.into(), to.into()],
    )?;
    let summary = summed.into_iter().map(|r| row(None, r[0].text(), r[1].text(), r[2].i64())).collect();
    Ok((summary, per_bucket))
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

fn outcomes(
    db: &dyn Sql,
    dataset: &str,
    grain: Grouping,
    device: &str,
    from: i64,
    to: i64,
) -> Result<(Vec<Row>, Vec<Row>), StoreError> {
    let rows = db.query(
        "SELECT bucket, okey, odetail, n FROM rollup_outcomes WHERE dataset = $1 AND grain = $2 AND device = $3 AND bucket >= $4 AND bucket < $5 ORDER BY bucket, n DESC, okey, odetail",
        &[dataset.into(), grain.as_str().into(), device.into(), from.into(), to.into()],
    )?;
    let mut total: BTreeMap<(String, String), i64> = BTreeMap::new();
    let per_bucket: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            *total.entry((r[1].text(), r[2].text())).or_default() += r[3].i64();
            row(Some(r[0].i64()), r[1].text(), r[2].text(), r[3].i64())
        })
        .collect();
    let summary = top(total.into_iter().map(|((k, d), n)| row(None, k, d, n)).collect(), usize::MAX);
    Ok((summary, per_bucket))
}
