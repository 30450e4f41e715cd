//! The collector's quarantine: received lines that are not records, or not valid ones, kept in
//! `<dir>/YYYY-MM-DD.ndjson` for inspection, never dropped and never stored as records.
//!
//! Writing is blocking file I/O, so callers run it on the blocking pool. Entries are encoded in
//! memory first (their size is then known), space is reserved against the size limit before the
//! batch's records are stored, and the entries are written through one buffered writer and one
//! `fdatasync`. One writer at a time, so entries of concurrent batches never interleave.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A received line kept aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// Line number in its batch, from 1.
    pub line: usize,
    /// The line as received (lossily decoded if it was not UTF-8).
    pub text: String,
    /// Why it was not stored.
    pub reason: String,
}

#[derive(Serialize)]
struct Entry<'a> {
    at: DateTime<Utc>,
    from: &'a str,
    line: usize,
    reason: &'a str,
    text: &'a str,
}

/// Encoded entries of one batch, ready to be written.
#[derive(Debug, Default)]
pub struct Entries {
    bytes: Vec<u8>,
    lines: usize,
}

impl Entries {
    /// Encodes `lines` received from `from` (the sender's token name) at `at`, one JSON object
    /// per line: `{"at", "from", "line", "reason", "text"}`.
    pub fn encode(lines: &[BadLine], from: &str, at: DateTime<Utc>) -> Entries {
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.text.len() + l.reason.len() + 96).sum());
        for l in lines {
            let entry = Entry { at, from, line: l.line, reason: &l.reason, text: &l.text };
            // Serialising plain strings and numbers into memory cannot fail.
            let _ = serde_json::to_writer(&mut bytes, &entry);
            bytes.push(b'\n');
        }
        Entries { bytes, lines: lines.len() }
    }

    /// Bytes the entries take on disk.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Number of lines.
    pub fn lines(&self) -> usize {
        self.lines
    }
}

/// Space set aside in the quarantine for one batch; given back if dropped unused.
#[derive(Debug)]
pub struct Reservation<'a> {
    quarantine: &'a Quarantine,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.quarantine.give_back(self.bytes);
        }
    }
}

/// Why lines could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The quarantine is at its size limit.
    #[error(
        "the quarantine {dir} is full ({used} of {max} bytes; {needed} more needed): delete or move its files, or raise collector.quarantine_max_mb"
    )]
    Full {
        /// The directory.
        dir: String,
        /// Bytes in use.
        used: u64,
        /// The limit.
        max: u64,
        /// Bytes the batch needs.
        needed: u64,
    },
    /// Writing failed.
    #[error("cannot write the quarantine {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
}

/// The quarantine directory and its size limit.
#[derive(Debug)]
pub struct Quarantine {
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    writer: Mutex<()>,
}

fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

impl Quarantine {
    /// The quarantine in `dir` (created on first use), holding at most `max_bytes` (0: no limit).
    pub fn new(dir: PathBuf, max_bytes: u64) -> Quarantine {
        let used = dir_size(&dir);
        Quarantine { dir, max_bytes, used: AtomicU64::new(used), writer: Mutex::new(()) }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in use (as of the last write or rescan) and the limit (0: none).
    pub fn usage(&self) -> (u64, u64) {
        (self.used.load(Ordering::Relaxed), self.max_bytes)
    }

    fn give_back(&self, bytes: u64) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    fn try_take(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (self.max_bytes == 0 || u.saturating_add(bytes) <= self.max_bytes).then_some(u + bytes)
            })
            .is_ok()
    }

    /// Sets aside room for `entries`, or says the quarantine is full. When the limit seems
    /// reached the directory is measured again first, so files an operator deleted count.
    pub fn reserve(&self, entries: &Entries) -> Result<Reservation<'_>, QuarantineError> {
        let bytes = entries.len();
        if bytes == 0 || self.try_take(bytes) {
            return Ok(Reservation { quarantine: self, bytes });
        }
        {
            let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            self.used.store(dir_size(&self.dir), Ordering::Relaxed);
        }
        if self.try_take(bytes) {
            return Ok(Reservation { quarantine: self, bytes });
        }
        Err(QuarantineError::Full {
            dir: self.dir.display().to_string(),
            used: self.used.load(Ordering::Relaxed),
            max: self.max_bytes,
            needed: bytes,
        })
    }

    /// Writes reserved entries to today's file (`at`'s date) and syncs it.
    pub fn keep(
        &self,
        mut reservation: Reservation<'_>,
        entries: &Entries,
        at: DateTime<Utc>,
    ) -> Result<(), QuarantineError> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(format!("{}.ndjson", at.format("%Y-%m-%d")));
        let io_err = |source| QuarantineError::Io { path: path.display().to_string(), source };
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&self.dir).map_err(io_err)?;
        let file = open_private(&path).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&entries.bytes).map_err(io_err)?;
        let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_data().map_err(io_err)?;
        // The space is now used for good.
        reservation.bytes = 0;
        Ok(())
    }
}

/// Opens a file for appending, created readable by its owner only (it holds callers' numbers).
fn open_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(n: usize, text: &str) -> BadLine {
        BadLine { line: n, text: text.into(), reason: "not a record".into() }
    }

    #[test]
    fn entries_are_kept_whole_and_counted_against_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path().join("q"), 10_000);
        let at = Utc::now();
        let entries = Entries::encode(&[bad(1, "x\"y"), bad(3, "{")], "shipper", at);
        let r = q.reserve(&entries).unwrap();
        q.keep(r, &entries, at).unwrap();
        let text = fs::read_to_string(dir.path().join("q").join(format!("{}.ndjson", at.format("%Y-%m-%d")))).unwrap();
        let kept: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0]["text"].as_str(), kept[0]["line"].as_u64()), (Some("x\"y"), Some(1)));
        assert_eq!(kept[1]["from"], "shipper");
        assert_eq!(q.usage().0, text.len() as u64);
    }

    #[test]
    fn a_full_quarantine_refuses_and_an_unused_reservation_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path().to_path_buf(), 1_000);
        let big = Entries::encode(&[bad(1, &"z".repeat(2_000))], "s", Utc::now());
        assert!(matches!(q.reserve(&big), Err(QuarantineError::Full { .. })));
        let small = Entries::encode(&[bad(1, "z")], "s", Utc::now());
        {
            let _r = q.reserve(&small).unwrap();
            assert!(q.usage().0 > 0);
        }
        assert_eq!(q.usage().0, 0, "a batch that failed to store gives its room back");
    }

    #[test]
    fn files_deleted_by_an_operator_make_room_again() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path().to_path_buf(), 600);
        let at = Utc::now();
        let e = Entries::encode(&[bad(1, &"a".repeat(400))], "s", at);
        q.keep(q.reserve(&e).unwrap(), &e, at).unwrap();
        assert!(q.reserve(&e).is_err());
        for f in fs::read_dir(dir.path()).unwrap() {
            fs::remove_file(f.unwrap().path()).unwrap();
        }
        assert!(q.reserve(&e).is_ok());
    }
}
