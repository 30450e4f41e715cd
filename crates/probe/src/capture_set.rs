//! Several capture files read as one continuous stream in time order, so that calls span
//! files: the rotated files of one capture (tcpdump `-C` names `cap.pcap`, `cap.pcap1`,
//! `cap.pcap2` ...; `-G` strftime names; dumpcap and tshark `-b` name
//! `prefix_00001_YYYYMMDDhhmmss.pcap`), a directory of them, or a glob.
//!
//! * **Inputs** ([`resolve_inputs`]): each is a file, a directory (its files that start as a
//!   pcap or pcapng file, gzip-compressed or not; others are skipped), or a glob pattern (`*`,
//!   `?`, `[...]`) matching files. A path given twice (say, by a directory and a glob) is read
//!   once.
//! * **Compressed files** (tcpdump `-z gzip`, logrotate) are read decompressed, found by their
//!   content ([`crate::gzip_file`]); a cut gzip stream is read up to the cut and listed as
//!   truncated.
//! * **Order** ([`CaptureSet::open`]): files are ordered by the time of their first packet, not
//!   by name (tcpdump `-C` names sort `cap.pcap10` before `cap.pcap2`, and a `-W` ring reuses
//!   names). Files whose times overlap (captures of two taps, say) are merged packet by packet
//!   in time order; at most [`MAX_OVERLAPPING`] files are open at once, beyond that the set is
//!   refused with an error naming the file. The same packet in two files is read twice (the
//!   tracker counts the copy as a retransmission).
//! * **Memory**: files that do not overlap are read one after the other, one file open at a
//!   time; each open file holds one read buffer (1 MiB, up to 64 MiB for a huge record).
//! * **Errors** name the file: one that cannot be opened or is not a capture stops the
//!   reading; one cut short (its last record incomplete) is read up to the cut and listed in
//!   [`FileSummary::truncated`].

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::capture::{CaptureError, Frame, FrameReader};
use crate::gzip_file::{GzipFile, GzipProgress, is_gzip};

/// Most files read at once when their times overlap.
pub const MAX_OVERLAPPING: usize = 64;

/// Why a set of captures could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureSetError {
    /// No input was given.
    #[error("no capture file given")]
    Nothing,
    /// A path that does not exist (and is not a glob pattern).
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    /// A glob pattern that matches no file.
    #[error("{0}: no file matches this pattern")]
    NoMatch(String),
    /// A glob pattern that cannot be parsed.
    #[error("{pattern}: not a valid pattern ({reason})")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory without capture files.
    #[error("{0}: no pcap or pcapng file in this directory")]
    EmptyDirectory(PathBuf),
    /// A file or directory that cannot be read.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A file that is not a capture, or a capture that cannot be parsed.
    #[error("{path}: {error}")]
    Capture {
        /// The file.
        path: PathBuf,
        /// The error.
        error: CaptureError,
    },
    /// More files overlap in time than can be merged.
    #[error(
        "{path}: more than {MAX_OVERLAPPING} capture files overlap in time with it; read fewer files at once, or \
         files of one capture (whose times follow each other)"
    )]
    TooManyOverlapping {
        /// The file that would have been one too many.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaptureSetError + '_ {
    move |error| CaptureSetError::Io { path: path.to_path_buf(), error }
}

/// A capture file's bytes as the capture reader reads them: decompressed when the file is gzip
/// (found by its first bytes), with the gzip stream's progress then.
fn open_input(path: &Path) -> std::io::Result<(Box<dyn Read + Send>, Option<GzipProgress>)> {
    let mut file = File::open(path)?;
    let mut head = [0u8; 2];
    let gzip = file.read_exact(&mut head).is_ok() && is_gzip(&head);
    file.rewind()?;
    if gzip {
        let file = GzipFile::new(file);
        let progress = file.progress();
        Ok((Box::new(file), Some(progress)))
    } else {
        Ok((Box::new(file), None))
    }
}

/// True if `path` starts as a pcap or pcapng file (its magic number), gzip-compressed or not.
fn is_capture(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    let read = open_input(path).and_then(|(mut input, _)| input.read_exact(&mut magic));
    read.is_ok()
        && matches!(
            magic,
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
}

fn has_glob_characters(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The capture files named by `inputs`: files as given, directories' capture files, glob
/// patterns' matches (see the module documentation); each file once, in the order found.
pub fn resolve_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CaptureSetError> {
    if inputs.is_empty() {
        return Err(CaptureSetError::Nothing);
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(input).map_err(io_error(input))? {
                let path = entry.map_err(io_error(input))?.path();
                if path.is_file() && is_capture(&path) {
                    found.push(path);
                }
            }
            if found.is_empty() {
                return Err(CaptureSetError::EmptyDirectory(input.clone()));
            }
            found.sort();
            files.extend(found);
        } else if input.exists() {
            files.push(input.clone());
        } else {
            let pattern = input.to_string_lossy().into_owned();
            if !has_glob_characters(&pattern) {
                return Err(CaptureSetError::Missing(input.clone()));
            }
            let paths = glob::glob(&pattern)
                .map_err(|e| CaptureSetError::Pattern { pattern: pattern.clone(), reason: e.msg.to_string() })?;
            let mut found = Vec::new();
            for path in paths {
                let path = path.map_err(|e| CaptureSetError::Io {
                    path: e.path().to_path_buf(),
                    error: std::io::Error::new(e.error().kind(), e.error().to_string()),
                })?;
                if path.is_file() {
                    found.push(path);
                }
            }
            if found.is_empty() {
                return Err(CaptureSetError::NoMatch(pattern));
            }
            files.extend(found);
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

/// Files beside `path` named as tcpdump `-C` names the files after it (`cap.pcap1`,
/// `cap.pcap2` ... for `cap.pcap`, also compressed by `-z gzip`: `cap.pcap1.gz` ..., for
/// `cap.pcap` or `cap.pcap.gz`): when only `cap.pcap` is given, the rest of its capture is
/// probably there too. Sorted by name.
pub fn rotation_siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(name))
                .map(|rest| rest.strip_suffix(".gz").unwrap_or(rest))
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// One file of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The time of its first packet (µs since the epoch); `None` for a capture without packets.
    pub first_us: Option<i64>,
}

/// What reading one file of a set found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Its path.
    pub path: PathBuf,
    /// Frames read from it.
    pub frames: u64,
    /// The time of its first and last packet (µs since the epoch), if it had any.
    pub span_us: Option<(i64, i64)>,
    /// It ended inside a record, or inside its gzip stream (cut short); the frames before were
    /// read.
    pub truncated: bool,
    /// It was read merged with another file whose times overlap its own.
    pub merged: bool,
}

/// Capture files ordered by the time of their first packet, read as one stream.
#[derive(Debug, Clone)]
pub struct CaptureSet {
    files: Vec<CaptureFile>,
}

/// A file being read: its reader positioned at its next frame.
struct Reading {
    /// Index in the set.
    index: usize,
    reader: Opened,
    summary: FileSummary,
}

/// A file's frame reader, and its gzip stream's progress when it is compressed.
struct Opened {
    frames: FrameReader<'static>,
    gzip: Option<GzipProgress>,
}

impl Opened {
    /// The file ended inside a record, or inside its gzip stream.
    fn truncated(&self) -> bool {
        self.frames.summary().truncated || self.gzip.as_ref().is_some_and(GzipProgress::cut)
    }

    /// Bytes of the file (as stored: compressed for gzip) read so far.
    fn position(&self) -> u64 {
        self.gzip.as_ref().map_or_else(|| self.frames.consumed(), GzipProgress::position)
    }
}

/// A file opened: its frame reader (none when it holds no bytes at all), and its gzip stream's
/// progress when it is compressed (a stream cut before its first byte is an empty file that
/// was cut).
fn open_reader(path: &Path) -> Result<(Option<Opened>, Option<GzipProgress>), CaptureSetError> {
    let (input, gzip) = open_input(path).map_err(io_error(path))?;
    let frames =
        FrameReader::new(input).map_err(|error| CaptureSetError::Capture { path: path.to_path_buf(), error })?;
    Ok((frames.map(|frames| Opened { frames, gzip: gzip.clone() }), gzip))
}

impl CaptureSet {
    /// Opens each file to read the time of its first packet (a file that cannot be opened, or
    /// is not a capture, is an error naming it) and orders the files by it; files without
    /// packets come first, then ties keep the order given.
    pub fn open(paths: &[PathBuf]) -> Result<CaptureSet, CaptureSetError> {
        if paths.is_empty() {
            return Err(CaptureSetError::Nothing);
        }
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let size = std::fs::metadata(path).map_err(io_error(path))?.len();
            let first_us = match open_reader(path)?.0 {
                Some(mut r) => {
                    let capture = |error| CaptureSetError::Capture { path: path.clone(), error };
                    if r.frames.advance().map_err(capture)? { r.frames.frame().map(|f| f.ts_us) } else { None }
                }
                None => None,
            };
            files.push(CaptureFile { path: path.clone(), size, first_us });
        }
        files.sort_by_key(|f| f.first_us);
        Ok(CaptureSet { files })
    }

    /// The files, in the order they are read.
    pub fn files(&self) -> &[CaptureFile] {
        &self.files
    }

    /// The bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Reads every frame of every file in time order (see the module documentation) and calls
    /// `frame` for each; `progress` receives the bytes read so far over all files.
    pub fn read(
        &self,
        mut frame: impl FnMut(Frame<'_>),
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<FileSummary>, CaptureSetError> {
        let mut done: Vec<(usize, FileSummary)> = Vec::with_capacity(self.files.len());
        let mut reading: Vec<Reading> = Vec::new();
        let mut next = 0;
        let mut bytes_done = 0u64;
        let mut frames = 0u64;
        loop {
            // Open every file that starts before the earliest packet not yet read.
            while let Some(file) = self.files.get(next) {
                let head = reading.iter().filter_map(|r| r.reader.frames.frame().map(|f| f.ts_us)).min();
                if let (Some(head), Some(first)) = (head, file.first_us)
                    && first > head
                {
                    break;
                }
                if reading.len() >= MAX_OVERLAPPING {
                    return Err(CaptureSetError::TooManyOverlapping { path: file.path.clone() });
                }
                let merged = !reading.is_empty();
                for r in &mut reading {
                    r.summary.merged |= merged;
                }
                let summary =
                    FileSummary { path: file.path.clone(), frames: 0, span_us: None, truncated: false, merged };
                let path = &file.path;
                let capture = |error| CaptureSetError::Capture { path: path.clone(), error };
                let (opened, gzip) = open_reader(path)?;
                match opened {
                    Some(mut reader) => {
                        if reader.frames.advance().map_err(capture)? {
                            reading.push(Reading { index: next, reader, summary });
                        } else {
                            bytes_done += file.size;
                            done.push((next, FileSummary { truncated: reader.truncated(), ..summary }));
                        }
                    }
                    None => {
                        bytes_done += file.size;
                        let truncated = gzip.as_ref().is_some_and(GzipProgress::cut);
                        done.push((next, FileSummary { truncated, ..summary }));
                    }
                }
                next += 1;
            }
            // The earliest packet of the files being read (ties: the file read first).
            let Some(i) = reading
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.reader.frames.frame().map(|f| ((f.ts_us, r.index), i)))
                .min()
                .map(|(_, i)| i)
            else {
                if next >= self.files.len() {
                    break;
                }
                continue;
            };
            let r = &mut reading[i];
            if let Some(f) = r.reader.frames.frame() {
                r.summary.frames += 1;
                r.summary.span_us = Some(match r.summary.span_us {
                    Some((first, _)) => (first, f.ts_us),
                    None => (f.ts_us, f.ts_us),
                });
                frame(f);
            }
            let path = &self.files[r.index].path;
            let more =
                r.reader.frames.advance().map_err(|error| CaptureSetError::Capture { path: path.clone(), error })?;
            if !more {
                let r = reading.swap_remove(i);
                bytes_done += self.files[r.index].size;
                let truncated = r.reader.truncated();
                done.push((r.index, FileSummary { truncated, ..r.summary }));
            }
            frames += 1;
            if frames.is_multiple_of(4096) {
                progress(bytes_done + reading.iter().map(|r| r.reader.position()).sum::<u64>());
            }
        }
        progress(bytes_done);
        done.sort_by_key(|(i, _)| *i);
        Ok(done.into_iter().map(|(_, s)| s).collect())
    }
}
