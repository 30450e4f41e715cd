//! The PostgreSQL backend: the scale-out store, which several collectors may write at once.
//!
//! A batch's raw records are streamed with binary `COPY` into a staging table and moved into the
//! raw table in one statement ([`raw`]); the batch is committed (durable) before `ingest`
//! returns. Rollup increments are summed in memory across batches for about a second and then
//! upserted with one statement per rollup table, rows in key order so concurrent collectors never
//! deadlock ([`rollups`]); a durable per-batch marker makes that safe against crashes and shared
//! by collectors ([`pending`]). Analytics read through a small pool of connections ([`pool`]).
//! Migrations take an advisory lock so collectors starting together migrate once.

mod pending;
mod pool;
mod raw;
mod rollups;

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tollgate_records::Record;

use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset};
use crate::pgurl::PgTarget;
use crate::rollup::flatten;
use crate::schema::{Dialect, MIGRATIONS, MIGRATIONS_TABLE, latest, statements};
use crate::sql::{Sql, Value};
use crate::sqlite::{fold_before_retention, retention_plan};
use crate::tls::hint;
use crate::{
    IngestOutcome, RawFilter, Retention, RetentionOutcome, Store, StoreError, StoreStats, analytics, export, fold,
};
use pending::Pending;
use pool::{Connect, Pool};

/// Advisory lock key held while migrating ("tollgate" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

/// How a PostgreSQL store behaves beyond its URL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// This collector's name, unique among the collectors writing the database (its pending
    /// rollups are marked with it, and it holds an advisory lock on it while connected). By
    /// default the host name, process id and a random suffix.
    pub collector: String,
    /// How long rollup increments are summed in memory before they are written.
    pub flush_after: Duration,
    /// How often pending rollups of collectors that are gone are looked for.
    pub recover_every: Duration,
    /// Most reader connections (analytics, export) open at once.
    pub readers: usize,
    /// Most writer connections open at once: concurrent `ingest` calls (several shippers)
    /// stream their batches in parallel, each committing on its own.
    pub writers: usize,
    /// Rollup rows held in memory above which `ingest` writes them before returning.
    pub max_pending_keys: u64,
}

impl Default for PgOptions {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "collector".into());
        let suffix = ulid::Ulid::new().to_string();
        PgOptions {
            collector: format!("{host}-{}-{}", std::process::id(), &suffix[suffix.len() - 6..]),
            flush_after: Duration::from_secs(1),
            recover_every: Duration::from_secs(30),
            readers: 4,
            writers: 2,
            max_pending_keys: 500_000,
        }
    }
}

/// A store in a PostgreSQL database.
pub struct PgStore {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

/// What the store and its flusher thread share.
struct Inner {
    options: PgOptions,
    connect: Connect,
    /// Raw ingest: concurrent batches each take one (their staging tables are per session).
    writers: Pool,
    /// Rollup flushes and recovery; holds the session advisory lock on the collector name.
    flusher: Mutex<Client>,
    readers: Pool,
    pending: Mutex<Pending>,
    stats: Mutex<StoreStats>,
    stop: Mutex<bool>,
    wake: Condvar,
    /// Set when a flush failed: this collector's batches may be pending without being in memory.
    lost_track: AtomicBool,
}

/// Runs shared SQL on a client or a transaction.
struct Pg<'a, C: GenericClient>(RefCell<&'a mut C>);

fn to_sql(params: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Null => Box::new(None::<String>),
                Value::I64(i) => Box::new(*i),
                Value::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn column(row: &postgres::Row, i: usize) -> Result<Value, StoreError> {
    let ty = row.columns()[i].type_().clone();
    Ok(if ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::I64)
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?.map_or(Value::Null, |v| Value::I64(i64::from(v)))
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i)?.map_or(Value::Null, |v| Value::I64(i64::from(v)))
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)?.map_or(Value::Null, |v| Value::I64(i64::from(v)))
    } else {
        row.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::Text)
    })
}

impl<C: GenericClient> Sql for Pg<'_, C> {
    fn for_each(
        &self,
        sql: &str,
        params: &[Value],
        row: &mut dyn FnMut(&[Value]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let boxed = to_sql(params);
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let mut client = self.0.borrow_mut();
        let mut values = Vec::new();
        for r in client.query(sql, &refs)? {
            values.clear();
            for i in 0..r.len() {
                values.push(column(&r, i)?);
            }
            row(&values)?;
        }
        Ok(())
    }

    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let boxed = to_sql(params);
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        Ok(self.0.borrow_mut().execute(sql, &refs)?)
    }
}

/// `err` and its causes, joined by `: ` (`postgres::Error` shows only its kind, "db error").
fn error_chain(err: &postgres::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(MIGRATIONS_TABLE)?;
    let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])?.get(0);
    if current > latest() {
        return Err(StoreError::SchemaTooNew { found: current, known: latest() });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        for stmt in statements(m, Dialect::Postgres) {
            tx.batch_execute(&stmt)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, description) VALUES ($1, $2, $3)",
            &[&m.version, &Utc::now().timestamp(), &m.description],
        )?;
        tracing::info!(version = m.version, "postgres store migrated");
    }
    tx.commit()?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Readies the flusher connection: takes the collector's advisory lock (waiting up to 10 s, as
/// a collector of the same name may be going away).
fn prepare_flusher(client: &mut Client, collector: &str) -> Result<(), StoreError> {
    client.batch_execute("SET lock_timeout = '10s'")?;
    match client.execute("SELECT pg_advisory_lock($1)", &[&pending::lock_key(collector)]) {
        Err(e) if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Err(StoreError::CollectorInUse(collector.to_string()));
        }
        other => other?,
    };
    // A flush's unnest() rows are materialised before the upsert: keep them in memory.
    client.batch_execute("RESET lock_timeout; SET work_mem = '64MB'")?;
    Ok(())
}

impl Inner {
    /// Replaces the flusher connection if the server closed it (re-taking the lock).
    fn live_flusher(&self, client: &mut Client) -> Result<(), StoreError> {
        if client.is_closed() {
            let mut fresh = (self.connect)()?;
            prepare_flusher(&mut fresh, &self.options.collector)?;
            *client = fresh;
            tracing::warn!(collector = %self.options.collector, "postgres store: flusher connection reopened");
        }
        Ok(())
    }

    /// Commits `records` (new ones only) as one batch and adds their rollup increments to the
    /// pending ones.
    fn ingest_once(&self, records: &[Record]) -> Result<IngestOutcome, StoreError> {
        let flats: Vec<_> = records.iter().map(flatten).collect();
        let mut writer = self.writers.get()?;
        let mut tx = writer.transaction()?;
        let batch: i64 = tx.query_one("SELECT nextval('ingest_batches')", &[])?.get(0);
        let new = raw::store(&mut tx, records, batch)?;
        let fresh: Vec<_> = match new {
            None => flats,
            Some(mut ids) => flats.into_iter().filter(|f| ids.remove(&f.id)).collect(),
        };
        if !fresh.is_empty() {
            tx.execute(
                "INSERT INTO rollup_pending_batches (batch, collector, created_at) VALUES ($1, $2, $3)",
                &[&batch, &self.options.collector, &Utc::now().timestamp()],
            )?;
        }
        tx.commit()?;
        drop(writer);
        let inserted = fresh.len() as u64;
        if inserted > 0 {
            let mut p = lock(&self.pending);
            p.batches.push(batch);
            p.records += inserted;
            p.since.get_or_insert_with(Instant::now);
            for f in &fresh {
                p.deltas.add(f);
            }
            let full = p.keys() > self.options.max_pending_keys;
            drop(p);
            // The batch is committed whatever happens here: a failed flush leaves its rollups
            // pending (in memory and in the marker) for the flusher to retry.
            if full && let Err(e) = self.flush() {
                tracing::warn!(error = %e, "postgres store: rollup flush failed; retrying");
            }
        }
        Ok(IngestOutcome { inserted, duplicates: records.len() as u64 - inserted })
    }

    /// Applies the pending rollup increments now.
    fn flush(&self) -> Result<(), StoreError> {
        let mut client = lock(&self.flusher);
        let taken = std::mem::take(&mut *lock(&self.pending));
        if taken.batches.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut result = self.live_flusher(&mut client).and_then(|()| pending::flush(&mut client, &taken));
        if result.as_ref().is_err_and(|e| is_retryable(e) || connection_lost(e)) {
            result = self.live_flusher(&mut client).and_then(|()| pending::flush(&mut client, &taken));
        }
        match result {
            Ok(applied) => {
                let mut s = lock(&self.stats);
                s.flushes += 1;
                s.flush_seconds_total += started.elapsed().as_secs_f64();
                s.last_flush_keys = applied.keys;
                Ok(())
            }
            Err(e) => {
                // Nothing was applied (or, if the commit's answer was lost, the pending rows are
                // gone and the next flush finds fewer of them): try again with the next flush.
                lock(&self.pending).absorb(taken);
                Err(e)
            }
        }
    }

    /// Folds the number rollups of hours now due into day rows ([`crate::fold`]), in one
    /// transaction holding the watermarks `FOR UPDATE` (collectors' rollup applies wait, and it
    /// sees every committed hour row). Cheap when nothing is due.
    fn fold(&self) -> Result<(), StoreError> {
        let mut client = lock(&self.flusher);
        self.live_flusher(&mut client)?;
        let now = Utc::now().timestamp();
        if !fold::due(&Pg(RefCell::new(&mut *client)), now)? {
            return Ok(());
        }
        let mut tx = client.transaction()?;
        let folded = fold::run(&Pg(RefCell::new(&mut tx)), " FOR UPDATE", now, None)?;
        tx.commit()?;
        lock(&self.stats).count_fold(&folded);
        Ok(())
    }

    /// Applies pending rollups of collectors that are gone, and this collector's own that it no
    /// longer holds in memory.
    fn recover(&self) -> Result<u64, StoreError> {
        let mut client = lock(&self.flusher);
        self.live_flusher(&mut client)?;
        self.lost_track.store(false, Ordering::Relaxed);
        let held: HashSet<i64> = lock(&self.pending).batches.iter().copied().collect();
        let started = Instant::now();
        let mut result = pending::recover(&mut client, &self.options.collector, &held);
        if result.as_ref().is_err_and(|e| is_retryable(e) || connection_lost(e)) {
            result = self
                .live_flusher(&mut client)
                .and_then(|()| pending::recover(&mut client, &self.options.collector, &held));
        }
        match result {
            Ok(applied) => {
                if applied.batches > 0 {
                    let mut s = lock(&self.stats);
                    s.flushes += 1;
                    s.flush_seconds_total += started.elapsed().as_secs_f64();
                    s.last_flush_keys = applied.keys;
                }
                Ok(applied.batches)
            }
            Err(e) => {
                self.lost_track.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Runs `f` in a read-only REPEATABLE READ transaction on a reader: every statement sees one
    /// snapshot (the fold watermarks and the rollup rows agree).
    fn with_snapshot<T>(&self, mut f: impl FnMut(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.readers.get()?;
        let mut once = |client: &mut Client| -> Result<T, StoreError> {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&Pg(RefCell::new(&mut tx)))?;
            tx.commit()?;
            Ok(out)
        };
        match once(&mut client) {
            Err(e) if connection_lost(&e) => {
                drop(client);
                let mut client = self.readers.get()?;
                once(&mut client)
            }
            other => other,
        }
    }

    /// Runs `f` on a reader; once more on a new connection if the server had closed the one
    /// taken (reads are idempotent, and a closed connection fails before any row is read).
    fn with_reader<T>(&self, mut f: impl FnMut(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.readers.get()?;
        match f(&Pg(RefCell::new(&mut *client))) {
            Err(e) if connection_lost(&e) => {
                drop(client);
                let mut client = self.readers.get()?;
                f(&Pg(RefCell::new(&mut *client)))
            }
            other => other,
        }
    }
}

/// The flusher thread: writes pending rollups once the oldest is `flush_after` old, recovers
/// abandoned ones every `recover_every` (or soon after this collector lost track of some), and
/// flushes once more when the store is dropped.
fn run_flusher(inner: Arc<Inner>) {
    let tick = (inner.options.flush_after / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut last_recovery = Instant::now();
    loop {
        let stop = {
            let mut stop = lock(&inner.stop);
            if !*stop {
                stop = inner.wake.wait_timeout(stop, tick).unwrap_or_else(|e| e.into_inner()).0;
            }
            *stop
        };
        if stop {
            if let Err(e) = inner.flush() {
                tracing::warn!(error = %e, "postgres store: last rollup flush failed; the next start recovers them");
            }
            return;
        }
        let due = lock(&inner.pending).since.is_some_and(|t| t.elapsed() >= inner.options.flush_after);
        if due {
            match inner.flush() {
                Err(e) => tracing::warn!(error = %e, "postgres store: rollup flush failed; retrying"),
                Ok(()) => {
                    if let Err(e) = inner.fold() {
                        tracing::warn!(error = %e, "postgres store: folding number rollups into days failed; retrying");
                    }
                }
            }
        }
        if inner.lost_track.load(Ordering::Relaxed) || last_recovery.elapsed() >= inner.options.recover_every {
            last_recovery = Instant::now();
            if let Err(e) = inner.recover() {
                tracing::warn!(error = %e, "postgres store: recovering pending rollups failed; retrying");
            }
        }
    }
}

/// The session setting that marks a connection of a build that knows the day fold
/// ([`crate::fold`]): without it PostgreSQL refuses day rows of number rollups, so a collector
/// of an older version, still running during a rolling upgrade, cannot add its records to day
/// rows that the fold also fills (its rollups stay pending, and a current collector applies
/// them once it is stopped).
pub const DAY_FOLD_OPTION: &str = "-c tollgate.day_fold=on";

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, with optional `sslmode`,
    /// `sslrootcert`, `sslcert`, `sslkey`: see [`crate::tls`]) with default [`PgOptions`],
    /// migrates the schema and recovers rollups left pending by collectors that are gone. Warns
    /// when a store on another machine is reached without `sslmode=verify-full`.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, PgOptions::default())
    }

    /// [`PgStore::open`] with `options`.
    pub fn open_with(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let target = PgTarget::parse(url)?;
        let tls = target.tls.client_config()?.map(MakeRustlsConnect::new);
        let mut config = target.config.clone();
        if config.get_application_name().is_none() {
            config.application_name(&options.collector);
        }
        // This build knows the day fold: the check `rollup_numbers_day_rows_by_fold_only`
        // (migration 6) lets its sessions write day rows of number rollups.
        let startup = match config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {DAY_FOLD_OPTION}"),
            _ => DAY_FOLD_OPTION.to_string(),
        };
        config.options(&startup);
        let connect: Connect = {
            let target = target.clone();
            Arc::new(move || {
                let connected = match &tls {
                    Some(tls) => config.connect(tls.clone()),
                    None => config.connect(NoTls),
                };
                connected.map_err(|source| StoreError::Connect {
                    url: target.shown.clone(),
                    mode: target.tls.mode,
                    hint: hint(&source, target.tls.mode, &target.host()),
                    reason: error_chain(&source),
                    source,
                })
            })
        };
        let mut flusher = connect()?;
        migrate(&mut flusher)?;
        prepare_flusher(&mut flusher, &options.collector)?;
        let connect_writer: Connect = {
            let connect = connect.clone();
            Arc::new(move || {
                let mut client = connect()?;
                client.batch_execute(raw::STAGING_DDL)?;
                Ok(client)
            })
        };
        let writers = Pool::new(connect_writer.clone(), options.writers, connect_writer()?);
        let readers = Pool::new(connect.clone(), options.readers, connect()?);
        let inner = Arc::new(Inner {
            options,
            connect,
            writers,
            flusher: Mutex::new(flusher),
            readers,
            pending: Mutex::new(Pending::default()),
            stats: Mutex::new(StoreStats::default()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            lost_track: AtomicBool::new(false),
        });
        let recovered = inner.recover()?;
        let flusher = {
            let inner = inner.clone();
            std::thread::Builder::new().name("pg-rollups".into()).spawn(move || {
                tollgate_records::priority::lower_current_thread();
                run_flusher(inner)
            })?
        };
        let store = PgStore { inner, flusher: Some(flusher) };
        let encrypted = store.connection_is_encrypted()?;
        tracing::info!(
            store = %target.shown,
            sslmode = %target.tls.mode,
            encrypted,
            collector = %store.inner.options.collector,
            recovered_batches = recovered,
            "postgres store connected"
        );
        if target.unauthenticated_remote() {
            tracing::warn!(
                store = %target.shown,
                sslmode = %target.tls.mode,
                encrypted,
                "the PostgreSQL store is on another machine and its server is not authenticated: \
                 add sslmode=verify-full&sslrootcert=<CA file> to the store URL"
            );
        }
        Ok(store)
    }

    /// This collector's name (see [`PgOptions::collector`]).
    pub fn collector(&self) -> &str {
        &self.inner.options.collector
    }

    /// Whether the connections of this store (writer, flusher, a reader) are encrypted, as the
    /// server sees them (`pg_stat_ssl` of each session).
    pub fn connection_is_encrypted(&self) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)";
        let mut encrypted = true;
        encrypted &= lock(&self.inner.flusher).query_one(SQL, &[])?.get::<_, bool>(0);
        encrypted &= self.inner.writers.get()?.query_one(SQL, &[])?.get::<_, bool>(0);
        encrypted &= self.inner.readers.get()?.query_one(SQL, &[])?.get::<_, bool>(0);
        Ok(encrypted)
    }

    /// Reader connections open now.
    pub fn readers_open(&self) -> usize {
        self.inner.readers.open()
    }

    /// Applies, now, pending rollups of collectors that are gone (their advisory lock is free)
    /// and this collector's own that it no longer holds in memory (the flusher does it every
    /// [`PgOptions::recover_every`]); returns how many batches it applied.
    pub fn recover_pending(&self) -> Result<u64, StoreError> {
        self.inner.recover()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
    }
}
/// Whether the connection is gone (the server ended the session, the network failed): the
/// operation may be tried again on a new one.
fn connection_lost(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(pg) => {
            // 57P01..57P03: the server ended the session (administrator, crash, restart).
            pg.is_closed()
                || pg.code().is_some_and(|c| c.code().starts_with("57P"))
                || std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>())
        }
        _ => false,
    }
}

/// A deadlock or serialization failure: the transaction may be tried again.
fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(pg) => pg.code().is_some_and(|c| {
            *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                || *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
        }),
        _ => false,
    }
}

impl Store for PgStore {
    fn ingest(&self, records: &[Record]) -> Result<IngestOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            match self.inner.ingest_once(records) {
                // A batch is idempotent: after a lost connection it is sent again on a new one (if
                // the lost answer was the commit's, its records count as duplicates and its
                // rollups are recovered from the pending marker).
                Err(e) if (is_retryable(&e) || connection_lost(&e)) && attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(e) => {
                    // If the commit's answer was what got lost, the batch is stored and pending:
                    // the flusher recovers such batches soon.
                    self.inner.lost_track.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()?;
        self.inner.fold()
    }

    fn stats(&self) -> StoreStats {
        let mut s = *lock(&self.inner.stats);
        s.pending_records = lock(&self.inner.pending).records;
        s
    }

    fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsResult, StoreError> {
        self.inner.flush()?;
        self.inner.with_snapshot(|db| analytics::run(db, query, Utc::now()))
    }

    fn devices(&self, dataset: Dataset) -> Result<Vec<String>, StoreError> {
        self.inner.flush()?;
        self.inner.with_reader(|db| {
            let rows = db.query(
                "SELECT DISTINCT device FROM rollup_counts WHERE dataset = $1 AND grain = 'day' AND device <> '*' ORDER BY device",
                &[dataset.as_str().into()],
            )?;
            Ok(rows.into_iter().map(|r| r[0].text()).collect())
        })
    }

    fn count(&self, dataset: Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.flush()?;
        let sql = format!("SELECT COUNT(*) FROM {} WHERE ts >= $1 AND ts < $2", analytics::raw_table(dataset));
        self.inner.with_reader(|db| {
            let rows = db.query(&sql, &[from.timestamp_micros().into(), to.timestamp_micros().into()])?;
            Ok(rows.first().map_or(0, |r| r[0].i64()) as u64)
        })
    }

    fn export_filtered(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &RawFilter,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        self.inner.flush()?;
        self.inner.with_reader(|db| export::raw(db, dataset, from, to, filter, out))
    }

    fn apply_retention(&self, now: DateTime<Utc>, retention: &Retention) -> Result<RetentionOutcome, StoreError> {
        self.inner.flush()?;
        let mut client = lock(&self.inner.flusher);
        self.inner.live_flusher(&mut client)?;
        let mut tx = client.transaction()?;
        let mut outcome = RetentionOutcome::default();
        {
            let db = Pg(RefCell::new(&mut tx));
            // Hour rows about to be deleted are folded into their days first.
            let folded = fold::run(&db, " FOR UPDATE", now.timestamp(), fold_before_retention(now, retention))?;
            lock(&self.inner.stats).count_fold(&folded);
            for (sql, params, raw) in retention_plan(now, retention) {
                let n = db.execute(sql, &params)?;
                if raw {
                    outcome.raw += n;
                } else {
                    outcome.rollups += n;
                }
            }
        }
        tx.commit()?;
        Ok(outcome)
    }

    fn refresh_statistics(&self) -> Result<(), StoreError> {
        let mut client = lock(&self.inner.flusher);
        self.inner.live_flusher(&mut client)?;
        client.batch_execute(
            "ANALYZE enum_queries, sip_calls, rollup_counts, rollup_numbers, rollup_outcomes, rollup_pending_batches",
        )?;
        Ok(())
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        let mut client = self.inner.readers.get()?;
        Ok(client.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])?.get(0))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
