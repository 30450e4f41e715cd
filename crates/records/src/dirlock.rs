//! One writer per directory: an exclusive `flock` on a lock file inside it, held for the life
//! of the process that writes there.
//!
//! The lock file holds the holder's pid and what it is (`tollgate serve`), so a second process
//! is told exactly who is in the way. The lock belongs to the kernel, not to the file: it goes
//! away when the holder exits, however it exits (SIGKILL included), so a stale lock file never
//! blocks anyone, and the file itself is never deleted (deleting it would let two processes lock
//! two different files of the same name). Its descriptor is close-on-exec, so child processes do
//! not inherit the lock.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Who holds a directory, as written in its lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// What the holder is, e.g. `tollgate serve`.
    pub what: String,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let what = lines.next().unwrap_or("").trim().to_string();
        Some(Holder { pid, what })
    }
}

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is in use by {}", .dir.display(), describe(.holder))]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, when the lock file says (it may be mid-write).
        holder: Option<Holder>,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn describe(holder: &Option<Holder>) -> String {
    match holder {
        Some(h) if h.what.is_empty() => format!("pid {}", h.pid),
        Some(h) => format!("pid {} ({})", h.pid, h.what),
        None => "another process".to_string(),
    }
}

/// An exclusive lock on a directory, released when dropped (or when the process ends).
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirLock({})", self.path.display())
    }
}

impl DirLock {
    /// Locks `dir` (which must exist) through the file `dir/name`, writing this process's pid
    /// and `what` into it. Fails at once, naming the holder, if another process holds it.
    pub fn acquire(dir: &Path, name: &str, what: &str) -> Result<DirLock, LockError> {
        let path = dir.join(name);
        let io_err = |source| LockError::Io { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::InUse { dir: dir.to_path_buf(), holder: read_holder(&mut file) });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        file.write_all(format!("{}\n{what}\n", std::process::id()).as_bytes()).map_err(io_err)?;
        Ok(DirLock { file, path })
    }

    /// Like [`DirLock::acquire`], but only if the lock file already exists: `Ok(None)` when it
    /// does not (the directory is being set up by its owner, or was never locked).
    pub fn acquire_existing(dir: &Path, name: &str, what: &str) -> Result<Option<DirLock>, LockError> {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => DirLock::acquire(dir, name, what).map(Some),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LockError::Io { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The holder named in a lock file. The holder writes it just after locking, so an empty file
/// is read again for a moment before giving up.
fn read_holder(file: &mut File) -> Option<Holder> {
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let mut text = String::new();
        let read = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut text));
        if read.is_ok()
            && let Some(h) = Holder::parse(&text)
        {
            return Some(h);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "x.lock", "tollgate serve").unwrap();
        // flock locks belong to the open file: a second open in the same process conflicts
        // just as another process would.
        match DirLock::acquire(dir.path(), "x.lock", "tollgate probe --pcap") {
            Err(e @ LockError::InUse { .. }) => {
                let text = e.to_string();
                let want = format!("{} is in use by pid {} (tollgate serve)", dir.path().display(), std::process::id());
                assert_eq!(text, want);
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        let again = DirLock::acquire(dir.path(), "x.lock", "tollgate engine").unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(text, format!("{}\ntollgate engine\n", std::process::id()), "rewritten, not appended");
    }

    #[test]
    fn acquire_existing_does_not_create_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DirLock::acquire_existing(dir.path(), "x.lock", "t").unwrap().is_none());
        assert!(!dir.path().join("x.lock").exists());
        let held = DirLock::acquire(dir.path(), "x.lock", "owner").unwrap();
        assert!(matches!(DirLock::acquire_existing(dir.path(), "x.lock", "t"), Err(LockError::InUse { .. })));
        drop(held);
        assert!(DirLock::acquire_existing(dir.path(), "x.lock", "t").unwrap().is_some());
    }
}
