//! Rollup increments summed in memory across batches, with compact keys.
//!
//! The same increments as [`crate::rollup::Deltas`] (a test checks they agree), but keyed by
//! small integers: strings (devices, directions, outcomes) are interned once per flush and
//! numbers are kept as their E.164 value, so adding a record allocates nothing once its strings
//! are known. [`Accumulator::drain_sorted`] hands the rows out in primary-key order, so the
//! upserts walk the rollup B-trees from left to right.

use rustc_hash::FxHashMap;
use tollgate_records::Record;

use crate::fold::{Folds, day_numbers_too};
use crate::model::{Dataset, Grouping};
use crate::rollup::{ALL_DEVICES, COUNT_GRAINS, DEFAULT_RULE, UNKNOWN_NUMBER};

/// What one stored record contributes to the rollups, borrowed from a record or a raw row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// ENUM or SIP.
    pub dataset: Dataset,
    /// Unix seconds.
    pub secs: i64,
    /// Engine or probe.
    pub device: &'a str,
    /// Calling number.
    pub source: Num<'a>,
    /// Called number.
    pub destination: Num<'a>,
    /// Call direction.
    pub direction: &'a str,
    /// Rule (ENUM, `(default)` without one) or disposition (SIP).
    pub okey: &'a str,
    /// Action (ENUM) or empty (SIP).
    pub odetail: &'a str,
    /// A stale ENUM answer.
    pub stale: bool,
}

/// A number as a record holds it (an E.164 value) or as a raw row holds it (text).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num<'a> {
    /// No number.
    Unknown,
    /// An E.164 number.
    E164(u64),
    /// Text read back from a raw row.
    Text(&'a str),
}

impl<'a> Num<'a> {
    /// A number read from a raw row's column (`+` and digits, or NULL).
    pub fn from_column(text: Option<&'a str>) -> Self {
        match text {
            None => Num::Unknown,
            Some(t) => match t.strip_prefix('+') {
                // Only a form that prints back identically is kept as a value.
                Some(d)
                    if !d.is_empty()
                        && d.len() <= 19
                        && !d.starts_with('0')
                        && d.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    d.parse().map_or(Num::Text(t), Num::E164)
                }
                _ => Num::Text(t),
            },
        }
    }
}

impl<'a> Facts<'a> {
    /// The facts of a record as it arrives.
    pub fn of(record: &'a Record) -> Self {
        match record {
            Record::EnumQuery { record: r, .. } => Facts {
                dataset: Dataset::Enum,
                secs: r.time.timestamp(),
                device: &r.device,
                source: r.source.map_or(Num::Unknown, |n| Num::E164(n.as_u64())),
                destination: Num::E164(r.destination.as_u64()),
                direction: &r.direction,
                okey: r.rule.as_deref().unwrap_or(DEFAULT_RULE),
                odetail: &r.action,
                stale: r.stale,
            },
            Record::SipCall { record: r, .. } => Facts {
                dataset: Dataset::Sip,
                secs: r.time.timestamp(),
                device: &r.device,
                source: r.source.map_or(Num::Unknown, |n| Num::E164(n.as_u64())),
                destination: r.destination.map_or(Num::Unknown, |n| Num::E164(n.as_u64())),
                direction: &r.direction,
                okey: r.disposition.as_str(),
                odetail: "",
                stale: false,
            },
        }
    }
}

/// Strings seen since the last drain, by id. Id 0 is the all-devices name `*`.
#[derive(Debug)]
struct Interner {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut i = Interner { ids: FxHashMap::default(), names: Vec::new() };
        i.id(ALL_DEVICES);
        i
    }
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Each id's position in the names' sorted order.
    fn ranks(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.names.len() as u32).collect();
        ids.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        let mut rank = vec![0; ids.len()];
        for (r, id) in ids.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }
}

/// A number row's place in the primary-key order of `rollup_numbers`, in integers: dataset,
/// grain and side as their names sort, the device's rank, the bucket, the number (below), the
/// direction's rank.
type NumberOrder = (u8, u8, u8, u32, i64, (u8, u64, u64), u32);

/// The order of stored numbers: `(unknown)` first (`(` sorts before `+`), then E.164 numbers as
/// their digit strings sort (digits padded to 15 places, then the shorter first), then other
/// texts (only read back from unusual raw rows) by rank.
fn number_order(k: &NumberKey, rank: &[u32]) -> NumberOrder {
    let number = match k.number {
        0 => (0, 0, 0),
        c if c & TEXT_NUMBER != 0 => (2, u64::from(rank[(c & !TEXT_NUMBER) as usize]), 0),
        c => {
            let digits = c.ilog10() + 1;
            (1, c.saturating_mul(10u64.saturating_pow(15u32.saturating_sub(digits))), u64::from(digits))
        }
    };
    let dataset = match k.dataset {
        Dataset::Enum => 0,
        Dataset::Sip => 1,
    };
    let grain = match k.grain {
        Grouping::Day => 0,
        Grouping::Hour => 1,
        Grouping::Minute => 2,
    };
    (dataset, grain, u8::from(k.source), rank[k.device as usize], k.bucket, number, rank[k.direction as usize])
}

/// Number code: 0 for unknown, an E.164 value, or (top bit set) an interned text.
const TEXT_NUMBER: u64 = 1 << 63;
const ALL: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CountKey {
    dataset: Dataset,
    grain: Grouping,
    device: u32,
    bucket: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OutcomeKey {
    dataset: Dataset,
    grain: Grouping,
    device: u32,
    bucket: i64,
    okey: u32,
    odetail: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NumberKey {
    dataset: Dataset,
    grain: Grouping,
    source: bool,
    device: u32,
    bucket: i64,
    number: u64,
    direction: u32,
}

/// Rollup increments of many records.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    strings: Interner,
    counts: FxHashMap<CountKey, i64>,
    outcomes: FxHashMap<OutcomeKey, (i64, i64)>,
    numbers: FxHashMap<NumberKey, i64>,
}

/// One rollup row's increment, with its key as the tables spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Row<'a> {
    /// `rollup_counts`.
    Count {
        /// Dataset name.
        dataset: &'static str,
        /// Grain name.
        grain: &'static str,
        /// Device or `*`.
        device: &'a str,
        /// Bucket start.
        bucket: i64,
        /// Records.
        n: i64,
    },
    /// `rollup_outcomes`.
    Outcome {
        /// Dataset name.
        dataset: &'static str,
        /// Grain name.
        grain: &'static str,
        /// Device or `*`.
        device: &'a str,
        /// Bucket start.
        bucket: i64,
        /// Rule or disposition.
        okey: &'a str,
        /// Action or empty.
        odetail: &'a str,
        /// Records.
        n: i64,
        /// Of which stale.
        stale: i64,
    },
    /// `rollup_numbers`.
    Number {
        /// Dataset name.
        dataset: &'static str,
        /// Grain name.
        grain: &'static str,
        /// `source` or `destination`.
        side: &'static str,
        /// Device or `*`.
        device: &'a str,
        /// Bucket start.
        bucket: i64,
        /// The number as stored.
        number: &'a str,
        /// Call direction.
        direction: &'a str,
        /// Records.
        n: i64,
    },
}

impl Accumulator {
    fn number(&mut self, n: Num<'_>) -> u64 {
        match n {
            Num::Unknown => 0,
            Num::E164(v) if v != 0 && v < TEXT_NUMBER => v,
            Num::E164(v) => TEXT_NUMBER | u64::from(self.strings.id(&format!("+{v}"))),
            Num::Text(t) => TEXT_NUMBER | u64::from(self.strings.id(t)),
        }
    }

    /// The number as stored, written into `out`.
    fn number_text(&self, code: u64, out: &mut String) {
        use std::fmt::Write as _;
        out.clear();
        match code {
            0 => out.push_str(UNKNOWN_NUMBER),
            c if c & TEXT_NUMBER != 0 => out.push_str(self.strings.name((c & !TEXT_NUMBER) as u32)),
            c => {
                let _ = write!(out, "+{c}");
            }
        }
    }

    /// Adds one newly stored record.
    pub fn add(&mut self, f: &Facts<'_>) {
        let device = self.strings.id(f.device);
        let okey = self.strings.id(f.okey);
        let odetail = self.strings.id(f.odetail);
        let direction = self.strings.id(f.direction);
        let source = self.number(f.source);
        let destination = self.number(f.destination);
        let dataset = f.dataset;
        for device in [device, ALL] {
            for grain in COUNT_GRAINS {
                let bucket = grain.bucket_of(f.secs);
                *self.counts.entry(CountKey { dataset, grain, device, bucket }).or_default() += 1;
                let o = self.outcomes.entry(OutcomeKey { dataset, grain, device, bucket, okey, odetail }).or_default();
                o.0 += 1;
                o.1 += i64::from(f.stale);
            }
            // Numbers: the hour grain only (day rows: the fold, or [`Self::add_day_numbers`]).
            let (grain, bucket) = (Grouping::Hour, Grouping::Hour.bucket_of(f.secs));
            for (is_source, number) in [(true, source), (false, destination)] {
                let key = NumberKey { dataset, grain, source: is_source, device, bucket, number, direction };
                *self.numbers.entry(key).or_default() += 1;
            }
        }
    }

    /// Adds the day-grain number increments of the hours already folded (the hour increments of
    /// each hour `h` with [`day_numbers_too`]`(h, W)`, summed per day), so a late record still
    /// counts in its day. Call once, right before writing, with W read in the writing
    /// transaction.
    pub fn add_day_numbers(&mut self, folds: &Folds) {
        let day: Vec<(NumberKey, i64)> = self
            .numbers
            .iter()
            .filter(|(k, _)| k.grain == Grouping::Hour && day_numbers_too(k.bucket, folds.get(k.dataset)))
            .map(|(k, n)| (NumberKey { grain: Grouping::Day, bucket: Grouping::Day.bucket_of(k.bucket), ..*k }, *n))
            .collect();
        for (k, n) in day {
            *self.numbers.entry(k).or_default() += n;
        }
    }

    /// Distinct rollup rows held.
    pub fn keys(&self) -> usize {
        self.counts.len() + self.outcomes.len() + self.numbers.len()
    }

    /// Every row's increment, each table's rows in its primary-key order (counts, outcomes,
    /// numbers), passed to `apply`; the accumulator is left as it was (call [`Self::clear`] once
    /// the rows are committed).
    pub fn for_each_sorted<E>(&self, mut apply: impl FnMut(Row<'_>) -> Result<(), E>) -> Result<(), E> {
        let name = |id: u32| self.strings.name(id);
        let mut counts: Vec<(&CountKey, &i64)> = self.counts.iter().collect();
        counts.sort_unstable_by(|(a, _), (b, _)| {
            (a.dataset.as_str(), a.grain.as_str(), name(a.device), a.bucket).cmp(&(
                b.dataset.as_str(),
                b.grain.as_str(),
                name(b.device),
                b.bucket,
            ))
        });
        for (k, n) in counts {
            apply(Row::Count {
                dataset: k.dataset.as_str(),
                grain: k.grain.as_str(),
                device: name(k.device),
                bucket: k.bucket,
                n: *n,
            })?;
        }
        let mut outcomes: Vec<(&OutcomeKey, &(i64, i64))> = self.outcomes.iter().collect();
        outcomes.sort_unstable_by(|(a, _), (b, _)| {
            (a.dataset.as_str(), a.grain.as_str(), name(a.device), a.bucket, name(a.okey), name(a.odetail)).cmp(&(
                b.dataset.as_str(),
                b.grain.as_str(),
                name(b.device),
                b.bucket,
                name(b.okey),
                name(b.odetail),
            ))
        });
        for (k, (n, stale)) in outcomes {
            apply(Row::Outcome {
                dataset: k.dataset.as_str(),
                grain: k.grain.as_str(),
                device: name(k.device),
                bucket: k.bucket,
                okey: name(k.okey),
                odetail: name(k.odetail),
                n: *n,
                stale: *stale,
            })?;
        }
        // Numbers are many (several per record): sorted on integer keys, texts ranked once.
        let side = |source: bool| if source { "source" } else { "destination" };
        let rank = self.strings.ranks();
        let mut numbers: Vec<(NumberOrder, &NumberKey, i64)> =
            self.numbers.iter().map(|(k, n)| (number_order(k, &rank), k, *n)).collect();
        numbers.sort_unstable_by_key(|(order, _, _)| *order);
        let mut text = String::new();
        for (_, k, n) in numbers {
            self.number_text(k.number, &mut text);
            apply(Row::Number {
                dataset: k.dataset.as_str(),
                grain: k.grain.as_str(),
                side: side(k.source),
                device: name(k.device),
                bucket: k.bucket,
                number: &text,
                direction: name(k.direction),
                n,
            })?;
        }
        Ok(())
    }

    /// Forgets every increment and interned string.
    pub fn clear(&mut self) {
        *self = Accumulator::default();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use tollgate_records::{Disposition, EnumQueryRecord, SipCallRecord, Transport};

    use super::*;
    use crate::rollup::{Deltas, flatten};

    fn enum_rec(device: &str, secs: i64, source: Option<&str>, rule: Option<&str>, stale: bool) -> Record {
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
            rule: rule.map(String::from),
            action: "allow".into(),
            detail: None,
            rcode: "NXDOMAIN".into(),
            fail_open: false,
            latency_us: 10,
            stale,
            policy_version: None,
            protocol: Default::default(),
        })
    }

    fn sip_rec(device: &str, secs: i64, destination: Option<&str>) -> Record {
        Record::sip_call(SipCallRecord {
            id: ulid::Ulid::new(),
            time: chrono::Utc.timestamp_opt(secs, 0).unwrap(),
            device: device.into(),
            call_id: "c@x".into(),
            source: Some("+14155550001".parse().unwrap()),
            destination: destination.map(|s| s.parse().unwrap()),
            direction: "outbound".into(),
            disposition: Disposition::Busy,
            final_code: Some(486),
            pdd_ms: None,
            duration_ms: None,
            answered_at: None,
            ended_at: None,
            rtp_packets: None,
            rtp_lost: None,
            rtp_jitter_ms: None,
            mos: None,
        })
    }

    type Table = BTreeMap<Vec<String>, (i64, i64)>;

    fn rows_of(acc: &Accumulator) -> (Table, Vec<Vec<String>>) {
        let mut table = Table::new();
        let mut order = Vec::new();
        acc.for_each_sorted(|row| {
            let (key, v): (Vec<String>, (i64, i64)) = match row {
                Row::Count { dataset, grain, device, bucket, n } => {
                    (vec!["c".into(), dataset.into(), grain.into(), device.into(), format!("{bucket:012}")], (n, 0))
                }
                Row::Outcome { dataset, grain, device, bucket, okey, odetail, n, stale } => (
                    vec![
                        "o".into(),
                        dataset.into(),
                        grain.into(),
                        device.into(),
                        format!("{bucket:012}"),
                        okey.into(),
                        odetail.into(),
                    ],
                    (n, stale),
                ),
                Row::Number { dataset, grain, side, device, bucket, number, direction, n } => (
                    vec![
                        "p".into(),
                        dataset.into(),
                        grain.into(),
                        side.into(),
                        device.into(),
                        format!("{bucket:012}"),
                        number.into(),
                        direction.into(),
                    ],
                    (n, 0),
                ),
            };
            order.push(key.clone());
            assert!(table.insert(key, v).is_none(), "each row once");
            Ok::<(), ()>(())
        })
        .unwrap();
        (table, order)
    }

    fn deltas_table(d: &Deltas) -> Table {
        let mut t = Table::new();
        for (k, n) in &d.counts {
            t.insert(
                vec!["c".into(), k.dataset.into(), k.grain.into(), k.device.clone(), format!("{:012}", k.bucket)],
                (*n, 0),
            );
        }
        for (k, n) in &d.outcomes {
            t.insert(
                vec![
                    "o".into(),
                    k.dataset.into(),
                    k.grain.into(),
                    k.device.clone(),
                    format!("{:012}", k.bucket),
                    k.okey.clone(),
                    k.odetail.clone(),
                ],
                (n.n, n.stale),
            );
        }
        for (k, n) in &d.numbers {
            t.insert(
                vec![
                    "p".into(),
                    k.dataset.into(),
                    k.grain.into(),
                    k.side.into(),
                    k.device.clone(),
                    format!("{:012}", k.bucket),
                    k.number.clone(),
                    k.direction.clone(),
                ],
                (*n, 0),
            );
        }
        t
    }

    fn mix() -> Vec<Record> {
        let t = 1_800_000_000;
        let mut recs = Vec::new();
        for i in 0..200i64 {
            let src = (i % 7 != 0).then(|| format!("+1415555{:04}", (i * i) % 37));
            recs.push(enum_rec(
                if i % 3 == 0 { "e1" } else { "e2" },
                t + i * 97,
                src.as_deref(),
                (i % 5 == 0).then_some("block"),
                i % 11 == 0,
            ));
        }
        for i in 0..30i64 {
            recs.push(sip_rec("p1", t + i * 600, (i % 4 != 0).then_some("+12125550199")));
        }
        // Numbers of other lengths, one a prefix of another: ordered as their text is.
        for (i, src) in ["+3531234567", "+35312345678", "+353123456", "+4420", "+35312345670"].into_iter().enumerate() {
            recs.push(enum_rec("e3", t + i as i64, Some(src), None, false));
        }
        recs
    }

    #[test]
    fn increments_equal_the_per_batch_deltas() {
        let recs = mix();
        let mut acc = Accumulator::default();
        let mut deltas = Deltas::default();
        for r in &recs {
            acc.add(&Facts::of(r));
            deltas.add(&flatten(r));
        }
        let (table, _) = rows_of(&acc);
        assert_eq!(table, deltas_table(&deltas));
        assert_eq!(acc.keys(), table.len());
    }

    #[test]
    fn day_increments_of_folded_hours_equal_the_per_batch_deltas_and_the_per_record_rule() {
        let recs = mix();
        let t = 1_800_000_000;
        let hour = |i: i64| Grouping::Hour.bucket_of(t) + i * 3600;
        for (enum_w, sip_w) in [
            (crate::fold::NOTHING_FOLDED, crate::fold::NOTHING_FOLDED),
            (hour(0), hour(2)),
            (hour(3), crate::fold::NOTHING_FOLDED),
            (hour(100), hour(100)),
        ] {
            let mut folds = Folds::default();
            folds.set(Dataset::Enum, enum_w);
            folds.set(Dataset::Sip, sip_w);
            let (mut acc, mut deltas) = (Accumulator::default(), Deltas::default());
            for r in &recs {
                acc.add(&Facts::of(r));
                deltas.add(&flatten(r));
            }
            acc.add_day_numbers(&folds);
            let mut expected = deltas_table(&deltas);
            let day = deltas_table(&deltas.day_numbers(&folds));
            for (k, v) in day {
                assert!(expected.insert(k, v).is_none(), "day rows are new keys");
            }
            assert_eq!(rows_of(&acc).0, expected, "folded through {enum_w}/{sip_w}");
            // Record by record: a day row counts exactly the records of folded hours.
            let mut per_record: BTreeMap<(String, i64), i64> = BTreeMap::new();
            for r in &recs {
                let f = flatten(r);
                let h = Grouping::Hour.bucket_of(f.ts_us.div_euclid(1_000_000));
                if day_numbers_too(h, folds.get(f.dataset)) {
                    *per_record.entry((f.dataset.as_str().into(), Grouping::Day.bucket_of(h))).or_default() += 1;
                }
            }
            let mut from_rows: BTreeMap<(String, i64), i64> = BTreeMap::new();
            for (k, (n, _)) in rows_of(&acc).0 {
                // Per record: device `*`, source side, one row per record.
                if k[0] == "p" && k[2] == "day" && k[3] == "source" && k[4] == ALL_DEVICES {
                    *from_rows.entry((k[1].clone(), k[5].parse().unwrap())).or_default() += n;
                }
            }
            assert_eq!(from_rows, per_record);
        }
    }

    #[test]
    fn raw_row_text_gives_the_same_rows_as_the_record() {
        let recs = mix();
        let (mut from_records, mut from_text) = (Accumulator::default(), Accumulator::default());
        for r in &recs {
            let f = Facts::of(r);
            from_records.add(&f);
            let flat = flatten(r);
            from_text.add(&Facts {
                source: Num::from_column(flat.source.as_deref()),
                destination: Num::from_column(flat.destination.as_deref()),
                ..f
            });
        }
        assert_eq!(rows_of(&from_records).0, rows_of(&from_text).0);
        // Odd text (not a canonical number) is kept as it is.
        let mut odd = Accumulator::default();
        odd.add(&Facts { source: Num::from_column(Some("+0123")), ..Facts::of(&recs[0]) });
        assert!(rows_of(&odd).0.keys().any(|k| k.contains(&"+0123".to_string())));
    }

    #[test]
    fn rows_come_in_primary_key_order_per_table() {
        let mut acc = Accumulator::default();
        for r in &mix() {
            acc.add(&Facts::of(r));
        }
        let (_, order) = rows_of(&acc);
        for w in order.windows(2) {
            if w[0][0] == w[1][0] {
                assert!(w[0] < w[1], "{:?} before {:?}", w[0], w[1]);
            }
        }
        acc.clear();
        assert_eq!(acc.keys(), 0);
    }
}
