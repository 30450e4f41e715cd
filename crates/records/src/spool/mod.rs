//! The local spool: append-only segment files of checksummed record frames.
//!
//! A writer owns a [`SpoolLane`] (one per worker, so writers never contend) that appends to its
//! own segment files `LANE-SEQUENCE.seg`. [`SpoolLane::append`] hands the frame to the kernel
//! with one `write` before returning, so a record survives the process being killed the moment
//! after; a background thread fsyncs dirty segments every `fsync_interval`, so it survives a
//! power loss within that interval. The on-disk format is described in [`mod@format`].
//!
//! **Accounting.** The spool knows, exactly, how many bytes its segments take on disk and how
//! many of those the collector has not acknowledged yet (what a collector outage could lose),
//! in records too, with the age of the oldest ([`backlog`], [`Spool::backlog`]).
//! The shipper reports every acknowledged batch through [`Spool::acknowledge`] and removes
//! finished segments through [`Spool::remove_acknowledged`]; [`Spool::open`] recomputes both
//! totals from the segments and their `.ack` files. The limit ([`SpoolOptions::max_unacked_bytes`])
//! applies to the unacknowledged bytes only, so records already shipped never crowd out new
//! ones. A lane starts a new segment when its current one reaches `segment_bytes`, or, once the
//! shipper has acknowledged part of it, when it is older than `reclaim_after`, so acknowledged
//! records do not sit in long-lived open segments. Disk use therefore stays below the limit
//! plus, per lane, the acknowledged part of its open segment (less than `segment_bytes` plus
//! one frame; in practice what the lane wrote in the last `reclaim_after`).
//!
//! **One writer.** [`Spool::open`] takes an exclusive lock on the directory
//! ([`LOCK_FILE`], see [`crate::dirlock`]) for the life of the `Spool`, and every segment is
//! created, acknowledged and removed through it. So no other process ever writes or removes a
//! segment here, and the spool itself never removes a segment a lane of its own still has open
//! ([`Spool::remove_acknowledged`] checks that under the same lock that registers new
//! segments). A process that finds the directory locked can write a *side spool* instead
//! ([`Spool::open_side`]) and hand its closed segments over ([`Spool::hand_over`]); see [`side`].

pub mod backlog;
pub mod format;
pub mod side;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use backlog::{MARK_EVERY, Marks};

pub use backlog::Backlog;
pub use format::{
    FrameScan, MAGIC, MAX_FRAME, SegmentContents, count_frames, decode_segment, read_all, read_from, read_segment,
    scan_frames, segments,
};

use crate::Record;
use crate::dirlock::{DirLock, LockError};
use format::{HEADER_LEN, ack_path, parse_segment_name, read_ack, write_ack};

/// The lock file of a spool directory (holds the writer's pid and what it is).
pub const LOCK_FILE: &str = "spool.lock";
/// A spool with less than this (or a tenth of its limit, if less) left below its limit counts
/// as full.
const FULL_MARGIN: u64 = 64 << 10;

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// A lane starts a new segment once its current one reaches this size.
    pub segment_bytes: u64,
    /// How often dirty segments are fsync'd.
    pub fsync_interval: Duration,
    /// Most bytes of records the collector has not acknowledged yet (0: no limit). At the
    /// limit new records are refused (and counted); records already accepted are never
    /// dropped, and acknowledged ones never count.
    pub max_unacked_bytes: u64,
    /// Unacknowledged bytes (percent of the limit) above which the spool reports itself near
    /// full.
    pub near_full_percent: u8,
    /// A lane whose segment is this old and partly acknowledged starts a new one, so the
    /// shipper can delete what was acknowledged.
    pub reclaim_after: Duration,
    /// What this process is (`tollgate serve`), written in the lock file so that a second
    /// writer is told who holds the directory.
    pub holder: String,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_bytes: 64 << 20,
            fsync_interval: Duration::from_millis(200),
            max_unacked_bytes: 0,
            near_full_percent: 80,
            reclaim_after: Duration::from_secs(60),
            holder: "tollgate".into(),
        }
    }
}

/// How full the spool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolUsage {
    /// Bytes of records not acknowledged by the collector yet: what the limit applies to.
    pub unacked_bytes: u64,
    /// Bytes of segment files on disk (acknowledged records in open segments included).
    pub disk_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// The limit on unacknowledged bytes (0: none).
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
    /// Appends that failed (disk full, I/O error, refused at the limit).
    pub errors: AtomicU64,
    /// Records refused because the unacknowledged bytes reached the limit.
    pub refused: AtomicU64,
    /// Open segments found deleted from the directory by someone else (their lane moved on to
    /// a new segment; what it had written there is gone).
    pub unlinked: AtomicU64,
}

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process writes this spool (its pid and role are named).
    #[error("spool directory {0}")]
    InUse(LockError),
    /// The directory could not be created, locked or read.
    #[error("spool directory {}: {source}", .dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl OpenError {
    fn io(dir: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
        move |source| OpenError::Io { dir: dir.to_path_buf(), source }
    }

    fn lock(dir: &Path, e: LockError) -> OpenError {
        match e {
            e @ LockError::InUse { .. } => OpenError::InUse(e),
            LockError::Io { source, .. } => OpenError::Io { dir: dir.to_path_buf(), source },
        }
    }
}

struct SegmentFile {
    path: PathBuf,
    file: File,
    dirty: AtomicBool,
    /// The acknowledged offset (kept up to date by [`Spool::acknowledge`]).
    acked: AtomicU64,
    created: Instant,
    /// Found deleted from the directory: the lane must move on.
    unlinked: AtomicBool,
    /// Frames written (or being written) to it.
    records: AtomicU64,
    /// Append times of its frames (shared with its [`Tracked`] entry).
    marks: Arc<Mutex<Marks>>,
}

/// What the spool knows about one segment on disk.
struct Tracked {
    /// Acknowledged offset (the header length when nothing is).
    acked: u64,
    /// The lane's file, while a lane writes it (to keep its acknowledged offset current).
    file: Weak<SegmentFile>,
    /// Its length once no lane writes it any more; `None` while a lane does.
    closed_len: Option<u64>,
    /// Frames acknowledged (counted from when the spool started tracking it).
    acked_records: u64,
    /// Frames in it once no lane writes it any more (counted on the same basis).
    closed_records: Option<u64>,
    /// Append times of its frames.
    marks: Arc<Mutex<Marks>>,
    /// Found at open and its frames not counted yet: the acknowledged offset then, from which
    /// the recount thread counts. Until it has, its records are not in the backlog, and
    /// acknowledgements only add up in `acked_records`.
    recount_from: Option<u64>,
}

struct Segments {
    map: BTreeMap<PathBuf, Tracked>,
    /// No new segments (a side spool handed over).
    sealed: bool,
}

struct Shared {
    dir: PathBuf,
    options: SpoolOptions,
    /// For a side spool: its id (the directory name), used in the lane names it hands over.
    side_id: Option<String>,
    segments: Mutex<Segments>,
    stats: SpoolStats,
    stop: AtomicBool,
    disk_bytes: AtomicU64,
    unacked_bytes: AtomicU64,
    unacked_records: AtomicU64,
    _lock: DirLock,
}

impl Tracked {
    /// A segment found on disk (at open, or handed over), with `unacked` whole frames after its
    /// acknowledged offset (`None`: to be counted by the recount thread).
    fn found(seg: &Path, acked: u64, len: u64, unacked: Option<u64>) -> Tracked {
        let created =
            fs::metadata(seg).and_then(|m| m.created().or_else(|_| m.modified())).unwrap_or_else(|_| SystemTime::now());
        Tracked {
            acked,
            file: Weak::new(),
            closed_len: Some(len),
            acked_records: 0,
            closed_records: Some(unacked.unwrap_or(0)),
            marks: Arc::new(Mutex::new(Marks::found(HEADER_LEN, created))),
            recount_from: if unacked.is_none() { Some(acked) } else { None },
        }
    }

    /// Holds frames not acknowledged (a segment still being recounted: bytes not acknowledged).
    fn has_unacked(&self) -> bool {
        match self.recount_from {
            Some(_) => self.closed_len.is_some_and(|len| len > self.acked),
            None => self.unacked_records() > 0,
        }
    }

    fn is_open(&self) -> bool {
        self.closed_len.is_none()
    }

    /// Frames written to it so far.
    fn records(&self) -> u64 {
        match (self.closed_records, self.file.upgrade()) {
            (Some(n), _) => n,
            (None, Some(f)) => f.records.load(Ordering::Relaxed),
            (None, None) => self.acked_records,
        }
    }

    /// Frames not acknowledged.
    fn unacked_records(&self) -> u64 {
        self.records().saturating_sub(self.acked_records)
    }

    fn marks(&self) -> MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    fn segments(&self) -> MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sub(counter: &AtomicU64, n: u64) {
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(n)));
    }

    /// Reserves `n` unacknowledged bytes for a frame about to be written; false at the limit.
    fn reserve(&self, n: u64) -> bool {
        let max = self.options.max_unacked_bytes;
        if max == 0 {
            self.unacked_bytes.fetch_add(n, Ordering::Relaxed);
            return true;
        }
        self.unacked_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| (u.saturating_add(n) <= max).then_some(u + n))
            .is_ok()
    }
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
    /// The thread counting the frames of segments found at open, while it runs.
    recount: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SyncerGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(h) = self.recount.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
        if let Some(h) = self.handle.lock().ok().and_then(|mut h| h.take()) {
            h.thread().unpark();
            let _ = h.join();
        }
        sync_all(&self.shared);
    }
}

fn open_files(shared: &Shared) -> Vec<Arc<SegmentFile>> {
    shared.segments().map.values().filter_map(|t| t.file.upgrade()).collect()
}

fn sync_all(shared: &Shared) {
    for f in open_files(shared) {
        if f.dirty.swap(false, Ordering::AcqRel) {
            if f.file.sync_data().is_err() {
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                f.dirty.store(true, Ordering::Release);
            } else {
                shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A segment deleted under a lane's feet (nothing in tollgate does that: an operator, or
        // a process ignoring the lock) would swallow every later record: make the lane move on.
        if !f.unlinked.load(Ordering::Relaxed) && f.file.metadata().is_ok_and(|m| m.nlink() == 0) {
            f.unlinked.store(true, Ordering::Relaxed);
            shared.stats.unlinked.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                segment = %f.path.display(),
                "an open spool segment was deleted by another process; its lane starts a new one \
                 (records written to it since are lost)"
            );
        }
    }
}

impl Spool {
    /// Opens (creating) a spool directory, locks it for this process, recounts what its
    /// segments hold and starts its fsync thread. Fails, naming the holder, when another
    /// process has it open.
    pub fn open(dir: impl Into<PathBuf>, options: SpoolOptions) -> Result<Self, OpenError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(OpenError::io(&dir))?;
        let lock = DirLock::acquire(&dir, LOCK_FILE, &options.holder).map_err(|e| OpenError::lock(&dir, e))?;
        Spool::start(dir.clone(), options, lock, None).map_err(OpenError::io(&dir))
    }

    /// Builds the spool over a locked directory.
    fn start(dir: PathBuf, options: SpoolOptions, lock: DirLock, side_id: Option<String>) -> io::Result<Self> {
        let mut map = BTreeMap::new();
        let (mut disk, mut unacked) = (0, 0);
        for seg in segments(&dir)? {
            let len = match fs::metadata(&seg) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let acked = read_ack(&seg);
            disk += len;
            unacked += len.saturating_sub(acked);
            // Frames are counted off the start path (reading the backlog takes about a second
            // per GiB); a segment with nothing unacknowledged has none to count.
            let frames = (acked >= len).then_some(0);
            map.insert(seg.clone(), Tracked::found(&seg, acked, len, frames));
        }
        let to_recount: Vec<(PathBuf, u64)> =
            map.iter().filter_map(|(p, t): (&PathBuf, &Tracked)| Some((p.clone(), t.recount_from?))).collect();
        let shared = Arc::new(Shared {
            dir,
            options,
            side_id,
            segments: Mutex::new(Segments { map, sealed: false }),
            stats: SpoolStats::default(),
            stop: AtomicBool::new(false),
            disk_bytes: AtomicU64::new(disk),
            unacked_bytes: AtomicU64::new(unacked),
            unacked_records: AtomicU64::new(0),
            _lock: lock,
        });
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new().name("spool-fsync".into()).spawn(move || {
            while !for_thread.stop.load(Ordering::Acquire) {
                std::thread::park_timeout(for_thread.options.fsync_interval);
                sync_all(&for_thread);
            }
        })?;
        let recount = if to_recount.is_empty() {
            None
        } else {
            let for_thread = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("spool-recount".into())
                    .spawn(move || recount(&for_thread, to_recount))?,
            )
        };
        Ok(Spool {
            _syncer: Arc::new(SyncerGuard {
                shared: shared.clone(),
                handle: Mutex::new(Some(handle)),
                recount: Mutex::new(recount),
            }),
            shared,
        })
    }

    /// Waits until the records of the segments found at open are counted; from then on
    /// [`Spool::backlog`] counts them too.
    pub fn wait_recounted(&self) {
        let handle = self._syncer.recount.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
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
            last_mark: None,
            broken: false,
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
    pub fn open_segments(&self) -> std::collections::HashSet<PathBuf> {
        let segs = self.shared.segments();
        segs.map.iter().filter(|(_, t)| t.is_open()).map(|(p, _)| p.clone()).collect()
    }

    /// How full the spool is.
    pub fn usage(&self) -> SpoolUsage {
        let unacked = self.shared.unacked_bytes.load(Ordering::Relaxed);
        let o = &self.shared.options;
        let max = o.max_unacked_bytes;
        SpoolUsage {
            unacked_bytes: unacked,
            disk_bytes: self.shared.disk_bytes.load(Ordering::Relaxed),
            segments: self.shared.segments().map.len() as u64,
            max_bytes: max,
            near_full: max > 0 && unacked.saturating_mul(100) >= max.saturating_mul(u64::from(o.near_full_percent)),
            full: max > 0 && unacked.saturating_add(FULL_MARGIN.min(max / 10)) >= max,
        }
    }

    /// The records not yet acknowledged by the collector: how many, their bytes, and when the
    /// oldest was appended (see [`backlog`]). Exact at any moment, shipping pass or not.
    pub fn backlog(&self) -> Backlog {
        let segs = self.shared.segments();
        let oldest = segs.map.values().filter(|t| t.has_unacked()).filter_map(|t| t.marks().oldest()).min();
        Backlog {
            records: self.shared.unacked_records.load(Ordering::Relaxed),
            bytes: self.shared.unacked_bytes.load(Ordering::Relaxed),
            oldest,
        }
    }

    /// What the shipper needs to know about a listed segment: its acknowledged offset and
    /// whether a lane still writes it. A segment this spool has not seen before (handed over
    /// from a side spool by rename) is counted from now on. `None`: it is gone.
    pub fn segment_state(&self, seg: &Path) -> io::Result<Option<SegmentState>> {
        let mut segs = self.shared.segments();
        if let Some(t) = segs.map.get(seg) {
            return Ok(Some(SegmentState { acked: t.acked, open: t.is_open() }));
        }
        let len = match fs::metadata(seg) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let acked = read_ack(seg);
        let frames = count_unacked(seg, acked, len)?;
        self.shared.disk_bytes.fetch_add(len, Ordering::Relaxed);
        self.shared.unacked_bytes.fetch_add(len.saturating_sub(acked), Ordering::Relaxed);
        self.shared.unacked_records.fetch_add(frames, Ordering::Relaxed);
        segs.map.insert(seg.to_path_buf(), Tracked::found(seg, acked, len, Some(frames)));
        Ok(Some(SegmentState { acked, open: false }))
    }

    /// Records that the collector stored everything of `seg` up to `offset` (written to the
    /// segment's `.ack` file, then counted). Counts the frames acknowledged by reading their
    /// headers; a caller that knows how many there are says so with
    /// [`Spool::acknowledge_records`].
    pub fn acknowledge(&self, seg: &Path, offset: u64) -> io::Result<()> {
        let from = self.shared.segments().map.get(seg).map_or(offset, |t| t.acked);
        let records = if offset > from { count_frames(seg, from, Some(offset))? } else { 0 };
        self.acknowledge_records(seg, offset, records)
    }

    /// Records that the collector stored everything of `seg` up to `offset`, the `records`
    /// frames after the offset acknowledged before (written to the segment's `.ack` file, then
    /// counted).
    pub fn acknowledge_records(&self, seg: &Path, offset: u64, records: u64) -> io::Result<()> {
        write_ack(seg, offset)?;
        let mut segs = self.shared.segments();
        if let Some(t) = segs.map.get_mut(seg)
            && offset > t.acked
        {
            Shared::sub(&self.shared.unacked_bytes, offset - t.acked);
            if t.recount_from.is_some() {
                // Not in the backlog yet: the recount deducts it.
                t.acked_records += records;
            } else {
                let records = records.min(t.unacked_records());
                Shared::sub(&self.shared.unacked_records, records);
                t.acked_records += records;
            }
            t.acked = offset;
            t.marks().acknowledge(offset);
            if let Some(f) = t.file.upgrade() {
                f.acked.store(offset, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Removes a segment no lane writes any more and whose every byte is acknowledged, with
    /// its `.ack` file; returns its size. Refuses an open or unacknowledged segment.
    pub fn remove_acknowledged(&self, seg: &Path) -> io::Result<u64> {
        let mut segs = self.shared.segments();
        let t = segs.map.get(seg).ok_or_else(|| not_tracked(seg))?;
        if t.is_open() {
            return Err(io::Error::other(format!("spool segment {} is still being written", seg.display())));
        }
        let len = fs::metadata(seg)?.len();
        if t.acked < len {
            return Err(io::Error::other(format!(
                "spool segment {} is acknowledged up to byte {} of {len}",
                seg.display(),
                t.acked
            )));
        }
        fs::remove_file(seg)?;
        let _ = fs::remove_file(ack_path(seg));
        if let Some(t) = segs.map.remove(seg) {
            Shared::sub(&self.shared.unacked_records, t.unacked_records());
        }
        Shared::sub(&self.shared.disk_bytes, len);
        Ok(len)
    }

    /// Moves a segment no lane writes any more aside as `.damaged` (its unreadable bytes are
    /// kept for inspection, no longer counted); returns the new path and the bytes not
    /// acknowledged in it.
    pub fn set_aside(&self, seg: &Path) -> io::Result<(PathBuf, u64)> {
        let mut segs = self.shared.segments();
        let t = segs.map.get(seg).ok_or_else(|| not_tracked(seg))?;
        if t.is_open() {
            return Err(io::Error::other(format!("spool segment {} is still being written", seg.display())));
        }
        let acked = t.acked;
        let len = fs::metadata(seg)?.len();
        let damaged = seg.with_extension("damaged");
        fs::rename(seg, &damaged)?;
        let _ = fs::remove_file(ack_path(seg));
        if let Some(t) = segs.map.remove(seg) {
            Shared::sub(&self.shared.unacked_records, t.unacked_records());
        }
        Shared::sub(&self.shared.disk_bytes, len);
        Shared::sub(&self.shared.unacked_bytes, len.saturating_sub(acked));
        Ok((damaged, len.saturating_sub(acked)))
    }

    /// Forgets a segment that vanished from the directory (deleted by hand).
    pub fn forget(&self, seg: &Path) {
        let mut segs = self.shared.segments();
        if let Some(t) = segs.map.remove(seg)
            && let Some(len) = t.closed_len
        {
            Shared::sub(&self.shared.disk_bytes, len);
            Shared::sub(&self.shared.unacked_bytes, len.saturating_sub(t.acked));
            Shared::sub(&self.shared.unacked_records, t.unacked_records());
        }
    }
}

/// Counts the frames of the segments found at open (after their acknowledged offset then) and
/// adds those not acknowledged since to the backlog.
fn recount(shared: &Shared, segments: Vec<(PathBuf, u64)>) {
    for (seg, from) in segments {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let n = match count_frames(&seg, from, None) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => {
                tracing::error!(segment = %seg.display(), error = %e, "cannot count the records of a spool segment; the backlog leaves them out");
                0
            }
        };
        let mut segs = shared.segments();
        if let Some(t) = segs.map.get_mut(&seg)
            && t.recount_from.take().is_some()
        {
            t.closed_records = Some(n);
            shared.unacked_records.fetch_add(t.unacked_records(), Ordering::Relaxed);
        }
    }
}

/// Whole frames after a found segment's acknowledged offset.
fn count_unacked(seg: &Path, acked: u64, len: u64) -> io::Result<u64> {
    if acked >= len {
        return Ok(0);
    }
    match count_frames(seg, acked, None) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        other => other,
    }
}

fn not_tracked(seg: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} is not a segment of this spool", seg.display()))
}

/// A listed segment, as the shipper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentState {
    /// The acknowledged offset (the header length when nothing is).
    pub acked: u64,
    /// A lane still writes it: it may grow, and must not be removed.
    pub open: bool,
}

/// One writer's sequence of segments.
pub struct SpoolLane {
    spool: Spool,
    name: String,
    seq: u64,
    current: Option<Arc<SegmentFile>>,
    written: u64,
    /// When this lane last marked an append time (`None`: not in its current segment).
    last_mark: Option<Instant>,
    /// The last write failed part-way: the segment's tail is torn, so nothing more goes there.
    broken: bool,
    buf: Vec<u8>,
}

impl SpoolLane {
    fn start_segment(&mut self) -> io::Result<()> {
        let shared = &self.spool.shared;
        let path = shared.dir.join(format!("{}-{:010}.seg", self.name, self.seq));
        // Created and registered under the lock, so a shipper never sees it on disk without
        // also seeing it open.
        let seg = {
            let mut segs = shared.segments();
            if segs.sealed {
                return Err(io::Error::other(format!("spool {} was handed over", shared.dir.display())));
            }
            let mut file = OpenOptions::new().create_new(true).append(true).open(&path)?;
            file.write_all(MAGIC)?;
            let marks = Arc::new(Mutex::new(Marks::default()));
            let seg = Arc::new(SegmentFile {
                path: path.clone(),
                file,
                dirty: AtomicBool::new(true),
                acked: AtomicU64::new(HEADER_LEN),
                created: Instant::now(),
                unlinked: AtomicBool::new(false),
                records: AtomicU64::new(0),
                marks: marks.clone(),
            });
            segs.map.insert(
                path,
                Tracked {
                    acked: HEADER_LEN,
                    file: Arc::downgrade(&seg),
                    closed_len: None,
                    acked_records: 0,
                    closed_records: None,
                    marks,
                    recount_from: None,
                },
            );
            seg
        };
        shared.disk_bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        self.close_current(Some(seg))?;
        self.written = HEADER_LEN;
        self.last_mark = None;
        self.broken = false;
        self.seq += 1;
        Ok(())
    }

    /// Makes `next` the current segment; the one before is synced and closed.
    fn close_current(&mut self, next: Option<Arc<SegmentFile>>) -> io::Result<()> {
        let Some(old) = std::mem::replace(&mut self.current, next) else { return Ok(()) };
        let synced = if old.dirty.swap(false, Ordering::AcqRel) { old.file.sync_data() } else { Ok(()) };
        let mut segs = self.spool.shared.segments();
        if let Some(t) = segs.map.get_mut(&old.path) {
            t.closed_len = Some(self.written);
            t.closed_records = Some(old.records.load(Ordering::Relaxed));
        }
        drop(old);
        synced
    }

    /// True when the next record must go to a new segment.
    fn needs_new_segment(&self) -> bool {
        let Some(seg) = &self.current else { return true };
        let o = &self.spool.shared.options;
        self.broken
            || self.written >= o.segment_bytes
            || seg.unlinked.load(Ordering::Relaxed)
            || (seg.acked.load(Ordering::Relaxed) > HEADER_LEN && seg.created.elapsed() >= o.reclaim_after)
    }

    /// Appends one record. When this returns `Ok`, the record is in the kernel's hands.
    pub fn append(&mut self, record: &Record) -> io::Result<()> {
        let mut failed = None;
        self.append_batch(std::iter::once(record), |e| failed = Some(e));
        failed.map_or(Ok(()), Err)
    }

    /// Appends several records with a single `write`: the frames are built in the lane's
    /// buffer, then handed to the kernel together, so a listener that answers a batch of
    /// queries pays one system call for their records, not one each. When this returns, every
    /// record it counts is in the kernel's hands, exactly as after [`SpoolLane::append`].
    ///
    /// Returns how many records were written. Each record that was not (refused at the limit,
    /// too large for a frame, or lost to a failed write) is reported to `not_written` with its
    /// error, once; a write that fails part-way keeps the whole frames that reached the file
    /// (the shipper reads them) and reports only the others.
    pub fn append_batch<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r Record>,
        mut not_written: impl FnMut(io::Error),
    ) -> usize {
        self.buf.clear();
        let mut frames = 0u64;
        let mut failed = 0u64;
        for record in records {
            match self.stage(record) {
                Ok(()) => frames += 1,
                Err(e) => {
                    failed += 1;
                    not_written(e);
                }
            }
        }
        let (written, bytes) = if frames == 0 {
            (0, 0)
        } else {
            match self.write_staged(frames) {
                Ok(()) => (frames, self.buf.len() as u64),
                Err((e, whole, whole_bytes)) => {
                    for _ in whole..frames {
                        not_written(io::Error::new(e.kind(), e.to_string()));
                    }
                    failed += frames - whole;
                    (whole, whole_bytes)
                }
            }
        };
        let stats = &self.spool.shared.stats;
        if written > 0 {
            stats.records.fetch_add(written, Ordering::Relaxed);
            stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if failed > 0 {
            stats.errors.fetch_add(failed, Ordering::Relaxed);
        }
        usize::try_from(written).unwrap_or(usize::MAX)
    }

    /// Adds one record's frame to the buffer and reserves its bytes below the limit; on an
    /// error the buffer is as before.
    fn stage(&mut self, record: &Record) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; 8]);
        if let Err(e) = crate::json::write_record(record, &mut self.buf) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let payload_len = self.buf.len() - start - 8;
        if payload_len > MAX_FRAME {
            self.buf.truncate(start);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "record larger than the spool frame limit"));
        }
        let shared = &self.spool.shared;
        if !shared.reserve((self.buf.len() - start) as u64) {
            self.buf.truncate(start);
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "spool holds its limit of records not yet acknowledged by the collector; record refused",
            ));
        }
        let crc = crc32fast::hash(&self.buf[start + 8..]);
        self.buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// The whole frames within the first `bytes` bytes of the buffer: how many, and their bytes.
    fn whole_frames_in(&self, bytes: u64) -> (u64, u64) {
        let mut offset = 0u64;
        let mut whole = 0;
        while let Some(header) = self.buf.get(offset as usize..offset as usize + 4) {
            let end = offset + 8 + u64::from(u32::from_le_bytes(header.try_into().unwrap_or_default()));
            if end > bytes {
                break;
            }
            whole += 1;
            offset = end;
        }
        (whole, offset)
    }

    /// Writes the `frames` staged frames (their bytes already reserved) with one `write`. On an
    /// error, returns it with the whole frames that reached the file anyway: how many, and
    /// their bytes.
    fn write_staged(&mut self, frames: u64) -> Result<(), (io::Error, u64, u64)> {
        let shared = self.spool.shared.clone();
        let n = self.buf.len() as u64;
        if self.needs_new_segment()
            && let Err(e) = self.start_segment()
        {
            Shared::sub(&shared.unacked_bytes, n);
            return Err((e, 0, 0));
        }
        let Some(seg) = self.current.clone() else {
            Shared::sub(&shared.unacked_bytes, n);
            return Err((io::Error::other("spool lane has no segment"), 0, 0));
        };
        // Counted before the write, like the bytes, so a shipper that reads the frames at once
        // never acknowledges a record not counted yet.
        seg.records.fetch_add(frames, Ordering::Relaxed);
        shared.unacked_records.fetch_add(frames, Ordering::Relaxed);
        if self.last_mark.is_none_or(|t| t.elapsed() >= MARK_EVERY) {
            seg.marks.lock().unwrap_or_else(|e| e.into_inner()).push(self.written, SystemTime::now());
            self.last_mark = Some(Instant::now());
        }
        if let Err(e) = (&seg.file).write_all(&self.buf) {
            // Count what reached the file: whole frames stay (the shipper reads them), a torn
            // one is set aside by the shipper, and nothing is ever written after it.
            let on_disk = seg.file.metadata().map_or(self.written, |m| m.len()).max(self.written);
            let reached = on_disk - self.written;
            let (whole, whole_bytes) = self.whole_frames_in(reached);
            Shared::sub(&seg.records, frames - whole);
            Shared::sub(&shared.unacked_records, frames - whole);
            shared.disk_bytes.fetch_add(reached, Ordering::Relaxed);
            Shared::sub(&shared.unacked_bytes, n);
            shared.unacked_bytes.fetch_add(reached, Ordering::Relaxed);
            self.written = on_disk;
            self.broken = true;
            if whole > 0 {
                seg.dirty.store(true, Ordering::Release);
            }
            return Err((e, whole, whole_bytes));
        }
        seg.dirty.store(true, Ordering::Release);
        shared.disk_bytes.fetch_add(n, Ordering::Relaxed);
        self.written += n;
        Ok(())
    }

    /// The lane's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for SpoolLane {
    fn drop(&mut self) {
        if let Err(e) = self.close_current(None) {
            self.spool.shared.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(lane = %self.name, error = %e, "cannot sync the spool segment of a closing lane");
        }
    }
}

#[cfg(test)]
mod tests;
