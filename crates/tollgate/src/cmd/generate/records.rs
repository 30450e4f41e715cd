//! `tollgate generate records`: a spool filled with realistic ENUM records, for the end-to-end
//! ingest benchmark (bench/ingest.sh) to ship with the real shipper.
//!
//! The records are those of the store benchmark (crates/store/benches/store.rs): COUNT ENUM
//! queries spread evenly over the 24 hours before `end`, answered by 4 engines (`enum-1` to
//! `enum-4`), calling numbers drawn log-uniformly from 100,000 (a few heavy callers, a long
//! tail), called numbers log-uniformly from 50,000, one query in 20 terminated by rule `block`.
//!
//! Record `k` (0 <= k < COUNT) is a pure function of (seed, k, COUNT, end): its numbers come
//! from a generator seeded with the seed and `k`, its time is `end - 24 h + k * 24 h / COUNT`
//! and its id is a ULID of that time whose random part holds the seed and `k`. So a part of the
//! records (`--part I/P`, the I-th of P contiguous slices) holds exactly the records the whole
//! would hold there, parts never share an id, and the P parts together are the whole.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use tollgate_records::spool::{Spool, SpoolOptions};
use tollgate_records::{EnumQueryRecord, Record, Transport};

/// The engines the records name (`enum-1` ... `enum-4`).
pub const ENGINES: u64 = 4;
/// Distinct calling numbers (log-uniform).
pub const CALLERS: u64 = 100_000;
/// Distinct called numbers (log-uniform).
pub const CALLED: u64 = 50_000;
/// First calling number (`+14150000000`).
const FIRST_CALLER: u64 = 14_150_000_000;
/// First called number (`+12120000000`).
const FIRST_CALLED: u64 = 12_120_000_000;
/// The span the records cover, before `end`.
const SPAN_US: i64 = 86_400_000_000;

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
        let mut rng = Rng::new(self.seed, k);
        let start = self.end - Duration::microseconds(SPAN_US);
        let step = SPAN_US / self.count.max(1) as i64;
        let time = start + Duration::microseconds(step * k as i64);
        let src = FIRST_CALLER + rng.log_uniform(CALLERS);
        let dst = FIRST_CALLED + rng.log_uniform(CALLED);
        let blocked = k.is_multiple_of(20);
        // 80 random bits: 16 of the seed, 64 of the index; unique within and across parts.
        let random = (u128::from(self.seed & 0xffff) << 64) | u128::from(k);
        Record::enum_query(EnumQueryRecord {
            id: ulid::Ulid::from_parts(time.timestamp_millis() as u64, random),
            time,
            device: format!("enum-{}", k % ENGINES + 1),
            client: "sbc-1".into(),
            client_addr: std::net::SocketAddr::from(([10, 0, 0, 1], 5060)),
            transport: Transport::Udp,
            source: tollgate_number::E164::from_u64(src),
            destination: tollgate_number::E164::from_u64(dst).expect("an 11-digit number is an E.164 number"),
            direction: "inbound".into(),
            rule: blocked.then(|| "block".to_string()),
            action: if blocked { "terminate".into() } else { "allow".into() },
            detail: None,
            rcode: if blocked { "NOERROR".into() } else { "NXDOMAIN".into() },
            fail_open: false,
            latency_us: 150,
            stale: false,
            policy_version: Some(1),
        })
    }
}

/// xorshift64, seeded per record through splitmix64 (so record `k` does not depend on the
/// records before it).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, k: u64) -> Rng {
        let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-uniform index in 0..n: index i has weight ~ 1/(i+1).
    fn log_uniform(&mut self, n: u64) -> u64 {
        ((n as f64).powf(self.unit()) as u64).saturating_sub(1).min(n - 1)
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
            assert!(r.time() < p.end && r.time() >= p.end - Duration::hours(24), "{}", r.time());
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
        assert_eq!(devices.len(), ENGINES as usize, "{devices:?}");
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
