//! The PostgreSQL backend: the scale-out store. Batches are inserted with one `UNNEST`
//! statement per table; rollup rows are upserted in a fixed key order so concurrent collectors
//! never deadlock; migrations take an advisory lock so collectors starting together migrate once.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tollgate_records::{Record, Transport};

use crate::model::{AnalyticsQuery, AnalyticsResult, Dataset};
use crate::pgurl::PgTarget;
use crate::rollup::{Deltas, flatten};
use crate::schema::{Dialect, MIGRATIONS, MIGRATIONS_TABLE, latest, statements};
use crate::sql::{Sql, Value};
use crate::sqlite::retention_plan;
use crate::tls::hint;
use crate::{IngestOutcome, Retention, RetentionOutcome, Store, StoreError, analytics, export};

/// Advisory lock key held while migrating ("tollgate" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

/// A store in a PostgreSQL database.
pub struct PgStore {
    writer: Mutex<Client>,
    reader: Mutex<Client>,
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

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/db`, with optional `sslmode`,
    /// `sslrootcert`, `sslcert`, `sslkey`: see [`crate::tls`]) and migrates the schema. Warns
    /// when a store on another machine is reached without `sslmode=verify-full`.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let target = PgTarget::parse(url)?;
        let tls = target.tls.client_config()?.map(MakeRustlsConnect::new);
        let connect = || -> Result<Client, StoreError> {
            let connected = match &tls {
                Some(tls) => target.config.connect(tls.clone()),
                None => target.config.connect(NoTls),
            };
            connected.map_err(|source| StoreError::Connect {
                url: target.shown.clone(),
                mode: target.tls.mode,
                hint: hint(&source, target.tls.mode, &target.host()),
                reason: error_chain(&source),
                source,
            })
        };
        let mut writer = connect()?;
        migrate(&mut writer)?;
        let reader = connect()?;
        let store = PgStore { writer: Mutex::new(writer), reader: Mutex::new(reader) };
        let encrypted = store.connection_is_encrypted()?;
        tracing::info!(store = %target.shown, sslmode = %target.tls.mode, encrypted, "postgres store connected");
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

    /// Whether both connections of this store are encrypted, as the server sees them
    /// (`pg_stat_ssl` of this session).
    pub fn connection_is_encrypted(&self) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)";
        let mut encrypted = true;
        for client in [&self.writer, &self.reader] {
            let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
            encrypted &= client.query_one(SQL, &[])?.get::<_, bool>(0);
        }
        Ok(encrypted)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut client = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        f(&Pg(RefCell::new(&mut *client)))
    }

    fn ingest_once(&self, records: &[Record]) -> Result<IngestOutcome, StoreError> {
        let mut client = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = client.transaction()?;
        let mut inserted: HashSet<String> = HashSet::new();

        let enums: Vec<_> = records
            .iter()
            .filter_map(|r| if let Record::EnumQuery { v, record } = r { Some((v, record)) } else { None })
            .collect();
        if !enums.is_empty() {
            let col = |f: &dyn Fn(&tollgate_records::EnumQueryRecord) -> String| {
                enums.iter().map(|(_, r)| f(r)).collect::<Vec<String>>()
            };
            let opt = |f: &dyn Fn(&tollgate_records::EnumQueryRecord) -> Option<String>| {
                enums.iter().map(|(_, r)| f(r)).collect::<Vec<Option<String>>>()
            };
            let ids = col(&|r| r.id.to_string());
            let ts: Vec<i64> = enums.iter().map(|(_, r)| r.time.timestamp_micros()).collect();
            let device = col(&|r| r.device.clone());
            let client_name = col(&|r| r.client.clone());
            let client_addr = col(&|r| r.client_addr.to_string());
            let transport = col(&|r| match r.transport {
                Transport::Udp => "udp".into(),
                Transport::Tcp => "tcp".into(),
            });
            let source = opt(&|r| r.source.map(|s| s.to_string()));
            let destination = col(&|r| r.destination.to_string());
            let direction = col(&|r| r.direction.clone());
            let rule = opt(&|r| r.rule.clone());
            let action = col(&|r| r.action.clone());
            let detail = opt(&|r| r.detail.clone());
            let rcode = col(&|r| r.rcode.clone());
            let fail_open: Vec<i64> = enums.iter().map(|(_, r)| i64::from(r.fail_open)).collect();
            let latency: Vec<i64> = enums.iter().map(|(_, r)| i64::from(r.latency_us)).collect();
            let policy: Vec<Option<i64>> = enums.iter().map(|(_, r)| r.policy_version.map(|v| v as i64)).collect();
            let v: Vec<i64> = enums.iter().map(|(v, _)| i64::from(**v)).collect();
            let stale: Vec<i64> = enums.iter().map(|(_, r)| i64::from(r.stale)).collect();
            for row in tx.query(
                "INSERT INTO enum_queries (id, ts, device, client, client_addr, transport, source, destination, direction, rule, action, detail, rcode, fail_open, latency_us, policy_version, v, stale) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&ids, &ts, &device, &client_name, &client_addr, &transport, &source, &destination, &direction, &rule, &action, &detail, &rcode, &fail_open, &latency, &policy, &v, &stale],
            )? {
                inserted.insert(row.get(0));
            }
        }

        let sips: Vec<_> = records
            .iter()
            .filter_map(|r| if let Record::SipCall { v, record } = r { Some((v, record)) } else { None })
            .collect();
        if !sips.is_empty() {
            let ids: Vec<String> = sips.iter().map(|(_, r)| r.id.to_string()).collect();
            let ts: Vec<i64> = sips.iter().map(|(_, r)| r.time.timestamp_micros()).collect();
            let device: Vec<String> = sips.iter().map(|(_, r)| r.device.clone()).collect();
            let call_id: Vec<String> = sips.iter().map(|(_, r)| r.call_id.clone()).collect();
            let source: Vec<Option<String>> = sips.iter().map(|(_, r)| r.source.map(|s| s.to_string())).collect();
            let destination: Vec<Option<String>> =
                sips.iter().map(|(_, r)| r.destination.map(|s| s.to_string())).collect();
            let direction: Vec<String> = sips.iter().map(|(_, r)| r.direction.clone()).collect();
            let disposition: Vec<String> = sips.iter().map(|(_, r)| r.disposition.as_str().to_string()).collect();
            let final_code: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.final_code.map(i64::from)).collect();
            let pdd: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.pdd_ms.map(i64::from)).collect();
            let duration: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.duration_ms.map(|d| d as i64)).collect();
            let answered: Vec<Option<i64>> =
                sips.iter().map(|(_, r)| r.answered_at.map(|t| t.timestamp_micros())).collect();
            let ended: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.ended_at.map(|t| t.timestamp_micros())).collect();
            let v: Vec<i64> = sips.iter().map(|(v, _)| i64::from(**v)).collect();
            let rtp_packets: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.rtp_packets.map(|n| n as i64)).collect();
            let rtp_lost: Vec<Option<i64>> = sips.iter().map(|(_, r)| r.rtp_lost.map(|n| n as i64)).collect();
            let rtp_jitter: Vec<Option<i64>> =
                sips.iter().map(|(_, r)| r.rtp_jitter_ms.map(crate::sqlite::jitter_us)).collect();
            for row in tx.query(
                "INSERT INTO sip_calls (id, ts, device, call_id, source, destination, direction, disposition, final_code, pdd_ms, duration_ms, answered_at, ended_at, v, rtp_packets, rtp_lost, rtp_jitter_us) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&ids, &ts, &device, &call_id, &source, &destination, &direction, &disposition, &final_code, &pdd, &duration, &answered, &ended, &v, &rtp_packets, &rtp_lost, &rtp_jitter],
            )? {
                inserted.insert(row.get(0));
            }
        }

        let mut deltas = Deltas::default();
        for r in records {
            let flat = flatten(r);
            if inserted.contains(&flat.id) {
                deltas.add(&flat);
            }
        }
        upsert_deltas(&mut tx, &deltas)?;
        tx.commit()?;
        let inserted = inserted.len() as u64;
        Ok(IngestOutcome { inserted, duplicates: records.len() as u64 - inserted })
    }
}

/// Upserts the rollups, one statement per table, rows in key order (so concurrent writers take
/// row locks in the same order and cannot deadlock).
fn upsert_deltas(tx: &mut postgres::Transaction<'_>, deltas: &Deltas) -> Result<(), StoreError> {
    let mut counts: Vec<_> = deltas.counts.iter().collect();
    counts.sort_by(|a, b| {
        (a.0.dataset, a.0.grain, &a.0.device, a.0.bucket).cmp(&(b.0.dataset, b.0.grain, &b.0.device, b.0.bucket))
    });
    if !counts.is_empty() {
        let ds: Vec<&str> = counts.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = counts.iter().map(|(k, _)| k.grain).collect();
        let device: Vec<&str> = counts.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = counts.iter().map(|(k, _)| k.bucket).collect();
        let n: Vec<i64> = counts.iter().map(|(_, n)| **n).collect();
        tx.execute(
            "INSERT INTO rollup_counts (dataset, grain, device, bucket, n) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
             ON CONFLICT (dataset, grain, device, bucket) DO UPDATE SET n = rollup_counts.n + EXCLUDED.n",
            &[&ds, &grain, &device, &bucket, &n],
        )?;
    }
    let mut numbers: Vec<_> = deltas.numbers.iter().collect();
    numbers.sort_by(|a, b| {
        let ka = (a.0.dataset, a.0.grain, a.0.side, &a.0.device, a.0.bucket, &a.0.number, &a.0.direction);
        let kb = (b.0.dataset, b.0.grain, b.0.side, &b.0.device, b.0.bucket, &b.0.number, &b.0.direction);
        ka.cmp(&kb)
    });
    if !numbers.is_empty() {
        let ds: Vec<&str> = numbers.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = numbers.iter().map(|(k, _)| k.grain).collect();
        let side: Vec<&str> = numbers.iter().map(|(k, _)| k.side).collect();
        let device: Vec<&str> = numbers.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = numbers.iter().map(|(k, _)| k.bucket).collect();
        let number: Vec<&str> = numbers.iter().map(|(k, _)| k.number.as_str()).collect();
        let direction: Vec<&str> = numbers.iter().map(|(k, _)| k.direction.as_str()).collect();
        let n: Vec<i64> = numbers.iter().map(|(_, n)| **n).collect();
        tx.execute(
            "INSERT INTO rollup_numbers (dataset, grain, side, device, bucket, number, direction, n) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[]) \
             ON CONFLICT (dataset, grain, side, device, bucket, number, direction) DO UPDATE SET n = rollup_numbers.n + EXCLUDED.n",
            &[&ds, &grain, &side, &device, &bucket, &number, &direction, &n],
        )?;
    }
    let mut outcomes: Vec<_> = deltas.outcomes.iter().collect();
    outcomes.sort_by(|a, b| {
        let ka = (a.0.dataset, a.0.grain, &a.0.device, a.0.bucket, &a.0.okey, &a.0.odetail);
        let kb = (b.0.dataset, b.0.grain, &b.0.device, b.0.bucket, &b.0.okey, &b.0.odetail);
        ka.cmp(&kb)
    });
    if !outcomes.is_empty() {
        let ds: Vec<&str> = outcomes.iter().map(|(k, _)| k.dataset).collect();
        let grain: Vec<&str> = outcomes.iter().map(|(k, _)| k.grain).collect();
        let device: Vec<&str> = outcomes.iter().map(|(k, _)| k.device.as_str()).collect();
        let bucket: Vec<i64> = outcomes.iter().map(|(k, _)| k.bucket).collect();
        let okey: Vec<&str> = outcomes.iter().map(|(k, _)| k.okey.as_str()).collect();
        let odetail: Vec<&str> = outcomes.iter().map(|(k, _)| k.odetail.as_str()).collect();
        let n: Vec<i64> = outcomes.iter().map(|(_, d)| d.n).collect();
        let stale: Vec<i64> = outcomes.iter().map(|(_, d)| d.stale).collect();
        tx.execute(
            "INSERT INTO rollup_outcomes (dataset, grain, device, bucket, okey, odetail, n, stale) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) \
             ON CONFLICT (dataset, grain, device, bucket, okey, odetail) DO UPDATE SET n = rollup_outcomes.n + EXCLUDED.n, stale = rollup_outcomes.stale + EXCLUDED.stale",
            &[&ds, &grain, &device, &bucket, &okey, &odetail, &n, &stale],
        )?;
    }
    Ok(())
}

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
            match self.ingest_once(records) {
                Err(e) if is_retryable(&e) && attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                other => return other,
            }
        }
    }

    fn analytics(&self, query: &AnalyticsQuery) -> Result<AnalyticsResult, StoreError> {
        self.with_reader(|db| analytics::run(db, query, Utc::now()))
    }

    fn devices(&self, dataset: Dataset) -> Result<Vec<String>, StoreError> {
        self.with_reader(|db| {
            let rows = db.query(
                "SELECT DISTINCT device FROM rollup_counts WHERE dataset = $1 AND grain = 'day' AND device <> '*' ORDER BY device",
                &[dataset.as_str().into()],
            )?;
            Ok(rows.into_iter().map(|r| r[0].text()).collect())
        })
    }

    fn count(&self, dataset: Dataset, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE ts >= $1 AND ts < $2", analytics::raw_table(dataset));
        self.with_reader(|db| {
            let rows = db.query(&sql, &[from.timestamp_micros().into(), to.timestamp_micros().into()])?;
            Ok(rows.first().map_or(0, |r| r[0].i64()) as u64)
        })
    }

    fn export_raw(
        &self,
        dataset: Dataset,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        device: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        self.with_reader(|db| export::raw(db, dataset, from, to, device, out))
    }

    fn apply_retention(&self, now: DateTime<Utc>, retention: &Retention) -> Result<RetentionOutcome, StoreError> {
        let mut client = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = client.transaction()?;
        let mut outcome = RetentionOutcome::default();
        {
            let db = Pg(RefCell::new(&mut tx));
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
        let mut client = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        client.batch_execute("ANALYZE enum_queries, sip_calls, rollup_counts, rollup_numbers, rollup_outcomes")?;
        Ok(())
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        let mut client = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        Ok(client.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])?.get(0))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
