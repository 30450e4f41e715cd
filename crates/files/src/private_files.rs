//! Files that hold secrets (tokens, keys, users) or callers' numbers (records, the spool,
//! backups) are for their owner only: this module makes that hold by construction.
//!
//! * [`owner_only_umask`]: the process creates every file 0600 and every directory 0700 unless
//!   it asks for a mode explicitly (what systemd's `UMask=0077` does for a unit), so a file
//!   written by any part of tollgate, or by SQLite (its `-wal` and `-shm` files take the
//!   database's mode), is private from the moment it exists.
//! * [`write_private`] / [`create_private`]: secrets written with mode 0600 from the start,
//!   whatever the umask (a file written, then chmod'ed, is readable in between, and whoever
//!   opened it then keeps reading it).
//! * [`tighten`]: state left group- or world-readable by an older release is made private at
//!   start (files keep the mode they were created with).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The bits of a mode that give the group or others any access.
const GROUP_OTHER: u32 = 0o077;

/// Sets the process's umask to 0077: files it creates from now on are 0600, directories 0700
/// (unless created with an explicit mode, like release bundles).
pub fn owner_only_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(GROUP_OTHER));
}

/// Creates (or truncates) `path` for writing with mode 0600. An existing file is made 0600 too
/// before anything is written to it.
pub fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes `bytes` to `path` as a new file of mode 0600 (a temporary file in the same directory,
/// synced, then renamed over `path`): a reader sees the old file or the whole new one, and
/// whoever held the old file open does not see the new contents.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // tempfile creates its files with mode 0600.
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `dir` (and missing parents) with mode 0700, and makes it 0700 if it exists.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & GROUP_OTHER != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !GROUP_OTHER))?;
    }
    Ok(())
}

/// Removes group and other access from `root` and everything under it (symbolic links are
/// not followed). Returns how many files and directories were changed. Errors name the file.
pub fn tighten(root: &Path) -> io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed meanwhile (a temporary file renamed by a running process).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(named(&path, e)),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & GROUP_OTHER != 0 {
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !GROUP_OTHER)) {
                Ok(()) => changed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(named(&path, e)),
            }
        }
        if meta.is_dir() {
            let entries = match std::fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(named(&path, e)),
            };
            for entry in entries {
                stack.push(entry.map_err(|e| named(&path, e))?.path());
            }
        }
    }
    Ok(changed)
}

/// [`tighten`]s `root` when it exists, saying in the log what an older release had left open.
pub fn tighten_state(root: &Path, what: &str) -> anyhow::Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let changed = tighten(root)
        .map_err(|e| anyhow::anyhow!("cannot make the {what} {} private (owner only): {e}", root.display()))?;
    if changed > 0 {
        tracing::warn!(
            dir = %root.display(),
            files = changed,
            "{what}: group or other could read {changed} files or directories (made by an older release); now owner only"
        );
    }
    Ok(())
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_written_0600_even_over_an_open_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        // Someone opened the file before the secret was written.
        let mut watcher = File::open(&path).unwrap();
        write_private(&path, b"secret\n").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
        let mut seen = Vec::new();
        std::io::Read::read_to_end(&mut watcher, &mut seen).unwrap();
        assert!(seen.is_empty(), "the secret went into a file someone else holds open");
        // Nothing else was left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_private_makes_an_existing_file_0600_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.partial");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = create_private(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_state_directory_left_open_is_tightened_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("spool")).unwrap();
        std::fs::write(state.join("users.json"), b"{}").unwrap();
        std::fs::write(state.join("spool/engine-000001.seg"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, state.join("link")).unwrap();
        for p in [state.clone(), state.join("spool")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in [state.join("users.json"), state.join("spool/engine-000001.seg")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert_eq!(tighten(&state).unwrap(), 4);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("spool")), 0o700);
        assert_eq!(mode(&state.join("users.json")), 0o600);
        assert_eq!(mode(&state.join("spool/engine-000001.seg")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link's target outside the state is not touched");
        assert_eq!(tighten(&state).unwrap(), 0, "nothing left to change");
    }

    #[test]
    fn create_private_dir_tightens_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
    }
}
