//! Shipping: sends spooled records to the collector and deletes only what it acknowledged.
//!
//! For each segment the spool keeps an acknowledged offset (in `SEGMENT.ack`). The shipper
//! reads the frames after that offset, sends them in batches through an [`Uplink`], and moves
//! the offset past a batch ([`Spool::acknowledge`]) only when the uplink reports the batch
//! stored. A segment no lane writes to any more is removed ([`Spool::remove_acknowledged`])
//! once everything in it is acknowledged; the spool refuses to remove one a lane still has
//! open, and no other process writes the directory (the spool holds its lock). If the process
//! dies between the collector storing a batch and the offset being written, the batch is sent
//! again and the collector ignores the records it already has (record ids are primary keys):
//! each record is stored exactly once. Several batches are in flight at once
//! ([`ShipperOptions::in_flight`]); a segment's offset moves only past a contiguous run of
//! acknowledged batches ([`crate::pipeline`]), so what a crash re-sends is exactly what was not
//! acknowledged in order.
//!
//! While the collector is unreachable nothing is removed and the unacknowledged backlog grows
//! (up to the spool's limit); when it comes back the backlog is sent, segment by segment.
//! Segments handed over by side spools (see [`crate::spool::side`]) are shipped like the others.
//!
//! A collector of an older release refuses a batch holding records of a newer format than it
//! reads ([`DeliveryError::RefusedNewer`]): that is not an outage. Only the refused batch's lane
//! is held back (nothing of it past the refused batch is acknowledged, so its order holds, and
//! it is tried again after [`ShipperOptions::refused_retry`]); every other lane keeps shipping,
//! and [`ShipperStats::connected`] stays true. An engine's SIP redirect decisions (record
//! format 3, in lanes of their own) wait this way in the spool, while its ENUM records flow,
//! until the collector is upgraded.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::spool::Spool;
#[cfg(test)]
use crate::spool::segments;

/// A collector outage retries every few seconds for as long as it lasts: one line a minute,
/// saying how many retries were not logged (the metrics count every failure).
static UNREACHABLE_LOG: tollgate_logthrottle::LogThrottle = tollgate_logthrottle::LogThrottle::new(60_000);
/// Spool read or update failures (out of descriptors, disk errors): one line every 10 s.
static IO_ERROR_LOG: tollgate_logthrottle::LogThrottle = tollgate_logthrottle::LogThrottle::new(10_000);
/// Refusals of newer records last until the collector is upgraded: one line every 10 minutes.
static REFUSED_NEWER_LOG: tollgate_logthrottle::LogThrottle = tollgate_logthrottle::LogThrottle::new(600_000);

/// Why a batch was not stored. Either way it stays in the spool and is sent again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The batch did not reach a collector that would store it: unreachable, no answer, or a
    /// refusal that applies to every batch (a wrong token, a full quarantine). The pass ends
    /// and the shipper retries with a growing pause.
    #[error("{0}")]
    Failed(String),
    /// The collector answered and refused the batch because it holds records of a newer format
    /// than it reads (an older release). Only this batch's lane waits, for an upgraded
    /// collector; other lanes keep shipping.
    #[error("{0}")]
    RefusedNewer(String),
}

/// Where batches go.
pub trait Uplink: Send + Sync + 'static {
    /// Delivers `records` records as NDJSON (one record's JSON per line). `Ok` means the
    /// collector has stored them durably; anything else is retried later. Called from several
    /// threads at once when [`ShipperOptions::in_flight`] is above 1.
    fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError>;
}

/// Shipper settings.
#[derive(Debug, Clone)]
pub struct ShipperOptions {
    /// Most records per batch.
    pub batch_records: usize,
    /// Most bytes per batch (a batch holds at least one record).
    pub batch_bytes: usize,
    /// Pause between passes when there is nothing to send.
    pub idle: Duration,
    /// Longest pause between retries while the collector is unreachable.
    pub max_backoff: Duration,
    /// Most batches delivered at once (pipelining; see [`crate::pipeline`]): with 2, a collector
    /// stores one batch while the next one travels. 1: one batch at a time.
    pub in_flight: usize,
    /// Pause before a lane whose batch the collector refused as of a newer format is tried
    /// again (its other lanes ship meanwhile).
    pub refused_retry: Duration,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            batch_records: 2000,
            batch_bytes: 1 << 20,
            idle: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            in_flight: 1,
            refused_retry: Duration::from_secs(30),
        }
    }
}

/// Shipper counters and state, for metrics and alarms. What waits to be shipped is the spool's
/// to say, exactly and at any moment: [`Spool::backlog`].
#[derive(Debug, Default)]
pub struct ShipperStats {
    /// Records acknowledged by the collector.
    pub shipped: AtomicU64,
    /// Batches acknowledged.
    pub batches: AtomicU64,
    /// Deliveries that failed (and will be retried).
    pub failures: AtomicU64,
    /// Segments deleted after full acknowledgement.
    pub segments_deleted: AtomicU64,
    /// Bytes set aside in `.damaged` files (corrupt frames that could not be read).
    pub damaged_bytes: AtomicU64,
    /// Batches the collector refused as holding records of a newer format than it reads
    /// (they wait in the spool; not counted in `failures`).
    pub refused_newer: AtomicU64,
    /// Lanes wait because the collector refused their records as of a newer format: set by a
    /// pass that met such a refusal, cleared once no lane is held back.
    pub holding_newer: AtomicBool,
    /// False after a failed delivery, true after one the collector answered (stored, or
    /// refused as of a newer format).
    pub connected: AtomicBool,
    /// The last delivery error (a refusal of newer records included).
    pub last_error: Mutex<Option<String>>,
    /// Lanes held back after a refusal of newer records, and when each is tried again.
    pub(crate) held_lanes: Mutex<HashMap<String, Instant>>,
}

/// A running shipper thread.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    stats: Arc<ShipperStats>,
    handle: Option<JoinHandle<()>>,
}

/// Why a pass stopped, or what it could not send.
#[derive(Debug)]
pub enum PassError {
    /// The uplink failed ([`DeliveryError::Failed`]); the pass ended there; retry later.
    Delivery(String),
    /// The collector refused batches of newer records ([`DeliveryError::RefusedNewer`]): their
    /// lanes are held back, every other lane was shipped (`shipped` records acknowledged).
    RefusedNewer {
        /// Records acknowledged in this pass nonetheless.
        shipped: u64,
        /// The collector's refusal.
        error: String,
    },
    /// The spool could not be read or updated.
    Io(io::Error),
}

impl From<io::Error> for PassError {
    fn from(e: io::Error) -> Self {
        PassError::Io(e)
    }
}

/// One pass over the spool: sends everything not yet acknowledged, deletes finished segments.
/// Returns the number of records acknowledged.
pub fn ship_pass(
    spool: &Spool,
    uplink: &dyn Uplink,
    opts: &ShipperOptions,
    stats: &ShipperStats,
) -> Result<u64, PassError> {
    crate::pipeline::ship_segments(spool, uplink, opts, stats)
}

impl Shipper {
    /// Starts shipping `spool` through `uplink` on a thread of its own.
    pub fn start(spool: Spool, uplink: Arc<dyn Uplink>, opts: ShipperOptions) -> io::Result<Shipper> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ShipperStats::default());
        let (t_stop, t_stats) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new().name("spool-shipper".into()).spawn(move || {
            // Shipping waits when the machine is saturated; answering does not.
            crate::priority::lower_current_thread();
            let mut backoff = opts.idle;
            while !t_stop.load(Ordering::Acquire) {
                let pause = match ship_pass(&spool, uplink.as_ref(), &opts, &t_stats) {
                    Ok(0) => {
                        backoff = opts.idle;
                        opts.idle
                    }
                    Ok(_) => {
                        backoff = opts.idle;
                        Duration::ZERO
                    }
                    Err(PassError::Delivery(e)) => {
                        if let Some(left_out) = UNREACHABLE_LOG.allow() {
                            tracing::warn!(error = %e, retry_in = ?backoff, left_out, "delivery to the collector failed; records stay in the spool");
                        }
                        let pause = backoff;
                        backoff = (backoff * 2).min(opts.max_backoff);
                        pause
                    }
                    Err(PassError::RefusedNewer { shipped, error }) => {
                        if let Some(left_out) = REFUSED_NEWER_LOG.allow() {
                            tracing::warn!(error = %error, retry_in = ?opts.refused_retry, left_out, "the collector refused records of a newer format (upgrade it); they stay in the spool, other records ship");
                        }
                        backoff = opts.idle;
                        if shipped > 0 { Duration::ZERO } else { opts.idle }
                    }
                    Err(PassError::Io(e)) => {
                        if let Some(left_out) = IO_ERROR_LOG.allow() {
                            tracing::error!(error = %e, left_out, "spool shipping failed");
                        }
                        opts.max_backoff
                    }
                };
                let until = Instant::now() + pause;
                while !t_stop.load(Ordering::Acquire) && Instant::now() < until {
                    std::thread::park_timeout(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
                }
            }
        })?;
        Ok(Shipper { stop, stats, handle: Some(handle) })
    }

    /// Counters and state.
    pub fn stats(&self) -> &Arc<ShipperStats> {
        &self.stats
    }

    /// Stops after the batch in flight.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;
    use crate::spool::SpoolOptions;
    use std::collections::HashSet;
    use std::fs;

    use crate::fixtures::enum_record as record;

    /// A collector stand-in that stores ids, can be switched off, and can "crash" after storing
    /// (so the acknowledgement is lost).
    struct Collector {
        stored: Mutex<Vec<String>>,
        down: AtomicBool,
        lose_next_ack: AtomicBool,
        /// Batches still accepted before it goes down (negative: no end).
        batches_left: std::sync::atomic::AtomicI64,
    }

    impl Default for Collector {
        fn default() -> Self {
            Collector {
                stored: Mutex::default(),
                down: AtomicBool::new(false),
                lose_next_ack: AtomicBool::new(false),
                batches_left: std::sync::atomic::AtomicI64::new(-1),
            }
        }
    }

    impl Uplink for Collector {
        fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(DeliveryError::Failed("connection refused".into()));
            }
            if self.batches_left.fetch_sub(1, Ordering::Relaxed) == 0 {
                self.batches_left.store(0, Ordering::Relaxed);
                return Err(DeliveryError::Failed("connection refused".into()));
            }
            let lines: Vec<&[u8]> = ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), records);
            let mut stored = self.stored.lock().unwrap();
            for l in lines {
                let r: Record = serde_json::from_slice(l).unwrap();
                stored.push(r.id().to_string());
            }
            if self.lose_next_ack.swap(false, Ordering::Relaxed) {
                return Err(DeliveryError::Failed("stored, but the answer was lost".into()));
            }
            Ok(())
        }
    }

    fn opts() -> ShipperOptions {
        ShipperOptions { batch_records: 7, ..Default::default() }
    }

    /// An uplink that notes the spool's backlog while a batch is in flight.
    struct Watching {
        spool: Spool,
        seen: Mutex<Vec<crate::spool::Backlog>>,
    }

    impl Uplink for Watching {
        fn deliver(&self, _ndjson: &[u8], _records: usize) -> Result<(), DeliveryError> {
            self.seen.lock().unwrap().push(self.spool.backlog());
            Ok(())
        }
    }

    #[test]
    fn the_backlog_gauge_counts_records_waiting_while_a_pass_runs() {
        // The reported bug: under load a pass lasts as long as the backlog takes to drain, and
        // the gauge was written only at its end, so it read 0 while records waited.
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let stats = ShipperStats::default();
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..50 {
            lane.append(&record(i)).unwrap();
        }
        let up = Watching { spool: spool.clone(), seen: Mutex::default() };
        assert_eq!(ship_pass(&spool, &up, &opts(), &stats).unwrap(), 50);
        let seen = up.seen.lock().unwrap().clone();
        let records: Vec<u64> = seen.iter().map(|b| b.records).collect();
        assert_eq!(records.len(), 8, "batches of 7");
        // While batch i is sent, at most the i batches before it are acknowledged (one at a
        // time: exactly those); every other record still waits.
        for (i, r) in records.iter().enumerate() {
            assert!(*r > 0 && *r >= 50 - 7 * i as u64, "batch {i}: {records:?}");
        }
        assert!(seen.iter().all(|b| b.bytes > 0 && b.oldest.is_some()), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].bytes >= w[1].bytes), "the backlog only shrinks: {seen:?}");
        assert_eq!(spool.backlog(), crate::spool::Backlog::default(), "nothing waits after the pass");
        drop(lane);
    }

    #[test]
    fn ships_everything_and_deletes_finished_segments() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 4096, ..Default::default() }).unwrap();
        let c = Collector::default();
        let stats = ShipperStats::default();
        let mut lane = spool.lane("w0").unwrap();
        let written: Vec<Record> = (0..50).map(record).collect();
        for r in &written {
            lane.append(r).unwrap();
        }
        assert_eq!(ship_pass(&spool, &c, &opts(), &stats).unwrap(), 50);
        let ids: Vec<String> = written.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(*c.stored.lock().unwrap(), ids);
        // Finished segments are gone, the open one stays.
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        assert!(stats.segments_deleted.load(Ordering::Relaxed) > 0);
        // Nothing new: nothing sent.
        assert_eq!(ship_pass(&spool, &c, &opts(), &stats).unwrap(), 0);
        drop(lane);
        ship_pass(&spool, &c, &opts(), &stats).unwrap();
        assert!(segments(dir.path()).unwrap().is_empty(), "a closed, acknowledged segment is deleted");
        assert_eq!((spool.usage().disk_bytes, spool.usage().unacked_bytes), (0, 0));
    }

    #[test]
    fn collector_outage_keeps_records_and_sends_the_backlog_later() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 4096, ..Default::default() }).unwrap();
        let c = Collector::default();
        let stats = ShipperStats::default();
        let mut lane = spool.lane("w0").unwrap();
        c.down.store(true, Ordering::Relaxed);
        for i in 0..40 {
            lane.append(&record(i)).unwrap();
        }
        assert!(matches!(ship_pass(&spool, &c, &opts(), &stats), Err(PassError::Delivery(_))));
        assert!(!stats.connected.load(Ordering::Relaxed));
        let b = spool.backlog();
        assert_eq!(b.records, 40, "every record written waits");
        assert!(b.bytes > 0 && b.bytes == spool.usage().unacked_bytes && b.oldest.is_some(), "{b:?}");
        assert!(segments(dir.path()).unwrap().len() > 1, "nothing deleted while the collector is down");
        c.down.store(false, Ordering::Relaxed);
        while ship_pass(&spool, &c, &opts(), &stats).unwrap() > 0 {}
        assert_eq!(c.stored.lock().unwrap().len(), 40);
        assert!(stats.connected.load(Ordering::Relaxed));
    }

    #[test]
    fn a_lost_acknowledgement_means_a_resend_not_a_loss() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let c = Collector::default();
        let stats = ShipperStats::default();
        let mut lane = spool.lane("w0").unwrap();
        let written: Vec<Record> = (0..10).map(record).collect();
        for r in &written {
            lane.append(r).unwrap();
        }
        c.lose_next_ack.store(true, Ordering::Relaxed);
        assert!(ship_pass(&spool, &c, &opts(), &stats).is_err());
        ship_pass(&spool, &c, &opts(), &stats).unwrap();
        let stored = c.stored.lock().unwrap();
        let unique: HashSet<&String> = stored.iter().collect();
        assert_eq!(unique.len(), 10, "every record delivered");
        assert_eq!(stored.len(), 17, "the unacknowledged batch of 7 was sent twice (the collector deduplicates)");
    }

    #[test]
    fn disk_limit_refuses_new_records_and_keeps_accepted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            dir.path(),
            SpoolOptions { max_unacked_bytes: 100_000, segment_bytes: 10_000, ..Default::default() },
        )
        .unwrap();
        let mut lane = spool.lane("w0").unwrap();
        let mut accepted = 0;
        let mut refused = 0;
        let mut near_full_seen = false;
        for i in 0..1000 {
            match lane.append(&record(i)) {
                Ok(()) => accepted += 1,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
                    refused += 1;
                }
            }
            near_full_seen |= spool.usage().near_full;
        }
        assert!(near_full_seen && refused > 0 && accepted > 100, "{accepted} accepted, {refused} refused");
        assert!(spool.usage().unacked_bytes <= 100_000);
        assert!(spool.usage().full);
        assert_eq!(spool.stats().refused.load(Ordering::Relaxed), refused);
        // Everything accepted is still there and ships once a collector answers.
        let c = Collector::default();
        let stats = ShipperStats::default();
        while ship_pass(&spool, &c, &ShipperOptions::default(), &stats).unwrap() > 0 {}
        assert_eq!(c.stored.lock().unwrap().len(), accepted);
        assert!(!spool.usage().near_full, "space is released after shipping");
    }

    #[test]
    fn corrupt_finished_segment_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        {
            let mut lane = spool.lane("w0").unwrap();
            for i in 0..5 {
                lane.append(&record(i)).unwrap();
            }
        }
        let seg = segments(dir.path()).unwrap().remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let c = Collector::default();
        let stats = ShipperStats::default();
        assert_eq!(ship_pass(&spool, &c, &opts(), &stats).unwrap(), 4);
        assert!(seg.with_extension("damaged").exists());
        assert!(stats.damaged_bytes.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_healthy_collector_keeps_many_lanes_from_filling_the_spool() {
        // 20 lanes whose open segments together could hold twice the limit (the reported
        // lock-up: 20 lanes of 1 MiB segments under a 16 MiB limit, scaled down).
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            dir.path(),
            SpoolOptions { max_unacked_bytes: 100_000, segment_bytes: 10_000, ..Default::default() },
        )
        .unwrap();
        let mut lanes: Vec<_> = (0..20).map(|i| spool.lane(&format!("udp0_{i}")).unwrap()).collect();
        let c = Collector::default();
        let stats = ShipperStats::default();
        let mut written = 0;
        for i in 0..5000u64 {
            lanes[(i % 20) as usize].append(&record(i)).expect("a record is refused with a healthy collector");
            written += 1;
            if i % 100 == 99 {
                ship_pass(&spool, &c, &ShipperOptions::default(), &stats).unwrap();
            }
        }
        ship_pass(&spool, &c, &ShipperOptions::default(), &stats).unwrap();
        assert_eq!(spool.stats().refused.load(Ordering::Relaxed), 0);
        assert_eq!(c.stored.lock().unwrap().len(), written);
        let u = spool.usage();
        assert_eq!(u.unacked_bytes, 0);
        assert_eq!(spool.backlog(), crate::spool::Backlog::default());
        // On disk: at most one segment per lane (under 10 kB plus one record each).
        assert!(u.disk_bytes < 20 * 11_000, "{u:?}");
        let on_disk: u64 = segments(dir.path()).unwrap().iter().map(|s| fs::metadata(s).unwrap().len()).sum();
        assert_eq!(u.disk_bytes, on_disk);
    }

    #[test]
    fn a_side_spool_hands_over_what_it_could_not_ship() {
        let main = tempfile::tempdir().unwrap();
        let server = Spool::open(main.path(), SpoolOptions::default()).unwrap();
        let mut server_lane = server.lane("udp0_0").unwrap();
        server_lane.append(&record(1)).unwrap();
        // A second writer finds the spool locked and writes a side spool of its own.
        assert!(matches!(Spool::open(main.path(), SpoolOptions::default()), Err(crate::spool::OpenError::InUse(_))));
        let side = Spool::open_side(main.path(), SpoolOptions::default()).unwrap();
        let mut lane = side.lane("pcap").unwrap();
        let calls: Vec<Record> = (100..130).map(record).collect();
        for r in &calls {
            lane.append(r).unwrap();
        }
        assert!(side.hand_over(main.path()).is_err(), "not while its lane is open");
        drop(lane);
        // It ships one batch, then the collector goes away.
        let c = Collector::default();
        let stats = ShipperStats::default();
        c.batches_left.store(1, Ordering::Relaxed);
        assert!(ship_pass(&side, &c, &opts(), &stats).is_err());
        assert_eq!(c.stored.lock().unwrap().len(), 7);
        c.batches_left.store(-1, Ordering::Relaxed);
        let moved = side.hand_over(main.path()).unwrap();
        assert_eq!(moved.segments, 1);
        assert!(!main.path().join("side").read_dir().unwrap().any(|_| true), "the side directory is gone");
        // The server's shipper counts the handed-over segment and sends what was not acknowledged.
        let before = server.usage().unacked_bytes;
        while ship_pass(&server, &c, &opts(), &stats).unwrap() > 0 {}
        let stored = c.stored.lock().unwrap().clone();
        let server_record = crate::spool::read_segment(&main.path().join("udp0_0-0000000001.seg")).unwrap();
        let want: HashSet<String> = std::iter::once(server_record.records[0].id().to_string())
            .chain(calls.iter().map(|r| r.id().to_string()))
            .collect();
        let got: HashSet<String> = stored.iter().cloned().collect();
        assert_eq!(got, want, "the server's record and every call");
        assert_eq!(stored.len(), 31, "each sent once: the 7 acknowledged by the side spool were not sent again");
        assert!(before > 0);
        assert_eq!(server.usage().unacked_bytes, 0);
        assert_eq!(
            server.backlog(),
            crate::spool::Backlog::default(),
            "the handed-over records were counted, then shipped"
        );
        drop(server_lane);
    }

    #[test]
    fn the_side_spool_of_a_writer_that_died_is_taken_over() {
        let main = tempfile::tempdir().unwrap();
        let server = Spool::open(main.path(), SpoolOptions::default()).unwrap();
        let live = Spool::open_side(main.path(), SpoolOptions::default()).unwrap();
        let mut live_lane = live.lane("pcap").unwrap();
        live_lane.append(&record(7)).unwrap();
        let calls: Vec<Record> = (0..5).map(record).collect();
        {
            // A writer that dies without handing over: its lock goes with it.
            let dead = Spool::open_side(main.path(), SpoolOptions::default()).unwrap();
            let mut lane = dead.lane("pcap").unwrap();
            for r in &calls {
                lane.append(r).unwrap();
            }
        }
        let c = Collector::default();
        let stats = ShipperStats::default();
        while ship_pass(&server, &c, &opts(), &stats).unwrap() > 0 {}
        let stored: HashSet<String> = c.stored.lock().unwrap().iter().cloned().collect();
        let want: HashSet<String> = calls.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(stored, want, "the dead writer's records, and nothing of the live one");
        let sides: Vec<_> = main.path().join("side").read_dir().unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(sides, vec![live.dir().to_path_buf()], "only the live side spool is left");
        assert_eq!(crate::spool::side::side_dirs(main.path()).unwrap(), sides);
        assert_eq!(crate::spool::read_all(live.dir()).unwrap().len(), 1);
        drop(live_lane);
    }

    /// A collector whose answers come back out of order: the first batch of a pass is held
    /// until a later one has been stored; batches holding a record of `fail_ids` are refused.
    #[derive(Default)]
    struct Reordering {
        stored: Mutex<Vec<String>>,
        fail_ids: Mutex<HashSet<String>>,
        later_stored: std::sync::Condvar,
    }

    impl Uplink for Reordering {
        fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError> {
            let ids: Vec<String> = ndjson
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<Record>(l).unwrap().id().to_string())
                .collect();
            assert_eq!(ids.len(), records);
            let mut stored = self.stored.lock().unwrap();
            if stored.is_empty() {
                // Held (at most 2 s) until another batch has answered first.
                let (s, _) = self.later_stored.wait_timeout(stored, Duration::from_secs(2)).unwrap();
                stored = s;
            }
            if ids.iter().any(|id| self.fail_ids.lock().unwrap().contains(id)) {
                self.later_stored.notify_all();
                return Err(DeliveryError::Failed("503 cannot store the batch".into()));
            }
            stored.extend(ids);
            self.later_stored.notify_all();
            Ok(())
        }
    }

    fn pipelined() -> ShipperOptions {
        ShipperOptions { batch_records: 7, in_flight: 4, ..Default::default() }
    }

    #[test]
    fn pipelined_answers_out_of_order_store_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 4096, ..Default::default() }).unwrap();
        let written: Vec<Record> = (0..200).map(record).collect();
        {
            let mut lane = spool.lane("w0").unwrap();
            written.iter().for_each(|r| lane.append(r).unwrap());
        }
        let c = Reordering::default();
        let stats = ShipperStats::default();
        assert_eq!(ship_pass(&spool, &c, &pipelined(), &stats).unwrap(), 200);
        let stored = c.stored.lock().unwrap().clone();
        let want: Vec<String> = written.iter().map(|r| r.id().to_string()).collect();
        assert_ne!(stored, want, "answers came back out of order");
        let unique: HashSet<&String> = stored.iter().collect();
        assert_eq!((stored.len(), unique.len()), (200, 200), "each record once");
        assert_eq!(stats.shipped.load(Ordering::Relaxed), 200);
        assert_eq!(
            (spool.usage().unacked_bytes, spool.usage().disk_bytes),
            (0, 0),
            "every segment acknowledged and removed"
        );
    }

    #[test]
    fn a_crash_after_an_out_of_order_ack_resends_only_what_was_not_acknowledged_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let written: Vec<Record> = (0..50).map(record).collect();
        let c = Reordering::default();
        {
            let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
            let mut lane = spool.lane("w0").unwrap();
            written.iter().for_each(|r| lane.append(r).unwrap());
            drop(lane);
            // Batches of 7: the third (records 14..21) is refused; the first is answered after
            // later ones.
            c.fail_ids.lock().unwrap().insert(written[14].id().to_string());
            let stats = ShipperStats::default();
            assert!(matches!(ship_pass(&spool, &c, &pipelined(), &stats), Err(PassError::Delivery(_))));
            assert_eq!(stats.shipped.load(Ordering::Relaxed), 14, "only the run before the refused batch counts");
            // The process dies here: only SEGMENT.ack survives.
        }
        let sent_before = c.stored.lock().unwrap().len();
        assert!(sent_before >= 14 + 7, "batches after the refused one were stored too ({sent_before})");
        c.fail_ids.lock().unwrap().clear();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let stats = ShipperStats::default();
        assert_eq!(
            ship_pass(&spool, &c, &pipelined(), &stats).unwrap(),
            36,
            "everything past the acknowledged run, once"
        );
        let stored = c.stored.lock().unwrap().clone();
        assert_eq!(stored.len(), sent_before + 36);
        let resent: HashSet<&String> = stored[sent_before..].iter().collect();
        let want: HashSet<String> = written[14..].iter().map(|r| r.id().to_string()).collect();
        assert_eq!(resent, want.iter().collect(), "records 14..50 and nothing before");
        let unique: HashSet<&String> = stored.iter().collect();
        assert_eq!(unique.len(), 50, "the collector holds each record once (ids are primary keys)");
        assert!(segments(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn two_collectors_one_down_everything_arrives_once() {
        use crate::spread::{Spread, SpreadOptions};
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 8192, ..Default::default() }).unwrap();
        let (c1, c2) = (Arc::new(Collector::default()), Arc::new(Collector::default()));
        c2.down.store(true, Ordering::Relaxed);
        let spread = Spread::new(
            vec![("c1".into(), c1.clone() as Arc<dyn Uplink>), ("c2".into(), c2.clone() as Arc<dyn Uplink>)],
            SpreadOptions { first_retry: Duration::ZERO, max_retry: Duration::ZERO },
        );
        let stats = ShipperStats::default();
        let mut lane = spool.lane("w0").unwrap();
        let written: Vec<Record> = (0..300).map(record).collect();
        written[..150].iter().for_each(|r| lane.append(r).unwrap());
        assert_eq!(ship_pass(&spool, &spread, &pipelined(), &stats).unwrap(), 150, "c2 down: c1 takes everything");
        assert_eq!((c1.stored.lock().unwrap().len(), c2.stored.lock().unwrap().len()), (150, 0));
        assert_eq!(stats.failures.load(Ordering::Relaxed), 0, "a fail-over is not a failed delivery");
        assert!(!spread.health()[1].up);
        // c2 is back: batches go to both.
        c2.down.store(false, Ordering::Relaxed);
        written[150..].iter().for_each(|r| lane.append(r).unwrap());
        drop(lane);
        assert_eq!(ship_pass(&spool, &spread, &pipelined(), &stats).unwrap(), 150);
        let (s1, s2) = (c1.stored.lock().unwrap().clone(), c2.stored.lock().unwrap().clone());
        assert!(s1.len() > 150 && !s2.is_empty(), "both take batches: {} and {}", s1.len(), s2.len());
        let all: Vec<&String> = s1.iter().chain(&s2).collect();
        let unique: HashSet<&&String> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (300, 300), "every record once, over both collectors");
        assert!(spread.health().iter().all(|h| h.up));
        assert!(segments(dir.path()).unwrap().is_empty());
    }
}
