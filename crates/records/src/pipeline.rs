//! The sending loop of a shipping pass: batches cut from the spool's segments, several in flight
//! at once, each segment's acknowledged offset moved only past a contiguous run of acknowledged
//! batches.
//!
//! Up to [`ShipperOptions::in_flight`] batches are delivered at the same time, each on a thread
//! of its own (scoped to the pass), so a collector stores one batch while the next travels, and
//! several collectors (see [`crate::spread`]) store at once. Answers may come back in any order;
//! a segment's offset in `SEGMENT.ack` moves past batch *k* only once batches 1..=k of the pass
//! are all acknowledged, and only once every earlier segment of its lane in the pass is wholly
//! acknowledged (so a lane's records are acknowledged in the order written). After a crash, or
//! a failed batch, what is re-sent is exactly what lies past that offset: batches acknowledged
//! out of order are sent again and the collector, whose record ids are primary keys, stores
//! them once.
//!
//! A batch the collector refuses as holding records of a newer format than it reads
//! ([`DeliveryError::RefusedNewer`]) holds back only its lane: no further batch of that lane is
//! cut in this pass (later segments of the lane are skipped), nothing past the refused batch is
//! acknowledged, and the lane is left out of passes until [`ShipperOptions::refused_retry`] has
//! passed; the other lanes are shipped, and the pass then reports the refusal
//! ([`PassError::RefusedNewer`]). Batches of that lane already in flight when the refusal comes
//! back may be stored; like any batch acknowledged out of order they are sent again later and
//! the collector stores them once. A failed delivery ([`DeliveryError::Failed`]) still ends the
//! pass.
//!
//! Memory: one segment's unacknowledged bytes (as before) plus the batches in flight.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use crate::ship::{DeliveryError, PassError, ShipperOptions, ShipperStats, Uplink};
use crate::spool::format::parse_segment_name;
use crate::spool::{MAGIC, Spool, read_from, scan_frames, segments};

/// The segment header's length: the acknowledged offset of a segment nothing of which was sent.
const HEADER_LEN: u64 = MAGIC.len() as u64;

/// A segment this pass sends from.
struct Segment {
    path: PathBuf,
    /// The lane that wrote it.
    lane: String,
    /// A lane still writes it (it is never removed then).
    open: bool,
    /// Its length when read.
    file_len: u64,
    /// Why bytes past the readable frames cannot be sent (for a finished segment set aside).
    unreadable: String,
    /// The offset written in `SEGMENT.ack`.
    acked: u64,
    /// Sequence number (within this pass and segment) of the first batch in `sent`.
    first: usize,
    /// Batches sent and not yet in the acknowledged run, in order: (end offset, records,
    /// acknowledged).
    sent: VecDeque<(u64, usize, bool)>,
    /// Every batch of the segment has been sent.
    all_sent: bool,
    /// Every earlier segment of its lane in this pass is wholly acknowledged: its own offset
    /// may move (a lane's records are acknowledged in order, across segments too).
    ready: bool,
    /// Removed or set aside.
    finished: bool,
}

impl Segment {
    /// Every batch sent and acknowledged.
    fn done(&self) -> bool {
        self.all_sent && self.sent.is_empty()
    }
}

/// A delivery's answer: (segment index in the pass, batch sequence number, result).
type Done = (usize, usize, Result<(), DeliveryError>);

/// One pass's state, owned by the thread that cuts batches and records answers.
struct Pass<'a> {
    spool: &'a Spool,
    stats: &'a ShipperStats,
    segments: Vec<Segment>,
    shipped: u64,
    failure: Option<PassError>,
    /// Lanes a batch of which the collector refused as of a newer format, in this pass.
    refused_lanes: HashSet<String>,
    /// The first such refusal.
    refused: Option<String>,
}

/// The lane of a segment file (its whole name when the name is not `LANE-SEQUENCE.seg`).
fn lane_of(seg: &Path) -> String {
    parse_segment_name(seg).map_or_else(|| seg.display().to_string(), |(lane, _)| lane)
}

/// Sends everything not yet acknowledged, several batches in flight; deletes finished segments.
/// Returns the records acknowledged (moved past in `SEGMENT.ack`).
pub(crate) fn ship_segments(
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
    let window = opts.in_flight.max(1);
    let mut pass = Pass {
        spool,
        stats,
        segments: Vec::new(),
        shipped: 0,
        failure: None,
        refused_lanes: HashSet::new(),
        refused: None,
    };
    let listed = segments(spool.dir())?;
    // Lanes refused earlier wait out their pause; those whose pause is over are tried again.
    let held: HashSet<String> = {
        let mut held = stats.held_lanes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        held.retain(|_, retry_at| *retry_at > now);
        held.keys().cloned().collect()
    };
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let mut outstanding = 0usize;
        'segments: for seg in listed {
            if pass.failure.is_some() {
                break;
            }
            let lane = lane_of(&seg);
            if held.contains(&lane) || pass.refused_lanes.contains(&lane) {
                continue;
            }
            // Asked per segment, after listing: a segment seen closed here is closed for good.
            let state = match spool.segment_state(&seg) {
                Ok(Some(state)) => state,
                Ok(None) => continue,
                Err(e) => {
                    pass.fail(PassError::Io(e));
                    break;
                }
            };
            // Read from the start while nothing is acknowledged, to check the header.
            let read_start = if state.acked <= HEADER_LEN { 0 } else { state.acked };
            let bytes = match read_from(&seg, read_start) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    spool.forget(&seg);
                    continue;
                }
                Err(e) => {
                    pass.fail(PassError::Io(e));
                    break;
                }
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
            let unreadable = if header_ok {
                scan.damage.clone().unwrap_or_else(|| "unreadable frames".into())
            } else {
                "not a spool segment (bad header)".to_string()
            };
            let index = pass.segments.len();
            let ready = match pass.segments.last() {
                Some(before) if before.lane == lane => before.done(),
                _ => true,
            };
            pass.segments.push(Segment {
                path: seg.clone(),
                lane,
                open: state.open,
                file_len,
                unreadable,
                acked: state.acked,
                first: 0,
                sent: VecDeque::new(),
                all_sent: false,
                ready,
                finished: false,
            });
            let mut frames = if header_ok { scan.frames.as_slice() } else { &[] };
            let mut seq = 0usize;
            let mut held_back = false;
            while !frames.is_empty() {
                let (batch, n, end) = cut_batch(frames, opts, body.len());
                frames = &frames[n..];
                while outstanding >= window {
                    outstanding -= 1;
                    if let Ok(done) = done_rx.recv() {
                        pass.answer(done);
                    }
                }
                if pass.failure.is_some() {
                    break 'segments;
                }
                if pass.refused_lanes.contains(&pass.segments[index].lane) {
                    // Not all sent: the segment is neither removed nor set aside.
                    held_back = true;
                    break;
                }
                pass.segments[index].sent.push_back((end, n, false));
                let tx = done_tx.clone();
                let spawned = std::thread::Builder::new().name("spool-send".into()).spawn_scoped(scope, move || {
                    crate::priority::lower_current_thread();
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| uplink.deliver(&batch, n)))
                        .unwrap_or_else(|_| {
                            Err(DeliveryError::Failed("the uplink failed (panicked) delivering the batch".into()))
                        });
                    // The pass waits for every answer before it ends: the receiver is there.
                    let _ = tx.send((index, seq, result));
                });
                if let Err(e) = spawned {
                    pass.segments[index].sent.pop_back();
                    pass.fail(PassError::Io(e));
                    break 'segments;
                }
                outstanding += 1;
                seq += 1;
            }
            if !held_back {
                pass.segments[index].all_sent = true;
                pass.advance(index);
            }
        }
        while outstanding > 0 {
            outstanding -= 1;
            if let Ok(done) = done_rx.recv() {
                pass.answer(done);
            }
        }
    });
    if !pass.refused_lanes.is_empty() {
        let retry_at = Instant::now() + opts.refused_retry;
        let mut held = stats.held_lanes.lock().unwrap_or_else(|p| p.into_inner());
        held.extend(pass.refused_lanes.iter().map(|lane| (lane.clone(), retry_at)));
    }
    let holding = !stats.held_lanes.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
    stats.holding_newer.store(holding, Ordering::Relaxed);
    match (pass.failure, pass.refused) {
        (Some(e), _) => Err(e),
        (None, Some(error)) => Err(PassError::RefusedNewer { shipped: pass.shipped, error }),
        (None, None) => Ok(pass.shipped),
    }
}

/// The next batch from `frames`: NDJSON of at most `batch_records` records and `batch_bytes`
/// bytes (at least one record), its record count and the segment offset past its last frame.
fn cut_batch(frames: &[(&[u8], u64)], opts: &ShipperOptions, available: usize) -> (Vec<u8>, usize, u64) {
    let mut batch = Vec::with_capacity(opts.batch_bytes.min(available) + 64);
    let mut n = 0;
    let mut end = 0;
    for (payload, frame_end) in frames {
        if n > 0 && (n >= opts.batch_records || batch.len() + payload.len() + 1 > opts.batch_bytes) {
            break;
        }
        batch.extend_from_slice(payload);
        batch.push(b'\n');
        n += 1;
        end = *frame_end;
    }
    (batch, n, end)
}

impl Pass<'_> {
    /// Keeps the first failure: the one the pass reports.
    fn fail(&mut self, e: PassError) {
        if self.failure.is_none() {
            self.failure = Some(e);
        }
    }

    /// Records a delivery's answer; moves the segment's offset past the acknowledged run.
    fn answer(&mut self, (index, seq, result): Done) {
        let stats = self.stats;
        match result {
            Ok(()) => {}
            Err(DeliveryError::Failed(e)) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(false, Ordering::Relaxed);
                *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                self.fail(PassError::Delivery(e));
                return;
            }
            Err(DeliveryError::RefusedNewer(e)) => {
                // The collector answered: reachable. The batch stays unacknowledged, and so does
                // everything after it in its segment; its lane waits.
                stats.refused_newer.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                self.refused_lanes.insert(self.segments[index].lane.clone());
                self.refused.get_or_insert(e);
                return;
            }
        }
        stats.connected.store(true, Ordering::Relaxed);
        let seg = &mut self.segments[index];
        if let Some(entry) = seg.sent.get_mut(seq - seg.first) {
            entry.2 = true;
        }
        self.advance(index);
    }

    /// Moves the segment's offset past its acknowledged run, once every earlier segment of its
    /// lane is acknowledged; a segment wholly acknowledged lets the next one of its lane move.
    fn advance(&mut self, mut index: usize) {
        loop {
            let seg = &mut self.segments[index];
            if !seg.ready {
                return;
            }
            let (mut records, mut batches) = (0u64, 0u64);
            while let Some(&(end, n, true)) = seg.sent.front() {
                seg.sent.pop_front();
                seg.first += 1;
                seg.acked = end;
                records += n as u64;
                batches += 1;
            }
            if batches > 0 {
                if let Err(e) = self.spool.acknowledge_records(&seg.path, seg.acked, records) {
                    self.fail(PassError::Io(e));
                    return;
                }
                self.stats.batches.fetch_add(batches, Ordering::Relaxed);
                self.stats.shipped.fetch_add(records, Ordering::Relaxed);
                self.shipped += records;
            }
            self.finish_if_done(index);
            if !self.segments[index].done() {
                return;
            }
            let (done, rest) = self.segments.split_at_mut(index + 1);
            match rest.first_mut() {
                Some(next) if next.lane == done[index].lane && !next.ready => {
                    next.ready = true;
                    index += 1;
                }
                _ => return,
            }
        }
    }

    /// Removes a finished (closed, wholly sent and acknowledged) segment, or sets it aside when
    /// bytes of it could not be read.
    fn finish_if_done(&mut self, index: usize) {
        let seg = &self.segments[index];
        if seg.open || seg.finished || !seg.done() {
            return;
        }
        let result = if seg.acked >= seg.file_len {
            self.spool.remove_acknowledged(&seg.path).map(|_| {
                self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
            })
        } else {
            // Unreadable bytes in a finished segment: keep them aside for inspection, never
            // delete them silently.
            self.spool.set_aside(&seg.path).map(|(damaged, lost)| {
                tracing::error!(segment = %seg.path.display(), moved_to = %damaged.display(), why = %seg.unreadable, bytes = lost, "spool segment damaged; moved aside");
                self.stats.damaged_bytes.fetch_add(lost, Ordering::Relaxed);
            })
        };
        self.segments[index].finished = true;
        if let Err(e) = result {
            self.fail(PassError::Io(e));
        }
    }
}
