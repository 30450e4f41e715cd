//! Figures beside the charts: the peak rate and the busy hour of a series, and Top 10 rows
//! ranked by number with the directions as a breakdown.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tollgate_store::Row;

/// The bucket with the highest value (the first of equals), if any bucket has records.
pub fn peak(points: &[(DateTime<Utc>, u64, f64)]) -> Option<(DateTime<Utc>, f64)> {
    points.iter().filter(|p| p.1 > 0).fold(None, |best: Option<(DateTime<Utc>, f64)>, p| match best {
        Some(b) if b.1 >= p.2 => Some(b),
        _ => Some((p.0, p.2)),
    })
}

/// The hour (of the clock `offset` seconds ahead of UTC) holding the most records, and its
/// count, from buckets of `bucket` seconds (a minute or an hour; longer buckets cannot say).
pub fn busy_hour(points: &[(DateTime<Utc>, u64)], bucket: i64, offset: i64) -> Option<(DateTime<Utc>, u64)> {
    if bucket > 3600 || bucket <= 0 {
        return None;
    }
    let mut hours: BTreeMap<i64, u64> = BTreeMap::new();
    for (t, n) in points {
        let local = t.timestamp() + offset;
        *hours.entry(local - local.rem_euclid(3600) - offset).or_default() += n;
    }
    let (start, n) = hours.into_iter().filter(|h| h.1 > 0).fold(None, |best: Option<(i64, u64)>, h| match best {
        Some(b) if b.1 >= h.1 => Some(b),
        _ => Some(h),
    })?;
    Some((super::charts::at(start), n))
}

/// A number of a Top 10 view with its count and its count per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// The bucket, or `None` for the whole range.
    pub bucket: Option<DateTime<Utc>>,
    /// The number.
    pub number: String,
    /// Records with this number, all directions.
    pub count: u64,
    /// Per direction (inbound, outbound, ...), largest first.
    pub directions: Vec<(String, u64)>,
}

/// Top 10 rows, which the store ranks per (number, direction), ranked by number: one row per
/// number and bucket, directions summed into a breakdown, at most `n` per bucket, largest
/// first (then by number).
pub fn by_number(rows: &[Row], n: usize) -> Vec<Ranked> {
    type Directions = Vec<(String, u64)>;
    let mut groups: BTreeMap<(Option<DateTime<Utc>>, &str), Directions> = BTreeMap::new();
    for r in rows {
        groups.entry((r.bucket, r.key.as_str())).or_default().push((r.detail.clone(), r.count));
    }
    let mut per_bucket: BTreeMap<Option<DateTime<Utc>>, Vec<Ranked>> = BTreeMap::new();
    for ((bucket, number), mut directions) in groups {
        directions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let count = directions.iter().map(|d| d.1).sum();
        per_bucket.entry(bucket).or_default().push(Ranked { bucket, number: number.to_string(), count, directions });
    }
    per_bucket
        .into_values()
        .flat_map(|mut list| {
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.number.cmp(&b.number)));
            list.truncate(n);
            list
        })
        .collect()
}

/// "inbound 8 · outbound 4" (directions without a name are "unknown").
pub fn breakdown(directions: &[(String, u64)]) -> String {
    directions
        .iter()
        .map(|(d, n)| format!("{} {}", if d.is_empty() { "unknown" } else { d }, super::charts::thousands(*n)))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::charts::at;

    fn row(bucket: Option<i64>, key: &str, detail: &str, count: u64) -> Row {
        Row { bucket: bucket.map(at), key: key.into(), detail: detail.into(), count, cps: None, stale: None }
    }

    #[test]
    fn a_number_is_ranked_once_with_its_directions_as_a_breakdown() {
        let rows = [
            row(None, "+1555", "inbound", 8),
            row(None, "+1666", "inbound", 9),
            row(None, "+1555", "outbound", 4),
            row(None, "+1777", "", 1),
            row(Some(3600), "+1555", "outbound", 2),
            row(Some(3600), "+1555", "inbound", 2),
            row(Some(0), "+1666", "inbound", 1),
        ];
        let ranked = by_number(&rows, 10);
        let shown: Vec<(Option<i64>, &str, u64, String)> = ranked
            .iter()
            .map(|r| (r.bucket.map(|b| b.timestamp()), r.number.as_str(), r.count, breakdown(&r.directions)))
            .collect();
        assert_eq!(
            shown,
            [
                (None, "+1555", 12, "inbound 8 · outbound 4".to_string()),
                (None, "+1666", 9, "inbound 9".to_string()),
                (None, "+1777", 1, "unknown 1".to_string()),
                (Some(0), "+1666", 1, "inbound 1".to_string()),
                (Some(3600), "+1555", 4, "inbound 2 · outbound 2".to_string()),
            ]
        );
        assert_eq!(by_number(&rows, 1).len(), 3, "one per bucket");
        assert!(by_number(&[], 10).is_empty());
    }

    #[test]
    fn peak_and_busy_hour() {
        let m = |i: i64| at(1_796_601_600 + i * 60);
        let pts: Vec<(DateTime<Utc>, u64, f64)> =
            (0..180).map(|i| (m(i), (i % 70) as u64, (i % 70) as f64 / 60.0)).collect();
        assert_eq!(peak(&pts), Some((m(69), 69.0 / 60.0)), "the first of equal peaks");
        assert_eq!(peak(&[(m(0), 0, 0.0)]), None, "no records, no peak");
        let counts: Vec<(DateTime<Utc>, u64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        // Hour 0: 0..59; hour 1: minutes 60..119 = 50..69 then 0..39; hour 2: 40..69 then 0..29.
        let sum = |r: std::ops::Range<i64>| r.map(|i| (i % 70) as u64).sum::<u64>();
        let expect = [(0, sum(0..60)), (1, sum(60..120)), (2, sum(120..180))].into_iter().max_by_key(|h| (h.1, -h.0));
        let (h, n) = expect.unwrap();
        assert_eq!(busy_hour(&counts, 60, 0), Some((at(1_796_601_600 + h * 3600), n)));
        // In a zone half an hour ahead, hours start at :30 UTC.
        let (start, _) = busy_hour(&counts, 60, 1800).unwrap();
        assert_eq!((start.timestamp() + 1800) % 3600, 0);
        assert_eq!(busy_hour(&counts, 86_400, 0), None, "days cannot say which hour");
        assert_eq!(busy_hour(&[], 60, 0), None);
    }
}
