//! The local spool: append-only segment files of checksummed record frames.
//!
//! A writer owns a [`SpoolLane`] (one per worker, so writers never contend) that appends to its
//! own segment files `LANE-SEQUENCE.seg`. [`SpoolLane::append`] hands the frame to the kernel
//! with one `write` before returning, so a record survives the process being killed the moment
//! after; a background thread fsyncs dirty segments every `fsync_interval`, so it survives a
//! power loss within that interval.
//!
//! Segment format: the 8-byte magic `TGSPOOL1`, then frames of
//! `length: u32 LE | crc32(payload): u32 LE | payload` where the payload is the record's JSON.
//! A reader stops at the first frame that is cut short or fails its checksum (a torn tail from
//! a crash) and reports where.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Record;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"TGSPOOL1";
/// Largest accepted frame payload.
pub const MAX_FRAME: usize = 1 << 20;
/// A spool with less than this left below its limit counts as full.
const FULL_MARGIN: u64 = 64 << 10;

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// A lane starts a new segment once its current one reaches this size.
    pub segment_bytes: u64,
    /// How often dirty segments are fsync'd.
    pub fsync_interval: Duration,
    /// Most bytes the spool may hold on disk (0: no limit). At the limit new records are
    /// refused (and counted); records already accepted are never dropped.
    pub max_disk_bytes: u64,
    /// Usage (percent of the limit) above which the spool reports itself near full.
    pub near_full_percent: u8,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 64 << 20,
            fsync_interval: Duration::from_millis(200),
            max_disk_bytes: 0,
            near_full_percent: 80,
        }
    }
}

/// How full the spool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolUsage {
    /// Bytes of segments on disk.
    pub bytes: u64,
    /// The limit (0: none).
    pub max_bytes: u64,
    /// Above the near-full threshold.
    pub near_full: bool,
    /// At (or within 64 KiB of) the limit: new records are being refused.
    pub full: bool,
}

/// Counters of spool activity, for metrics.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Records appended.
    pub records: AtomicU64,
    /// Bytes appended (frames, headers included).
    pub bytes: AtomicU64,
    /// fsync calls made.
    pub fsyncs: AtomicU64,
    /// Appends that failed (disk full, I/O error).
    pub errors: AtomicU64,
    /// Records refused because the spool reached its disk limit.
    pub refused: AtomicU64,
}

struct SegmentFile {
    path: PathBuf,
    file: File,
    dirty: AtomicBool,
}

struct Shared {
    dir: PathBuf,
    options: SpoolOptions,
    open: Mutex<Vec<Weak<SegmentFile>>>,
    stats: SpoolStats,
    stop: AtomicBool,
    disk_bytes: AtomicU64,
}

/// A spool directory shared by any number of lanes.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    _syncer: Arc<SyncerGuard>,
}

struct SyncerGuard {
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SyncerGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.lock().ok().and_then(|mut h| h.take()) {
            h.thread().unpark();
            let _ = h.join();
        }
        sync_all(&self.shared);
    }
}

fn sync_all(shared: &Shared) {
    let files: Vec<Arc<SegmentFile>> = {
        let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|w| w.strong_count() > 0);
        open.iter().filter_map(Weak::upgrade).collect()
    };
    for f in files {
        if f.dirty.swap(false, Ordering::AcqRel) {
            if f.file.sync_data().is_err() {
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                f.dirty.store(true, Ordering::Release);
            } else {
                shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Spool {
    /// Opens (creating) a spool directory and starts its fsync thread.
    pub fn open(dir: impl Into<PathBuf>, options: SpoolOptions) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create spool {}: {e}", dir.display())))?;
        let mut on_disk = 0;
        for seg in segments(&dir)? {
            on_disk += fs::metadata(&seg).map(|m| m.len()).unwrap_or(0);
        }
        let shared = Arc::new(Shared {
            dir,
            options,
            open: Mutex::new(Vec::new()),
            stats: SpoolStats::default(),
            stop: AtomicBool::new(false),
            disk_bytes: AtomicU64::new(on_disk),
        });
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new().name("spool-fsync".into()).spawn(move || {
            while !for_thread.stop.load(Ordering::Acquire) {
                std::thread::park_timeout(for_thread.options.fsync_interval);
                sync_all(&for_thread);
            }
        })?;
        Ok(Spool {
            _syncer: Arc::new(SyncerGuard { shared: shared.clone(), handle: Mutex::new(Some(handle)) }),
            shared,
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Activity counters.
    pub fn stats(&self) -> &SpoolStats {
        &self.shared.stats
    }

    /// Opens a lane named `name` (letters, digits, `_`, `.`). Its first segment is a new file
    /// numbered after any this lane left before.
    pub fn lane(&self, name: &str) -> io::Result<SpoolLane> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad spool lane name {name:?}")));
        }
        let next = segments(&self.shared.dir)?
            .iter()
            .filter_map(|p| parse_segment_name(p))
            .filter(|(lane, _)| lane == name)
            .map(|(_, seq)| seq + 1)
            .max()
            .unwrap_or(1);
        let mut lane = SpoolLane {
            spool: self.clone(),
            name: name.to_string(),
            seq: next,
            current: None,
            written: 0,
            buf: Vec::with_capacity(1024),
        };
        lane.start_segment()?;
        Ok(lane)
    }

    /// Forces every dirty segment to disk now.
    pub fn sync(&self) {
        sync_all(&self.shared);
    }

    /// The segments lanes are still writing to. A segment on disk that is not in this set will
    /// never be written again (list the directory first, then call this).
    pub fn open_segments(&self) -> HashSet<PathBuf> {
        let open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        open.iter().filter_map(Weak::upgrade).map(|s| s.path.clone()).collect()
    }

    /// How full the spool is.
    pub fn usage(&self) -> SpoolUsage {
        let bytes = self.shared.disk_bytes.load(Ordering::Relaxed);
        let o = &self.shared.options;
        let max = o.max_disk_bytes;
        SpoolUsage {
            bytes,
            max_bytes: max,
            near_full: max > 0 && bytes.saturating_mul(100) >= max.saturating_mul(u64::from(o.near_full_percent)),
            full: max > 0 && bytes + FULL_MARGIN >= max,
        }
    }

    /// Tells the spool that `bytes` of segments were removed (by the shipper).
    pub fn released(&self, bytes: u64) {
        let _ = self
            .shared
            .disk_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(bytes)));
    }
}

/// One writer's sequence of segments.
pub struct SpoolLane {
    spool: Spool,
    name: String,
    seq: u64,
    current: Option<Arc<SegmentFile>>,
    written: u64,
    buf: Vec<u8>,
}

impl SpoolLane {
    fn start_segment(&mut self) -> io::Result<()> {
        let path = self.spool.shared.dir.join(format!("{}-{:010}.seg", self.name, self.seq));
        // Created and registered under the lock, so a shipper never sees it on disk without
        // also seeing it open.
        let seg = {
            let mut open = self.spool.shared.open.lock().unwrap_or_else(|e| e.into_inner());
            let mut file = OpenOptions::new().create_new(true).append(true).open(&path)?;
            file.write_all(MAGIC)?;
            let seg = Arc::new(SegmentFile { path, file, dirty: AtomicBool::new(true) });
            open.push(Arc::downgrade(&seg));
            seg
        };
        self.spool.shared.disk_bytes.fetch_add(MAGIC.len() as u64, Ordering::Relaxed);
        if let Some(old) = self.current.replace(seg) {
            old.file.sync_data()?;
        }
        self.written = MAGIC.len() as u64;
        self.seq += 1;
        Ok(())
    }

    /// Appends one record. When this returns `Ok`, the record is in the kernel's hands.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let result = self.append_inner(record);
        let stats = &self.spool.shared.stats;
        match &result {
            Ok(n) => {
                stats.records.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result.map(|_| ())
    }

    fn append_inner(&mut self, record: &Record) -> io::Result<usize> {
        if self.written >= self.spool.shared.options.segment_bytes {
            self.start_segment()?;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; 8]);
        serde_json::to_writer(&mut self.buf, record)?;
        let payload_len = self.buf.len() - 8;
        if payload_len > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "record larger than the spool frame limit"));
        }
        let shared = &self.spool.shared;
        let max = shared.options.max_disk_bytes;
        if max > 0 && shared.disk_bytes.load(Ordering::Relaxed) + self.buf.len() as u64 > max {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::StorageFull, "spool is at its disk limit; record refused"));
        }
        let crc = crc32fast::hash(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let seg = self.current.as_ref().ok_or_else(|| io::Error::other("spool lane has no segment"))?;
        (&seg.file).write_all(&self.buf)?;
        seg.dirty.store(true, Ordering::Release);
        shared.disk_bytes.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.written += self.buf.len() as u64;
        Ok(self.buf.len())
    }

    /// The lane's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Segment files in a spool directory, sorted by lane then sequence.
pub fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "seg")).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort_by_key(|p| parse_segment_name(p));
    Ok(out)
}

fn parse_segment_name(path: &Path) -> Option<(String, u64)> {
    let stem = path.file_stem()?.to_str()?;
    let (lane, seq) = stem.rsplit_once('-')?;
    Some((lane.to_string(), seq.parse().ok()?))
}

/// What a segment holds.
#[derive(Debug)]
pub struct SegmentContents {
    /// Records read, in order.
    pub records: Vec<Record>,
    /// Bytes of the file that hold whole, valid frames (including the magic).
    pub valid_bytes: u64,
    /// Why reading stopped early, if it did (torn or corrupt tail).
    pub damage: Option<String>,
}

/// Reads every valid record of one segment.
pub fn read_segment(path: &Path) -> io::Result<SegmentContents> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(decode_segment(&bytes))
}

/// Whole, checksummed frames found in a stretch of a segment.
#[derive(Debug)]
pub struct FrameScan<'a> {
    /// Each frame's payload and the segment offset just past the frame, in order.
    pub frames: Vec<(&'a [u8], u64)>,
    /// Offset just past the last whole frame (the starting offset if none).
    pub valid_end: u64,
    /// Why the scan stopped before the end of the bytes, if it did: a frame still being
    /// written, or a torn or corrupt one.
    pub damage: Option<String>,
}

/// Scans frames in `bytes`, which start at segment offset `start` (just after the header, or
/// after an earlier frame).
pub fn scan_frames(bytes: &[u8], start: u64) -> FrameScan<'_> {
    let mut scan = FrameScan { frames: Vec::new(), valid_end: start, damage: None };
    let mut at = 0usize;
    while at < bytes.len() {
        let offset = start + at as u64;
        if bytes.len() - at < 8 {
            scan.damage = Some(format!("frame header cut short at byte {offset}"));
            break;
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        if len > MAX_FRAME || bytes.len() - at - 8 < len {
            scan.damage = Some(format!("frame at byte {offset} cut short or oversized ({len} bytes)"));
            break;
        }
        let payload = &bytes[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            scan.damage = Some(format!("checksum mismatch in frame at byte {offset}"));
            break;
        }
        at += 8 + len;
        scan.valid_end = start + at as u64;
        scan.frames.push((payload, scan.valid_end));
    }
    scan
}

/// Decodes segment bytes (see the module docs for the format).
pub fn decode_segment(bytes: &[u8]) -> SegmentContents {
    let mut out = SegmentContents { records: Vec::new(), valid_bytes: 0, damage: None };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        out.damage = Some("missing segment header".into());
        return out;
    }
    let scan = scan_frames(&bytes[MAGIC.len()..], MAGIC.len() as u64);
    out.valid_bytes = MAGIC.len() as u64;
    out.damage = scan.damage;
    for (payload, end) in scan.frames {
        match serde_json::from_slice(payload) {
            Ok(r) => {
                out.records.push(r);
                out.valid_bytes = end;
            }
            Err(e) => {
                out.damage = Some(format!("frame ending at byte {end} is not a record: {e}"));
                break;
            }
        }
    }
    out
}

/// Reads a segment from `offset` to its end.
pub fn read_from(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads every record of every segment in `dir`, in lane and sequence order.
pub fn read_all(dir: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for seg in segments(dir)? {
        out.extend(read_segment(&seg)?.records);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnumQueryRecord, Transport};
    use chrono::Utc;
    use ulid::Ulid;

    fn record(i: u64) -> Record {
        Record::enum_query(EnumQueryRecord {
            id: Ulid::new(),
            time: Utc::now(),
            device: "e1".into(),
            client: "sbc".into(),
            client_addr: "127.0.0.1:1".parse().unwrap(),
            transport: Transport::Udp,
            source: None,
            destination: format!("+1212555{i:04}").parse().unwrap(),
            direction: "inbound".into(),
            rule: None,
            action: "allow".into(),
            detail: None,
            rcode: "NXDOMAIN".into(),
            fail_open: false,
            latency_us: 1,
            stale: false,
            policy_version: None,
        })
    }

    #[test]
    fn appends_rotate_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 2048, ..Default::default() }).unwrap();
        let mut lane = spool.lane("w0").unwrap();
        let written: Vec<Record> = (0..100).map(record).collect();
        for r in &written {
            lane.append(r).unwrap();
        }
        assert!(segments(dir.path()).unwrap().len() > 5, "segments should rotate");
        assert_eq!(read_all(dir.path()).unwrap(), written);
        assert_eq!(spool.stats().records.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn reopened_lane_continues_numbering_without_touching_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        spool.lane("w0").unwrap().append(&record(1)).unwrap();
        spool.lane("w0").unwrap().append(&record(2)).unwrap();
        let names: Vec<String> = segments(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["w0-0000000001.seg", "w0-0000000002.seg"]);
        assert_eq!(read_all(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn torn_and_corrupt_tails_stop_the_reader_without_losing_earlier_records() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..3 {
            lane.append(&record(i)).unwrap();
        }
        let path = segments(dir.path()).unwrap().remove(0);
        let full = fs::read(&path).unwrap();
        let whole = decode_segment(&full);
        assert_eq!((whole.records.len(), whole.damage), (3, None));
        let torn = decode_segment(&full[..full.len() - 5]);
        assert_eq!(torn.records.len(), 2);
        assert!(torn.damage.unwrap().contains("cut short"));
        let mut flipped = full.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        let corrupt = decode_segment(&flipped);
        assert_eq!(corrupt.records.len(), 2);
        assert!(corrupt.damage.unwrap().contains("checksum"));
        assert!(decode_segment(b"garbage").damage.is_some());
    }

    #[test]
    fn fsync_thread_syncs_dirty_segments() {
        let dir = tempfile::tempdir().unwrap();
        let spool =
            Spool::open(dir.path(), SpoolOptions { fsync_interval: Duration::from_millis(10), ..Default::default() })
                .unwrap();
        let mut lane = spool.lane("w0").unwrap();
        lane.append(&record(1)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while spool.stats().fsyncs.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "no fsync within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn bad_lane_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        assert!(spool.lane("a/b").is_err());
        assert!(spool.lane("").is_err());
    }
}
