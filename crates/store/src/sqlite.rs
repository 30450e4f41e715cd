//! The SQLite backend: one file, WAL mode, `synchronous = FULL` so an acknowledged batch
//! survives a power loss. One connection writes, another reads, so analytics do not wait for
//! ingest.
//!
//! Ingest commits a batch's raw rows (prepared statements, one transaction, its commit the
//! fsync) and leaves their rollup increments in memory ([`accumulator`]); a background thread
//! writes what accumulated, about once a second, in one transaction with keys in primary-key
//! order, together with the durable watermark of the raw rows rolled up ([`deferred`]). Opening
//! the store rolls up the rows a crash left above the watermark, so every increment is applied
//! exactly once. Reads and retention write what is pending first. The same thread checkpoints
//! the WAL (automatic checkpoints are off, so a commit never waits for one).

mod accumulator;
mod deferred;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tollgate_records::Record;

use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset};
use crate::schema::{Dialect, MIGRATIONS, MIGRATIONS_TABLE, latest, statements};
use crate::sql::{Sql, Value};
use crate::{IngestOutcome, RawFilter, Retention, RetentionOutcome, Store, StoreError, StoreStats, analytics, export};
use deferred::Pending;

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    reader: Mutex<Connection>,
    background: Option<JoinHandle<()>>,
    /// Held for the store's life: one writer per database file, across processes (see
    /// [`SqliteStore::open_with`]).
    _writer_lock: tollgate_records::dirlock::DirLock,
}

/// What the ingest path and the background thread share.
struct Shared {
    writer: Mutex<Writer>,
    /// The deferred rollups' counters as of the last ingest or flush, readable without waiting
    /// for the writer (a metrics scrape must not wait for a flush).
    stats: Mutex<StoreStats>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The writing connection and the increments it has not yet written.
struct Writer {
    conn: Connection,
    pending: Pending,
}

impl Shared {
    /// The writer. If a thread panicked holding it (between an increment and its commit, say),
    /// what is pending is rebuilt from the database before it is written.
    fn writer(&self) -> MutexGuard<'_, Writer> {
        match self.writer.lock() {
            Ok(w) => w,
            Err(poisoned) => {
                let mut w = poisoned.into_inner();
                w.pending.broken();
                self.writer.clear_poison();
                w
            }
        }
    }

    fn publish(&self, pending: &Pending) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = pending.stats();
    }
}

/// How often the background thread looks for due rollups and checkpoints the WAL.
const TICK: Duration = Duration::from_millis(250);

/// How the SQLite store defers rollups and how much page cache it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Rollup increments are written at most this long after their batch was stored (and
    /// before any read).
    pub rollup_delay: Duration,
    /// ... or as soon as this many distinct rollup rows are held (each about 100 bytes of
    /// memory).
    pub rollup_key_budget: usize,
    /// Page cache of the writing connection, MiB (at least 1); the reading connection keeps
    /// half as much (at least 1 MiB). SQLite fills a cache up to its size and keeps it, so
    /// this (times 1.5) is most of the memory a busy store holds.
    pub cache_mb: u32,
}

/// The writer's page cache by default, MiB: rollup upserts touch pages all over the number
/// tables.
pub const DEFAULT_CACHE_MB: u32 = 128;

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { rollup_delay: Duration::from_secs(1), rollup_key_budget: 500_000, cache_mb: DEFAULT_CACHE_MB }
    }
}

impl SqliteOptions {
    /// The writer's `cache_size` pragma (negative: KiB).
    fn writer_cache_size(&self) -> i64 {
        -(i64::from(self.cache_mb.max(1)) * 1024)
    }

    /// The reader's `cache_size` pragma: half the writer's, at least 1 MiB.
    fn reader_cache_size(&self) -> i64 {
        -(i64::from((self.cache_mb / 2).max(1)) * 1024)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::I64(v) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

impl Sql for Connection {
    fn for_each(
        &self,
        sql: &str,
        params: &[Value],
        row: &mut dyn FnMut(&[Value]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let ncols = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut values = Vec::with_capacity(ncols);
        while let Some(r) = rows.next()? {
            values.clear();
            for i in 0..ncols {
                values.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::I64(v),
                    ValueRef::Real(f) => Value::I64(f as i64),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                });
            }
            row(&values)?;
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        Ok(self.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", options.writer_cache_size())?;
    // Checkpoints run in the background thread, not in the committing one.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // Once checkpointed and restarted, the WAL file is cut back to 64 MiB.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The background thread: writes due rollups, checkpoints the WAL, until told to stop.
fn background(shared: Arc<Shared>, checkpointer: Connection) {
    loop {
        {
            let stop = shared.stop.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
            let (stop, _) = shared.wake.wait_timeout(stop, TICK).unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
        {
            let mut w = shared.writer();
            if w.pending.due() {
                let Writer { conn, pending } = &mut *w;
                if let Err(e) = deferred::flush(conn, pending) {
                    tracing::warn!(error = %e, "sqlite store: writing rollups failed; retrying");
                }
                shared.publish(pending);
            }
        }
        if let Err(e) = checkpoint(&shared, &checkpointer) {
            tracing::warn!(error = %e, "sqlite store: WAL checkpoint failed");
        }
    }
}

/// WAL frames (pages) past which the WAL is restarted from its beginning: 64 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Copies the WAL into the database file without blocking the writer (PASSIVE), and, once the
/// WAL is long, restarts it: under continuous ingest a passive checkpoint never reaches the
/// end of the WAL, which would then only grow. The restart runs between two batches (the writer
/// held): it copies the few frames appended since the passive pass, then the next commit writes
/// from the start of the file again (cut back to `journal_size_limit`). If a reader is still on
/// the old frames it gives up after the checkpointer's busy timeout and is tried again next tick.
fn checkpoint(shared: &Shared, checkpointer: &Connection) -> Result<(), StoreError> {
    let frames: i64 = checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
    if frames >= WAL_RESTART_FRAMES {
        let _writer = shared.writer();
        checkpointer.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(MIGRATIONS_TABLE)?;
    let current: i64 = conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    if current > latest() {
        return Err(StoreError::SchemaTooNew { found: current, known: latest() });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        for stmt in statements(m, Dialect::Sqlite) {
            tx.execute_batch(&stmt)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, description) VALUES (?1, ?2, ?3)",
            params![m.version, Utc::now().timestamp(), m.description],
        )?;
        tx.commit()?;
        tracing::info!(version = m.version, "sqlite store migrated");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`, rolling up what a crash left
    /// pending.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with other rollup deferral settings.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // Rollups held in memory are one writer's: a second process writing the same file would
        // roll up, on open, rows the first still holds, and count them twice. So one writer per
        // file, named in `<file>.lock` beside it (reads of a copy, `snapshot`, need no lock).
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let writer_lock = tollgate_records::dirlock::DirLock::acquire(
            dir,
            &format!("{file_name}.lock"),
            "tollgate collector (SQLite store writer)",
        )
        .map_err(|e| match e {
            tollgate_records::dirlock::LockError::InUse { .. } => {
                StoreError::StoreInUse(format!("{}: {e}", path.display()))
            }
            tollgate_records::dirlock::LockError::Io { source, .. } => StoreError::Io(source),
        })?;
        let mut writer = Connection::open(path)?;
        configure(&writer, &options)?;
        migrate(&mut writer)?;
        // Rows a crash left above the watermark are rolled up before anything is read.
        let mut pending = Pending::new(options.rollup_delay, options.rollup_key_budget);
        deferred::flush(&mut writer, &mut pending)?;
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        reader.pragma_update(None, "cache_size", options.reader_cache_size())?;
        reader.set_prepared_statement_cache_capacity(64);
        let checkpointer = Connection::open(path)?;
        // Short: a restart that waits for a reader holds the writer meanwhile.
        checkpointer.busy_timeout(std::time::Duration::from_millis(200))?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(pending.stats()),
            writer: Mutex::new(Writer { conn: writer, pending }),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let background = {
            let shared = shared.clone();
            std::thread::Builder::new().name("sqlite-rollups".into()).spawn(move || {
                tollgate_records::priority::lower_current_thread();
                background(shared, checkpointer)
            })?
        };
        Ok(SqliteStore {
            path: path.to_path_buf(),
            shared,
            reader: Mutex::new(reader),
            background: Some(background),
            _writer_lock: writer_lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent copy of a store database at `db` (which may be in use by a running
    /// collector) to `out` (`VACUUM INTO`; WAL readers see a snapshot).
    pub fn snapshot(db: &Path, out: &Path) -> Result<(), StoreError> {
        let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.execute("VACUUM INTO ?1", [out.to_string_lossy().as_ref()])?;
        Ok(())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.shared.writer()
    }

    /// The writer with every pending rollup written, for a read that must see them.
    fn flushed(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        let mut w = self.writer();
        let Writer { conn, pending } = &mut *w;
        let flushed = deferred::flush(conn, pending);
        self.shared.publish(pending);
        flushed?;
        Ok(w)
    }

    /// Writes pending rollups, then hands out the reader.
    fn fresh_reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        drop(self.flushed()?);
        Ok(self.reader())
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.background.take() {
            let _ = handle.join();
        }
        if let Err(e) = self.flushed() {
            tracing::warn!(error = %e, "sqlite store: writing rollups on close failed; they are written when it is opened");
        }
    }
}

const INSERT_ENUM: &str = "INSERT INTO enum_queries (id, ts, device, client, client_addr, transport, source, destination, direction, rule, action, detail, rcode, fail_open, latency_us, policy_version, v, stale, protocol) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) ON CONFLICT (id) DO NOTHING";
const INSERT_SIP: &str = "INSERT INTO sip_calls (id, ts, device, call_id, source, destination, direction, disposition, final_code, pdd_ms, duration_ms, answered_at, ended_at, v, rtp_packets, rtp_lost, rtp_jitter_us, mos_x100) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT (id) DO NOTHING";
/// Upserts shared with PostgreSQL through per-row execution.
pub(crate) const UPSERT_COUNT: &str = "INSERT INTO rollup_counts (dataset, grain, device, bucket, n) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dataset, grain, device, bucket) DO UPDATE SET n = rollup_counts.n + excluded.n";
pub(crate) const UPSERT_NUMBER: &str = "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + excluded.n";
pub(crate) const UPSERT_OUTCOME: &str = "INSERT INTO rollup_outcomes (dataset, grain, device, bucket, okey, odetail, n, stale) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dataset, grain, device, bucket, okey, odetail) DO UPDATE SET n = rollup_outcomes.n + excluded.n, stale = rollup_outcomes.stale + excluded.stale";

/// Jitter in whole microseconds, as stored.
pub(crate) fn jitter_us(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
}

/// A MOS in hundredths, as stored (4.41 -> 441).
pub(crate) fn mos_x100(mos: f64) -> i64 {
    (mos * 100.0).round() as i64
}

/// Text columns of one raw row, formatted into buffers reused from row to row.
#[derive(Default)]
struct Scratch {
    id: [u8; ulid::ULID_LEN],
    addr: String,
    source: String,
    destination: String,
}

/// `+` and the digits of `n`, in `buf`.
fn number_text(buf: &mut String, n: Option<tollgate_number::E164>) -> Option<&str> {
    use std::fmt::Write as _;
    let n = n?;
    buf.clear();
    let _ = write!(buf, "{n}");
    Some(buf.as_str())
}

/// The raw-row inserts of one ingest transaction, prepared once for the batch.
struct RawInserts<'t> {
    tx: &'t rusqlite::Transaction<'t>,
    enums: rusqlite::CachedStatement<'t>,
    sips: rusqlite::CachedStatement<'t>,
    scratch: Scratch,
}

impl<'t> RawInserts<'t> {
    fn new(tx: &'t rusqlite::Transaction<'t>) -> Result<Self, StoreError> {
        Ok(RawInserts {
            tx,
            enums: tx.prepare_cached(INSERT_ENUM)?,
            sips: tx.prepare_cached(INSERT_SIP)?,
            scratch: Scratch::default(),
        })
    }

    /// Inserts a record's raw row; its rowid when it was stored now, `None` when it was already.
    fn insert(&mut self, record: &Record) -> Result<Option<i64>, StoreError> {
        use std::fmt::Write as _;
        let Scratch { id, addr, source, destination } = &mut self.scratch;
        let n = match record {
            Record::EnumQuery { v, record: r } => {
                addr.clear();
                let _ = write!(addr, "{}", r.client_addr);
                self.enums.execute(params![
                    &*r.id.array_to_str(id),
                    r.time.timestamp_micros(),
                    r.device,
                    r.client,
                    addr.as_str(),
                    match r.transport {
                        tollgate_records::Transport::Udp => "udp",
                        tollgate_records::Transport::Tcp => "tcp",
                    },
                    number_text(source, r.source),
                    number_text(destination, Some(r.destination)),
                    r.direction,
                    r.rule,
                    r.action,
                    r.detail,
                    r.rcode,
                    i64::from(r.fail_open),
                    i64::from(r.latency_us),
                    r.policy_version.map(|v| v as i64),
                    i64::from(*v),
                    i64::from(r.stale),
                    r.protocol.as_str(),
                ])?
            }
            Record::SipCall { v, record: r } => self.sips.execute(params![
                &*r.id.array_to_str(id),
                r.time.timestamp_micros(),
                r.device,
                r.call_id,
                number_text(source, r.source),
                number_text(destination, r.destination),
                r.direction,
                r.disposition.as_str(),
                r.final_code.map(i64::from),
                r.pdd_ms.map(i64::from),
                r.duration_ms.map(|d| d as i64),
                r.answered_at.map(|t| t.timestamp_micros()),
                r.ended_at.map(|t| t.timestamp_micros()),
                i64::from(*v),
                r.rtp_packets.map(|n| n as i64),
                r.rtp_lost.map(|n| n as i64),
                r.rtp_jitter_ms.map(jitter_us),
                r.mos.map(mos_x100),
            ])?,
        };
        Ok((n == 1).then(|| self.tx.last_insert_rowid()))
    }
}

/// Retention statements shared by both backends, with the cut-off parameter of each.
pub(crate) fn retention_plan(now: DateTime<Utc>, r: &Retention) -> Vec<(&'static str, Vec<Value>, bool)> {
    let cut = |days: u32| now.timestamp() - i64::from(days) * 86_400;
    let mut plan = Vec::new();
    if r.raw_days > 0 {
        let micros = cut(r.raw_days) * 1_000_000;
        plan.push(("DELETE FROM enum_queries WHERE ts < $1", vec![micros.into()], true));
        plan.push(("DELETE FROM sip_calls WHERE ts < $1", vec![micros.into()], true));
    }
    for (grain, days) in [("minute", r.minute_days), ("hour", r.hour_days), ("day", r.day_days)] {
        if days > 0 {
            for table in ["rollup_counts", "rollup_numbers", "rollup_outcomes"] {
                let sql = match table {
                    "rollup_counts" => "DELETE FROM rollup_counts WHERE grain = $1 AND bucket < $2",
                    "rollup_numbers" => "DELETE FROM rollup_numbers WHERE grain = $1 AND bucket < $2",
                    _ => "DELETE FROM rollup_outcomes WHERE grain = $1 AND bucket < $2",
                };
                plan.push((sql, vec![grain.into(), cut(days).into()], false));
            }
        }
    }
    plan
}

/// The hour bucket through which number rollups must be folded before `retention` deletes hour
/// rows at `now` (the last hour it deletes), so day views keep them; `None` if it keeps every
/// hour row.
pub(crate) fn fold_before_retention(now: DateTime<Utc>, r: &Retention) -> Option<i64> {
    (r.hour_days > 0).then(|| {
        let cut = now.timestamp() - i64::from(r.hour_days) * 86_400;
        crate::model::Grouping::Hour.bucket_of(cut - 1)
    })
}

impl Store for SqliteStore {
    fn ingest(&self, records: &[Record]) -> Result<IngestOutcome, StoreError> {
        let mut w = self.writer();
        let Writer { conn, pending } = &mut *w;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut outcome = IngestOutcome::default();
            {
                let mut raw = RawInserts::new(&tx)?;
                for record in records {
                    if let Some(rowid) = raw.insert(record)? {
                        outcome.inserted += 1;
                        pending.add(record, rowid);
                    } else {
                        outcome.duplicates += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(outcome)
        })();
        if result.is_err() {
            // Increments of rows rolled back may be held: rebuild from the database.
            pending.broken();
        } else if pending.due()
            && let Err(e) = deferred::flush(conn, pending)
        {
            // The batch is stored; its rollups are written by a later flush.
            tracing::warn!(error = %e, "sqlite store: writing rollups failed; retrying");
        }
        self.shared.publish(pending);
        result
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flushed().map(drop)
    }

    fn stats(&self) -> StoreStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsResult, StoreError> {
        let mut reader = self.fresh_reader()?;
        // One read transaction: one snapshot of the fold watermarks and the rollup rows.
        let tx = reader.transaction_with_behavior(TransactionBehavior::Deferred)?;
        analytics::run(&*tx, query, Utc::now())
    }

    fn devices(&self, dataset: Dataset) -> Result<Vec<String>, StoreError> {
        let rows = self.fresh_reader()?.query(
            "SELECT DISTINCT device FROM rollup_counts WHERE dataset = $1 AND grain = 'day' AND device <> '*' ORDER BY device",
            &[dataset.as_str().into()],
        )?;
        Ok(rows.into_iter().map(|r| r[0].text()).collect())
    }

    fn count(&self, dataset: Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE ts >= $1 AND ts < $2", analytics::raw_table(dataset));
        let rows = self.fresh_reader()?.query(&sql, &[from.timestamp_micros().into(), to.timestamp_micros().into()])?;
        Ok(rows.first().map_or(0, |r| r[0].i64()) as u64)
    }

    fn export_filtered(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &RawFilter,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        export::raw(&*self.fresh_reader()?, dataset, from, to, filter, out)
    }

    fn apply_retention(&self, now: DateTime<Utc>, retention: &Retention) -> Result<RetentionOutcome, StoreError> {
        let mut w = self.flushed()?;
        let Writer { conn, pending } = &mut *w;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcome = RetentionOutcome::default();
        // Hour rows about to be deleted are folded into their days first.
        let folded = crate::fold::run(&*tx, "", now.timestamp(), fold_before_retention(now, retention))?;
        for (sql, params, raw) in retention_plan(now, retention) {
            let n = Sql::execute(&*tx, sql, &params)?;
            if raw {
                outcome.raw += n;
            } else {
                outcome.rollups += n;
            }
        }
        deferred::reset_after_delete(&tx)?;
        tx.commit()?;
        pending.count_fold(&folded);
        self.shared.publish(pending);
        Ok(outcome)
    }

    fn refresh_statistics(&self) -> Result<(), StoreError> {
        self.writer().conn.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")?;
        Ok(())
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.reader().query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
