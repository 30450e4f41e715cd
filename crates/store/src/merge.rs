//! Analytics of several collectors as one: the manager asks each collector cluster (each keeps
//! its own records) for the same query and adds the answers up here.
//!
//! Rules: points of the same bucket add their counts and values (a per-second average of
//! disjoint records adds up too); rows with the same bucket, key and detail add their counts,
//! stale counts and rates. Rows are never cut: a collector's Top 10 are its own ten, so the sum
//! of several Top 10 lists may rank an eleventh number of one collector above a number another
//! collector did not list. The rows come back sorted as a store sorts them (bucket, then count
//! high to low, then key), so the pages rank the merged list the same way as one collector's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::{AnalyticsResult, Point, Row, View};

/// The sum of `parts`, all answers to the same query (the first one's query is kept); `None`
/// when there is none.
pub fn merge(parts: Vec<AnalyticsResult>) -> Option<AnalyticsResult> {
    let mut parts = parts.into_iter();
    let first = parts.next()?;
    let query = first.query.clone();
    let mut series: BTreeMap<DateTime<Utc>, Point> = BTreeMap::new();
    let mut summary = Rows::default();
    let mut per_bucket = Rows::default();
    let mut total = 0u64;
    for part in std::iter::once(first).chain(parts) {
        total += part.total;
        for p in part.series {
            let at = series.entry(p.bucket).or_insert(Point { bucket: p.bucket, count: 0, value: 0.0 });
            at.count += p.count;
            at.value += p.value;
        }
        summary.add(part.summary);
        per_bucket.add(part.per_bucket);
    }
    let by_bucket_time = query.view == View::AverageCps;
    Some(AnalyticsResult {
        query,
        series: series.into_values().collect(),
        summary: summary.sorted(by_bucket_time),
        per_bucket: per_bucket.sorted(false),
        total,
    })
}

/// Rows summed by (bucket, key, detail).
#[derive(Default)]
struct Rows(BTreeMap<(Option<DateTime<Utc>>, String, String), Row>);

impl Rows {
    fn add(&mut self, rows: Vec<Row>) {
        for r in rows {
            match self.0.get_mut(&(r.bucket, r.key.clone(), r.detail.clone())) {
                Some(at) => {
                    at.count += r.count;
                    at.cps = sum_option(at.cps, r.cps);
                    at.stale = sum_option(at.stale, r.stale);
                }
                None => {
                    self.0.insert((r.bucket, r.key.clone(), r.detail.clone()), r);
                }
            }
        }
    }

    /// Bucket first; within a bucket the highest count first (or bucket time only, for the
    /// one-row-per-bucket Average CPS summary), then key and detail.
    fn sorted(self, by_bucket_time: bool) -> Vec<Row> {
        let mut rows: Vec<Row> = self.0.into_values().collect();
        rows.sort_by(|a, b| {
            let rank = if by_bucket_time { std::cmp::Ordering::Equal } else { b.count.cmp(&a.count) };
            a.bucket.cmp(&b.bucket).then(rank).then_with(|| a.key.cmp(&b.key)).then_with(|| a.detail.cmp(&b.detail))
        });
        rows
    }
}

fn sum_option<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::{AnalyticsQuery, Dataset, Grouping};

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn query(view: View) -> AnalyticsQuery {
        AnalyticsQuery {
            dataset: Dataset::Enum,
            view,
            grouping: Grouping::Minute,
            device: None,
            from: at(0),
            to: at(3),
        }
    }

    fn row(bucket: Option<i64>, key: &str, detail: &str, count: u64) -> Row {
        Row { bucket: bucket.map(at), key: key.into(), detail: detail.into(), count, cps: None, stale: None }
    }

    fn point(minute: i64, count: u64) -> Point {
        Point { bucket: at(minute), count, value: count as f64 }
    }

    #[test]
    fn nothing_to_merge_is_no_answer() {
        assert_eq!(merge(Vec::new()), None);
    }

    #[test]
    fn one_answer_comes_back_as_it_was() {
        let one = AnalyticsResult {
            query: query(View::TopSource),
            series: vec![point(0, 3), point(1, 0), point(2, 1)],
            summary: vec![row(None, "+1", "inbound", 3), row(None, "+2", "outbound", 1)],
            per_bucket: vec![row(Some(0), "+1", "inbound", 3), row(Some(2), "+2", "outbound", 1)],
            total: 4,
        };
        assert_eq!(merge(vec![one.clone()]), Some(one));
    }

    #[test]
    fn two_collectors_add_up_by_bucket_key_and_detail_and_rank_again() {
        let a = AnalyticsResult {
            query: query(View::TopSource),
            series: vec![point(0, 3), point(1, 1)],
            summary: vec![row(None, "+1", "inbound", 3), row(None, "+2", "inbound", 1)],
            per_bucket: vec![row(Some(0), "+1", "inbound", 3), row(Some(1), "+2", "inbound", 1)],
            total: 4,
        };
        let b = AnalyticsResult {
            query: query(View::TopSource),
            series: vec![point(1, 5), point(2, 2)],
            summary: vec![row(None, "+2", "inbound", 5), row(None, "+1", "outbound", 2)],
            per_bucket: vec![row(Some(1), "+2", "inbound", 5), row(Some(2), "+1", "outbound", 2)],
            total: 7,
        };
        let m = merge(vec![a, b]).unwrap();
        assert_eq!(m.total, 11);
        assert_eq!(m.series, vec![point(0, 3), point(1, 6), point(2, 2)]);
        assert_eq!(
            m.summary,
            vec![row(None, "+2", "inbound", 6), row(None, "+1", "inbound", 3), row(None, "+1", "outbound", 2)]
        );
        assert_eq!(
            m.per_bucket,
            vec![row(Some(0), "+1", "inbound", 3), row(Some(1), "+2", "inbound", 6), row(Some(2), "+1", "outbound", 2)]
        );
        // The merged counts are the records of both: summary and series agree with the total.
        assert_eq!(m.summary.iter().map(|r| r.count).sum::<u64>(), m.total);
        assert_eq!(m.series.iter().map(|p| p.count).sum::<u64>(), m.total);
    }

    #[test]
    fn average_cps_adds_rates_and_keeps_bucket_order() {
        let cps = |minute, count: u64| Row { cps: Some(count as f64 / 60.0), ..row(Some(minute), "", "", count) };
        let a = AnalyticsResult {
            query: query(View::AverageCps),
            series: vec![point(0, 60), point(1, 120)],
            summary: vec![cps(0, 60), cps(1, 120)],
            per_bucket: Vec::new(),
            total: 180,
        };
        let b = AnalyticsResult { summary: vec![cps(0, 600), cps(1, 6)], total: 606, ..a.clone() };
        let m = merge(vec![a, b]).unwrap();
        assert_eq!(m.summary.iter().map(|r| r.bucket).collect::<Vec<_>>(), vec![Some(at(0)), Some(at(1))]);
        assert_eq!(m.summary[0].count, 660);
        assert!((m.summary[0].cps.unwrap() - 11.0).abs() < 1e-9);
        assert!((m.summary[1].cps.unwrap() - 2.1).abs() < 1e-9);
    }

    #[test]
    fn stale_counts_add_and_a_missing_one_is_not_zeroed() {
        let stale = |n| Row { stale: n, ..row(None, "r", "allow", 4) };
        let base = AnalyticsResult {
            query: query(View::ActionsByRule),
            series: Vec::new(),
            summary: Vec::new(),
            per_bucket: Vec::new(),
            total: 4,
        };
        let a = AnalyticsResult { summary: vec![stale(Some(1))], ..base.clone() };
        let b = AnalyticsResult { summary: vec![stale(None)], ..base.clone() };
        let c = AnalyticsResult { summary: vec![stale(Some(2))], ..base };
        let m = merge(vec![a, b, c]).unwrap();
        assert_eq!((m.summary[0].count, m.summary[0].stale), (12, Some(3)));
    }
}
