//! Side spools: how a second writer adds records to a spool another process holds.
//!
//! A process that finds a spool directory locked ([`OpenError::InUse`]) opens a side spool,
//! `DIR/side/ID/` (ID a ULID), locked by itself ([`Spool::open_side`]). It writes and ships from
//! there on its own. What it could not ship it hands over ([`Spool::hand_over`]) once its lanes
//! are closed: each segment is renamed (its `.ack` file first) into `DIR` as lane `LANE.ID`, a
//! name no other writer uses, and the side directory is removed. The holder of `DIR` counts the
//! new segments at its next listing ([`Spool::segment_state`]) and ships them. A side spool
//! whose writer died (its lock is free) is handed over by the holder of `DIR` instead
//! ([`Spool::adopt_side_spools`], which the shipper calls on every pass).
//!
//! Segments only move while no process writes them: a side spool's writer holds its lock for
//! as long as it lives, and hands over only after its lanes are closed; the holder of `DIR`
//! moves a side spool only while holding that same lock. A side directory appears under its
//! final name already locked (it is created as `.new-ID` and renamed once locked), so it is
//! never mistaken for an abandoned one.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::format::{ack_path, parse_segment_name, segments};
use super::{LOCK_FILE, OpenError, Spool, SpoolOptions};
use crate::dirlock::{DirLock, LockError};

/// The directory of a spool holding its side spools.
pub const SIDE_DIR: &str = "side";
/// Prefix of a side directory being created (not locked yet).
const STAGING_PREFIX: &str = ".new-";

/// What a hand-over moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandOver {
    /// Segment files moved.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Spool {
    /// Opens a new side spool of the spool directory `main` (which another process holds),
    /// locked by this process; see the [module docs](self).
    pub fn open_side(main: &Path, options: SpoolOptions) -> Result<Spool, OpenError> {
        let root = main.join(SIDE_DIR);
        fs::create_dir_all(&root).map_err(OpenError::io(&root))?;
        let id = ulid::Ulid::new().to_string();
        let staging = root.join(format!("{STAGING_PREFIX}{id}"));
        fs::create_dir(&staging).map_err(OpenError::io(&staging))?;
        let lock = DirLock::acquire(&staging, LOCK_FILE, &options.holder).map_err(|e| OpenError::lock(&staging, e))?;
        let dir = root.join(&id);
        fs::rename(&staging, &dir).map_err(OpenError::io(&dir))?;
        Spool::start(dir.clone(), options, lock, Some(id)).map_err(OpenError::io(&dir))
    }

    /// Moves every segment of this side spool into `main` and removes the side directory.
    /// Every lane must be closed; no lane can be opened afterwards.
    pub fn hand_over(&self, main: &Path) -> io::Result<HandOver> {
        let shared = &self.shared;
        let id = shared
            .side_id
            .as_deref()
            .ok_or_else(|| io::Error::other(format!("{} is not a side spool", shared.dir.display())))?;
        {
            let mut segs = shared.segments();
            if let Some((open, _)) = segs.map.iter().find(|(_, t)| t.is_open()) {
                return Err(io::Error::other(format!("spool segment {} is still being written", open.display())));
            }
            segs.sealed = true;
        }
        let moved = move_segments(&shared.dir, id, main)?;
        {
            let mut segs = shared.segments();
            segs.map.clear();
            shared.disk_bytes.store(0, Ordering::Relaxed);
            shared.unacked_bytes.store(0, Ordering::Relaxed);
            shared.unacked_records.store(0, Ordering::Relaxed);
        }
        remove_side_dir(&shared.dir)?;
        Ok(moved)
    }

    /// Hands over, into this spool, the side spools whose writer is gone (their lock is free).
    /// Side spools still written are left alone.
    pub fn adopt_side_spools(&self) -> io::Result<HandOver> {
        let mut total = HandOver::default();
        if self.shared.side_id.is_some() {
            return Ok(total);
        }
        let root = self.shared.dir.join(SIDE_DIR);
        let entries = match fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(total),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(String::from) else { continue };
            let path = entry.path();
            let lock = match DirLock::acquire_existing(&path, LOCK_FILE, &self.shared.options.holder) {
                Ok(Some(lock)) => lock,
                // Not locked yet (being created), or its writer is alive.
                Ok(None) | Err(LockError::InUse { .. }) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a side spool");
                    continue;
                }
            };
            // A staging directory never holds segments (lanes open after it is renamed).
            if !name.starts_with(STAGING_PREFIX) {
                let moved = move_segments(&path, &name, &self.shared.dir)?;
                if moved.segments > 0 {
                    tracing::info!(
                        side = %path.display(),
                        segments = moved.segments,
                        bytes = moved.bytes,
                        "took over the segments of a side spool whose writer is gone"
                    );
                }
                total.segments += moved.segments;
                total.bytes += moved.bytes;
            }
            remove_side_dir(&path)?;
            drop(lock);
        }
        Ok(total)
    }
}

/// The side spool directories of the spool directory `main` (written now, or abandoned and
/// not taken over yet), sorted.
pub fn side_dirs(main: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut out: Vec<_> = match fs::read_dir(main.join(SIDE_DIR)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort();
    Ok(out)
}

/// Renames the segments of side spool `id` (in `from`) into `to` as lanes `LANE.ID`, each
/// `.ack` file before its segment (a crash in between only means a resend), and damaged
/// files likewise.
fn move_segments(from: &Path, id: &str, to: &Path) -> io::Result<HandOver> {
    let mut moved = HandOver::default();
    for seg in segments(from)? {
        let Some((lane, seq)) = parse_segment_name(&seg) else { continue };
        let target = to.join(format!("{lane}.{id}-{seq:010}.seg"));
        let ack = ack_path(&seg);
        if ack.exists() {
            fs::rename(&ack, ack_path(&target))?;
        }
        let len = fs::metadata(&seg)?.len();
        fs::rename(&seg, &target)?;
        moved.segments += 1;
        moved.bytes += len;
    }
    for entry in fs::read_dir(from)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "damaged")
            && let Some((lane, seq)) = parse_segment_name(&path)
        {
            fs::rename(&path, to.join(format!("{lane}.{id}-{seq:010}.damaged")))?;
        }
    }
    Ok(moved)
}

/// Removes a side directory whose segments were moved out: its lock file, acknowledgement
/// leftovers, then the directory (left in place if anything else is in it).
fn remove_side_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == LOCK_FILE || name.ends_with(".ack") || name.ends_with(".ack.tmp") {
            fs::remove_file(&path)?;
        }
    }
    if let Err(e) = fs::remove_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "side spool directory left in place");
    }
    Ok(())
}
