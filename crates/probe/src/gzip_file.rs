//! Capture files compressed with gzip, read as the capture they hold: tcpdump `-z gzip` and
//! logrotate compress each rotated file once it is closed (`cap.pcap3.gz`), so a set of
//! rotated files is often mostly `.gz` with the newest file plain.
//!
//! * **Detection** is by content (gzip's magic number), not by name.
//! * **A cut gzip stream** (a file copied while gzip still wrote it) reads as its data up to
//!   the cut, then ends; [`GzipProgress::cut`] says it was cut, so the set reports the file as
//!   truncated rather than failing.
//! * **Members**: every gzip member of the file is read, one after the other (as `zcat`
//!   does); bytes after the last member that do not start another (zero padding) are ignored,
//!   as `zcat` ignores "trailing garbage". Damaged compressed data is an error naming gzip.
//! * **Progress** counts compressed bytes read from the disk ([`GzipProgress::position`]), so it
//!   adds up to the files' sizes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::bufread::GzDecoder;

/// The first two bytes of a gzip file.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True if `head` (a file's first bytes) starts as a gzip file.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// A file's reads, counted.
struct Counted {
    file: File,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A gzip file's decompressed bytes (every member of it, as `zcat` reads them).
pub struct GzipFile {
    /// The member being read; none once the file ended.
    member: Option<GzDecoder<BufReader<Counted>>>,
    progress: GzipProgress,
}

/// What a reader of a [`GzipFile`] can still see once the file was handed to the capture
/// reader: whether its stream was cut, and how far into the file it read.
#[derive(Clone)]
pub struct GzipProgress {
    cut: Arc<AtomicBool>,
    position: Arc<AtomicU64>,
}

impl GzipProgress {
    /// The compressed stream ended before its end (the file was cut short).
    pub fn cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Bytes of the file (compressed) read so far.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }
}

impl GzipFile {
    /// Reads `file` (from its start) as gzip.
    pub fn new(file: File) -> GzipFile {
        let progress = GzipProgress { cut: Arc::default(), position: Arc::default() };
        let counted = Counted { file, read: progress.position.clone() };
        GzipFile { member: Some(GzDecoder::new(BufReader::with_capacity(1 << 16, counted))), progress }
    }

    /// Its cut flag and position, to read while the capture reader owns the file.
    pub fn progress(&self) -> GzipProgress {
        self.progress.clone()
    }
}

impl Read for GzipFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = self.member.as_mut() else { return Ok(0) };
            match member.read(buf) {
                Ok(0) => {
                    // The member ended: another one follows, or the file ends (bytes that do
                    // not start a member are ignored, as zcat does).
                    let mut rest = self.member.take().map(GzDecoder::into_inner).expect("a member being read");
                    let next = rest.fill_buf().map_err(|e| io::Error::new(e.kind(), format!("gzip: {e}")))?;
                    if is_gzip(next) {
                        self.member = Some(GzDecoder::new(rest));
                    } else {
                        return Ok(0);
                    }
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.progress.cut.store(true, Ordering::Relaxed);
                    self.member = None;
                    return Ok(0);
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("gzip: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> (io::Result<Vec<u8>>, GzipProgress) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let mut g = GzipFile::new(f);
        let progress = g.progress();
        let mut out = Vec::new();
        let r = g.read_to_end(&mut out).map(|_| out);
        (r, progress)
    }

    #[test]
    fn a_whole_file_reads_back_with_its_size_as_position() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let z = gzip(&data);
        let (out, progress) = read_all(&z);
        assert_eq!(out.unwrap(), data);
        assert!(!progress.cut());
        assert_eq!(progress.position(), z.len() as u64);
    }

    #[test]
    fn two_members_read_as_one_stream() {
        let mut z = gzip(b"first ");
        z.extend(gzip(b"second"));
        assert_eq!(read_all(&z).0.unwrap(), b"first second");
    }

    #[test]
    fn zero_padding_after_the_last_member_is_ignored_as_zcat_does() {
        let mut z = gzip(b"whole");
        z.extend([0u8; 512]);
        let (out, progress) = read_all(&z);
        assert_eq!(out.unwrap(), b"whole");
        assert!(!progress.cut());
    }

    #[test]
    fn a_stream_cut_inside_its_header_reads_nothing_and_says_so() {
        let z = gzip(b"some capture bytes");
        let (out, progress) = read_all(&z[..6]);
        assert_eq!(out.unwrap(), b"");
        assert!(progress.cut());
    }

    #[test]
    fn a_cut_stream_reads_up_to_the_cut_and_says_so() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i * 7919).to_le_bytes()).collect();
        let z = gzip(&data);
        let (out, progress) = read_all(&z[..z.len() / 2]);
        let out = out.unwrap();
        assert!(progress.cut());
        assert!(!out.is_empty() && out.len() < data.len() && data.starts_with(&out), "{}", out.len());
    }

    #[test]
    fn corrupt_data_is_an_error_naming_gzip() {
        let mut z = gzip(&[7u8; 100_000]);
        let n = z.len();
        for b in &mut z[12..n - 8] {
            *b ^= 0x55;
        }
        let e = read_all(&z).0.unwrap_err();
        assert!(e.to_string().starts_with("gzip: "), "{e}");
    }
}
