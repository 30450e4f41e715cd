//! Rollups: what one record adds to the per-minute, per-hour and per-day aggregates.
//!
//! Three aggregates, each kept per device and for all devices together (device `*`):
//! * counts per bucket (minute, hour, day): Average CPS;
//! * counts per number per bucket (hour, day), for the calling and the called side with the
//!   call direction: Top 10 Source / Destination;
//! * counts per outcome per bucket (minute, hour, day): the deciding rule and action (ENUM) or
//!   the disposition (SIP), with how many of them were stale answers (ENUM).
//!
//! A batch's increments are summed in memory first, so a batch costs one upsert per distinct
//! key, not one per record and key.

use rustc_hash::FxHashMap;
use tollgate_records::Record;

use crate::fold::{Folds, day_numbers_too};
use crate::model::{Dataset, Grouping};

/// Device name of the all-devices aggregate.
pub const ALL_DEVICES: &str = "*";
/// Number key of records without a number (e.g. no calling number sent).
pub const UNKNOWN_NUMBER: &str = "(unknown)";
/// Outcome key of ENUM decisions made by the default (no rule).
pub const DEFAULT_RULE: &str = "(default)";

/// Grains of count and outcome rollups.
pub const COUNT_GRAINS: [Grouping; 3] = [Grouping::Minute, Grouping::Hour, Grouping::Day];
/// Grains of number rollups (per-minute top lists are computed from raw records). Ingest
/// writes the hour grain; day rows are folded from hours ([`crate::fold`]).
pub const NUMBER_GRAINS: [Grouping; 2] = [Grouping::Hour, Grouping::Day];

/// The columns every dataset shares, read off one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flat {
    /// ENUM or SIP.
    pub dataset: Dataset,
    /// Record id.
    pub id: String,
    /// Unix microseconds.
    pub ts_us: i64,
    /// Engine or probe.
    pub device: String,
    /// Calling number, `+` form.
    pub source: Option<String>,
    /// Called number, `+` form.
    pub destination: Option<String>,
    /// Call direction.
    pub direction: String,
    /// Outcome key: rule (ENUM) or disposition (SIP).
    pub okey: String,
    /// Outcome detail: action (ENUM) or empty (SIP).
    pub odetail: String,
    /// A stale answer (ENUM): sent after the engine's stale bound, not used by the SBC.
    pub stale: bool,
}

/// Reads the shared columns of a record.
pub fn flatten(record: &Record) -> Flat {
    match record {
        Record::EnumQuery { record: r, .. } => Flat {
            dataset: Dataset::Enum,
            id: r.id.to_string(),
            ts_us: r.time.timestamp_micros(),
            device: r.device.clone(),
            source: r.source.map(|n| n.to_string()),
            destination: Some(r.destination.to_string()),
            direction: r.direction.clone(),
            okey: r.rule.clone().unwrap_or_else(|| DEFAULT_RULE.to_string()),
            odetail: r.action.clone(),
            stale: r.stale,
        },
        Record::SipCall { record: r, .. } => Flat {
            dataset: Dataset::Sip,
            id: r.id.to_string(),
            ts_us: r.time.timestamp_micros(),
            device: r.device.clone(),
            source: r.source.map(|n| n.to_string()),
            destination: r.destination.map(|n| n.to_string()),
            direction: r.direction.clone(),
            okey: r.disposition.as_str().to_string(),
            odetail: String::new(),
            stale: false,
        },
    }
}

/// Key of a count rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountKey {
    /// Dataset name.
    pub dataset: &'static str,
    /// Grain name.
    pub grain: &'static str,
    /// Device or `*`.
    pub device: String,
    /// Bucket start, unix seconds.
    pub bucket: i64,
}

/// Key of a number rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumberKey {
    /// Dataset name.
    pub dataset: &'static str,
    /// Grain name.
    pub grain: &'static str,
    /// `source` or `destination`.
    pub side: &'static str,
    /// Device or `*`.
    pub device: String,
    /// Bucket start.
    pub bucket: i64,
    /// The number (`+` form) or `(unknown)`.
    pub number: String,
    /// Call direction.
    pub direction: String,
}

/// Key of an outcome rollup row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    /// Dataset name.
    pub dataset: &'static str,
    /// Grain name.
    pub grain: &'static str,
    /// Device or `*`.
    pub device: String,
    /// Bucket start.
    pub bucket: i64,
    /// Rule or disposition.
    pub okey: String,
    /// Action or empty.
    pub odetail: String,
}

/// What a batch adds to one outcome rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeDelta {
    /// Records.
    pub n: i64,
    /// Of which stale answers.
    pub stale: i64,
}

/// Summed rollup increments of a batch.
#[derive(Debug, Default)]
pub struct Deltas {
    /// Count rollups.
    pub counts: FxHashMap<CountKey, i64>,
    /// Number rollups.
    pub numbers: FxHashMap<NumberKey, i64>,
    /// Outcome rollups.
    pub outcomes: FxHashMap<OutcomeKey, OutcomeDelta>,
}

impl Deltas {
    /// Adds one newly stored record.
    pub fn add(&mut self, f: &Flat) {
        let secs = f.ts_us.div_euclid(1_000_000);
        let dataset = f.dataset.as_str();
        for device in [f.device.as_str(), ALL_DEVICES] {
            for grain in COUNT_GRAINS {
                let bucket = grain.bucket_of(secs);
                *self
                    .counts
                    .entry(CountKey { dataset, grain: grain.as_str(), device: device.to_string(), bucket })
                    .or_default() += 1;
                let outcome = self
                    .outcomes
                    .entry(OutcomeKey {
                        dataset,
                        grain: grain.as_str(),
                        device: device.to_string(),
                        bucket,
                        okey: f.okey.clone(),
                        odetail: f.odetail.clone(),
                    })
                    .or_default();
                outcome.n += 1;
                outcome.stale += i64::from(f.stale);
            }
            // Numbers: the hour grain only; day rows come from the fold, or from
            // [`Deltas::day_numbers`] for hours already folded.
            let bucket = Grouping::Hour.bucket_of(secs);
            for (side, number) in [("source", &f.source), ("destination", &f.destination)] {
                let key = NumberKey {
                    dataset,
                    grain: Grouping::Hour.as_str(),
                    side,
                    device: device.to_string(),
                    bucket,
                    number: number.clone().unwrap_or_else(|| UNKNOWN_NUMBER.to_string()),
                    direction: f.direction.clone(),
                };
                *self.numbers.entry(key).or_default() += 1;
            }
        }
    }

    /// The day-grain number increments that go with these (hour-grain) ones, given what is
    /// folded: the hour increments of folded hours, summed per day (see
    /// [`crate::fold::day_numbers_too`]). Only number rows; empty when nothing is folded.
    pub fn day_numbers(&self, folds: &Folds) -> Deltas {
        let mut day = Deltas::default();
        for (k, n) in &self.numbers {
            if k.grain == Grouping::Hour.as_str() && day_numbers_too(k.bucket, folds.get_named(k.dataset)) {
                let key =
                    NumberKey { grain: Grouping::Day.as_str(), bucket: Grouping::Day.bucket_of(k.bucket), ..k.clone() };
                *day.numbers.entry(key).or_default() += n;
            }
        }
        day
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tollgate_records::{EnumQueryRecord, Transport};

    fn rec(device: &str, secs: i64, source: Option<&str>) -> Record {
        Record::enum_query(EnumQueryRecord {
            id: ulid::Ulid::new(),
            time: chrono::Utc.timestamp_opt(secs, 0).unwrap(),
            device: device.into(),
            client: "sbc".into(),
            client_addr: "127.0.0.1:1".parse().unwrap(),
            transport: Transport::Udp,
            source: source.map(|s| s.parse().unwrap()),
            destination: "+12125550100".parse().unwrap(),
            direction: "inbound".into(),
            rule: None,
            action: "allow".into(),
            detail: None,
            rcode: "NXDOMAIN".into(),
            fail_open: false,
            latency_us: 10,
            stale: false,
            policy_version: None,
            protocol: Default::default(),
        })
    }

    #[test]
    fn batch_increments_are_summed_per_key() {
        let mut d = Deltas::default();
        let t = 1_800_000_000; // a minute boundary is not needed; buckets are computed
        for i in 0..3 {
            d.add(&flatten(&rec("e1", t + i, Some("+13125550666"))));
        }
        d.add(&flatten(&rec("e2", t, None)));
        let minute = Grouping::Minute.bucket_of(t);
        let count = |device: &str| {
            d.counts[&CountKey { dataset: "ENUM", grain: "minute", device: device.into(), bucket: minute }]
        };
        assert_eq!((count("e1"), count("e2"), count(ALL_DEVICES)), (3, 1, 4));
        let src = |n: &str| {
            d.numbers[&NumberKey {
                dataset: "ENUM",
                grain: "hour",
                side: "source",
                device: ALL_DEVICES.into(),
                bucket: Grouping::Hour.bucket_of(t),
                number: n.into(),
                direction: "inbound".into(),
            }]
        };
        assert_eq!((src("+13125550666"), src(UNKNOWN_NUMBER)), (3, 1));
        let default_rule =
            d.outcomes.iter().filter(|(k, _)| k.okey == DEFAULT_RULE && k.device == ALL_DEVICES && k.grain == "day");
        assert_eq!(default_rule.map(|(_, v)| v.n).sum::<i64>(), 4);
    }
}
