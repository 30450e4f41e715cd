//! The tollgate record store: where the collector keeps records and the analytics read them.
//!
//! What this crate owns:
//! * two backends behind one [`Store`] trait: SQLite ([`sqlite`], embedded, the default, no
//!   setup) and PostgreSQL ([`postgres`], scale-out), chosen by URL ([`open`]); PostgreSQL over
//!   TLS with libpq's `sslmode` semantics ([`tls`], the URL's parameters in [`pgurl`]);
//! * the schema and its migrations ([`schema`]), applied on open and versioned;
//! * idempotent ingest: a record's ULID is its primary key, so a batch sent twice after a crash
//!   or retry is stored once, and rollups count only records stored for the first time;
//! * durable ingest: when [`Store::ingest`] returns `Ok`, the batch's raw records are committed
//!   (fsync'd); a batch is all or nothing;
//! * per-minute, per-hour and per-day rollups ([`rollup`]), applied with the batch or deferred:
//!   the SQLite store sums many batches' increments in memory and writes them about once a
//!   second in one transaction, with a durable watermark (`rollup_watermark`) of the raw rows
//!   already rolled up, so after a crash opening the store rolls up the rest and every increment
//!   is applied exactly once ([`sqlite`]); reads apply pending rollups first, [`Store::flush`]
//!   applies them now and [`Store::stats`] counts them;
//! * number rollups of grain hour written by ingest and folded into day rows once an hour is
//!   done, with a durable per-dataset watermark ([`fold`]);
//! * the Analytics views of seed 002 and more ([`analytics`]), the sum of several collectors'
//!   answers ([`merge`], for the manager), CSV export ([`export`]) and retention.
//!
//! What it must not do: speak HTTP, know about spools or shipping, or render anything.

#![warn(missing_docs)]

pub mod analytics;
pub mod export;
pub mod fold;
pub mod merge;
pub mod model;
pub mod pgurl;
pub mod postgres;
pub mod rollup;
pub mod schema;
mod sql;
pub mod sqlite;
pub mod tls;

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_records::{Protocol, Record};

pub use model::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, Point, Row, View};
pub use pgurl::redact_url;
pub use sql::Value;
pub use tls::SslMode;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// The store URL is not understood (the URL shown without its password).
    #[error("store URL {0:?}: use sqlite:PATH or postgres://user:password@host/db")]
    BadUrl(String),
    /// A parameter of a PostgreSQL store URL is wrong.
    #[error("store url {url}: {message}")]
    BadParameter {
        /// The URL without its password.
        url: String,
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// TLS material for PostgreSQL cannot be used (the message names the parameter and file).
    #[error("store url: {0}")]
    Tls(String),
    /// Connecting to PostgreSQL failed.
    #[error("cannot connect to the PostgreSQL store {url} (sslmode {mode}): {reason}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Connect {
        /// The URL without its password.
        url: String,
        /// The `sslmode` in force.
        mode: tls::SslMode,
        /// What the server or the TLS handshake said: the error and its causes, joined by `: `.
        reason: String,
        /// The error.
        source: ::postgres::Error,
        /// What it likely means, when known.
        hint: Option<String>,
    },
    /// The database holds a newer schema than this tollgate knows.
    #[error("the database schema is version {found}; this tollgate knows up to {known}: upgrade tollgate")]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// Another live collector uses this collector name on the same PostgreSQL store.
    #[error("another collector named {0:?} is connected to this PostgreSQL store: give each collector its own name")]
    CollectorInUse(String),
    /// Another process writes this SQLite store (the message names the file and the holder).
    #[error("the SQLite store {0}: one collector per database file")]
    StoreInUse(String),
    /// A query asked for something impossible.
    #[error("{0}")]
    BadQuery(String),
    /// Writing an export failed.
    #[error("export: {0}")]
    Export(#[from] csv::Error),
    /// I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The result of ingesting a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutcome {
    /// Records stored for the first time.
    pub inserted: u64,
    /// Records already stored (a resend), ignored.
    pub duplicates: u64,
}

/// How long data is kept, in days (0: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Raw records.
    pub raw_days: u32,
    /// Per-minute rollups.
    pub minute_days: u32,
    /// Per-hour rollups.
    pub hour_days: u32,
    /// Per-day rollups.
    pub day_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { raw_days: 30, minute_days: 7, hour_days: 180, day_days: 0 }
    }
}

/// Rows removed by retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionOutcome {
    /// Raw records removed.
    pub raw: u64,
    /// Rollup rows removed.
    pub rollups: u64,
}

/// What a store's deferred rollups are doing (see [`Store::stats`]); all zeros for a store that
/// applies rollups with each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// Stored raw records whose rollup increments are not yet written.
    pub pending_records: u64,
    /// Rollup flushes since the store was opened (each one transaction).
    pub flushes: u64,
    /// Seconds spent in those flushes, summed.
    pub flush_seconds_total: f64,
    /// Distinct rollup rows the last flush wrote.
    pub last_flush_keys: u64,
    /// Hours of number rollups folded into day rows ([`fold`]) since the store was opened.
    pub folded_hours: u64,
    /// Seconds spent folding them, summed.
    pub fold_seconds_total: f64,
}

impl StoreStats {
    /// Counts a fold pass.
    pub fn count_fold(&mut self, f: &fold::FoldOutcome) {
        self.folded_hours += f.hours;
        self.fold_seconds_total += f.seconds;
    }
}

/// Which raw records an export holds, besides its time range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFilter {
    /// One device's records (`None`: every device's).
    pub device: Option<String>,
    /// ENUM-dataset records asked over one protocol, ENUM or SIP (`None`: both).
    pub protocol: Option<Protocol>,
}

/// A record store.
pub trait Store: Send + Sync {
    /// Stores records not stored before (by id), atomically: either the whole batch's raw records
    /// are durably committed when this returns `Ok`, or none is. Each record is stored once.
    /// The rollups of the new records are applied with the batch or later (deferred, at most
    /// about a second), exactly once, and survive a crash: a store that defers them keeps a
    /// durable watermark of what is rolled up and applies the rest when opened. Reads
    /// ([`Store::analytics`], [`Store::count`], [`Store::export_raw`], [`Store::devices`]) and
    /// [`Store::apply_retention`] apply pending rollups first.
    fn ingest(&self, records: &[Record]) -> Result<IngestOutcome, StoreError>;

    /// Applies pending (deferred) rollups now, and folds the hours of number rollups now due
    /// into day rows ([`fold`]). A store that applies them with each batch has nothing to do.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Counters of the deferred rollups (zeros for a store without them).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Answers an Analytics request.
    fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsResult, StoreError>;

    /// Devices that sent records of `dataset`.
    fn devices(&self, dataset: Dataset) -> Result<Vec<String>, StoreError>;

    /// Raw records of `dataset` in `[from, to)` counted from the raw table (tests, checks).
    fn count(&self, dataset: Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Writes raw records of `dataset` in `[from, to)` (one device or all) as CSV; returns rows.
    fn export_raw(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        device: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        let filter = RawFilter { device: device.map(String::from), protocol: None };
        self.export_filtered(dataset, from, to, &filter, out)
    }

    /// Writes raw records of `dataset` in `[from, to)` that `filter` selects as CSV; returns
    /// rows. A protocol selects ENUM-dataset records only ([`StoreError::BadQuery`] for SIP).
    fn export_filtered(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &RawFilter,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError>;

    /// Deletes what `retention` says is too old at `now`.
    fn apply_retention(&self, now: DateTime<Utc>, retention: &Retention) -> Result<RetentionOutcome, StoreError>;

    /// Refreshes the query planner's statistics (the collector runs it periodically, with
    /// retention).
    fn refresh_statistics(&self) -> Result<(), StoreError>;

    /// The schema version of the database.
    fn schema_version(&self) -> Result<i64, StoreError>;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}

/// A libpq `key=value` connection string (`host=db dbname=x`), not a path: refused, so it is not
/// taken for a SQLite file name.
fn looks_like_conninfo(url: &str) -> bool {
    ["host=", "hostaddr=", "dbname=", "user=", "port=", "sslmode="].iter().any(|k| url.trim_start().starts_with(k))
}

/// Opens a store by URL: `sqlite:PATH` (or a bare path) or
/// `postgres://user:password@host:port/db?sslmode=verify-full&sslrootcert=ca.pem` (see [`tls`]).
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, sqlite::SqliteOptions::default())
}

/// [`open`], a SQLite store with `sqlite` (its page cache, its rollup deferral); a PostgreSQL
/// store does not use them.
pub fn open_with(url: &str, sqlite: sqlite::SqliteOptions) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(postgres::PgStore::open(url)?))
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        Ok(Box::new(sqlite::SqliteStore::open_with(std::path::Path::new(path.trim_start_matches("//")), sqlite)?))
    } else if !url.contains("://") && !url.is_empty() && !looks_like_conninfo(url) {
        Ok(Box::new(sqlite::SqliteStore::open_with(std::path::Path::new(url), sqlite)?))
    } else {
        Err(StoreError::BadUrl(redact_url(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_that_are_not_understood_are_refused_without_their_password() {
        let e = open("host=db dbname=records password=s3cret").err().unwrap().to_string();
        assert!(e.contains("password=***") && !e.contains("s3cret"), "{e}");
        let e = open("mysql://u:s3cret@db/records").err().unwrap().to_string();
        assert!(e.contains("mysql://u:***@db/records") && e.contains("use sqlite:PATH or postgres://"), "{e}");
        let e = open("postgres://u:s3cret@db/records?sslmode=verify-ful").err().unwrap().to_string();
        assert!(e.contains("sslmode 'verify-ful' is not one of") && !e.contains("s3cret"), "{e}");
    }
}
