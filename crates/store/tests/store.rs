//! The same suite against SQLite and a real PostgreSQL (its URL from TOLLGATE_TEST_POSTGRES, by
//! default postgres://tollgate:tollgate@127.0.0.1:5432/postgres, which `.ci/run` sets up). Each
//! PostgreSQL test gets a fresh database, dropped afterwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_records::{Disposition, EnumQueryRecord, Protocol, Record, SipCallRecord, Transport};
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, RawFilter, Retention, Store, StoreError, View};

mod common;

use common::PgDb;

/// Runs `test` against each backend.
macro_rules! both {
    ($name:ident, $test:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store =
                    tollgate_store::open(&format!("sqlite:{}", dir.path().join("records.db").display())).unwrap();
                assert_eq!(store.backend(), "sqlite");
                ($test)(store.as_ref());
            }
            #[test]
            fn postgres() {
                let db = PgDb::create();
                let url = db.url.clone();
                let store = tollgate_store::open(&url).unwrap();
                assert_eq!(store.backend(), "postgres");
                ($test)(store.as_ref());
            }
        }
    };
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

fn enum_rec(device: &str, at: DateTime<Utc>, src: Option<&str>, dst: &str, rule: Option<&str>, action: &str) -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: at,
        device: device.into(),
        client: "sbc-1".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: src.map(|s| s.parse().unwrap()),
        destination: dst.parse().unwrap(),
        direction: if src.is_some_and(|s| s.starts_with("+1212")) { "outbound".into() } else { "inbound".into() },
        rule: rule.map(String::from),
        action: action.into(),
        detail: None,
        rcode: "NOERROR".into(),
        fail_open: false,
        latency_us: 120,
        stale: false,
        policy_version: Some(3),
        protocol: Default::default(),
    })
}

/// A decision of the engine's SIP redirect server: an INVITE to `dst` redirected with a 302.
fn sip_decision(device: &str, at: DateTime<Utc>, dst: &str) -> Record {
    let mut r = enum_rec(device, at, Some("+14155550001"), dst, Some("to-voicemail"), "redirect");
    if let Record::EnumQuery { record, .. } = &mut r {
        record.protocol = Protocol::Sip;
        record.transport = Transport::Tcp;
        record.rcode = "302".into();
        record.detail = Some("+12125550199".into());
    }
    r
}

/// The raw ENUM-dataset export of the three hours from [`t0`]: the header's columns and the
/// rows, each as a map from column to value.
fn enum_export(store: &dyn Store) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut out = Vec::new();
    store.export_raw(Dataset::Enum, t0(), t0() + Duration::hours(3), None, &mut out).unwrap();
    let mut csv = csv::Reader::from_reader(out.as_slice());
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    let rows =
        csv.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect();
    (header, rows)
}

fn sip_rec(device: &str, at: DateTime<Utc>, src: &str, dst: &str, disposition: Disposition) -> Record {
    Record::sip_call(SipCallRecord {
        id: ulid::Ulid::new(),
        time: at,
        device: device.into(),
        call_id: format!("{}@probe", ulid::Ulid::new()),
        source: Some(src.parse().unwrap()),
        destination: Some(dst.parse().unwrap()),
        direction: "inbound".into(),
        disposition,
        final_code: Some(200),
        pdd_ms: Some(800),
        duration_ms: Some(30_000),
        answered_at: Some(at + Duration::seconds(2)),
        ended_at: Some(at + Duration::seconds(32)),
        rtp_packets: Some(1500),
        rtp_lost: Some(3),
        rtp_jitter_ms: Some(1.25),
        mos: Some(4.37),
    })
}

/// A deterministic traffic mix over three hours on two engines, and the counts it implies,
/// computed independently of the store.
struct Traffic {
    records: Vec<Record>,
    per_device_hour: BTreeMap<(String, i64), u64>,
    sources: BTreeMap<String, u64>,
    destinations: BTreeMap<String, u64>,
    first_hour_sources: BTreeMap<String, u64>,
}

fn traffic() -> Traffic {
    let mut t = Traffic {
        records: Vec::new(),
        per_device_hour: BTreeMap::new(),
        sources: BTreeMap::new(),
        destinations: BTreeMap::new(),
        first_hour_sources: BTreeMap::new(),
    };
    let mut i: u64 = 0;
    for hour in 0..3i64 {
        for (device, calls) in [("enum-1", 120 + hour * 30), ("enum-2", 60)] {
            for c in 0..calls {
                i += 1;
                // Source k occurs with weight ~ 1/k: a few heavy callers, a long tail.
                let k = (i * 7919) % 97;
                let src = format!("+1415555{:04}", 1 + (k * k) % 89);
                let dst = format!("+1212555{:04}", 100 + (c % 13) * (c % 5));
                let at = t0() + Duration::hours(hour) + Duration::seconds(c * 3_600 / calls);
                let (rule, action) = if c % 10 == 0 { (Some("block"), "terminate") } else { (None, "allow") };
                t.records.push(enum_rec(device, at, Some(&src), &dst, rule, action));
                *t.per_device_hour.entry((device.to_string(), hour)).or_default() += 1;
                if hour == 0 {
                    *t.first_hour_sources.entry(src.clone()).or_default() += 1;
                }
                *t.sources.entry(src).or_default() += 1;
                *t.destinations.entry(dst).or_default() += 1;
            }
        }
    }
    t
}

fn top10(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

fn query(dataset: Dataset, view: View, grouping: Grouping, device: Option<&str>) -> AnalyticsQuery {
    AnalyticsQuery {
        dataset,
        view,
        grouping,
        device: device.map(String::from),
        from: t0(),
        to: t0() + Duration::hours(3),
    }
}

both!(ingest_is_idempotent, |store: &dyn Store| {
    let t = traffic();
    let n = t.records.len() as u64;
    let first = store.ingest(&t.records).unwrap();
    assert_eq!((first.inserted, first.duplicates), (n, 0));
    // A resend after a crash: nothing new, rollups not double-counted.
    let again = store.ingest(&t.records).unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, n));
    // Half old, half new.
    let mut mixed = t.records[..10].to_vec();
    mixed.push(enum_rec("enum-1", t0(), None, "+12125550100", None, "allow"));
    let m = store.ingest(&mixed).unwrap();
    assert_eq!((m.inserted, m.duplicates), (1, 10));
    assert_eq!(store.count(Dataset::Enum, t0(), t0() + Duration::hours(3)).unwrap(), n + 1);
    let r = store.analytics(&query(Dataset::Enum, View::AverageCps, Grouping::Hour, None)).unwrap();
    assert_eq!(r.total, n + 1);
});

both!(fst_b1_views_match_what_was_sent, |store: &dyn Store| {
    let t = traffic();
    for chunk in t.records.chunks(97) {
        store.ingest(chunk).unwrap();
    }
    assert_eq!(store.devices(Dataset::Enum).unwrap(), vec!["enum-1", "enum-2"]);

    // ENUM / Average CPS / Hour / each device.
    for device in ["enum-1", "enum-2"] {
        let r = store.analytics(&query(Dataset::Enum, View::AverageCps, Grouping::Hour, Some(device))).unwrap();
        assert_eq!(r.series.len(), 3);
        for (hour, p) in r.series.iter().enumerate() {
            let expected = t.per_device_hour[&(device.to_string(), hour as i64)];
            assert_eq!(p.count, expected, "{device} hour {hour}");
            assert!((p.value - expected as f64 / 3600.0).abs() < 1e-9);
        }
    }

    // ENUM / Top 10 Source / Hour / All, and Top 10 Destination.
    let r = store.analytics(&query(Dataset::Enum, View::TopSource, Grouping::Hour, None)).unwrap();
    let got: Vec<(String, u64)> = r.summary.iter().map(|row| (row.key.clone(), row.count)).collect();
    // The same number may appear with two directions; this traffic gives each number one.
    assert_eq!(got, top10(&t.sources));
    assert!(r.summary.iter().all(|row| row.detail == "inbound"));
    let first_hour: Vec<(String, u64)> =
        r.per_bucket.iter().filter(|row| row.bucket == Some(t0())).map(|row| (row.key.clone(), row.count)).collect();
    assert_eq!(first_hour, top10(&t.first_hour_sources));
    assert!(t.sources.len() > 20, "enough distinct callers for a top 10 to mean something");
    let r = store.analytics(&query(Dataset::Enum, View::TopDestination, Grouping::Hour, None)).unwrap();
    let got: Vec<(String, u64)> = r.summary.iter().map(|row| (row.key.clone(), row.count)).collect();
    assert_eq!(got, top10(&t.destinations));

    // The same lists by Day, and by Minute (computed from raw records), agree.
    let by_day = store.analytics(&query(Dataset::Enum, View::TopSource, Grouping::Day, None)).unwrap();
    let by_minute = store.analytics(&query(Dataset::Enum, View::TopSource, Grouping::Minute, None)).unwrap();
    let keys = |rows: &[tollgate_store::Row]| rows.iter().map(|r| (r.key.clone(), r.count)).collect::<Vec<_>>();
    assert_eq!(keys(&by_day.summary), top10(&t.sources));
    assert_eq!(keys(&by_minute.summary), top10(&t.sources));

    // Actions by rule.
    let r = store.analytics(&query(Dataset::Enum, View::ActionsByRule, Grouping::Hour, None)).unwrap();
    let blocked =
        t.records.iter().filter(|r| matches!(r, Record::EnumQuery { record, .. } if record.rule.is_some())).count()
            as u64;
    let rows: Vec<(String, String, u64)> =
        r.summary.iter().map(|x| (x.key.clone(), x.detail.clone(), x.count)).collect();
    assert_eq!(
        rows,
        vec![
            ("(default)".into(), "allow".into(), t.records.len() as u64 - blocked),
            ("block".into(), "terminate".into(), blocked)
        ]
    );

    // Minute grouping of counts adds up to the hour.
    let r = store.analytics(&query(Dataset::Enum, View::AverageCps, Grouping::Minute, Some("enum-2"))).unwrap();
    assert_eq!(r.series.len(), 180);
    assert_eq!(r.series.iter().map(|p| p.count).sum::<u64>(), 180);
});

both!(sip_dataset_and_dispositions, |store: &dyn Store| {
    let mut recs = Vec::new();
    for (i, d) in [
        Disposition::Answered,
        Disposition::Answered,
        Disposition::Busy,
        Disposition::Cancelled,
        Disposition::NoAnswer,
        Disposition::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        recs.push(sip_rec("probe-1", t0() + Duration::minutes(i as i64), "+14155550001", "+12125550100", d));
    }
    store.ingest(&recs).unwrap();
    let r = store.analytics(&query(Dataset::Sip, View::CallsByDisposition, Grouping::Hour, None)).unwrap();
    let rows: Vec<(String, u64)> = r.summary.iter().map(|x| (x.key.clone(), x.count)).collect();
    assert_eq!(
        rows,
        vec![
            ("answered".into(), 2),
            ("busy".into(), 1),
            ("cancelled".into(), 1),
            ("failed".into(), 1),
            ("no_answer".into(), 1)
        ]
    );
    let r = store.analytics(&query(Dataset::Sip, View::TopDestination, Grouping::Hour, Some("probe-1"))).unwrap();
    assert_eq!(r.summary[0].key, "+12125550100");
    assert_eq!(r.summary[0].count, 6);
    assert!(matches!(
        store.analytics(&query(Dataset::Sip, View::ActionsByRule, Grouping::Hour, None)),
        Err(StoreError::BadQuery(_))
    ));
    assert_eq!(store.devices(Dataset::Sip).unwrap(), vec!["probe-1"]);
});

both!(csv_exports, |store: &dyn Store| {
    let t = traffic();
    store.ingest(&t.records).unwrap();
    let mut out = Vec::new();
    let n = store.export_raw(Dataset::Enum, t0(), t0() + Duration::hours(1), Some("enum-2"), &mut out).unwrap();
    assert_eq!(n, 60);
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,ts,device,client,"));
    let first = lines.next().unwrap();
    assert!(first.contains(",2026-11-25T10:00:00.000000Z,enum-2,sbc-1,"), "{first}");
    assert_eq!(text.lines().count(), 61);

    let r = store.analytics(&query(Dataset::Enum, View::TopSource, Grouping::Hour, None)).unwrap();
    let mut csv = Vec::new();
    tollgate_store::export::analytics(&r, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("bucket,number,direction,count\nall,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + r.summary.len() + r.per_bucket.len());

    store.ingest(&[sip_rec("probe-1", t0(), "+14155550001", "+12125550100", Disposition::Answered)]).unwrap();
    let mut out = Vec::new();
    let n = store.export_raw(Dataset::Sip, t0(), t0() + Duration::hours(3), None, &mut out).unwrap();
    assert_eq!(n, 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",v,rtp_packets,rtp_lost,rtp_jitter_us,mos_x100"), "{text}");
    let row = text.lines().nth(1).unwrap();
    assert!(row.ends_with(",1500,3,1250,437"), "RTP quality and MOS are stored with the call: {row}");
});

// The SIP redirect server's decisions are ENUM-dataset records with protocol `sip`: stored
// and exported with it (the last column, so scripts reading columns by position keep
// working), counted in the same views as the ENUM queries.
both!(decisions_keep_the_protocol_they_were_asked_over, |store: &dyn Store| {
    let over_enum = enum_rec("enum-1", t0(), Some("+14155550001"), "+12125550100", None, "allow");
    let over_sip = sip_decision("enum-1", t0() + Duration::seconds(1), "+12125550100");
    let outcome = store.ingest(&[over_enum.clone(), over_sip.clone()]).unwrap();
    assert_eq!(outcome.inserted, 2);
    let (header, rows) = enum_export(store);
    assert_eq!(header.last().map(String::as_str), Some("protocol"), "{header:?}");
    assert_eq!(header.len(), tollgate_store::export::raw_columns(Dataset::Enum).len());
    let by_id: BTreeMap<&str, &BTreeMap<String, String>> = rows.iter().map(|r| (r["id"].as_str(), r)).collect();
    let id = |r: &Record| match r {
        Record::EnumQuery { record, .. } => record.id.to_string(),
        Record::SipCall { .. } => unreachable!(),
    };
    let sip_row = by_id[id(&over_sip).as_str()];
    assert_eq!(sip_row["protocol"], "sip", "{sip_row:?}");
    assert_eq!((sip_row["rcode"].as_str(), sip_row["transport"].as_str()), ("302", "tcp"), "{sip_row:?}");
    assert_eq!(sip_row["action"], "redirect");
    assert_eq!(by_id[id(&over_enum).as_str()]["protocol"], "enum");
    // A resend of the SIP decision is stored once.
    assert_eq!(store.ingest(std::slice::from_ref(&over_sip)).unwrap().duplicates, 1);
    assert_eq!(enum_export(store).1.len(), 2);
    // The export selects one protocol's decisions, with or without a device.
    let ids_of = |protocol: Option<Protocol>, device: Option<&str>| {
        let filter = RawFilter { device: device.map(String::from), protocol };
        let mut out = Vec::new();
        let n = store.export_filtered(Dataset::Enum, t0(), t0() + Duration::hours(3), &filter, &mut out).unwrap();
        let ids: Vec<String> =
            csv::Reader::from_reader(out.as_slice()).records().map(|r| r.unwrap()[0].to_string()).collect();
        assert_eq!(n, ids.len() as u64);
        ids
    };
    assert_eq!(ids_of(Some(Protocol::Sip), None), vec![id(&over_sip)]);
    assert_eq!(ids_of(Some(Protocol::Enum), Some("enum-1")), vec![id(&over_enum)]);
    assert_eq!(ids_of(Some(Protocol::Sip), Some("enum-2")), Vec::<String>::new());
    assert_eq!(ids_of(None, Some("enum-1")).len(), 2);
    let sip_calls = RawFilter { device: None, protocol: Some(Protocol::Sip) };
    let refused = store.export_filtered(Dataset::Sip, t0(), t0() + Duration::hours(3), &sip_calls, &mut Vec::new());
    assert!(matches!(refused, Err(StoreError::BadQuery(m)) if m.contains("ENUM dataset")));
    // One engine's decisions, whatever the SBC asked over: counted together.
    let r = store.analytics(&query(Dataset::Enum, View::AverageCps, Grouping::Hour, Some("enum-1"))).unwrap();
    assert_eq!(r.total, 2);
    let r = store.analytics(&query(Dataset::Enum, View::ActionsByRule, Grouping::Hour, None)).unwrap();
    let rows: Vec<(String, String, u64)> =
        r.summary.iter().map(|x| (x.key.clone(), x.detail.clone(), x.count)).collect();
    assert_eq!(rows, vec![("(default)".into(), "allow".into(), 1), ("to-voicemail".into(), "redirect".into(), 1)]);
});

/// Writes, through `exec`, what tollgate wrote before migration 8: the schema of versions 1 to
/// 7 in `dialect`, and one ENUM query without a protocol column.
fn version_7_database(dialect: tollgate_store::schema::Dialect, exec: &mut dyn FnMut(&str)) {
    use tollgate_store::schema::{MIGRATIONS, MIGRATIONS_TABLE, statements};
    exec(MIGRATIONS_TABLE);
    for m in MIGRATIONS.iter().filter(|m| m.version <= 7) {
        for s in statements(m, dialect) {
            exec(&s);
        }
        exec(&format!(
            "INSERT INTO schema_migrations (version, applied_at, description) VALUES ({}, 0, 'v{}')",
            m.version, m.version
        ));
    }
    exec(&format!(
        "INSERT INTO enum_queries (id, ts, device, client, client_addr, transport, destination, direction, action, rcode, fail_open, latency_us, v, stale) \
         VALUES ('01JOLDENUM', {}, 'enum-0', 'sbc-0', '127.0.0.1:5060', 'udp', '+12125550100', 'inbound', 'allow', 'NOERROR', 0, 90, 2, 0)",
        t0().timestamp_micros()
    ));
}

/// A version-7 database opened by this tollgate: upgraded, its decisions are ENUM queries,
/// and new SIP decisions are stored beside them.
fn check_version_7_upgrade(store: &dyn Store) {
    assert_eq!(store.schema_version().unwrap(), tollgate_store::schema::latest());
    store.ingest(&[sip_decision("enum-1", t0(), "+12125550101")]).unwrap();
    let (_, rows) = enum_export(store);
    let protocols: BTreeMap<&str, &str> = rows.iter().map(|r| (r["device"].as_str(), r["protocol"].as_str())).collect();
    assert_eq!(protocols, BTreeMap::from([("enum-0", "enum"), ("enum-1", "sip")]), "{rows:?}");
}

#[test]
fn a_version_7_sqlite_database_upgrades_and_its_decisions_are_enum_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    version_7_database(tollgate_store::schema::Dialect::Sqlite, &mut |s| conn.execute_batch(s).unwrap());
    drop(conn);
    let store = tollgate_store::sqlite::SqliteStore::open(&path).unwrap();
    check_version_7_upgrade(&store);
}

#[test]
fn a_version_7_postgres_database_upgrades_and_its_decisions_are_enum_queries() {
    let db = PgDb::create();
    let mut client = db.client();
    version_7_database(tollgate_store::schema::Dialect::Postgres, &mut |s| client.batch_execute(s).unwrap());
    drop(client);
    let store = tollgate_store::open(&db.url).unwrap();
    check_version_7_upgrade(store.as_ref());
}

both!(retention_removes_old_data, |store: &dyn Store| {
    let old = enum_rec("enum-1", t0() - Duration::days(40), None, "+12125550100", None, "allow");
    let new = enum_rec("enum-1", t0(), None, "+12125550100", None, "allow");
    store.ingest(&[old, new]).unwrap();
    let out = store.apply_retention(t0(), &Retention::default()).unwrap();
    assert_eq!(out.raw, 1);
    assert!(out.rollups > 0, "old minute rollups go too");
    assert_eq!(store.count(Dataset::Enum, t0() - Duration::days(100), t0() + Duration::days(1)).unwrap(), 1);
});

both!(schema_is_versioned, |store: &dyn Store| {
    assert_eq!(store.schema_version().unwrap(), tollgate_store::schema::latest());
});

both!(bad_queries_are_explained, |store: &dyn Store| {
    let mut q = query(Dataset::Enum, View::AverageCps, Grouping::Hour, None);
    q.to = q.from;
    assert!(matches!(store.analytics(&q), Err(StoreError::BadQuery(m)) if m.contains("empty")));
    let mut q = query(Dataset::Enum, View::AverageCps, Grouping::Minute, None);
    q.to = q.from + Duration::days(30);
    assert!(matches!(store.analytics(&q), Err(StoreError::BadQuery(m)) if m.contains("too many")));
    let mut q = query(Dataset::Enum, View::TopSource, Grouping::Minute, None);
    q.to = q.from + Duration::days(3);
    assert!(matches!(store.analytics(&q), Err(StoreError::BadQuery(m)) if m.contains("Hour or Day")));
});

#[test]
fn sqlite_refuses_a_newer_schema_and_reopens_without_migrating_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    drop(tollgate_store::sqlite::SqliteStore::open(&path).unwrap());
    let reopened = tollgate_store::sqlite::SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.schema_version().unwrap(), tollgate_store::schema::latest());
    drop(reopened);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_migrations (version, applied_at, description) VALUES (99, 0, 'future')", [])
        .unwrap();
    drop(conn);
    assert!(matches!(
        tollgate_store::sqlite::SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn a_version_1_database_upgrades_and_keeps_its_calls() {
    use tollgate_store::schema::{Dialect, MIGRATIONS, MIGRATIONS_TABLE, statements};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(MIGRATIONS_TABLE, []).unwrap();
    for s in statements(&MIGRATIONS[0], Dialect::Sqlite) {
        conn.execute(&s, []).unwrap();
    }
    conn.execute("INSERT INTO schema_migrations (version, applied_at, description) VALUES (1, 0, 'v1')", []).unwrap();
    conn.execute(
        "INSERT INTO sip_calls (id, ts, device, call_id, direction, disposition, v) VALUES ('01JOLD', ?1, 'probe-0', 'old@x', 'inbound', 'answered', 1)",
        [t0().timestamp_micros()],
    )
    .unwrap();
    drop(conn);
    let store = tollgate_store::sqlite::SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), tollgate_store::schema::latest());
    store.ingest(&[sip_rec("probe-1", t0(), "+14155550001", "+12125550100", Disposition::Answered)]).unwrap();
    let mut out = Vec::new();
    assert_eq!(store.export_raw(Dataset::Sip, t0(), t0() + Duration::hours(1), None, &mut out).unwrap(), 2);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("01JOLD,") && text.contains(",old@x,"), "the v1 call is still there: {text}");
    assert!(text.lines().any(|l| l.ends_with(",1500,3,1250,437")), "{text}");
    assert!(
        text.lines().any(|l| l.contains("01JOLD,") && l.ends_with(",,,,")),
        "the old call has no RTP nor MOS: {text}"
    );
}

// Traffic where each hour has different heavy callers, so the threshold algorithm must read
// deeper than the first rows of each hour; checked against a plain count of what was sent.
both!(top_lists_stay_exact_when_each_hour_differs, |store: &dyn Store| {
    let mut recs = Vec::new();
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9;
    for hour in 0..6i64 {
        for i in 0..400i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Hour h favours callers 10h..10h+9 a little; everyone else is a flat tail.
            let pick = if x.is_multiple_of(3) { 10 * hour as u64 + x % 10 } else { x % 120 };
            let src = format!("+1415555{:04}", pick);
            recs.push(enum_rec(
                "enum-1",
                t0() + Duration::hours(hour) + Duration::seconds(i * 9),
                Some(&src),
                "+12125550100",
                None,
                "allow",
            ));
            *sent.entry(src).or_default() += 1;
        }
    }
    store.ingest(&recs).unwrap();
    let mut q = query(Dataset::Enum, View::TopSource, Grouping::Hour, None);
    q.to = t0() + Duration::hours(6);
    let r = store.analytics(&q).unwrap();
    let got: Vec<(String, u64)> = r.summary.iter().map(|row| (row.key.clone(), row.count)).collect();
    assert_eq!(got, top10(&sent));
    // A whole day, grouped by hour, reads the day rollup; it must agree too.
    let day = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let whole_day = AnalyticsQuery { from: day, to: day + Duration::days(1), ..q.clone() };
    let r = store.analytics(&whole_day).unwrap();
    assert_eq!(r.summary.iter().map(|row| (row.key.clone(), row.count)).collect::<Vec<_>>(), top10(&sent));
    assert_eq!(r.series.len(), 24);
});

// Stale answers (sent after the engine's stale bound, not used by the SBC) keep their flag in
// the raw table and are counted apart in Actions by Rule, its CSV, and the raw export; a
// record resent after a crash counts once.
both!(stale_answers_are_counted_apart, |store: &dyn Store| {
    let mut recs = Vec::new();
    let mut stale_sent = BTreeMap::<(String, String), u64>::new();
    for i in 0..40i64 {
        let rule = if i % 4 == 0 { Some("block") } else { None };
        let mut r = enum_rec("enum-1", t0() + Duration::seconds(i * 50), None, "+12125550100", rule, "allow");
        if let Record::EnumQuery { record, .. } = &mut r
            && i % 3 == 0
        {
            record.stale = true;
            let key = (rule.unwrap_or("(default)").to_string(), "allow".to_string());
            *stale_sent.entry(key).or_default() += 1;
        }
        recs.push(r);
    }
    store.ingest(&recs).unwrap();
    store.ingest(&recs[..10]).unwrap(); // a resend: stored and counted once
    let r = store.analytics(&query(Dataset::Enum, View::ActionsByRule, Grouping::Minute, None)).unwrap();
    let whole: BTreeMap<(String, String), (u64, Option<u64>)> =
        r.summary.iter().map(|x| ((x.key.clone(), x.detail.clone()), (x.count, x.stale))).collect();
    assert_eq!(whole[&("block".into(), "allow".into())], (10, Some(stale_sent[&("block".into(), "allow".into())])));
    assert_eq!(
        whole[&("(default)".into(), "allow".into())],
        (30, Some(stale_sent[&("(default)".into(), "allow".into())]))
    );
    let per_bucket: u64 = r.per_bucket.iter().map(|x| x.stale.unwrap()).sum();
    assert_eq!(per_bucket, 14, "every stale record in exactly one minute bucket");
    let by_hour = store.analytics(&query(Dataset::Enum, View::ActionsByRule, Grouping::Hour, None)).unwrap();
    assert_eq!(by_hour.summary.iter().map(|x| x.stale.unwrap()).sum::<u64>(), 14);

    let mut csv = Vec::new();
    tollgate_store::export::analytics(&r, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("bucket,rule,action,count,stale\n"), "{csv}");
    assert!(csv.lines().any(|l| l == format!("all,block,allow,10,{}", stale_sent[&("block".into(), "allow".into())])));

    let mut out = Vec::new();
    store.export_raw(Dataset::Enum, t0(), t0() + Duration::hours(1), None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().next().unwrap().ends_with(",v,stale,protocol"), "{text}");
    assert_eq!(text.lines().skip(1).filter(|l| l.ends_with(",1,enum")).count(), 14, "{text}");

    // SIP rows have no stale count.
    store.ingest(&[sip_rec("probe-1", t0(), "+14155550001", "+12125550100", Disposition::Answered)]).unwrap();
    let r = store.analytics(&query(Dataset::Sip, View::CallsByDisposition, Grouping::Hour, None)).unwrap();
    assert_eq!(r.summary[0].stale, None);
});
