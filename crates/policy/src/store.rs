//! Installed policy versions on disk, with a history of installs and uninstalls.
//!
//! Layout under the store directory:
//!
//! ```text
//! versions/000001/policy.toml        the policy text as submitted
//! versions/000001/lists/NAME.txt     copies of its number lists
//! versions/000001/version.json       VersionInfo
//! current                            "000001" or "none" (replaced atomically)
//! history.jsonl                      one HistoryEntry per line, appended
//! .lock                              held while changing the store
//! ```
//!
//! A version directory is written completely under a temporary name and renamed into place
//! before `current` points at it, so a crash never leaves `current` naming a partial version.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compile::{CompileOptions, CompiledPolicy, compile};
use crate::error::PolicyError;
use crate::source::PolicySource;

/// Facts about one stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Version number, from 1.
    pub version: u64,
    /// Policy name.
    pub name: String,
    /// SHA-256 of the policy text.
    pub sha256: String,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// Who installed it (user, token or `cli`).
    pub actor: String,
    /// The file name it was submitted as.
    pub source_file: String,
    /// Number of rules.
    pub rules: usize,
    /// Lists and their sizes.
    pub lists: BTreeMap<String, usize>,
}

/// What happened to the installed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryEvent {
    /// A version was put in force.
    Install,
    /// The installed policy was removed (default allow).
    Uninstall,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Install or uninstall.
    pub event: HistoryEvent,
    /// The version put in force (install) or `None` (uninstall).
    pub version: Option<u64>,
    /// The version in force before.
    pub previous: Option<u64>,
    /// Who did it.
    pub actor: String,
}

/// Failure to load a stored policy.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed.
    #[error("policy store: {0}")]
    Io(#[from] io::Error),
    /// A stored version no longer compiles (e.g. the engine's intercepts changed).
    #[error("stored policy version {version} does not compile: {error}")]
    Invalid {
        /// The version.
        version: u64,
        /// Why.
        error: PolicyError,
    },
}

/// The on-disk store of policy versions.
#[derive(Debug, Clone)]
pub struct PolicyStore {
    dir: PathBuf,
}

fn version_dir_name(v: u64) -> String {
    format!("{v:06}")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl PolicyStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("versions"))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create policy store {}: {e}", dir.display())))?;
        Ok(PolicyStore { dir })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> io::Result<File> {
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(self.dir.join(".lock"))?;
        f.lock()?;
        Ok(f)
    }

    /// The version in force, if any.
    pub fn current_version(&self) -> io::Result<Option<u64>> {
        match fs::read_to_string(self.dir.join("current")) {
            Ok(s) => {
                let s = s.trim();
                if s == "none" || s.is_empty() {
                    Ok(None)
                } else {
                    s.parse().map(Some).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("policy store `current` holds {s:?}"))
                    })
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `source` (already compiled as `compiled`) as a new version, puts it in force and
    /// records it in the history.
    pub fn install(&self, source: &PolicySource, compiled: &CompiledPolicy, actor: &str) -> io::Result<VersionInfo> {
        let _lock = self.lock()?;
        let previous = self.current_version()?;
        let version = self.versions()?.last().map_or(0, |v| v.version) + 1;
        let versions = self.dir.join("versions");
        let tmp = versions.join(format!(".tmp-{}", version_dir_name(version)));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("lists"))?;
        write_file_synced(&tmp.join("policy.toml"), source.text.as_bytes())?;
        for (name, path) in &compiled.list_files {
            let dest = tmp.join("lists").join(format!("{name}.txt"));
            fs::copy(path, &dest)
                .map_err(|e| io::Error::new(e.kind(), format!("copying list {name} from {}: {e}", path.display())))?;
            File::open(&dest)?.sync_all()?;
        }
        let meta = compiled.meta();
        let info = VersionInfo {
            version,
            name: meta.name.clone(),
            sha256: meta.sha256.clone(),
            installed_at: Utc::now(),
            actor: actor.to_string(),
            source_file: source.file.clone(),
            rules: meta.rules,
            lists: meta.lists.clone(),
        };
        write_file_synced(&tmp.join("version.json"), &serde_json::to_vec_pretty(&info)?)?;
        sync_dir(&tmp.join("lists"))?;
        sync_dir(&tmp)?;
        fs::rename(&tmp, versions.join(version_dir_name(version)))?;
        sync_dir(&versions)?;
        write_atomically(&self.dir.join("current"), version_dir_name(version).as_bytes())?;
        self.append_history(&HistoryEntry {
            at: info.installed_at,
            event: HistoryEvent::Install,
            version: Some(version),
            previous,
            actor: actor.to_string(),
        })?;
        Ok(info)
    }

    /// Removes the policy in force (calls are then allowed by default). Returns the version
    /// that was in force.
    pub fn uninstall(&self, actor: &str) -> io::Result<Option<u64>> {
        let _lock = self.lock()?;
        let previous = self.current_version()?;
        write_atomically(&self.dir.join("current"), b"none")?;
        self.append_history(&HistoryEntry {
            at: Utc::now(),
            event: HistoryEvent::Uninstall,
            version: None,
            previous,
            actor: actor.to_string(),
        })?;
        Ok(previous)
    }

    fn append_history(&self, entry: &HistoryEntry) -> io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(self.dir.join("history.jsonl"))?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_all()
    }

    /// The history, oldest first. A damaged line (e.g. cut by a crash) is skipped.
    pub fn history(&self) -> io::Result<Vec<HistoryEntry>> {
        let f = match File::open(self.dir.join("history.jsonl")) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            if let Ok(entry) = serde_json::from_str(&line?) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Every stored version, oldest first.
    pub fn versions(&self) -> io::Result<Vec<VersionInfo>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir.join("versions"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(v) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
            out.push(self.version_info(v)?);
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// Facts about one version.
    pub fn version_info(&self, version: u64) -> io::Result<VersionInfo> {
        let path = self.version_dir(version).join("version.json");
        let bytes = fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    fn version_dir(&self, version: u64) -> PathBuf {
        self.dir.join("versions").join(version_dir_name(version))
    }

    /// The stored text and lists of a version, ready to compile.
    pub fn version_source(&self, version: u64) -> io::Result<PolicySource> {
        let dir = self.version_dir(version);
        let text = fs::read_to_string(dir.join("policy.toml"))?;
        let info = self.version_info(version)?;
        let lists =
            info.lists.keys().map(|name| (name.clone(), dir.join("lists").join(format!("{name}.txt")))).collect();
        Ok(PolicySource::from_text(info.source_file, text, lists))
    }

    /// Compiles the version in force, if any.
    pub fn load_current(&self, opts: CompileOptions<'_>) -> Result<Option<(u64, CompiledPolicy)>, StoreError> {
        let Some(version) = self.current_version()? else { return Ok(None) };
        let source = self.version_source(version)?;
        let compiled = compile(&source, opts).map_err(|error| StoreError::Invalid { version, error })?;
        Ok(Some((version, compiled)))
    }
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
