//! CSV export of raw records and of any analytics view.

use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};

use crate::analytics::raw_table;
use crate::model::{AnalyticsResult, Dataset, View};
use crate::sql::{Sql, Value};
use crate::{RawFilter, StoreError};

/// Columns of the raw tables, in export order.
pub fn raw_columns(d: Dataset) -> &'static [&'static str] {
    match d {
        Dataset::Enum => &[
            "id",
            "ts",
            "device",
            "client",
            "client_addr",
            "transport",
            "source",
            "destination",
            "direction",
            "rule",
            "action",
            "detail",
            "rcode",
            "fail_open",
            "latency_us",
            "policy_version",
            "v",
            "stale",
            // Added last (migration 8), so scripts reading columns by position keep working.
            "protocol",
        ],
        Dataset::Sip => &[
            "id",
            "ts",
            "device",
            "call_id",
            "source",
            "destination",
            "direction",
            "disposition",
            "final_code",
            "pdd_ms",
            "duration_ms",
            "answered_at",
            "ended_at",
            "v",
            "rtp_packets",
            "rtp_lost",
            "rtp_jitter_us",
            "mos_x100",
        ],
    }
}

fn time_text(micros: i64) -> String {
    Utc.timestamp_micros(micros)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Streams raw records as CSV (header first). Times are RFC 3339 UTC.
pub(crate) fn raw(
    db: &dyn Sql,
    dataset: Dataset,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    filter: &RawFilter,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    if filter.protocol.is_some() && dataset != Dataset::Enum {
        return Err(StoreError::BadQuery(format!(
            "protocol selects records of the ENUM dataset (ENUM queries and SIP redirect decisions), not {}",
            dataset.as_str()
        )));
    }
    let cols = raw_columns(dataset);
    let mut w = csv::Writer::from_writer(out);
    w.write_record(cols)?;
    let mut params: Vec<Value> = vec![from.timestamp_micros().into(), to.timestamp_micros().into()];
    let mut conditions = String::new();
    if let Some(d) = &filter.device {
        params.push(d.as_str().into());
        conditions.push_str(&format!(" AND device = ${}", params.len()));
    }
    if let Some(p) = filter.protocol {
        params.push(p.as_str().into());
        conditions.push_str(&format!(" AND protocol = ${}", params.len()));
    }
    let filter = conditions;
    let sql = format!(
        "SELECT {} FROM {} WHERE ts >= $1 AND ts < $2{filter} ORDER BY ts, id",
        cols.join(", "),
        raw_table(dataset)
    );
    let time_cols: Vec<bool> = cols.iter().map(|c| matches!(*c, "ts" | "answered_at" | "ended_at")).collect();
    let mut n = 0u64;
    db.for_each(&sql, &params, &mut |row| {
        let fields: Vec<String> = row
            .iter()
            .zip(&time_cols)
            .map(|(v, is_time)| match (v, is_time) {
                (Value::I64(t), true) => time_text(*t),
                (v, _) => v.text(),
            })
            .collect();
        w.write_record(&fields)?;
        n += 1;
        Ok(())
    })?;
    w.flush()?;
    Ok(n)
}

/// Writes an analytics result as CSV: the whole-range rows (bucket `all`) then the per-bucket
/// rows (or one row per bucket for Average CPS).
pub fn analytics(result: &AnalyticsResult, out: impl Write) -> Result<(), StoreError> {
    let mut w = csv::Writer::from_writer(out);
    let q = &result.query;
    let bucket = |b: &Option<DateTime<Utc>>| b.map(|t| t.to_rfc3339()).unwrap_or_else(|| "all".into());
    match q.view {
        View::AverageCps => {
            w.write_record(["bucket", "count", "average_cps"])?;
            for p in &result.series {
                w.write_record([p.bucket.to_rfc3339(), p.count.to_string(), format!("{:.6}", p.value)])?;
            }
        }
        view => {
            let (k, d) = match view {
                View::TopSource | View::TopDestination => ("number", "direction"),
                View::ActionsByRule => ("rule", "action"),
                _ => ("disposition", "detail"),
            };
            if view == View::ActionsByRule {
                // Stale answers (sent after the engine's stale bound) are counted apart.
                w.write_record(["bucket", k, d, "count", "stale"])?;
                for r in result.summary.iter().chain(&result.per_bucket) {
                    let stale = r.stale.unwrap_or(0).to_string();
                    w.write_record([bucket(&r.bucket), r.key.clone(), r.detail.clone(), r.count.to_string(), stale])?;
                }
            } else {
                w.write_record(["bucket", k, d, "count"])?;
                for r in result.summary.iter().chain(&result.per_bucket) {
                    w.write_record([bucket(&r.bucket), r.key.clone(), r.detail.clone(), r.count.to_string()])?;
                }
            }
        }
    }
    w.flush()?;
    Ok(())
}
