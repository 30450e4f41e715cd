//! The sync task: every interval, one pipelined round trip to Redis that appends this
//! process's batch to the namespace's stream and reads the batches others appended since the
//! last read. It never touches the answer path: the engine counts in its own table; this task
//! drains what was counted and merges what others counted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio::task::JoinHandle;
use tollgate_alarms::{Alarms, SHARED_COUNTERS_UNREACHABLE};
use tollgate_logthrottle::LogThrottle;
use tollgate_policy::VelocityTable;
use tollgate_policy::velocity::CountedCall;

use crate::status::SyncStatus;
use crate::wire::Batch;

/// Certificates for `rediss://`.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// The CA that signed Redis's certificate, PEM (none: the system's roots).
    pub root_pem: Option<Vec<u8>>,
    /// This server's certificate and key, PEM, for Redis configured with `tls-auth-clients`.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// What the sync task needs to know.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `redis://` or `rediss://` URL (with `sentinels`: its scheme, password and database apply
    /// to the master, its host is not used).
    pub url: String,
    /// Redis Sentinel addresses (host, port); empty: `url` is the Redis.
    pub sentinels: Vec<(String, u16)>,
    /// The master's name at the sentinels.
    pub sentinel_master: String,
    /// The URL without its password (for the log, alarms and `lookup`).
    pub shown_url: String,
    /// Certificates for `rediss://`.
    pub tls: RedisTls,
    /// Key prefix shared by the engines and probes that count together.
    pub namespace: String,
    /// This server's name (the alarm's scope, and the start of the origin of its batches).
    pub node: String,
    /// How often to exchange.
    pub interval: Duration,
    /// How long batches stay in Redis, and how far back a (re)connecting engine reads.
    pub history: Duration,
    /// A probe not heard from for this long is forgotten.
    pub probe_ttl: Duration,
    /// The longest one exchange (or a connection attempt) may take.
    pub timeout: Duration,
    /// Counted calls kept while Redis is unreachable.
    pub max_pending: usize,
    /// This process runs a probe: publish its calls in progress.
    pub publish_in_progress: bool,
    /// This process runs an engine: read the others' batches.
    pub read: bool,
}

/// Entries read per XREAD (more are read on the next round, at once).
const READ_COUNT: usize = 2_000;
/// Most counted calls in one stream entry (a longer batch goes in several entries).
const MAX_ENTRY_CALLS: usize = 20_000;
/// Most entries appended per round trip: after an outage the calls kept meanwhile go out over
/// several round trips, each well within the timeout, instead of one that might never be.
const MAX_ENTRIES_PER_ROUND: usize = 4;
/// One line per 10 s about entries that are not batches; the others are counted.
static REFUSED_LOG: LogThrottle = LogThrottle::new(10_000);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The running exchange.
pub struct SharedCounters {
    status: Arc<SyncStatus>,
    task: JoinHandle<()>,
}

impl SharedCounters {
    /// Starts exchanging `table`'s counts through the Redis of `settings` (the table must share:
    /// [`VelocityTable::with_sharing`]). A URL that does not parse is an error now; a Redis that
    /// does not answer is not (the task keeps trying, with the alarm raised).
    pub fn start(
        settings: SyncSettings,
        table: Arc<VelocityTable>,
        alarms: Arc<Alarms>,
    ) -> Result<SharedCounters, redis::RedisError> {
        let connector = Connector::new(&settings)?;
        let status = Arc::new(SyncStatus::new(settings.shown_url.clone()));
        table.attach_sync(status.clone());
        let origin = format!("{}/{:08x}", settings.node, rand::random::<u32>());
        let exchange = Exchange {
            key: format!("{}:events", settings.namespace),
            origin,
            connector,
            conn: None,
            next_connect: Instant::now(),
            backoff: settings.interval,
            pending: VecDeque::new(),
            pending_calls: BTreeMap::new(),
            full_calls_due: true,
            last_calls_sent: Instant::now(),
            read_from: None,
            table,
            alarms,
            status: status.clone(),
            settings,
        };
        let task = tokio::spawn(exchange.run());
        Ok(SharedCounters { status, task })
    }

    /// How the exchange is going.
    pub fn status(&self) -> &Arc<SyncStatus> {
        &self.status
    }
}

impl Drop for SharedCounters {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens connections to the Redis in use: the one of the URL, or the master the sentinels
/// name now (asked again on every connection, so a failover is followed).
enum Connector {
    Direct(redis::Client),
    Sentinel(redis::sentinel::SentinelClient),
}

impl Connector {
    fn new(s: &SyncSettings) -> Result<Connector, redis::RedisError> {
        let certs = || redis::TlsCertificates {
            client_tls: s
                .tls
                .client
                .clone()
                .map(|(client_cert, client_key)| redis::ClientTlsConfig { client_cert, client_key }),
            root_cert: s.tls.root_pem.clone(),
        };
        let tls = s.url.starts_with("rediss://");
        if s.sentinels.is_empty() {
            return Ok(Connector::Direct(if tls {
                redis::Client::build_with_tls(s.url.as_str(), certs())?
            } else {
                redis::Client::open(s.url.as_str())?
            }));
        }
        use redis::IntoConnectionInfo;
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        let master = s.url.as_str().into_connection_info()?;
        let master = master.redis_settings();
        let addrs = s.sentinels.iter().cloned().map(|(host, port)| {
            if tls {
                redis::ConnectionAddr::TcpTls { host, port, insecure: false, tls_params: None }
            } else {
                redis::ConnectionAddr::Tcp(host, port)
            }
        });
        let mut b = SentinelClientBuilder::new(addrs, &s.sentinel_master, SentinelServerType::Master)?
            .set_client_to_redis_db(master.db());
        if let Some(user) = master.username() {
            b = b.set_client_to_redis_username(user).set_client_to_sentinel_username(user);
        }
        if let Some(password) = master.password() {
            b = b.set_client_to_redis_password(password).set_client_to_sentinel_password(password);
        }
        if tls {
            b = b
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_redis_certificates(certs())
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_certificates(certs());
        }
        let client = b.build()?;
        Ok(Connector::Sentinel(client))
    }

    async fn connect(&mut self) -> Result<MultiplexedConnection, redis::RedisError> {
        match self {
            Connector::Direct(c) => c.get_multiplexed_async_connection().await,
            Connector::Sentinel(c) => c.get_async_connection().await,
        }
    }
}

struct Exchange {
    settings: SyncSettings,
    key: String,
    origin: String,
    connector: Connector,
    conn: Option<MultiplexedConnection>,
    next_connect: Instant,
    backoff: Duration,
    /// Counted calls not yet in Redis, oldest first.
    pending: VecDeque<CountedCall>,
    /// Callers whose calls in progress changed since the last batch (count now).
    pending_calls: BTreeMap<u64, u32>,
    full_calls_due: bool,
    last_calls_sent: Instant,
    /// The id of the last entry read; none: read the last `history` first.
    read_from: Option<String>,
    table: Arc<VelocityTable>,
    alarms: Arc<Alarms>,
    status: Arc<SyncStatus>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Exchange {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.collect();
            if self.conn.is_none() && Instant::now() >= self.next_connect {
                self.connect().await;
            }
            // A full read (catching up) goes on at once, up to a bound per tick.
            for _ in 0..16 {
                if self.conn.is_none() || !self.exchange().await {
                    break;
                }
            }
        }
    }

    /// Takes what the table counted since the last tick, keeping at most `max_pending` calls
    /// and none older than its window.
    fn collect(&mut self) {
        self.pending.extend(self.table.drain_counted());
        let now = now_us();
        let mut dropped = 0u64;
        while self.pending.len() > self.settings.max_pending {
            self.pending.pop_front();
            dropped += 1;
        }
        while self.pending.front().is_some_and(|c| c.at_us <= now - c.velocity.window_us()) {
            self.pending.pop_front();
            dropped += 1;
        }
        self.status.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.status.pending.store(self.pending.len() as u64, Ordering::Relaxed);
        for (caller, n) in self.table.drain_shared_calls() {
            self.pending_calls.insert(caller.as_u64(), n);
        }
        if self.settings.read {
            let ttl = self.settings.probe_ttl.as_micros() as i64;
            for probe in self.table.expire_remote_calls(now - ttl) {
                tracing::warn!(
                    probe,
                    "a probe's calls in progress are forgotten: not heard from for shared_counters.probe_ttl"
                );
            }
        }
    }

    async fn connect(&mut self) {
        let timeout = self.settings.timeout;
        let attempt = tokio::time::timeout(timeout, self.connector.connect()).await;
        match attempt {
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                // After a gap, read the last `history` again (merging is idempotent), and tell
                // the calls in progress in full.
                self.read_from = None;
                self.full_calls_due = true;
            }
            Ok(Err(e)) => self.down(format!("cannot connect: {e}")),
            Err(_) => self.down(format!("cannot connect within {} ms", self.settings.timeout.as_millis())),
        }
    }

    /// Marks Redis unreachable: the alarm, the counters, a later reconnection.
    fn down(&mut self, why: String) {
        self.conn = None;
        self.status.errors.fetch_add(1, Ordering::Relaxed);
        let was_up = self.status.up.swap(false, Ordering::Relaxed);
        self.next_connect = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let detail = format!("{}: {why}", self.settings.shown_url);
        if self.alarms.raise(SHARED_COUNTERS_UNREACHABLE, &self.settings.node, detail.clone()) || was_up {
            tracing::error!(redis = %self.settings.shown_url, error = %why, "shared counters: Redis unreachable; counting this server's calls only until it returns");
        }
        *self.status.last_error.lock().unwrap_or_else(|e| e.into_inner()) = detail;
    }

    fn up(&mut self) {
        self.backoff = self.settings.interval;
        self.status.last_ok_us.store(now_us(), Ordering::Relaxed);
        if !self.status.up.swap(true, Ordering::Relaxed) {
            self.alarms.clear(SHARED_COUNTERS_UNREACHABLE, &self.settings.node);
            tracing::info!(redis = %self.settings.shown_url, "shared counters: exchanging with Redis");
        }
    }

    /// The batches to append now: counted calls (several entries when many) and, from a probe,
    /// calls in progress (changes, or all of them every `probe_ttl / 2`, which is also the
    /// heartbeat that keeps them alive at the engines).
    fn batches(&mut self) -> (Vec<Batch>, usize) {
        let sent_us = now_us();
        let mut out = Vec::new();
        let pending = self.pending.make_contiguous();
        let calls = &pending[..pending.len().min(MAX_ENTRY_CALLS * MAX_ENTRIES_PER_ROUND)];
        for chunk in calls.chunks(MAX_ENTRY_CALLS) {
            let mut b = Batch { origin: self.origin.clone(), sent_us, ..Default::default() };
            b.add_counted(chunk);
            out.push(b);
        }
        let sent = calls.len();
        if self.settings.publish_in_progress {
            let heartbeat_due = self.last_calls_sent.elapsed() >= self.settings.probe_ttl / 2;
            if self.full_calls_due || heartbeat_due {
                let all = self.table.concurrent_snapshot().into_iter().map(|(e, n)| (e.as_u64(), n)).collect();
                self.full_calls_due = false;
                self.pending_calls.clear();
                self.last_calls_sent = Instant::now();
                push_calls(&mut out, &self.origin, sent_us, all, true);
            } else if !self.pending_calls.is_empty() {
                let changed = std::mem::take(&mut self.pending_calls).into_iter().collect();
                self.last_calls_sent = Instant::now();
                push_calls(&mut out, &self.origin, sent_us, changed, false);
            }
        }
        (out, sent)
    }

    /// One round trip. Returns true when more is waiting: entries to read, or calls to send.
    async fn exchange(&mut self) -> bool {
        let (batches, sent) = self.batches();
        let now_ms = now_us() / 1000;
        let history_ms = self.settings.history.as_millis() as i64;
        let mut pipe = redis::pipe();
        for b in &batches {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MINID")
                .arg("~")
                .arg(format!("{}-0", now_ms - history_ms))
                .arg("*")
                .arg("o")
                .arg(&self.origin)
                .arg("d")
                .arg(b.encode())
                .ignore();
        }
        let from = self.read_from.clone().unwrap_or_else(|| format!("{}-0", (now_ms - history_ms).max(0)));
        if self.settings.read {
            pipe.cmd("XREAD").arg("COUNT").arg(READ_COUNT).arg("STREAMS").arg(&self.key).arg(&from);
        } else if batches.is_empty() {
            // Nothing to send or read: a PING keeps the state (and the alarm) true.
            pipe.cmd("PING");
        }
        let Some(conn) = self.conn.as_mut() else { return false };
        let answer = tokio::time::timeout(self.settings.timeout, pipe.query_async::<Vec<redis::Value>>(conn)).await;
        let values = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.requeue_calls(&batches);
                self.down(e.to_string());
                return false;
            }
            Err(_) => {
                self.requeue_calls(&batches);
                self.down(format!("no answer within {} ms", self.settings.timeout.as_millis()));
                return false;
            }
        };
        // Sent: what was pending is in Redis now.
        self.pending.drain(..sent.min(self.pending.len()));
        self.status.pending.store(self.pending.len() as u64, Ordering::Relaxed);
        self.status.published.fetch_add(sent as u64, Ordering::Relaxed);
        self.status.batch_events.store(sent as u64, Ordering::Relaxed);
        self.up();
        let more_to_send = !self.pending.is_empty();
        if !self.settings.read {
            return more_to_send;
        }
        let reply = match values.into_iter().last().map(redis::from_redis_value::<Option<StreamReadReply>>) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                self.down(format!("unexpected XREAD reply: {e}"));
                return false;
            }
            None => None,
        };
        self.read_from = Some(from);
        let Some(reply) = reply else { return more_to_send };
        let mut read = 0;
        for key in reply.keys {
            for entry in key.ids {
                read += 1;
                self.apply(&entry);
                self.read_from = Some(entry.id);
            }
        }
        read >= READ_COUNT || more_to_send
    }

    /// Calls in progress not sent are sent in full next time.
    fn requeue_calls(&mut self, batches: &[Batch]) {
        if batches.iter().any(|b| b.in_progress.is_some()) {
            self.full_calls_due = true;
        }
    }

    /// Applies one entry another engine or probe appended.
    fn apply(&self, entry: &redis::streams::StreamId) {
        // This process's own batches come back too: skipped by the origin field, unread.
        if entry.get::<String>("o").is_some_and(|o| o == self.origin) {
            return;
        }
        let bytes: Option<Vec<u8>> = entry.get("d");
        let batch = match bytes.as_deref().map(Batch::decode) {
            Some(Ok(b)) => b,
            refused => {
                self.status.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = REFUSED_LOG.allow() {
                    let why = match refused {
                        Some(Err(e)) => e.to_string(),
                        _ => "no field d".to_string(),
                    };
                    tracing::warn!(entry = %entry.id, error = %why, left_out, "shared counters: an entry in Redis is not a batch; ignored (counted in tollgate_shared_counters_refused_batches_total)");
                }
                return;
            }
        };
        if batch.origin == self.origin {
            return;
        }
        let calls = batch.counted_calls();
        if !calls.is_empty() {
            self.table.merge_counted(&calls);
            self.status.received.fetch_add(calls.len() as u64, Ordering::Relaxed);
            if let Some(newest) = calls.iter().map(|c| c.at_us).max() {
                self.status.lag_us.store((now_us() - newest).max(0), Ordering::Relaxed);
            }
        }
        if let Some(in_progress) = batch.in_progress_calls() {
            self.table.apply_remote_calls(&batch.origin, batch.sent_us, &in_progress, batch.in_progress_full);
        }
    }
}

fn push_calls(out: &mut Vec<Batch>, origin: &str, sent_us: i64, calls: Vec<(u64, u32)>, full: bool) {
    out.push(Batch {
        origin: origin.to_string(),
        sent_us,
        counted: Vec::new(),
        in_progress: Some(calls),
        in_progress_full: full,
    });
}
