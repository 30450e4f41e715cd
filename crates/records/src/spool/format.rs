//! What a spool directory holds on disk: segment files `LANE-SEQUENCE.seg` of checksummed
//! frames, and next to each one the offset the collector has acknowledged, `LANE-SEQUENCE.ack`.
//!
//! Segment format: the 8-byte magic `TGSPOOL1`, then frames of
//! `length: u32 LE | crc32(payload): u32 LE | payload` where the payload is the record's JSON.
//! A reader stops at the first frame that is cut short or fails its checksum (a torn tail from
//! a crash) and reports where.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::Record;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"TGSPOOL1";
/// Length of the segment header: the acknowledged offset of a segment nothing of which was
/// acknowledged yet.
pub(crate) const HEADER_LEN: u64 = MAGIC.len() as u64;
/// Largest accepted frame payload.
pub const MAX_FRAME: usize = 1 << 20;

/// Segment files in a spool directory, sorted by lane then sequence.
pub fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort_by_key(|p| parse_segment_name(p));
    Ok(out)
}

/// The lane and sequence number of a segment file name.
pub(crate) fn parse_segment_name(path: &Path) -> Option<(String, u64)> {
    let stem = path.file_stem()?.to_str()?;
    let (lane, seq) = stem.rsplit_once('-')?;
    Some((lane.to_string(), seq.parse().ok()?))
}

/// The file holding a segment's acknowledged offset.
pub(crate) fn ack_path(seg: &Path) -> PathBuf {
    seg.with_extension("ack")
}

/// A segment's acknowledged offset as recorded on disk (the header length when none is).
pub(crate) fn read_ack(seg: &Path) -> u64 {
    fs::read_to_string(ack_path(seg))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map_or(HEADER_LEN, |offset: u64| offset.max(HEADER_LEN))
}

/// Records a segment's acknowledged offset. Not fsync'd on purpose: losing it only causes a
/// resend, which the collector deduplicates.
pub(crate) fn write_ack(seg: &Path, offset: u64) -> io::Result<()> {
    let path = ack_path(seg);
    let tmp = path.with_extension("ack.tmp");
    fs::write(&tmp, offset.to_string())?;
    fs::rename(tmp, path)
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
    let scan = scan_frames(&bytes[MAGIC.len()..], HEADER_LEN);
    out.valid_bytes = HEADER_LEN;
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

/// Counts the whole frames between segment offsets `from` (a frame boundary) and `to` (`None`:
/// the end of the file) by their headers, without reading or checking payloads. A frame cut
/// short by `to` or by the end of the file is not counted.
pub fn count_frames(path: &Path, from: u64, to: Option<u64>) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let end = match to {
        Some(to) => to,
        None => f.metadata()?.len(),
    };
    let from = from.max(HEADER_LEN);
    f.seek(SeekFrom::Start(from))?;
    let mut r = io::BufReader::with_capacity(64 << 10, f);
    let (mut at, mut n) = (from, 0u64);
    let mut header = [0u8; 8];
    while at + 8 <= end {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u64::from(u32::from_le_bytes([header[0], header[1], header[2], header[3]]));
        if len > MAX_FRAME as u64 || at + 8 + len > end {
            break;
        }
        r.seek_relative(len as i64)?;
        at += 8 + len;
        n += 1;
    }
    Ok(n)
}

/// Reads every record of every segment in `dir`, in lane and sequence order.
pub fn read_all(dir: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for seg in segments(dir)? {
        out.extend(read_segment(&seg)?.records);
    }
    Ok(out)
}
