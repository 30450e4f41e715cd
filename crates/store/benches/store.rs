//! Store benchmark: records/s ingested, and Analytics latency over a large store, for SQLite and
//! (when TOLLGATE_BENCH_POSTGRES is set to a URL) PostgreSQL, printed as a Markdown table.
//!
//! `cargo bench -p tollgate-store --bench store -- [RECORDS]` (default 10,000,000); batches of
//! 1,000 records, or TOLLGATE_BENCH_BATCH; SQLite holds rollup increments 1 s, or
//! TOLLGATE_BENCH_ROLLUP_DELAY_MS.
//! With `TOLLGATE_BENCH_SQLITE=0` PostgreSQL only (TOLLGATE_BENCH_POSTGRES must name an empty database:
//! the records' ids are the same every run); with `TOLLGATE_BENCH_COLLECTORS=2`, two PostgreSQL
//! stores (collectors) ingest into that database at once.
//!
//! The data: RECORDS ENUM queries spread over 24 hours from 4 engines; calling numbers drawn
//! log-uniformly from 100,000 (a few heavy callers, a long tail), called numbers from 50,000
//! (`tollgate_records::synth`, the records `tollgate generate records` makes).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tollgate_records::Record;
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, Store, View};

/// The bench's records: `tollgate_records::synth`, the mix `tollgate generate records` ships
/// in the end-to-end benchmark, over 2026-11-25.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// Records `start..start + len` of `total`.
fn batch(start: u64, len: usize, total: u64) -> Vec<Record> {
    let end = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
    (start..start + len as u64).map(|k| tollgate_records::synth::enum_query(SEED, k, total, end)).collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run(label: &str, store: &dyn Store, total: u64) {
    let batch_len: usize = std::env::var("TOLLGATE_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let started = Instant::now();
    let mut first_rate = None;
    let mut done = 0u64;
    while done < total {
        let n = batch_len.min((total - done) as usize);
        let records = batch(done, n, total);
        store.ingest(&records).expect("ingest");
        done += n as u64;
        if first_rate.is_none() && done >= 200_000.min(total) {
            first_rate = Some(done as f64 / started.elapsed().as_secs_f64());
        }
        if done.is_multiple_of(1_000_000) {
            eprintln!("{label}: {done} records in {:.0} s ({:?})", started.elapsed().as_secs_f64(), store.stats());
        }
    }
    // Deferred rollups count: the rate is taken once every increment is written.
    store.flush().expect("flush");
    let elapsed = started.elapsed().as_secs_f64();
    let overall = total as f64 / elapsed;
    let stats = store.stats();
    if stats.flushes > 0 {
        eprintln!(
            "{label}: {elapsed:.1} s in all, of which {:.1} s writing deferred rollups ({} flushes, {} rows in the last)",
            stats.flush_seconds_total, stats.flushes, stats.last_flush_keys
        );
    }
    // What the collector's periodic maintenance does (autovacuum would, on PostgreSQL).
    store.refresh_statistics().expect("statistics");
    let day = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let q = |view, grouping| AnalyticsQuery {
        dataset: Dataset::Enum,
        view,
        grouping,
        device: None,
        from: day,
        to: day + chrono::Duration::days(1),
    };
    let time = |query: &AnalyticsQuery| {
        let r = store.analytics(query).expect("analytics");
        assert_eq!(r.total, total);
        median(
            (0..11)
                .map(|_| {
                    let t = Instant::now();
                    store.analytics(query).expect("analytics");
                    t.elapsed()
                })
                .collect(),
        )
    };
    let top_hour = time(&q(View::TopSource, Grouping::Hour));
    let top_day = time(&q(View::TopSource, Grouping::Day));
    let top_dst_day = time(&q(View::TopDestination, Grouping::Day));
    let cps = time(&q(View::AverageCps, Grouping::Minute));
    println!(
        "| {label} | {total} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
        first_rate.unwrap_or(overall),
        overall,
        top_hour.as_secs_f64() * 1e3,
        top_day.as_secs_f64() * 1e3,
        top_dst_day.as_secs_f64() * 1e3,
        cps.as_secs_f64() * 1e3
    );
}

/// `collectors` stores on the same database ingesting at once (batch k by collector k mod n);
/// prints the rate over all of them, rollups included.
fn run_collectors(url: &str, collectors: usize, total: u64) {
    let stores: Vec<_> = (0..collectors).map(|_| tollgate_store::open(url).unwrap()).collect();
    let batch_len = 1000u64;
    let started = Instant::now();
    std::thread::scope(|s| {
        for (c, store) in stores.iter().enumerate() {
            s.spawn(move || {
                let mut start = c as u64 * batch_len;
                while start < total {
                    let n = batch_len.min(total - start) as usize;
                    store.ingest(&batch(start, n, total)).expect("ingest");
                    start += batch_len * collectors as u64;
                }
                store.flush().expect("flush");
            });
        }
    });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let counted = stores[0]
        .count(
            tollgate_store::Dataset::Enum,
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
        )
        .expect("count");
    assert_eq!(counted, total);
    println!("| PostgreSQL, {collectors} collectors at once | {total} | | {rate:.0} | | | | |");
}

fn main() {
    let total: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000_000);
    println!(
        "{total} ENUM records over 24 h, 4 engines, 100,000 callers (log-uniform), 50,000 called numbers; median of 11 queries"
    );
    println!();
    println!(
        "| store | records | ingest rec/s (first 200k) | ingest rec/s (all) | Top 10 Source / Hour / All (ms) | Top 10 Source / Day / All (ms) | Top 10 Destination / Day / All (ms) | Average CPS / Minute (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    // TOLLGATE_BENCH_SQLITE=0 measures PostgreSQL only.
    if std::env::var("TOLLGATE_BENCH_SQLITE").as_deref() != Ok("0") {
        // TOLLGATE_BENCH_ROLLUP_DELAY_MS: how long the SQLite store holds rollup increments.
        let mut options = tollgate_store::sqlite::SqliteOptions::default();
        if let Some(ms) = std::env::var("TOLLGATE_BENCH_ROLLUP_DELAY_MS").ok().and_then(|v| v.parse().ok()) {
            options.rollup_delay = Duration::from_millis(ms);
        }
        let sqlite = tollgate_store::sqlite::SqliteStore::open_with(&dir.path().join("bench.db"), options).unwrap();
        run("SQLite", &sqlite, total);
        drop(sqlite);
    }
    if let Ok(url) = std::env::var("TOLLGATE_BENCH_POSTGRES") {
        // TOLLGATE_BENCH_COLLECTORS=2: two collectors writing the database at once.
        let collectors: usize =
            std::env::var("TOLLGATE_BENCH_COLLECTORS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        if collectors > 1 {
            run_collectors(&url, collectors, total);
        } else {
            let pg = tollgate_store::open(&url).unwrap();
            run("PostgreSQL", pg.as_ref(), total);
        }
    }
}
