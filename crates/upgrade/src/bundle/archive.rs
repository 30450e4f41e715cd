//! The bundle's container: a gzip-compressed tar archive of regular files, written
//! deterministically (sorted, mtime 0, uid/gid 0) and read into memory within limits.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::{BundleError, VerifyLimits};

/// A file in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path inside the archive.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// Writes `entries` (path, contents, mode) as a gzip-compressed tar archive.
pub(crate) fn write(entries: &[(String, &[u8], u32)]) -> io::Result<Vec<u8>> {
    let mut sorted: Vec<&(String, &[u8], u32)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    // Fast compression: a bundle holds a large binary, and building it should take seconds.
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (path, data, mode) in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder.append_data(&mut header, path, *data)?;
    }
    let mut gz = builder.into_inner()?;
    gz.flush()?;
    gz.finish()
}

/// A reader that fails once more than `left` bytes were read from it.
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other("bundle larger than the limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Bytes a tar archive spends beyond its files' contents: a 512-byte header per entry (plus
/// long-name headers), padding, and the end marker.
const TAR_OVERHEAD_PER_ENTRY: u64 = 2048;

/// Reads every regular file of `archive` (gzip-compressed or plain tar). Refuses anything but
/// regular files and directories, duplicate paths, absolute or `..` paths, and archives beyond
/// `limits`.
pub(crate) fn read(archive: &[u8], limits: &VerifyLimits) -> Result<Vec<Entry>, BundleError> {
    if archive.len() as u64 > limits.max_archive_bytes {
        return Err(BundleError::TooLarge { limit: limits.max_archive_bytes });
    }
    let budget = limits.max_unpacked_bytes + TAR_OVERHEAD_PER_ENTRY * (limits.max_files as u64 + 2);
    let source: Box<dyn Read + '_> =
        if archive.starts_with(&[0x1f, 0x8b]) { Box::new(GzDecoder::new(archive)) } else { Box::new(archive) };
    let mut limited = Limited { inner: source, left: budget, exceeded: false };
    let result = read_tar(&mut limited, limits);
    if limited.exceeded {
        return Err(BundleError::TooLarge { limit: limits.max_unpacked_bytes });
    }
    result
}

fn corrupt(e: io::Error) -> BundleError {
    BundleError::Archive(e.to_string())
}

fn read_tar<R: Read>(reader: R, limits: &VerifyLimits) -> Result<Vec<Entry>, BundleError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut total: u64 = 0;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path_bytes();
        let path = std::str::from_utf8(&raw)
            .map_err(|_| BundleError::UnsafePath(String::from_utf8_lossy(&raw).into_owned()))?
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(BundleError::UnsupportedEntry { path, kind: format!("{kind:?}") });
        }
        super::manifest::check_path(&path).map_err(|_| BundleError::UnsafePath(path.clone()))?;
        if !seen.insert(path.clone()) {
            return Err(BundleError::DuplicateEntry(path));
        }
        if out.len() >= limits.max_files {
            return Err(BundleError::TooLarge { limit: limits.max_unpacked_bytes });
        }
        let size = entry.header().size().map_err(corrupt)?;
        total = total.saturating_add(size);
        if total > limits.max_unpacked_bytes {
            return Err(BundleError::TooLarge { limit: limits.max_unpacked_bytes });
        }
        let mut data = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        entry.read_to_end(&mut data).map_err(corrupt)?;
        out.push(Entry { path, data });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_deterministically_and_reads_back() {
        let entries = vec![("b".to_string(), &b"two"[..], 0o644), ("a/x".to_string(), &b"one"[..], 0o755)];
        let one = write(&entries).unwrap();
        let two = write(&entries).unwrap();
        assert_eq!(one, two, "same input, same bytes");
        let back = read(&one, &VerifyLimits::default()).unwrap();
        let paths: Vec<&str> = back.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/x", "b"]);
        assert_eq!(back[1].data, b"two");
    }

    #[test]
    fn garbage_and_oversized_archives_are_refused() {
        assert!(matches!(read(b"\x1f\x8bnot gzip at all", &VerifyLimits::default()), Err(BundleError::Archive(_))));
        let big = vec![0u8; 4096];
        let archive = write(&[("f".to_string(), &big[..], 0o644)]).unwrap();
        let tight = VerifyLimits { max_unpacked_bytes: 1000, ..VerifyLimits::default() };
        assert!(matches!(read(&archive, &tight), Err(BundleError::TooLarge { .. })));
        let tiny = VerifyLimits { max_archive_bytes: 10, ..VerifyLimits::default() };
        assert!(matches!(read(&archive, &tiny), Err(BundleError::TooLarge { .. })));
    }

    #[test]
    fn links_and_escaping_paths_are_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "payload/tollgate", "/etc/passwd").unwrap();
        let tar = builder.into_inner().unwrap();
        assert!(matches!(read(&tar, &VerifyLimits::default()), Err(BundleError::UnsupportedEntry { .. })));

        // A hand-made header: the tar crate's builder refuses ".." itself.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..9].copy_from_slice(b"../escape");
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend_from_slice(&[0u8; 1024]);
        assert!(matches!(read(&raw, &VerifyLimits::default()), Err(BundleError::UnsafePath(_))));
    }
}
