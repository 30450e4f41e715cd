//! The day fold of number rollups ([`tollgate_store::fold`]) against SQLite and a real
//! PostgreSQL (its URL from TOLLGATE_TEST_POSTGRES, as in `store.rs`): Top 10 views by day and
//! over whole days equal counts made here from the records sent, with hours folded and not,
//! records arriving late for hours already folded, a fold between two reads, and (PostgreSQL)
//! two collectors ingesting at once while folds run.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tollgate_records::{EnumQueryRecord, Record, Transport};
use tollgate_store::fold::NOTHING_FOLDED;
use tollgate_store::postgres::{PgOptions, PgStore};
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, Store, View};

mod common;

use common::PgDb;

/// A store and a way to read its ENUM fold watermark from the database.
struct Harness {
    store: Box<dyn Store>,
    folded: Box<dyn Fn() -> i64>,
    _keep: Box<dyn std::any::Any>,
}

fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    let store = tollgate_store::open(&format!("sqlite:{}", path.display())).unwrap();
    let folded = Box::new(move || {
        let c = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        c.query_row("SELECT folded_through FROM rollup_number_folds WHERE dataset = 'ENUM'", [], |r| r.get(0)).unwrap()
    });
    Harness { store, folded, _keep: Box::new(dir) }
}

fn pg() -> Harness {
    let db = PgDb::create();
    let store = tollgate_store::open(&db.url).unwrap();
    let url = db.url.clone();
    let folded = Box::new(move || pg_folded(&url));
    Harness { store, folded, _keep: Box::new(db) }
}

fn pg_folded(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one("SELECT folded_through FROM rollup_number_folds WHERE dataset = 'ENUM'", &[]).unwrap().get(0)
}

/// Start of the first day of records (in the past: the fold never waits for the clock).
fn day0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

fn hour(h: i64) -> DateTime<Utc> {
    day0() + chrono::Duration::hours(h)
}

/// ENUM record `k` at `at`: callers skewed (a few heavy, a tail), called numbers from a pool.
fn rec(k: u64, at: DateTime<Utc>) -> Record {
    let caller = (k % 7) * (k % 11) % 29;
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: at,
        device: format!("e{}", k % 2),
        client: "sbc".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: (!k.is_multiple_of(13)).then(|| format!("+1415555{caller:04}").parse().unwrap()),
        destination: format!("+1212555{:04}", k % 17).parse().unwrap(),
        direction: if k.is_multiple_of(5) { "outbound".into() } else { "inbound".into() },
        rule: None,
        action: "allow".into(),
        detail: None,
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 100,
        stale: false,
        policy_version: None,
        protocol: Default::default(),
    })
}

/// `n` records from key `from` on, spread evenly over hours `[h0, h1)`, in time order.
fn stream(from: u64, n: u64, h0: i64, h1: i64) -> Vec<Record> {
    let span = (h1 - h0) * 3600;
    (0..n).map(|i| rec(from + i, hour(h0) + chrono::Duration::seconds(i as i64 * span / n as i64))).collect()
}

/// A ranked row: bucket (None: the summary), number, direction, count.
type Ranked = (Option<i64>, String, String, u64);

/// Top 10 of `counts` (count descending, then number and direction), as the views rank.
fn top10(bucket: Option<i64>, counts: BTreeMap<(String, String), u64>) -> Vec<Ranked> {
    let mut v: Vec<Ranked> = counts.into_iter().map(|((k, d), n)| (bucket, k, d, n)).collect();
    v.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.1.cmp(&b.1)).then_with(|| a.2.cmp(&b.2)));
    v.truncate(10);
    v
}

/// What Top 10 Source / Destination by day over `days` days from day 0 must show, counted from
/// the records sent: each day's ranking, then the whole range's.
fn expected(records: &[Record], side: View, days: i64) -> (Vec<Ranked>, Vec<Ranked>) {
    let mut per_day: BTreeMap<i64, BTreeMap<(String, String), u64>> = BTreeMap::new();
    let mut all: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in records {
        let Record::EnumQuery { record: r, .. } = r else { continue };
        let t = r.time.timestamp();
        if t < day0().timestamp() || t >= day0().timestamp() + days * 86_400 {
            continue;
        }
        let number = if side == View::TopSource {
            r.source.map_or("(unknown)".to_string(), |n| n.to_string())
        } else {
            r.destination.to_string()
        };
        let key = (number, r.direction.clone());
        *per_day.entry(t - t % 86_400).or_default().entry(key.clone()).or_default() += 1;
        *all.entry(key).or_default() += 1;
    }
    (per_day.into_iter().flat_map(|(d, c)| top10(Some(d), c)).collect(), top10(None, all))
}

fn ranked(rows: &[tollgate_store::Row]) -> Vec<Ranked> {
    rows.iter().map(|r| (r.bucket.map(|b| b.timestamp()), r.key.clone(), r.detail.clone(), r.count)).collect()
}

/// The Top 10 views over `days` days (by day, and by hour over whole days) equal the counts of
/// `records`.
fn assert_views_exact(store: &dyn Store, records: &[Record], days: i64, when: &str) {
    for side in [View::TopSource, View::TopDestination] {
        let (per_day, summary) = expected(records, side, days);
        for grouping in [Grouping::Day, Grouping::Hour] {
            let q = AnalyticsQuery {
                dataset: Dataset::Enum,
                view: side,
                grouping,
                device: None,
                from: day0(),
                to: day0() + chrono::Duration::days(days),
            };
            let r = store.analytics(&q).unwrap();
            assert_eq!(ranked(&r.summary), summary, "{when}: {side:?} summary by {grouping:?}");
            if grouping == Grouping::Day {
                assert_eq!(ranked(&r.per_bucket), per_day, "{when}: {side:?} per day");
            }
        }
    }
}

fn fold_is_exact_across_hours_and_days_and_takes_late_records(h: Harness) {
    // 30 hours in time order, flushed (and folded) every batch.
    let mut sent = stream(0, 6000, 0, 30);
    for chunk in sent.chunks(250) {
        h.store.ingest(chunk).unwrap();
        h.store.flush().unwrap();
    }
    // The newest hour is 29: hours through 27 are folded, 28 and 29 are not.
    assert_eq!((h.folded)(), hour(27).timestamp());
    assert_views_exact(h.store.as_ref(), &sent, 2, "after folding through hour 27");
    // Late records for hours already folded (of both days), and for one not folded: they count.
    let late: Vec<Record> = (0..300u64).map(|i| rec(100_000 + i, hour([1, 5, 23, 26, 28][i as usize % 5]))).collect();
    for chunk in late.chunks(70) {
        h.store.ingest(chunk).unwrap();
    }
    sent.extend(late);
    assert_views_exact(h.store.as_ref(), &sent, 2, "late records, before a flush");
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(27).timestamp(), "late records move no fold");
    assert_views_exact(h.store.as_ref(), &sent, 2, "late records");
}

fn views_are_the_same_before_and_after_a_fold(h: Harness) {
    // Hours 0..3 of day 0: the newest is hour 2, so only hour 0 is folded.
    let sent = stream(0, 2000, 0, 3);
    h.store.ingest(&sent).unwrap();
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(0).timestamp());
    let q = |view, grouping| AnalyticsQuery {
        dataset: Dataset::Enum,
        view,
        grouping,
        device: None,
        from: day0(),
        to: day0() + chrono::Duration::days(1),
    };
    let queries = [
        q(View::TopSource, Grouping::Day),
        q(View::TopDestination, Grouping::Day),
        q(View::TopSource, Grouping::Hour),
        AnalyticsQuery { device: Some("e1".into()), ..q(View::TopSource, Grouping::Day) },
    ];
    let before: Vec<_> = queries.iter().map(|q| h.store.analytics(q).unwrap()).collect();
    assert_views_exact(h.store.as_ref(), &sent, 1, "hour 0 folded");
    // One record days later folds every hour of day 0; day 0's views do not change.
    h.store.ingest(&[rec(9, hour(24 * 4))]).unwrap();
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(24 * 4 - 2).timestamp());
    let after: Vec<_> = queries.iter().map(|q| h.store.analytics(q).unwrap()).collect();
    assert_eq!(before, after, "the same views before and after the fold");
    assert_views_exact(h.store.as_ref(), &sent, 1, "day 0 folded");
}

#[test]
fn sqlite_fold_is_exact_across_hours_and_days_and_takes_late_records() {
    fold_is_exact_across_hours_and_days_and_takes_late_records(sqlite());
}

#[test]
fn postgres_fold_is_exact_across_hours_and_days_and_takes_late_records() {
    fold_is_exact_across_hours_and_days_and_takes_late_records(pg());
}

#[test]
fn sqlite_views_are_the_same_before_and_after_a_fold() {
    views_are_the_same_before_and_after_a_fold(sqlite());
}

#[test]
fn postgres_views_are_the_same_before_and_after_a_fold() {
    views_are_the_same_before_and_after_a_fold(pg());
}

#[test]
fn a_new_store_has_nothing_folded_and_folds_once_data_is_two_hours_on() {
    let h = sqlite();
    assert_eq!((h.folded)(), NOTHING_FOLDED);
    h.store.ingest(&stream(0, 100, 0, 2)).unwrap();
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(-1).timestamp(), "hours 0 and 1: none folded (the hour before them is)");
    assert_eq!(h.store.stats().folded_hours, 0, "the first fold counts no hours before it");
    h.store.ingest(&stream(100, 10, 2, 3)).unwrap();
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(0).timestamp());
    h.store.ingest(&stream(200, 10, 5, 6)).unwrap();
    h.store.flush().unwrap();
    assert_eq!((h.folded)(), hour(3).timestamp());
    assert_eq!(h.store.stats().folded_hours, 4);
}

#[test]
fn sqlite_reopened_after_a_crash_before_its_fold_is_exact() {
    // The rollups of a store dropped without its last flush are rolled up (and folded) on open.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    let sent = stream(0, 3000, 0, 30);
    {
        let store = tollgate_store::sqlite::SqliteStore::open_with(
            &path,
            tollgate_store::sqlite::SqliteOptions {
                rollup_delay: Duration::from_secs(3600),
                rollup_key_budget: usize::MAX,
                ..Default::default()
            },
        )
        .unwrap();
        for chunk in sent.chunks(500) {
            store.ingest(chunk).unwrap();
        }
        assert_eq!(store.stats().pending_records, 3000);
        // A crash: the store is never dropped (no last flush), its lock released with the process.
        std::mem::forget(store);
    }
    // The writer lock is a flock on a file descriptor the forgotten store still holds: copy the
    // database (WAL included) as a crash would leave it.
    let copy = dir.path().join("copy.db");
    for (from, to) in [("records.db", "copy.db"), ("records.db-wal", "copy.db-wal")] {
        let from = dir.path().join(from);
        if from.exists() {
            std::fs::copy(&from, dir.path().join(to)).unwrap();
        }
    }
    let store = tollgate_store::sqlite::SqliteStore::open(&copy).unwrap();
    assert_eq!(store.stats().pending_records, 0);
    let c = rusqlite::Connection::open(&copy).unwrap();
    let folded: i64 =
        c.query_row("SELECT folded_through FROM rollup_number_folds WHERE dataset = 'ENUM'", [], |r| r.get(0)).unwrap();
    assert_eq!(folded, hour(27).timestamp(), "opening rolled up and folded");
    assert_views_exact(&store, &sent, 2, "reopened");
}

#[test]
fn postgres_two_collectors_ingesting_while_folds_run_count_every_record_once() {
    let db = PgDb::create();
    let opts = |name: &str| PgOptions {
        collector: name.into(),
        flush_after: Duration::from_millis(5),
        ..PgOptions::default()
    };
    let stores = [PgStore::open_with(&db.url, opts("a")).unwrap(), PgStore::open_with(&db.url, opts("b")).unwrap()];
    // Each collector a time-ordered stream over 40 hours (its own records), and every few
    // batches a late record for an hour already folded.
    let streams: Vec<Vec<Record>> = (0..2u64).map(|i| stream(i * 1_000_000, 8000, 0, 40)).collect();
    let late: Vec<Vec<Record>> = (0..2u64)
        .map(|i| (0..60u64).map(|j| rec(i * 1_000_000 + 500_000 + j, hour((j % 20) as i64))).collect())
        .collect();
    let late_sent: Vec<Record> = std::thread::scope(|s| {
        let workers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (records, late) = (&streams[i], &late[i]);
                s.spawn(move || {
                    let mut sent = Vec::new();
                    for (b, chunk) in records.chunks(200).enumerate() {
                        store.ingest(chunk).unwrap();
                        if b >= 20 {
                            let r = &late[(b - 20) * 3 % late.len()..][..1];
                            store.ingest(r).unwrap();
                            sent.extend_from_slice(r);
                        }
                        if b % 7 == i {
                            store.flush().unwrap();
                        }
                    }
                    sent
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    for store in &stores {
        store.flush().unwrap();
    }
    assert_eq!(pg_folded(&db.url), hour(37).timestamp());
    let mut sent: Vec<Record> = streams.into_iter().flatten().collect();
    // The late records each collector sent (some twice: stored once).
    let mut seen = std::collections::HashSet::new();
    for r in late_sent {
        if let Record::EnumQuery { record, .. } = &r
            && seen.insert(record.id)
        {
            sent.push(r);
        }
    }
    let stored = stores[0].count(Dataset::Enum, day0(), day0() + chrono::Duration::days(2)).unwrap();
    assert_eq!(stored, sent.len() as u64);
    assert_views_exact(&stores[0], &sent, 2, "two collectors");
    assert_views_exact(&stores[1], &sent, 2, "two collectors, read by the other");
    // Day totals of the day rows plus unfolded hours equal the records, per number.
    let mut c = db.client();
    let total: i64 = c
        .query_one(
            "SELECT SUM(n)::bigint FROM (SELECT n FROM rollup_numbers WHERE grain = 'day' AND side = 'source' AND device = '*' \
             UNION ALL SELECT n FROM rollup_numbers r JOIN rollup_number_folds f ON f.dataset = r.dataset \
             WHERE grain = 'hour' AND side = 'source' AND device = '*' AND bucket > f.folded_through) t",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(total, sent.len() as i64);
}

/// A collector of an older version, still running during a rolling upgrade, writes day rows of
/// number rollups for every record; next to the fold those would be counted twice. PostgreSQL
/// refuses them from any session that does not say it knows the fold, naming the check; this
/// build's sessions (and the fold) write day rows as before.
#[test]
fn postgres_refuses_day_number_rows_from_a_session_that_does_not_know_the_fold() {
    let db = PgDb::create();
    let store = tollgate_store::open(&db.url).unwrap();
    let upsert = "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) \
                  VALUES ('ENUM', $1, 'source', '*', 0, '+12125550100', 'inbound', 1) \
                  ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + excluded.n";
    // An older collector's session: no day-fold option.
    let mut old = db.client();
    let refused = old.execute(upsert, &[&"day"]).expect_err("an older collector's day row");
    let text = format!("{refused:?}");
    assert!(text.contains("rollup_numbers_day_rows_by_fold_only"), "{text}");
    old.execute(upsert, &[&"hour"]).expect("hour rows are what older and newer collectors share");
    // A session of this build.
    let mut config: postgres::Config = db.url.parse().unwrap();
    config.options(tollgate_store::postgres::DAY_FOLD_OPTION);
    let mut current = config.connect(postgres::NoTls).unwrap();
    current.execute(upsert, &[&"day"]).expect("this build writes day rows");
    // The store itself folds and reads as before.
    let records = stream(0, 600, 0, 6);
    store.ingest(&records).unwrap();
    store.flush().unwrap();
    assert_eq!(pg_folded(&db.url), hour(3).timestamp(), "the store's own fold wrote day rows");
    assert_views_exact(&*store, &records, 1, "after the store's fold");
}
