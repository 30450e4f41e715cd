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
//! each record is stored exactly once.
//!
//! While the collector is unreachable nothing is removed and the unacknowledged backlog grows
//! (up to the spool's limit); when it comes back the backlog is sent, segment by segment.
//! Segments handed over by side spools (see [`crate::spool::side`]) are shipped like the others.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::spool::{MAGIC, Spool, read_from, scan_frames, segments};

/// A collector outage retries every few seconds for as long as it lasts: one line a minute,
/// saying how many retries were not logged (the metrics count every failure).
static UNREACHABLE_LOG: tollgate_logthrottle::LogThrottle = tollgate_logthrottle::LogThrottle::new(60_000);
/// Spool read or update failures (out of descriptors, disk errors): one line every 10 s.
static IO_ERROR_LOG: tollgate_logthrottle::LogThrottle = tollgate_logthrottle::LogThrottle::new(10_000);

/// The segment header's length: the acknowledged offset of a segment nothing of which was sent.
const HEADER_LEN: u64 = MAGIC.len() as u64;

/// Where batches go.
pub trait Uplink: Send + Sync + 'static {
    /// Delivers `records` records as NDJSON (one record's JSON per line). `Ok` means the
    /// collector has stored them durably; anything else is retried later.
    fn deliver(&self, ndjson: Vec<u8>, records: usize) -> Result<(), String>;
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
}

impl Default for ShipperOptions {
    fn default() -> Self {
        ShipperOptions {
            batch_records: 2000,
            batch_bytes: 1 << 20,
            idle: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
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
    /// False after a failed delivery, true after a successful one.
    pub connected: AtomicBool,
    /// The last delivery error.
    pub last_error: Mutex<Option<String>>,
}

/// A running shipper thread.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    stats: Arc<ShipperStats>,
    handle: Option<JoinHandle<()>>,
}

/// Why a pass stopped.
#[derive(Debug)]
pub enum PassError {
    /// The uplink refused or failed; retry later.
    Delivery(String),
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
    ship_segments(spool, uplink, opts, stats)
}

fn ship_segments(
    spool: &Spool,
    uplink: &dyn Uplink,
    opts: &ShipperOptions,
    stats: &ShipperStats,
) -> Result<u64, PassError> {
    // Segments left by side spools whose writer is gone join this spool first. A failure
    // there must not hold up shipping what is already here.
    if let Err(e) = spool.adopt_side_spools() {
        tracing::warn!(error = %e, "cannot take over an abandoned side spool; will retry");
    }
    let mut shipped = 0u64;
    for seg in segments(spool.dir())? {
        // Asked per segment, after listing: a segment seen closed here is closed for good.
        let Some(state) = spool.segment_state(&seg)? else { continue };
        let acked = state.acked;
        // Read from the start while nothing is acknowledged, to check the header.
        let read_start = if acked <= HEADER_LEN { 0 } else { acked };
        let bytes = match read_from(&seg, read_start) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                spool.forget(&seg);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let file_len = read_start + bytes.len() as u64;
        let (body, body_start, header_ok) = if read_start == 0 {
            match bytes.split_at_checked(MAGIC.len()) {
                Some((header, rest)) => (rest, HEADER_LEN, header == MAGIC),
                None => (&[][..], HEADER_LEN, false),
            }
        } else {
            (&bytes[..], read_start, true)
        };
        let scan = scan_frames(body, body_start);
        let mut frames = if header_ok { scan.frames.as_slice() } else { &[] };
        let mut at = acked;
        while !frames.is_empty() {
            let mut batch = Vec::with_capacity(opts.batch_bytes.min(body.len()) + 64);
            let mut n = 0;
            for (payload, end) in frames {
                if n > 0 && (n >= opts.batch_records || batch.len() + payload.len() + 1 > opts.batch_bytes) {
                    break;
                }
                batch.extend_from_slice(payload);
                batch.push(b'\n');
                n += 1;
                at = *end;
            }
            if let Err(e) = uplink.deliver(batch, n) {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(false, Ordering::Relaxed);
                *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                return Err(PassError::Delivery(e));
            }
            spool.acknowledge_records(&seg, at, n as u64)?;
            stats.connected.store(true, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.shipped.fetch_add(n as u64, Ordering::Relaxed);
            shipped += n as u64;
            frames = &frames[n..];
        }
        if state.open {
            continue;
        }
        // Finished segment.
        if at >= file_len {
            spool.remove_acknowledged(&seg)?;
            stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
        } else {
            // Unreadable bytes in a finished segment: keep them aside for inspection, never
            // delete them silently.
            let why = if header_ok {
                scan.damage.clone().unwrap_or_else(|| "unreadable frames".into())
            } else {
                "not a spool segment (bad header)".to_string()
            };
            let (damaged, lost) = spool.set_aside(&seg)?;
            tracing::error!(segment = %seg.display(), moved_to = %damaged.display(), %why, bytes = lost, "spool segment damaged; moved aside");
            stats.damaged_bytes.fetch_add(lost, Ordering::Relaxed);
        }
    }
    Ok(shipped)
}

impl Shipper {
    /// Starts shipping `spool` through `uplink` on a thread of its own.
    pub fn start(spool: Spool, uplink: Arc<dyn Uplink>, opts: ShipperOptions) -> io::Result<Shipper> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ShipperStats::default());
        let (t_stop, t_stats) = (stop.clone(), stats.clone());
        let handle = std::thread::Builder::new().name("spool-shipper".into()).spawn(move || {
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
        fn deliver(&self, ndjson: Vec<u8>, records: usize) -> Result<(), String> {
            if self.down.load(Ordering::Relaxed) {
                return Err("connection refused".into());
            }
            if self.batches_left.fetch_sub(1, Ordering::Relaxed) == 0 {
                self.batches_left.store(0, Ordering::Relaxed);
                return Err("connection refused".into());
            }
            let lines: Vec<&[u8]> = ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), records);
            let mut stored = self.stored.lock().unwrap();
            for l in lines {
                let r: Record = serde_json::from_slice(l).unwrap();
                stored.push(r.id().to_string());
            }
            if self.lose_next_ack.swap(false, Ordering::Relaxed) {
                return Err("stored, but the answer was lost".into());
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
        fn deliver(&self, _ndjson: Vec<u8>, _records: usize) -> Result<(), String> {
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
}
