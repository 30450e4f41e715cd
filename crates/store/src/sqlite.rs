//! The SQLite backend: one file, WAL mode, `synchronous = FULL` so an acknowledged batch
//! survives a power loss. One connection writes, another reads, so analytics do not wait for
//! ingest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use tollgate_records::Record;

use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset};
use crate::rollup::{Deltas, flatten};
use crate::schema::{Dialect, MIGRATIONS, MIGRATIONS_TABLE, latest, statements};
use crate::sql::{Sql, Value};
use crate::{IngestOutcome, Retention, RetentionOutcome, Store, StoreError, analytics, export};

/// A store in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
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

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // 128 MiB of page cache: rollup upserts touch pages all over the number tables.
    conn.pragma_update(None, "cache_size", -131_072)?;
    conn.set_prepared_statement_cache_capacity(64);
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
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        migrate(&mut writer)?;
        let reader =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        reader.pragma_update(None, "cache_size", -65_536)?;
        reader.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore { path: path.to_path_buf(), writer: Mutex::new(writer), reader: Mutex::new(reader) })
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

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const INSERT_ENUM: &str = "INSERT INTO enum_queries (id, ts, device, client, client_addr, transport, source, destination, direction, rule, action, detail, rcode, fail_open, latency_us, policy_version, v, stale) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT (id) DO NOTHING";
const INSERT_SIP: &str = "INSERT INTO sip_calls (id, ts, device, call_id, source, destination, direction, disposition, final_code, pdd_ms, duration_ms, answered_at, ended_at, v, rtp_packets, rtp_lost, rtp_jitter_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (id) DO NOTHING";
/// Upserts shared with PostgreSQL through per-row execution.
pub(crate) const UPSERT_COUNT: &str = "INSERT INTO rollup_counts (dataset, grain, device, bucket, n) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dataset, grain, device, bucket) DO UPDATE SET n = rollup_counts.n + excluded.n";
pub(crate) const UPSERT_NUMBER: &str = "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + excluded.n";
pub(crate) const UPSERT_OUTCOME: &str = "INSERT INTO rollup_outcomes (dataset, grain, device, bucket, okey, odetail, n, stale) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dataset, grain, device, bucket, okey, odetail) DO UPDATE SET n = rollup_outcomes.n + excluded.n, stale = rollup_outcomes.stale + excluded.stale";

/// Jitter in whole microseconds, as stored.
pub(crate) fn jitter_us(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
}

fn insert_raw(tx: &rusqlite::Transaction<'_>, record: &Record) -> Result<bool, StoreError> {
    let n = match record {
        Record::EnumQuery { v, record: r } => tx.prepare_cached(INSERT_ENUM)?.execute(params![
            r.id.to_string(),
            r.time.timestamp_micros(),
            r.device,
            r.client,
            r.client_addr.to_string(),
            match r.transport {
                tollgate_records::Transport::Udp => "udp",
                tollgate_records::Transport::Tcp => "tcp",
            },
            r.source.map(|s| s.to_string()),
            r.destination.to_string(),
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
        ])?,
        Record::SipCall { v, record: r } => tx.prepare_cached(INSERT_SIP)?.execute(params![
            r.id.to_string(),
            r.time.timestamp_micros(),
            r.device,
            r.call_id,
            r.source.map(|s| s.to_string()),
            r.destination.map(|s| s.to_string()),
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
        ])?,
    };
    Ok(n == 1)
}

/// Applies summed rollup increments with the shared upserts.
pub(crate) fn apply_deltas(db: &dyn Sql, deltas: &Deltas) -> Result<(), StoreError> {
    for (k, n) in &deltas.counts {
        db.execute(
            UPSERT_COUNT,
            &[k.dataset.into(), k.grain.into(), k.device.as_str().into(), k.bucket.into(), (*n).into()],
        )?;
    }
    for (k, n) in &deltas.numbers {
        db.execute(
            UPSERT_NUMBER,
            &[
                k.dataset.into(),
                k.grain.into(),
                k.side.into(),
                k.device.as_str().into(),
                k.bucket.into(),
                k.number.as_str().into(),
                k.direction.as_str().into(),
                (*n).into(),
            ],
        )?;
    }
    for (k, n) in &deltas.outcomes {
        db.execute(
            UPSERT_OUTCOME,
            &[
                k.dataset.into(),
                k.grain.into(),
                k.device.as_str().into(),
                k.bucket.into(),
                k.okey.as_str().into(),
                k.odetail.as_str().into(),
                n.n.into(),
                n.stale.into(),
            ],
        )?;
    }
    Ok(())
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

impl Store for SqliteStore {
    fn ingest(&self, records: &[Record]) -> Result<IngestOutcome, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcome = IngestOutcome::default();
        let mut deltas = Deltas::default();
        for record in records {
            if insert_raw(&tx, record)? {
                outcome.inserted += 1;
                deltas.add(&flatten(record));
            } else {
                outcome.duplicates += 1;
            }
        }
        apply_deltas(&*tx, &deltas)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsResult, StoreError> {
        analytics::run(&*self.reader(), query, Utc::now())
    }

    fn devices(&self, dataset: Dataset) -> Result<Vec<String>, StoreError> {
        let rows = self.reader().query(
            "SELECT DISTINCT device FROM rollup_counts WHERE dataset = $1 AND grain = 'day' AND device <> '*' ORDER BY device",
            &[dataset.as_str().into()],
        )?;
        Ok(rows.into_iter().map(|r| r[0].text()).collect())
    }

    fn count(&self, dataset: Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE ts >= $1 AND ts < $2", analytics::raw_table(dataset));
        let rows = self.reader().query(&sql, &[from.timestamp_micros().into(), to.timestamp_micros().into()])?;
        Ok(rows.first().map_or(0, |r| r[0].i64()) as u64)
    }

    fn export_raw(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        device: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        export::raw(&*self.reader(), dataset, from, to, device, out)
    }

    fn apply_retention(&self, now: DateTime<Utc>, retention: &Retention) -> Result<RetentionOutcome, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcome = RetentionOutcome::default();
        for (sql, params, raw) in retention_plan(now, retention) {
            let n = Sql::execute(&*tx, sql, &params)?;
            if raw {
                outcome.raw += n;
            } else {
                outcome.rollups += n;
            }
        }
        tx.commit()?;
        Ok(outcome)
    }

    fn refresh_statistics(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")?;
        Ok(())
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.reader().query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
