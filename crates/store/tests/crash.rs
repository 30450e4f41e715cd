//! The SQLite store across crashes: a child process (this test binary, run again with
//! TOLLGATE_CRASH_CHILD set) ingests batches and writes down each batch's ids once `ingest`
//! returned; the test kills it with SIGKILL at several points, reopens the store, and checks
//! that every acknowledged record is stored once and that every rollup row equals what the raw
//! rows say (recomputed with SQL). Deferred rollups are what is at stake: raw rows are
//! committed with the batch, their rollups later.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;
use tollgate_records::{Disposition, EnumQueryRecord, Record, SipCallRecord, Transport};
use tollgate_store::sqlite::{SqliteOptions, SqliteStore};
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, Store, View};

const CHILD: &str = "TOLLGATE_CRASH_CHILD";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

/// Record `k` of a deterministic mix: ENUM queries from three engines and some SIP calls, over
/// three hours, numbers from small pools so rollup rows are shared between batches.
fn record(k: u64) -> Record {
    let at = t0() + chrono::Duration::seconds((k * 37 % 10_800) as i64);
    let src = format!("+1415555{:04}", (k % 1000) * (k % 1000) % 53);
    let dst = format!("+1212555{:04}", k % 17);
    if k.is_multiple_of(9) {
        return Record::sip_call(SipCallRecord {
            id: ulid::Ulid::new(),
            time: at,
            device: "probe-1".into(),
            call_id: format!("{k}@probe"),
            source: (!k.is_multiple_of(4)).then(|| src.parse().unwrap()),
            destination: Some(dst.parse().unwrap()),
            direction: "inbound".into(),
            disposition: if k.is_multiple_of(2) { Disposition::Answered } else { Disposition::Busy },
            final_code: Some(200),
            pdd_ms: Some(700),
            duration_ms: Some(1000),
            answered_at: None,
            ended_at: None,
            rtp_packets: None,
            rtp_lost: None,
            rtp_jitter_ms: None,
            mos: None,
        });
    }
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: at,
        device: format!("enum-{}", k % 3 + 1),
        client: "sbc-1".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: (!k.is_multiple_of(5)).then(|| src.parse().unwrap()),
        destination: dst.parse().unwrap(),
        direction: if k.is_multiple_of(7) { "outbound".into() } else { "inbound".into() },
        rule: k.is_multiple_of(6).then(|| "block".to_string()),
        action: if k.is_multiple_of(6) { "terminate".into() } else { "allow".into() },
        detail: None,
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 100,
        stale: k.is_multiple_of(8),
        policy_version: Some(1),
        protocol: Default::default(),
    })
}

fn id_of(r: &Record) -> String {
    match r {
        Record::EnumQuery { record, .. } => record.id.to_string(),
        Record::SipCall { record, .. } => record.id.to_string(),
    }
}

/// The child: ingests batches until killed (mode `loop`), or ingests a few and aborts before
/// its rollups are written (mode `abort`).
#[test]
fn crash_child_process() {
    let Ok(mode) = std::env::var(CHILD) else { return };
    let db = std::env::var("TOLLGATE_CRASH_DB").unwrap();
    let acks = std::env::var("TOLLGATE_CRASH_ACKS").unwrap();
    let mut ack = std::fs::OpenOptions::new().create(true).append(true).open(&acks).unwrap();
    let options = match mode.as_str() {
        // Rollups written often (a small key budget), so kills also land in flushes.
        "loop" => {
            SqliteOptions { rollup_delay: Duration::from_millis(50), rollup_key_budget: 3_000, ..Default::default() }
        }
        // Rollups never written before the abort.
        _ => SqliteOptions {
            rollup_delay: Duration::from_secs(3600),
            rollup_key_budget: usize::MAX,
            ..Default::default()
        },
    };
    let store = SqliteStore::open_with(Path::new(&db), options).unwrap();
    let mut k: u64 = std::process::id() as u64 * 1_000_000;
    let mut previous: Vec<Record> = Vec::new();
    let batches = if mode == "loop" { u64::MAX } else { 5 };
    for _ in 0..batches {
        let fresh: Vec<Record> = (0..150).map(|i| record(k + i)).collect();
        k += 150;
        // A resend of part of the previous batch rides along: stored and counted once.
        let mut batch = previous.iter().take(20).cloned().collect::<Vec<_>>();
        batch.extend(fresh.iter().cloned());
        let out = store.ingest(&batch).unwrap();
        assert_eq!(out.inserted, 150);
        let mut text = String::new();
        for r in &fresh {
            text.push_str(&id_of(r));
            text.push('\n');
        }
        ack.write_all(text.as_bytes()).unwrap();
        previous = fresh;
    }
    assert_eq!(store.stats().pending_records, 5 * 150, "nothing written before the abort");
    ack.write_all(b"done\n").unwrap();
    std::process::abort();
}

fn spawn_child(mode: &str, db: &Path, acks: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_process", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env("TOLLGATE_CRASH_DB", db)
        .env("TOLLGATE_CRASH_ACKS", acks)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn acked(acks: &Path) -> Vec<String> {
    match std::fs::File::open(acks) {
        Ok(f) => std::io::BufReader::new(f).lines().map_while(Result::ok).filter(|l| l.len() == 26).collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits (polling, no deadline asserted) until at least `n` records are acknowledged.
fn wait_for_acks(acks: &Path, n: usize, child: &mut Child) {
    while acked(acks).len() < n {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended on its own: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Rows = BTreeMap<String, (i64, i64)>;

fn collect(conn: &Connection, sql: &str) -> Rows {
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt
        .query_map([], |r| {
            let key: String = r.get(0)?;
            Ok((key, (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
        })
        .unwrap();
    let mut out = Rows::new();
    for row in rows {
        let (k, v) = row.unwrap();
        assert!(out.insert(k.clone(), v).is_none(), "{k} twice");
    }
    out
}

/// Every rollup row, and the same rows recomputed from the raw tables.
fn rollups_and_recomputed(db: &Path) -> (Rows, Rows) {
    let conn = Connection::open(db).unwrap();
    let raw = "WITH r AS (
            SELECT 'ENUM' AS ds, device, ts / 1000000 AS s, COALESCE(source, '(unknown)') AS src, destination AS dst, direction, COALESCE(rule, '(default)') AS okey, action AS odetail, stale FROM enum_queries
            UNION ALL
            SELECT 'SIP', device, ts / 1000000, COALESCE(source, '(unknown)'), COALESCE(destination, '(unknown)'), direction, disposition, '', 0 FROM sip_calls),
        d AS (SELECT ds, device, s, src, dst, direction, okey, odetail, stale FROM r UNION ALL SELECT ds, '*', s, src, dst, direction, okey, odetail, stale FROM r),
        g(grain, len) AS (VALUES ('minute', 60), ('hour', 3600), ('day', 86400)),
        sides(side) AS (VALUES ('source'), ('destination'))";
    let mut expected = collect(
        &conn,
        &format!(
            "{raw} SELECT 'count|' || ds || '|' || grain || '|' || device || '|' || (s - s % len), COUNT(*), 0 FROM d, g GROUP BY 1"
        ),
    );
    expected.extend(collect(
        &conn,
        &format!(
            "{raw} SELECT 'outcome|' || ds || '|' || grain || '|' || device || '|' || (s - s % len) || '|' || okey || '|' || odetail, COUNT(*), SUM(stale) FROM d, g GROUP BY 1"
        ),
    ));
    expected.extend(collect(
        &conn,
        &format!(
            "{raw} SELECT 'number|' || ds || '|' || grain || '|' || side || '|' || device || '|' || (s - s % len) || '|' || CASE side WHEN 'source' THEN src ELSE dst END || '|' || direction, COUNT(*), 0 FROM d, g, sides WHERE grain <> 'minute' GROUP BY 1"
        ),
    ));
    let mut stored = collect(
        &conn,
        "SELECT 'count|' || dataset || '|' || grain || '|' || device || '|' || bucket, n, 0 FROM rollup_counts",
    );
    stored.extend(collect(
        &conn,
        "SELECT 'outcome|' || dataset || '|' || grain || '|' || device || '|' || bucket || '|' || okey || '|' || odetail, n, stale FROM rollup_outcomes",
    ));
    // Number rollups as reads see them: hour rows, and per day its day rows plus its hour rows
    // not yet folded into them (above the dataset's watermark in `rollup_number_folds`).
    stored.extend(collect(
        &conn,
        "SELECT 'number|' || dataset || '|' || grain || '|' || side || '|' || device || '|' || bucket || '|' || number || '|' || direction, n, 0 FROM rollup_numbers WHERE grain <> 'day'",
    ));
    stored.extend(collect(
        &conn,
        "SELECT 'number|' || dataset || '|day|' || side || '|' || device || '|' || day || '|' || number || '|' || direction, SUM(n), 0 FROM (
            SELECT dataset, side, device, bucket AS day, number, direction, n FROM rollup_numbers WHERE grain = 'day'
            UNION ALL SELECT r.dataset, side, device, bucket - bucket % 86400, number, direction, n
            FROM rollup_numbers r JOIN rollup_number_folds f ON f.dataset = r.dataset WHERE grain = 'hour' AND bucket > f.folded_through
        ) GROUP BY 1",
    ));
    (stored, expected)
}

fn stored_ids(db: &Path) -> (BTreeSet<String>, u64) {
    let conn = Connection::open(db).unwrap();
    let mut ids = BTreeSet::new();
    let mut rows = 0;
    for sql in ["SELECT id FROM enum_queries", "SELECT id FROM sip_calls"] {
        let mut stmt = conn.prepare(sql).unwrap();
        for id in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            ids.insert(id.unwrap());
            rows += 1;
        }
    }
    (ids, rows)
}

fn assert_consistent(db: &Path, acks: &Path) {
    // Opening rolls up what the crash left pending; closing writes nothing new.
    drop(SqliteStore::open(db).unwrap());
    let acked = acked(acks);
    let (ids, rows) = stored_ids(db);
    assert_eq!(rows, ids.len() as u64, "no record stored twice");
    let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(missing.is_empty(), "{} acknowledged records lost, e.g. {:?}", missing.len(), missing.first());
    let (stored, expected) = rollups_and_recomputed(db);
    let differ: Vec<_> = expected
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), *v, stored.get(k).copied()))
        .chain(
            stored.keys().filter(|k| !expected.contains_key(*k)).map(|k| (k.clone(), (0, 0), stored.get(k).copied())),
        )
        .take(5)
        .collect();
    assert!(differ.is_empty(), "rollups differ from the raw rows (key, raw, rollup): {differ:?}");
    assert!(!expected.is_empty());
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_record_and_counts_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, acks) = (dir.path().join("records.db"), dir.path().join("acks"));
    // Each round kills the child at a different point: right after some batches were
    // acknowledged, or a little later (in an ingest, a rollup flush, or a checkpoint).
    for (round, extra_sleep_ms) in [0u64, 3, 17, 40, 1].into_iter().enumerate() {
        let before = acked(&acks).len();
        let mut child = spawn_child("loop", &db, &acks);
        wait_for_acks(&acks, before + 150 * (2 + 3 * round), &mut child);
        std::thread::sleep(Duration::from_millis(extra_sleep_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Shown, not asserted (where the kill lands is up to the scheduler).
        let conn = Connection::open(&db).unwrap();
        let unrolled: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM enum_queries) + (SELECT COUNT(*) FROM sip_calls) - (SELECT COALESCE(SUM(n), 0) FROM rollup_counts WHERE grain = 'day' AND device = '*')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        eprintln!("round {round}: killed with {unrolled} stored records not yet rolled up");
        assert_consistent(&db, &acks);
    }
    assert!(acked(&acks).len() >= 150 * 20);
}

#[test]
fn rollups_pending_at_a_crash_are_applied_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (db, acks) = (dir.path().join("records.db"), dir.path().join("acks"));
    let status = spawn_child("abort", &db, &acks).wait().unwrap();
    assert!(!status.success(), "the child aborts");
    let lines = std::fs::read_to_string(&acks).unwrap();
    assert!(lines.ends_with("done\n"), "the child stored 5 batches with their rollups pending, then aborted");
    // Before reopening: the raw rows are there, the rollups are not.
    let conn = Connection::open(&db).unwrap();
    let raw: i64 = conn
        .query_row("SELECT (SELECT COUNT(*) FROM enum_queries) + (SELECT COUNT(*) FROM sip_calls)", [], |r| r.get(0))
        .unwrap();
    let rolled: i64 = conn.query_row("SELECT COUNT(*) FROM rollup_counts", [], |r| r.get(0)).unwrap();
    assert_eq!((raw, rolled), (750, 0));
    drop(conn);
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.stats().pending_records, 0);
    let day = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let q = |dataset| AnalyticsQuery {
        dataset,
        view: View::AverageCps,
        grouping: Grouping::Hour,
        device: None,
        from: day,
        to: day + chrono::Duration::days(1),
    };
    let total = store.analytics(&q(Dataset::Enum)).unwrap().total + store.analytics(&q(Dataset::Sip)).unwrap().total;
    assert_eq!(total, 750);
    drop(store);
    assert_consistent(&db, &acks);
}

#[test]
fn analytics_right_after_ingest_see_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("records.db");
    let never =
        SqliteOptions { rollup_delay: Duration::from_secs(3600), rollup_key_budget: usize::MAX, ..Default::default() };
    let store = SqliteStore::open_with(&db, never).unwrap();
    let batch: Vec<Record> = (0..90).map(record).collect();
    let enum_n = batch.iter().filter(|r| matches!(r, Record::EnumQuery { .. })).count() as u64;
    store.ingest(&batch).unwrap();
    assert_eq!(store.stats().pending_records, 90, "rollups deferred");
    let q = AnalyticsQuery {
        dataset: Dataset::Enum,
        view: View::TopSource,
        grouping: Grouping::Hour,
        device: None,
        from: t0(),
        to: t0() + chrono::Duration::hours(3),
    };
    let r = store.analytics(&q).unwrap();
    assert_eq!(r.total, enum_n);
    let stats = store.stats();
    assert_eq!((stats.pending_records, stats.flushes), (0, 1));
    assert!(stats.last_flush_keys > 0);
    // Another batch, then an explicit flush.
    store.ingest(&(90..120).map(record).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.stats().pending_records, 30);
    store.flush().unwrap();
    assert_eq!(store.stats().pending_records, 0);
    assert_eq!(store.stats().flushes, 2);
    drop(store);
    let (stored, expected) = rollups_and_recomputed(&db);
    assert_eq!(stored, expected);
}

#[test]
fn retention_that_deletes_the_newest_rows_keeps_later_rollups_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("records.db");
    let store = SqliteStore::open(&db).unwrap();
    // Old records only: retention deletes every row, so SQLite would hand out rowid 1 again.
    let old: Vec<Record> = (0..50)
        .map(|k| {
            let mut r = record(k * 9 + 1);
            if let Record::EnumQuery { record, .. } = &mut r {
                record.time -= chrono::Duration::days(60);
            }
            r
        })
        .collect();
    store.ingest(&old).unwrap();
    let out = store
        .apply_retention(
            t0(),
            &tollgate_store::Retention { raw_days: 30, minute_days: 30, hour_days: 30, day_days: 30 },
        )
        .unwrap();
    assert_eq!(out.raw, 50);
    let conn = Connection::open(&db).unwrap();
    let marks: i64 = conn.query_row("SELECT SUM(last_rowid) FROM rollup_watermark", [], |r| r.get(0)).unwrap();
    assert_eq!(marks, 0, "the watermarks follow the rows left");
    drop(conn);
    let new: Vec<Record> = (0..40).map(|k| record(k * 9 + 1)).collect();
    store.ingest(&new).unwrap();
    drop(store);
    let (stored, expected) = rollups_and_recomputed(&db);
    assert_eq!(stored, expected);
}

#[test]
fn a_version_3_database_upgrades_without_rolling_up_its_records_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("records.db");
    let store = SqliteStore::open(&db).unwrap();
    store.ingest(&(0..200).map(record).collect::<Vec<_>>()).unwrap();
    drop(store);
    // What tollgate wrote before migration 4: raw rows with their rollups, no watermark,
    // (before migration 6) day number rows holding every hour, (before migration 7) no MOS
    // column and (before migration 8) no protocol column.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n)
         SELECT dataset, 'day', side, device, bucket - bucket % 86400, number, direction, SUM(n) FROM rollup_numbers r
         WHERE grain = 'hour' AND bucket > (SELECT folded_through FROM rollup_number_folds f WHERE f.dataset = r.dataset)
         GROUP BY dataset, side, device, bucket - bucket % 86400, number, direction
         ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + excluded.n;
         DROP TABLE rollup_number_folds; DROP TABLE rollup_watermark; ALTER TABLE sip_calls DROP COLUMN mos_x100;
         ALTER TABLE enum_queries DROP COLUMN protocol;
         DELETE FROM schema_migrations WHERE version >= 4",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), tollgate_store::schema::latest());
    store.ingest(&(200..260).map(record).collect::<Vec<_>>()).unwrap();
    drop(store);
    let (stored, expected) = rollups_and_recomputed(&db);
    assert_eq!(stored, expected, "the records stored before the upgrade are counted once");
}

#[test]
fn a_second_writer_of_the_same_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("records.db");
    let first = SqliteStore::open(&db).unwrap();
    first.ingest(&(0..30).map(record).collect::<Vec<_>>()).unwrap();
    // A careless second collector on the same file would roll up, on open, rows the first
    // still holds in memory: refused, and the first one's records stay counted once.
    let err = SqliteStore::open(&db).err().expect("a second writer is refused").to_string();
    assert!(err.contains("records.db") && err.contains("one collector per database file"), "{err}");
    assert!(err.contains(&std::process::id().to_string()), "the holder is named: {err}");
    drop(first);
    let again = SqliteStore::open(&db).unwrap();
    again.ingest(&(30..40).map(record).collect::<Vec<_>>()).unwrap();
    drop(again);
    let (stored, expected) = rollups_and_recomputed(&db);
    assert_eq!(stored, expected);
}
