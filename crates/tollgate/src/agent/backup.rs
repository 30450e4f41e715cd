//! Server backups (seed 000: a backup is taken before every upgrade action and can be
//! restored): a `.tar.gz` of the role's configuration file and its state directory (policy
//! versions and history, users and tokens, the spool), with a consistent snapshot of an SQLite
//! record store instead of the live file. A PostgreSQL store is backed up by the operator's
//! database tooling (pg_dump), not here.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::Utc;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

/// A backup file.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Takes a backup into `dir`; `why` goes into the name (e.g. `pre-upgrade-v2`).
pub fn take(dir: &Path, role_config: &Path, state_dir: &Path, why: &str) -> anyhow::Result<Backup> {
    std::fs::create_dir_all(dir)?;
    let tag: String = crate::names::file_word(why);
    let name = format!("{}-{tag}.tar.gz", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let path = dir.join(&name);
    let tmp = path.with_extension("partial");
    let mut tar = tar::Builder::new(GzEncoder::new(File::create(&tmp)?, Compression::fast()));
    tar.append_path_with_name(role_config, "config/role.toml")?;
    let snapshot = tempfile::tempdir()?;
    if state_dir.is_dir() {
        for entry in walk(state_dir)? {
            let rel = entry.strip_prefix(state_dir)?.to_path_buf();
            let name = rel.to_string_lossy();
            if name.ends_with("records.db-wal") || name.ends_with("records.db-shm") {
                continue;
            }
            if name.ends_with("records.db") {
                let copy = snapshot.path().join("records.db");
                tollgate_store::sqlite::SqliteStore::snapshot(&entry, &copy)
                    .map_err(|e| anyhow::anyhow!("snapshot of {}: {e}", entry.display()))?;
                tar.append_path_with_name(&copy, Path::new("state").join(&rel))?;
            } else {
                tar.append_path_with_name(&entry, Path::new("state").join(&rel))?;
            }
        }
    }
    tar.into_inner()?.finish()?;
    std::fs::rename(&tmp, &path)?;
    Ok(Backup { name, bytes: std::fs::metadata(&path)?.len() })
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The backups in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<Backup> {
    let mut v: Vec<Backup> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
                .map(|e| Backup {
                    name: e.file_name().to_string_lossy().into_owned(),
                    bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Unpacks the backup `name` of `dir` into a temporary directory and checks it holds a role
/// configuration: nothing on the server changes.
pub fn unpack(dir: &Path, name: &str) -> anyhow::Result<tempfile::TempDir> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        anyhow::bail!("{name:?} is not a backup name");
    }
    let file = File::open(dir.join(name)).map_err(|e| anyhow::anyhow!("backup {name}: {e}"))?;
    let unpacked = tempfile::tempdir()?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(unpacked.path())
        .map_err(|e| anyhow::anyhow!("backup {name} is damaged: {e}"))?;
    if !unpacked.path().join("config/role.toml").is_file() {
        anyhow::bail!("backup {name} holds no role configuration");
    }
    Ok(unpacked)
}

/// Puts an unpacked backup in place: the state directory is copied next to the live one first,
/// then swapped in by renames, so a failure (a full disk) leaves the live state as it was. The
/// replaced state is kept as `<state_dir>.before-restore`.
pub fn put_in_place(unpacked: &tempfile::TempDir, role_config: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let incoming = state_dir.with_extension("restoring");
    let _ = std::fs::remove_dir_all(&incoming);
    copy_dir(&unpacked.path().join("state"), &incoming)
        .map_err(|e| anyhow::anyhow!("copying the backup's state next to {}: {e}", state_dir.display()))?;
    let config_tmp = role_config.with_extension("restoring");
    std::fs::copy(unpacked.path().join("config/role.toml"), &config_tmp)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_tmp.display()))?;
    let aside = state_dir.with_extension("before-restore");
    let _ = std::fs::remove_dir_all(&aside);
    if state_dir.exists() {
        std::fs::rename(state_dir, &aside)?;
    }
    if let Err(e) = std::fs::rename(&incoming, state_dir) {
        let _ = std::fs::rename(&aside, state_dir);
        anyhow::bail!("swapping in the restored state: {e}; the previous state is back");
    }
    std::fs::rename(&config_tmp, role_config).map_err(|e| {
        anyhow::anyhow!("{}: {e} (the state is restored, the configuration is not)", role_config.display())
    })?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.exists() {
        return Ok(());
    }
    for f in walk(from)? {
        let rel = f.strip_prefix(from).map_err(std::io::Error::other)?;
        let dst = to.join(rel);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(&f, &dst)?;
    }
    Ok(())
}
