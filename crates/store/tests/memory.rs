//! The SQLite store's memory is bounded by its configured page cache, however much it stores:
//! SQLite's own count of the memory it holds (`sqlite3_memory_highwater`, every connection of
//! the process) stays under the writer's cache plus the reader's half plus a fixed allowance,
//! while the database grows to many times that. Its own test binary, so no other test's
//! connections count.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_records::{EnumQueryRecord, Record, Transport};
use tollgate_store::sqlite::{SqliteOptions, SqliteStore};
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, Store, View};

const MIB: i64 = 1 << 20;

/// Memory SQLite holds beside the page caches: schemas, prepared statements, the rollup
/// upserts' scratch, per connection.
const ALLOWANCE: i64 = 4 * MIB;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
}

/// ENUM record `k`: every caller and called number distinct, so the raw rows, their indexes and
/// the number rollups all grow with the records.
fn rec(k: u64) -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: t0() + Duration::seconds((k / 20) as i64),
        device: format!("e{}", k % 2),
        client: "sbc".into(),
        client_addr: "127.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        source: Some(format!("+1617{k:07}").parse().unwrap()),
        destination: format!("+1415{k:07}").parse().unwrap(),
        direction: "inbound".into(),
        rule: Some(format!("r{}", k % 100)),
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

/// SQLite's high-water mark of memory held, bytes, reset to what it holds now.
fn highwater_reset() -> i64 {
    // SAFETY: reads (and resets) SQLite's global memory statistic; no pointers involved.
    unsafe { rusqlite::ffi::sqlite3_memory_highwater(1) }
}

/// Stores `n` records in batches as the collector does, reads the analytics of the whole range
/// (the reader's cache too), and returns SQLite's memory high-water mark meanwhile and the
/// database's size, bytes.
fn fill(cache_mb: u32, n: u64) -> (i64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.db");
    let options = SqliteOptions { cache_mb, rollup_key_budget: 20_000, ..Default::default() };
    highwater_reset();
    let size = {
        let store = SqliteStore::open_with(&path, options).unwrap();
        let records: Vec<Record> = (0..n).map(rec).collect();
        for batch in records.chunks(2000) {
            let stored = store.ingest(batch).unwrap();
            assert_eq!(stored.inserted, batch.len() as u64);
        }
        for view in [View::AverageCps, View::TopSource, View::TopDestination, View::ActionsByRule] {
            let q = AnalyticsQuery {
                dataset: Dataset::Enum,
                view,
                grouping: Grouping::Hour,
                device: None,
                from: t0(),
                to: t0() + Duration::days(1),
            };
            store.analytics(&q).unwrap();
        }
        assert_eq!(store.count(Dataset::Enum, t0(), t0() + Duration::days(1)).unwrap(), n);
        std::fs::metadata(&path).unwrap().len()
            + std::fs::metadata(dir.path().join("records.db-wal")).map_or(0, |m| m.len())
    };
    (highwater_reset(), size)
}

#[test]
fn sqlite_memory_stays_within_the_configured_page_cache_while_the_database_outgrows_it() {
    let n = 60_000;
    let (small, db) = fill(2, n);
    let bound = (2 + 1) * MIB + ALLOWANCE;
    assert!(db as i64 > 4 * bound, "the database ({db} bytes) is many times the bound ({bound})");
    assert!(small <= bound, "with cache_mb = 2 SQLite held {small} bytes, more than {bound}");
    // The same records with a larger cache: SQLite keeps more, so what held the small run's
    // memory down was the configured cache, not a small data set.
    let (large, _) = fill(32, n);
    assert!(large > bound + 2 * MIB, "with cache_mb = 32 SQLite held {large} bytes, not more than {bound}");
    assert!(large <= (32 + 16) * MIB + 2 * ALLOWANCE, "with cache_mb = 32 SQLite held {large} bytes");
}
