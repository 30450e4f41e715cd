//! `tollgate generate records`: a spool filled with realistic ENUM records, for the end-to-end
//! ingest benchmark (bench/ingest.sh) to ship with the real shipper.
//!
//! The records are those of the store benchmark, made by [`tollgate_records::synth`]: record
//! `k` is a pure function of (seed, k, COUNT, end). So a part of the records (`--part I/P`, the
//! I-th of P contiguous slices) holds exactly the records the whole would hold there, parts
//! never share an id, and the P parts together are the whole.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tollgate_records::Record;
use tollgate_records::spool::{Spool, SpoolOptions};

use tollgate_records::synth::SPAN_US;

/// Which records to make: record `k` for `k` in `range()` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Records of the whole set (the spacing of their times depends on it).
    pub count: u64,
    /// This part (1-based) ...
    pub part: u64,
    /// ... of this many contiguous parts.
    pub parts: u64,
    /// Seed of the numbers (and of the ids' random part).
    pub seed: u64,
    /// The records end just before this time (they cover the 24 hours before it).
    pub end: DateTime<Utc>,
}

impl Plan {
    /// The indexes of the records of this part: the `part`-th of `parts` contiguous slices.
    pub fn range(&self) -> std::ops::Range<u64> {
        let at = |i: u64| (u128::from(self.count) * u128::from(i) / u128::from(self.parts.max(1))) as u64;
        at(self.part - 1)..at(self.part)
    }

    /// Record `k` of the whole set.
    pub fn record(&self, k: u64) -> Record {
        tollgate_records::synth::enum_query(self.seed, k, self.count, self.end)
    }
}

/// Parses `--part I/P` (1 <= I <= P).
pub fn parse_part(s: &str) -> Result<(u64, u64), String> {
    let (i, p) = s.split_once('/').ok_or_else(|| format!("{s:?} is not I/P (e.g. 1/2)"))?;
    let (i, p): (u64, u64) = (
        i.trim().parse().map_err(|_| format!("{i:?} is not a number"))?,
        p.trim().parse().map_err(|_| format!("{p:?} is not a number"))?,
    );
    if p == 0 || i == 0 || i > p {
        return Err(format!("part {i} of {p}: the part must be between 1 and {p}"));
    }
    Ok((i, p))
}

/// Appends the records of `plan` to the spool in `dir` (created if missing; lane `generate`),
/// fsyncs them, and returns how many were written. The spool has no limit on unacknowledged
/// bytes here; the directory must not be in use by another process (its lock says who has it).
pub fn fill_spool(dir: &Path, plan: &Plan) -> anyhow::Result<u64> {
    anyhow::ensure!(plan.count > 0, "--count must be above 0");
    anyhow::ensure!(
        plan.count <= SPAN_US as u64,
        "--count {} is more than one record per microsecond of the 24 hours",
        plan.count
    );
    let options =
        SpoolOptions { max_unacked_bytes: 0, holder: "tollgate generate records".into(), ..SpoolOptions::default() };
    let spool = Spool::open(dir, options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut lane = spool.lane("generate").with_context(|| format!("cannot open a lane in {}", dir.display()))?;
    let mut written = 0;
    for k in plan.range() {
        lane.append(&plan.record(k)).with_context(|| format!("cannot append record {k} to {}", dir.display()))?;
        written += 1;
    }
    drop(lane);
    spool.sync();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;

    use super::*;

    fn plan(count: u64, part: u64, parts: u64) -> Plan {
        let end = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
        Plan { count, part, parts, seed: 7, end }
    }

    fn spooled(dir: &Path) -> Vec<Record> {
        let mut out = Vec::new();
        for seg in tollgate_records::spool::segments(dir).unwrap() {
            let contents = tollgate_records::spool::read_segment(&seg).unwrap();
            assert!(contents.damage.is_none(), "{}: {:?}", seg.display(), contents.damage);
            out.extend(contents.records);
        }
        out
    }

    #[test]
    fn the_spool_holds_exactly_count_records_that_a_collector_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(10_000, 1, 1);
        assert_eq!(fill_spool(dir.path(), &p).unwrap(), 10_000);
        let records = spooled(dir.path());
        assert_eq!(records.len(), 10_000);
        let ids: HashSet<_> = records.iter().map(Record::id).collect();
        assert_eq!(ids.len(), 10_000, "ids repeat");
        for r in &records {
            r.validate(p.end).unwrap_or_else(|e| panic!("record {} refused: {e}", r.id()));
            assert!(r.time() < p.end && r.time() >= p.end - chrono::Duration::hours(24), "{}", r.time());
        }
        // The shape the benchmark promises: 4 engines, many callers, one in 20 terminated.
        let mut devices = HashSet::new();
        let (mut callers, mut called, mut terminated) = (HashSet::new(), HashSet::new(), 0);
        for r in &records {
            let Record::EnumQuery { record, .. } = r else { panic!("not an ENUM record") };
            devices.insert(record.device.clone());
            callers.insert(record.source.expect("a caller"));
            called.insert(record.destination);
            terminated += usize::from(record.action == "terminate");
        }
        assert_eq!(devices.len(), tollgate_records::synth::ENGINES as usize, "{devices:?}");
        assert_eq!(terminated, 500);
        assert!(callers.len() > 1_000 && called.len() > 1_000, "{} callers, {} called", callers.len(), called.len());
    }

    #[test]
    fn parts_together_are_the_whole_and_share_no_record() {
        let whole: Vec<Record> = (0..1_001).map(|k| plan(1_001, 1, 1).record(k)).collect();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let mut joined = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let n = fill_spool(dir.path(), &plan(1_001, i as u64 + 1, 3)).unwrap();
            let records = spooled(dir.path());
            assert_eq!(records.len() as u64, n);
            joined.extend(records);
        }
        assert_eq!(joined, whole);
    }

    #[test]
    fn a_filled_spool_is_appended_to_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        fill_spool(dir.path(), &plan(100, 1, 2)).unwrap();
        fill_spool(dir.path(), &plan(100, 2, 2)).unwrap();
        assert_eq!(spooled(dir.path()).len(), 100);
    }

    #[test]
    fn bad_parts_and_counts_are_refused() {
        assert_eq!(parse_part("2/3"), Ok((2, 3)));
        for bad in ["0/2", "3/2", "1/0", "x/2", "12"] {
            assert!(parse_part(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let err = fill_spool(dir.path(), &plan(0, 1, 1)).unwrap_err().to_string();
        assert!(err.contains("--count"), "{err}");
    }
}
