//! Several collectors on one PostgreSQL database, and crashes: against a real PostgreSQL (its
//! URL from TOLLGATE_TEST_POSTGRES, by default
//! postgres://tollgate:tollgate@127.0.0.1:5432/postgres, which `.ci/run` sets up). Each test gets
//! fresh databases, dropped afterwards.
//!
//! * collectors ingesting at once (overlapping and disjoint batches) end with exactly what one
//!   collector ingesting the same records has: raw rows, every rollup table, the views;
//! * a collector killed with SIGKILL while ingesting loses no acknowledged record, stores none
//!   twice, and its rollups end equal to what the raw rows say (recomputed in SQL);
//! * a crashed collector's pending rollups are taken over by another; a live one's are not.
//!
//! Crashes are real: a child process (this test binary, re-invoked) ingests and appends each
//! acknowledged batch number to a file after `ingest` returns; the parent kills it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tollgate_records::{Disposition, EnumQueryRecord, Record, SipCallRecord, Transport};
use tollgate_store::postgres::{PgOptions, PgStore};
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, Store, View};

mod common;

use common::PgDb;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 6, 0, 0).unwrap()
}

/// Record `k` of a deterministic stream over about 8 hours: ENUM queries from three engines and
/// every fifth a SIP call; a few heavy callers and a tail; some rules, some stale answers.
fn record(k: u64) -> Record {
    let at = t0() + chrono::Duration::milliseconds((k * 1_237) as i64);
    let id = ulid::Ulid::from_parts(at.timestamp_millis() as u64, u128::from(k));
    let caller = if k.is_multiple_of(3) { k % 7 } else { (k * 7919) % 500 };
    let source: Option<tollgate_number::E164> =
        (!k.is_multiple_of(13)).then(|| format!("+1415555{caller:04}").parse().unwrap());
    let destination: tollgate_number::E164 = format!("+1212555{:04}", (k * 31) % 90).parse().unwrap();
    if k.is_multiple_of(5) {
        let disposition = [Disposition::Answered, Disposition::Busy, Disposition::NoAnswer][(k % 3) as usize];
        return Record::sip_call(SipCallRecord {
            id,
            time: at,
            device: format!("probe-{}", k % 2),
            call_id: format!("call-{k}@probe"),
            source,
            destination: Some(destination),
            direction: "inbound".into(),
            disposition,
            final_code: Some(200),
            pdd_ms: Some(700),
            duration_ms: Some(10_000),
            answered_at: Some(at),
            ended_at: Some(at + chrono::Duration::seconds(10)),
            rtp_packets: Some(500),
            rtp_lost: Some(1),
            rtp_jitter_ms: Some(0.5),
            mos: Some(4.2),
        });
    }
    Record::enum_query(EnumQueryRecord {
        id,
        time: at,
        device: format!("enum-{}", k % 3),
        client: "sbc-1".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: if k.is_multiple_of(4) { Transport::Tcp } else { Transport::Udp },
        source,
        destination,
        direction: if k.is_multiple_of(2) { "inbound".into() } else { "outbound".into() },
        rule: k.is_multiple_of(7).then(|| "block".to_string()),
        action: if k.is_multiple_of(7) { "terminate".into() } else { "allow".into() },
        detail: None,
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 100,
        stale: k.is_multiple_of(11),
        policy_version: Some(2),
        protocol: Default::default(),
    })
}

const BATCH: u64 = 200;
const OVERLAP: u64 = 40;

/// Batch `b`: records `200 b - 40 .. 200 b + 200`, so each batch resends the end of the one
/// before (what a shipper does after a lost acknowledgement).
fn batch_keys(b: u64) -> std::ops::Range<u64> {
    (b * BATCH).saturating_sub(OVERLAP)..(b + 1) * BATCH
}

fn batch(b: u64) -> Vec<Record> {
    batch_keys(b).map(record).collect()
}

fn options(collector: &str, flush_after: Duration) -> PgOptions {
    PgOptions { collector: collector.into(), flush_after, ..PgOptions::default() }
}

/// The number rollups as reads see them: hour rows, and per day its day rows plus its hour rows
/// not yet folded into them (above the dataset's `rollup_number_folds` watermark). When hours
/// are folded depends on when flushes ran; what reads see does not.
const NUMBERS_AS_READ: &str = "(SELECT dataset, grain, side, device, bucket, number, direction, n FROM rollup_numbers WHERE grain <> 'day' \
    UNION ALL SELECT dataset, 'day', side, device, day, number, direction, SUM(n)::bigint FROM ( \
        SELECT dataset, side, device, bucket AS day, number, direction, n FROM rollup_numbers WHERE grain = 'day' \
        UNION ALL SELECT r.dataset, side, device, bucket - bucket % 86400, number, direction, n \
        FROM rollup_numbers r JOIN rollup_number_folds f ON f.dataset = r.dataset WHERE grain = 'hour' AND bucket > f.folded_through \
    ) u GROUP BY dataset, side, device, day, number, direction)";

/// Every row of `table` as text (sorted), without the per-collector batch column (number
/// rollups as reads see them: [`NUMBERS_AS_READ`]).
fn dump(c: &mut postgres::Client, table: &str) -> Vec<String> {
    let table = if table == "rollup_numbers" { NUMBERS_AS_READ } else { table };
    c.query(&format!("SELECT (to_jsonb(t) - 'batch')::text FROM {table} t ORDER BY 1"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const TABLES: [&str; 5] = ["enum_queries", "sip_calls", "rollup_counts", "rollup_numbers", "rollup_outcomes"];

/// The rollups recomputed in SQL from the raw tables, next to what the rollup tables hold.
const RECOMPUTE: [(&str, &str, &str); 3] = [
    (
        "rollup_counts",
        "SELECT concat_ws('|', dataset, grain, device, bucket, n) FROM rollup_counts ORDER BY 1",
        "SELECT concat_ws('|', ds, grain, device, s - s % len, count(*)) FROM d, g GROUP BY ds, grain, device, s - s % len ORDER BY 1",
    ),
    (
        "rollup_numbers",
        "SELECT concat_ws('|', dataset, grain, side, device, bucket, number, direction, n) FROM (SELECT dataset, grain, side, device, bucket, number, direction, n FROM rollup_numbers WHERE grain <> 'day' \
         UNION ALL SELECT dataset, 'day', side, device, day, number, direction, SUM(n)::bigint FROM ( \
             SELECT dataset, side, device, bucket AS day, number, direction, n FROM rollup_numbers WHERE grain = 'day' \
             UNION ALL SELECT r.dataset, side, device, bucket - bucket % 86400, number, direction, n \
             FROM rollup_numbers r JOIN rollup_number_folds f ON f.dataset = r.dataset WHERE grain = 'hour' AND bucket > f.folded_through \
         ) u GROUP BY dataset, side, device, day, number, direction) t ORDER BY 1",
        "SELECT concat_ws('|', ds, grain, side, device, s - s % len, number, direction, count(*)) \
         FROM d, g, LATERAL (VALUES ('source', src), ('destination', dst)) x(side, number) \
         WHERE grain <> 'minute' GROUP BY ds, grain, side, device, s - s % len, number, direction ORDER BY 1",
    ),
    (
        "rollup_outcomes",
        "SELECT concat_ws('|', dataset, grain, device, bucket, okey, odetail, n, stale) FROM rollup_outcomes ORDER BY 1",
        "SELECT concat_ws('|', ds, grain, device, s - s % len, okey, odetail, count(*), sum(stale)) \
         FROM d, g GROUP BY ds, grain, device, s - s % len, okey, odetail ORDER BY 1",
    ),
];

const RAW_AS_ROLLUP_INPUT: &str = "WITH r AS (
    SELECT 'ENUM' ds, device, ts / 1000000 s, COALESCE(source, '(unknown)') src, destination dst, direction,
           COALESCE(rule, '(default)') okey, action odetail, stale FROM enum_queries
    UNION ALL
    SELECT 'SIP', device, ts / 1000000, COALESCE(source, '(unknown)'), COALESCE(destination, '(unknown)'), direction,
           disposition, '', 0 FROM sip_calls
), d AS (SELECT * FROM r UNION ALL SELECT ds, '*', s, src, dst, direction, okey, odetail, stale FROM r),
g AS (SELECT * FROM (VALUES ('minute', 60), ('hour', 3600), ('day', 86400)) g(grain, len)) ";

/// Asserts that every rollup table holds exactly what the raw rows imply, and nothing is pending.
fn assert_rollups_match_raw(c: &mut postgres::Client) {
    let pending: i64 = c.query_one("SELECT count(*) FROM rollup_pending_batches", &[]).unwrap().get(0);
    assert_eq!(pending, 0, "no batch left pending");
    for (table, stored, recomputed) in RECOMPUTE {
        let rows = |sql: &str, c: &mut postgres::Client| -> Vec<String> {
            c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
        };
        let stored = rows(stored, c);
        let expected = rows(&format!("{RAW_AS_ROLLUP_INPUT}{recomputed}"), c);
        assert!(!expected.is_empty());
        assert_eq!(stored, expected, "{table} differs from its recomputation from raw records");
    }
}

fn views(store: &dyn Store) -> Vec<tollgate_store::AnalyticsResult> {
    let mut out = Vec::new();
    for dataset in Dataset::ALL {
        for (view, grouping) in [
            (View::TopSource, Grouping::Hour),
            (View::TopSource, Grouping::Day),
            (View::TopDestination, Grouping::Day),
            (View::AverageCps, Grouping::Minute),
            (View::AverageCps, Grouping::Hour),
        ] {
            let q = AnalyticsQuery {
                dataset,
                view,
                grouping,
                device: None,
                from: t0(),
                to: t0() + chrono::Duration::hours(10),
            };
            out.push(store.analytics(&q).unwrap());
        }
    }
    out
}

#[test]
fn several_collectors_at_once_store_exactly_what_one_collector_stores() {
    const BATCHES: u64 = 60;
    let shared = PgDb::create();
    let single = PgDb::create();
    // Different flush windows, so flushes of different collectors interleave with ingests.
    let stores: Vec<PgStore> = [1u64, 15, 400]
        .iter()
        .enumerate()
        .map(|(i, ms)| PgStore::open_with(&shared.url, options(&format!("c{i}"), Duration::from_millis(*ms))).unwrap())
        .collect();
    let inserted: u64 = std::thread::scope(|s| {
        // Two threads per collector: its writer connections stream batches in parallel.
        let workers: Vec<_> = (0..stores.len() * 2)
            .map(|w| {
                let (i, half) = ((w / 2) as u64, (w % 2) as u64);
                let store = &stores[i as usize];
                s.spawn(move || {
                    let mut inserted = 0;
                    for b in (0..BATCHES).filter(|b| b % 2 == half) {
                        // Each batch goes to one collector, every fourth to a second one too.
                        if b % 3 == i || (b % 4 == 0 && (b + 1) % 3 == i) {
                            inserted += store.ingest(&batch(b)).unwrap().inserted;
                        }
                    }
                    inserted
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let distinct = BATCHES * BATCH;
    assert_eq!(inserted, distinct, "each record stored (and rolled up) by exactly one collector");

    let one = PgStore::open_with(&single.url, options("single", Duration::from_secs(1))).unwrap();
    for b in 0..BATCHES {
        one.ingest(&batch(b)).unwrap();
    }
    for store in &stores {
        store.flush().unwrap();
    }
    one.flush().unwrap();
    for store in stores.iter().chain([&one]) {
        assert_eq!(store.stats().pending_records, 0);
    }

    let (mut a, mut b) = (shared.client(), single.client());
    for table in TABLES {
        let (left, right) = (dump(&mut a, table), dump(&mut b, table));
        assert!(!left.is_empty(), "{table} is filled");
        assert!(left == right, "{table}: {} rows with several collectors, {} with one", left.len(), right.len());
    }
    assert_rollups_match_raw(&mut a);
    let several = views(&stores[0]);
    assert!(several.iter().any(|r| r.total > 0 && !r.summary.is_empty()));
    assert_eq!(several, views(&one), "Top 10 and Average CPS as with one collector");
    assert_eq!(views(&stores[1]), several);
}

/// The child process's side: ingests batches from TOLLGATE_PG_CHILD_FROM on with the options
/// the parent gave, appending each acknowledged batch number to TOLLGATE_PG_CHILD_ACKS; aborts
/// after TOLLGATE_PG_CHILD_ABORT_AFTER batches if set, else runs until killed.
#[test]
fn child_ingests_until_killed() {
    let Ok(url) = std::env::var("TOLLGATE_PG_CHILD_URL") else {
        return; // run by the parent tests only
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let from: u64 = var("TOLLGATE_PG_CHILD_FROM").parse().unwrap();
    let flush_ms: u64 = var("TOLLGATE_PG_CHILD_FLUSH_MS").parse().unwrap();
    let abort_after: Option<u64> = std::env::var("TOLLGATE_PG_CHILD_ABORT_AFTER").ok().map(|v| v.parse().unwrap());
    let store =
        PgStore::open_with(&url, options(&var("TOLLGATE_PG_CHILD_NAME"), Duration::from_millis(flush_ms))).unwrap();
    let mut acks = std::fs::OpenOptions::new().append(true).create(true).open(var("TOLLGATE_PG_CHILD_ACKS")).unwrap();
    for (n, b) in (from..from + 100_000).enumerate() {
        store.ingest(&batch(b)).unwrap();
        writeln!(acks, "{b}").unwrap();
        if abort_after == Some(n as u64 + 1) {
            std::process::abort(); // a crash: no flush, no clean disconnect
        }
    }
}

fn spawn_child(db: &PgDb, name: &str, acks: &Path, from: u64, flush_ms: u64, abort_after: Option<u64>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_ingests_until_killed", "--nocapture", "--test-threads=1"])
        .env("TOLLGATE_PG_CHILD_URL", &db.url)
        .env("TOLLGATE_PG_CHILD_NAME", name)
        .env("TOLLGATE_PG_CHILD_ACKS", acks)
        .env("TOLLGATE_PG_CHILD_FROM", from.to_string())
        .env("TOLLGATE_PG_CHILD_FLUSH_MS", flush_ms.to_string())
        .stdout(Stdio::null());
    if let Some(n) = abort_after {
        cmd.env("TOLLGATE_PG_CHILD_ABORT_AFTER", n.to_string());
    }
    cmd.spawn().unwrap()
}

fn acked(acks: &Path) -> Vec<u64> {
    std::fs::read_to_string(acks).unwrap_or_default().lines().filter_map(|l| l.parse().ok()).collect()
}

/// Waits (bounded, generously for a loaded machine) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the server has ended the sessions of collector `name` (after its process died,
/// the server notices the closed sockets; until then its advisory lock is held).
fn wait_for_sessions_to_end(db: &PgDb, name: &str) {
    let mut c = db.client();
    wait_for(&format!("the sessions of {name} to end"), || {
        let n: i64 =
            c.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&name]).unwrap().get(0);
        n == 0
    });
}

/// The record ids of acknowledged batches, and how many of them the raw tables hold.
fn stored_of(db: &PgDb, batches: &[u64]) -> (usize, i64) {
    let ids: BTreeSet<String> =
        batches.iter().flat_map(|b| batch_keys(*b)).map(|k| record(k).id().to_string()).collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let mut c = db.client();
    let n: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM enum_queries WHERE id = ANY($1)) + (SELECT count(*) FROM sip_calls WHERE id = ANY($1))",
            &[&ids],
        )
        .unwrap()
        .get(0);
    (ids.len(), n)
}

#[test]
fn kill_9_while_ingesting_loses_no_acknowledged_record_and_counts_each_once() {
    let db = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked = Vec::new();
    let mut from = 0;
    for round in 0..3u64 {
        let name = format!("crashing-{round}");
        let acks = dir.path().join(format!("acks-{round}"));
        // Short flush windows: the kill may land in a COPY, an insert, a commit or a flush.
        let mut child = spawn_child(&db, &name, &acks, from, [2, 30, 1000][round as usize], None);
        let target = 20 + 7 * round as usize;
        wait_for("acknowledged batches", || acked(&acks).len() >= target);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = acked(&acks);
        // The next child resends the last batches (a shipper that lost acknowledgements).
        from = got.last().unwrap().saturating_sub(2);
        all_acked.extend(got);
        wait_for_sessions_to_end(&db, &name);
    }
    let store = PgStore::open_with(&db.url, options("checker", Duration::from_secs(1))).unwrap();
    let (acknowledged, stored) = stored_of(&db, &all_acked);
    assert_eq!(stored as usize, acknowledged, "every acknowledged record is stored (once: ids are keys)");
    let mut c = db.client();
    assert_rollups_match_raw(&mut c);
    // The views agree with the raw rows too.
    let raw_total = store.count(Dataset::Enum, t0(), t0() + chrono::Duration::hours(10)).unwrap()
        + store.count(Dataset::Sip, t0(), t0() + chrono::Duration::hours(10)).unwrap();
    let views = views(&store);
    let totals: u64 = views
        .iter()
        .filter(|r| r.query.view == View::AverageCps && r.query.grouping == Grouping::Hour)
        .map(|r| r.total)
        .sum();
    assert_eq!(totals, raw_total);
}

#[test]
fn a_crashed_collectors_pending_rollups_are_taken_over_by_another() {
    let db = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks");
    // A collector that never flushes on its own, and crashes after five batches.
    let mut child = spawn_child(&db, "doomed", &acks, 0, 3_600_000, Some(5));
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child aborted");
    assert_eq!(acked(&acks), vec![0, 1, 2, 3, 4]);
    let mut c = db.client();
    let pending: i64 =
        c.query_one("SELECT count(*) FROM rollup_pending_batches WHERE collector = 'doomed'", &[]).unwrap().get(0);
    assert_eq!(pending, 5, "its five batches are committed, their rollups pending");
    let rolled: i64 = c.query_one("SELECT count(*) FROM rollup_counts", &[]).unwrap().get(0);
    assert_eq!(rolled, 0);
    wait_for_sessions_to_end(&db, "doomed");

    // Another collector opening takes them over.
    let heir = PgStore::open_with(&db.url, options("heir", Duration::from_secs(1))).unwrap();
    assert_rollups_match_raw(&mut c);
    assert_eq!(stored_of(&db, &[0, 1, 2, 3, 4]), (1000, 1000));
    // Its own batches, resent, count once.
    assert_eq!(heir.ingest(&batch(4)).unwrap().inserted, 0);
    heir.ingest(&batch(5)).unwrap();
    heir.flush().unwrap();
    assert_rollups_match_raw(&mut c);
}

#[test]
fn a_live_collectors_pending_rollups_are_left_to_it() {
    let db = PgDb::create();
    let slow = PgStore::open_with(&db.url, options("slow", Duration::from_secs(3600))).unwrap();
    for b in 0..4 {
        slow.ingest(&batch(b)).unwrap();
    }
    assert_eq!(slow.stats().pending_records, 4 * BATCH);
    let other = PgStore::open_with(&db.url, options("other", Duration::from_secs(1))).unwrap();
    assert_eq!(other.recover_pending().unwrap(), 0, "slow is alive: its batches are its own");
    let mut c = db.client();
    let pending: i64 = c.query_one("SELECT count(*) FROM rollup_pending_batches", &[]).unwrap().get(0);
    assert_eq!(pending, 4);
    // A second collector under a live one's name is refused.
    let e = PgStore::open_with(&db.url, options("slow", Duration::from_secs(1))).err().unwrap().to_string();
    assert!(e.contains("another collector named \"slow\""), "{e}");
    other.ingest(&batch(4)).unwrap();
    slow.flush().unwrap();
    other.flush().unwrap();
    assert_eq!(slow.stats().pending_records, 0);
    assert!(slow.stats().flushes >= 1 && slow.stats().last_flush_keys > 0);
    assert_rollups_match_raw(&mut c);
    // Dropping a store writes what it holds.
    slow.ingest(&batch(5)).unwrap();
    drop(slow);
    assert_rollups_match_raw(&mut c);
}

#[test]
fn a_collector_whose_sessions_were_cut_applies_only_what_is_still_its_own() {
    let db = PgDb::create();
    let a = PgStore::open_with(&db.url, options("cut", Duration::from_secs(3600))).unwrap();
    for b in 0..4 {
        a.ingest(&batch(b)).unwrap();
    }
    // The server ends every session of `cut` (a network blip, an administrator): its lock is
    // free, so another collector takes its four pending batches over while `cut` still holds
    // their increments in memory.
    let mut c = db.client();
    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cut'", &[]).unwrap();
    wait_for_sessions_to_end(&db, "cut");
    let b = PgStore::open_with(&db.url, options("taker", Duration::from_secs(1))).unwrap();
    assert_eq!(b.recover_pending().unwrap(), 0, "opening took them over already");
    assert_rollups_match_raw(&mut c);
    // `cut` reconnects, stores one more batch, and flushes: of the five batches it holds only
    // the last is still its own; that one is applied (recomputed from raw records), the four
    // others not a second time.
    // Its connections were closed under it: each operation notices and uses a new one.
    assert_eq!(a.ingest(&batch(4)).unwrap().inserted, BATCH);
    a.flush().unwrap();
    assert_eq!(a.stats().pending_records, 0);
    assert_rollups_match_raw(&mut c);
    let total: u64 = [Dataset::Enum, Dataset::Sip]
        .iter()
        .map(|d| a.count(*d, t0(), t0() + chrono::Duration::hours(10)).unwrap())
        .sum();
    assert_eq!(total, 5 * BATCH);
}
