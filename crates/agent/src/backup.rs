//! Server backups (seed 000: a backup is taken before every upgrade action and can be
//! restored): a `.tar.gz` of the role's configuration file and its state directory (policy
//! versions and history, users and tokens, the spool, the record store). A PostgreSQL store is
//! backed up by the operator's database tooling (pg_dump), not here.
//!
//! The role keeps running while its state is backed up, so each kind of file is read in the way
//! that gives a consistent copy of it:
//!
//! * an SQLite database (any file that starts with SQLite's header): a transactionally
//!   consistent copy made by SQLite itself (`VACUUM INTO`, a read transaction: the database as
//!   of one committed transaction, whatever is written meanwhile); its `-wal`, `-shm` and
//!   `-journal` files are not copied (their committed content is in the copy);
//! * a file replaced by writing a temporary file and renaming it over the old one (users and
//!   tokens, the manager's state, the policy in force and each version's files): one whole
//!   version of it, never half of one; the file is opened once and read from that open file,
//!   which a rename does not change;
//! * a file only ever appended to (spool segments, the policy history, quarantined lines): the
//!   first as many bytes as it had when it was opened (records appended later are not in the
//!   backup; a record being written may be cut, which the readers of these files expect after
//!   a crash too);
//! * temporary files (`*.tmp`, `*.partial`, `*.part`, `.tmp-*` directories) are not state:
//!   each is renamed into place or thrown away. They are never copied.
//!
//! The files are read one after the other, not all at one instant. A file that is gone between
//! listing the directory and opening it was removed (a shipped spool segment) or renamed (a
//! policy version moved into place): the directory is listed again and whatever is new is
//! added, so nothing renamed is missed and a vanished file never fails the backup. Backups
//! are created with mode 0600 in a 0700 directory: they hold the role's tokens and records.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use chrono::Utc;
use flate2::Compression;
use flate2::write::GzEncoder;

use tollgate_files::private_files;

pub use tollgate_api::agent::Backup;

/// How often the state directory is listed again after files vanished while it was read.
const MAX_PASSES: usize = 8;

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Takes a backup into `dir`; `why` goes into the name (e.g. `pre-upgrade-v2`).
pub fn take(dir: &Path, role_config: &Path, state_dir: &Path, why: &str) -> anyhow::Result<Backup> {
    private_files::create_private_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let tag: String = tollgate_upgrade::names::file_word(why);
    let name = format!("{}-{tag}.tar.gz", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let path = dir.join(&name);
    let tmp = path.with_extension("partial");
    let file = private_files::create_private(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    if let Err(e) = write_archive(file, dir, role_config, state_dir) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &path)?;
    Ok(Backup { name, bytes: std::fs::metadata(&path)?.len() })
}

fn write_archive(file: File, backups: &Path, role_config: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    let config = File::open(role_config).map_err(|e| anyhow::anyhow!("{}: {e}", role_config.display()))?;
    append_open_file(&mut tar, config, role_config, Path::new("config/role.toml"))?;
    if state_dir.is_dir() {
        // SQLite copies are made next to the backups (the same disk, not /tmp).
        let scratch = tempfile::Builder::new().prefix(".snapshot-").tempdir_in(backups)?;
        let skip = backups.canonicalize().unwrap_or_else(|_| backups.to_path_buf());
        StateArchive { tar: &mut tar, state_dir, skip: &skip, scratch: scratch.path(), copies: 0 }.append_all()?;
    }
    tar.into_inner()?.finish()?.sync_all()?;
    Ok(())
}

/// Why one file was not archived.
enum Missed {
    /// It is gone (removed or renamed since the directory was listed).
    Vanished,
    /// Anything else: the backup fails, naming the file.
    Failed(anyhow::Error),
}

impl From<io::Error> for Missed {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::NotFound { Missed::Vanished } else { Missed::Failed(e.into()) }
    }
}

/// The state directory going into an archive.
struct StateArchive<'a, W: io::Write> {
    tar: &'a mut tar::Builder<W>,
    state_dir: &'a Path,
    /// The backups directory (not backed up into itself when it is inside the state).
    skip: &'a Path,
    scratch: &'a Path,
    copies: usize,
}

impl<W: io::Write> StateArchive<'_, W> {
    fn append_all(&mut self) -> anyhow::Result<()> {
        let mut archived: BTreeSet<PathBuf> = BTreeSet::new();
        for pass in 1..=MAX_PASSES {
            let (files, mut changed) = list_files(self.state_dir, self.skip)?;
            for file in files {
                let rel = file.strip_prefix(self.state_dir)?.to_path_buf();
                if archived.contains(&rel) || is_temporary(&rel) || is_sqlite_sidecar(&file) {
                    continue;
                }
                match self.append_one(&file, &rel) {
                    Ok(()) => {
                        archived.insert(rel);
                    }
                    Err(Missed::Vanished) => changed = true,
                    Err(Missed::Failed(e)) => return Err(e),
                }
            }
            if !changed {
                return Ok(());
            }
            if pass == MAX_PASSES {
                tracing::warn!(
                    dir = %self.state_dir.display(),
                    "the state kept changing while it was backed up; the backup holds every file that stayed"
                );
            }
        }
        Ok(())
    }

    fn append_one(&mut self, path: &Path, rel: &Path) -> Result<(), Missed> {
        let mut file = File::open(path)?;
        if !file.metadata()?.is_file() {
            return Ok(());
        }
        let name = Path::new("state").join(rel);
        if starts_with_sqlite_header(&mut file)? {
            self.copies += 1;
            let copy = self.scratch.join(format!("{}.db", self.copies));
            let meta = file.metadata()?;
            match tollgate_store::sqlite::SqliteStore::snapshot(path, &copy) {
                Ok(()) => {}
                Err(_) if !path.exists() => return Err(Missed::Vanished),
                Err(e) => return Err(Missed::Failed(anyhow::anyhow!("snapshot of {}: {e}", path.display()))),
            }
            let snapshot = File::open(&copy)?;
            let len = snapshot.metadata()?.len();
            let mut header = tar::Header::new_gnu();
            header.set_metadata(&meta);
            header.set_size(len);
            append_exactly(self.tar, &mut header, &name, snapshot, len, path).map_err(Missed::Failed)?;
            let _ = std::fs::remove_file(&copy);
            Ok(())
        } else {
            append_open_file(self.tar, file, path, &name).map_err(Missed::Failed)
        }
    }
}

/// Appends an open file as `name`: exactly the length it has now (an appended file grows
/// meanwhile; the archive's header and contents must agree).
fn append_open_file<W: io::Write>(
    tar: &mut tar::Builder<W>,
    file: File,
    path: &Path,
    name: &Path,
) -> anyhow::Result<()> {
    let meta = file.metadata()?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata(&meta);
    append_exactly(tar, &mut header, name, file, meta.len(), path)
}

fn append_exactly<W: io::Write>(
    tar: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &Path,
    file: File,
    len: u64,
    path: &Path,
) -> anyhow::Result<()> {
    tar.append_data(header, name, ExactLength { inner: file.take(len), left: len })
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads exactly `left` bytes, or fails: a file that shrank while it was read was changed in
/// place, and a shorter entry would break the archive.
struct ExactLength<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "it shrank while it was read (changed in place)"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn starts_with_sqlite_header(file: &mut File) -> io::Result<bool> {
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    file.rewind()?;
    Ok(got == head.len() && &head == SQLITE_HEADER)
}

/// Temporary files and directories: renamed into place or thrown away, never state.
fn is_temporary(rel: &Path) -> bool {
    rel.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c.ends_with(".tmp") || c.ends_with(".partial") || c.ends_with(".part") || c.starts_with(".tmp")
    })
}

/// An SQLite database's `-wal`, `-shm` or `-journal` file (the database's copy includes what
/// they hold).
fn is_sqlite_sidecar(path: &Path) -> bool {
    let name = path.to_string_lossy();
    ["-wal", "-shm", "-journal"]
        .iter()
        .any(|suffix| name.strip_suffix(suffix).is_some_and(|db| Path::new(db).is_file()))
}

/// The regular files under `dir` (not under `skip`), sorted, and whether a directory vanished
/// while it was listed.
fn list_files(dir: &Path, skip: &Path) -> anyhow::Result<(Vec<PathBuf>, bool)> {
    let mut out = Vec::new();
    let mut vanished = false;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.canonicalize().is_ok_and(|c| c == skip) {
            continue;
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                vanished = true;
                continue;
            }
            Err(e) => anyhow::bail!("{}: {e}", d.display()),
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    continue;
                }
                Err(e) => anyhow::bail!("{}: {e}", d.display()),
            };
            let t = match e.file_type() {
                Ok(t) => t,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    continue;
                }
                Err(err) => anyhow::bail!("{}: {err}", e.path().display()),
            };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok((out, vanished))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    use tollgate_records::{EnumQueryRecord, Record, Transport};

    use super::*;

    const LINE: usize = 32;
    const SEGMENT_LINES: u64 = 8192;
    const BATCH: u64 = 10;

    fn spool_line(seg: u64, i: u64) -> String {
        format!("{seg:06} {i:0width$}\n", width = LINE - 8)
    }

    fn record(i: u64) -> Record {
        Record::enum_query(EnumQueryRecord {
            id: format!("{i:026}").parse().unwrap(),
            time: Utc::now(),
            device: "engine-1".into(),
            client: "sbc".into(),
            client_addr: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            source: None,
            destination: format!("+1212555{:04}", i % 10_000).parse().unwrap(),
            direction: "inbound".into(),
            rule: None,
            action: "allow".into(),
            detail: None,
            rcode: "NXDOMAIN".into(),
            fail_open: false,
            latency_us: 1,
            stale: false,
            policy_version: None,
            protocol: Default::default(),
        })
    }

    fn all_time() -> (chrono::DateTime<Utc>, chrono::DateTime<Utc>) {
        (Utc::now() - chrono::Duration::days(1), Utc::now() + chrono::Duration::days(1))
    }

    /// Writers that change a role's state the ways tollgate's roles do, until stopped.
    struct Churn {
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<u64>>,
    }

    impl Churn {
        fn start(state: &Path) -> Churn {
            let stop = Arc::new(AtomicBool::new(false));
            let mut threads = Vec::new();
            // The manager's state: written to a temporary file, renamed over (Manager::persist).
            let (s, dir) = (stop.clone(), state.to_path_buf());
            threads.push(std::thread::spawn(move || {
                let (file, tmp) = (dir.join("manager-state.json"), dir.join("manager-state.json.tmp"));
                let mut n = 0;
                while !s.load(Ordering::Relaxed) {
                    n += 1;
                    let text = serde_json::json!({ "generation": n, "log": "x".repeat(4096) }).to_string();
                    std::fs::write(&tmp, text).unwrap();
                    std::fs::rename(&tmp, &file).unwrap();
                }
                n
            }));
            // The record store: batches committed while backups read it.
            let (s, dir) = (stop.clone(), state.to_path_buf());
            threads.push(std::thread::spawn(move || {
                let store = tollgate_store::open(&format!("sqlite:{}", dir.join("records.db").display())).unwrap();
                let mut n = 0;
                while !s.load(Ordering::Relaxed) && n < 100_000 {
                    let batch: Vec<Record> = (n..n + BATCH).map(record).collect();
                    store.ingest(&batch).unwrap();
                    n += BATCH;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                n
            }));
            // The spool: fixed-size records appended to a segment; a full segment is followed by
            // a new one and the oldest is removed (shipped), as the spool does.
            let (s, dir) = (stop.clone(), state.to_path_buf());
            threads.push(std::thread::spawn(move || {
                use std::io::Write;
                std::fs::create_dir_all(dir.join("spool")).unwrap();
                let mut n = 0;
                for seg in 1.. {
                    let path = dir.join(format!("spool/engine-0-{seg:06}.seg"));
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
                    for i in 0..SEGMENT_LINES {
                        if s.load(Ordering::Relaxed) {
                            return n;
                        }
                        f.write_all(spool_line(seg, i).as_bytes()).unwrap();
                        n += 1;
                    }
                    if seg > 3 {
                        std::fs::remove_file(dir.join(format!("spool/engine-0-{:06}.seg", seg - 3))).unwrap();
                    }
                }
                n
            }));
            // Policy versions: a directory written under a temporary name, renamed into place.
            let (s, dir) = (stop.clone(), state.to_path_buf());
            threads.push(std::thread::spawn(move || {
                let versions = dir.join("policy/versions");
                std::fs::create_dir_all(&versions).unwrap();
                let mut n = 0;
                while !s.load(Ordering::Relaxed) && n < 300 {
                    n += 1;
                    let tmp = versions.join(format!(".tmp-{n:06}"));
                    std::fs::create_dir_all(&tmp).unwrap();
                    std::fs::write(tmp.join("policy.toml"), format!("name = \"v{n}\"\n")).unwrap();
                    std::fs::write(tmp.join("version.json"), format!("{{\"version\": {n}}}")).unwrap();
                    std::fs::rename(&tmp, versions.join(format!("{n:06}"))).unwrap();
                }
                n
            }));
            Churn { stop, threads }
        }

        fn stop(self) -> Vec<u64> {
            self.stop.store(true, Ordering::Relaxed);
            self.threads.into_iter().map(|t| t.join().unwrap()).collect()
        }
    }

    /// Checks an unpacked backup holds a valid state: every file whole, the database consistent.
    fn check_state(state: &Path) {
        let files = walk(state).unwrap();
        for f in &files {
            assert!(!is_temporary(f.strip_prefix(state).unwrap()), "a temporary file was backed up: {}", f.display());
        }
        let manager: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("manager-state.json")).unwrap()).unwrap();
        assert!(manager["generation"].as_u64().is_some());
        let segments = walk(&state.join("spool")).unwrap();
        assert!(!segments.is_empty());
        for seg in segments {
            let n: u64 = seg.file_stem().unwrap().to_string_lossy().rsplit('-').next().unwrap().parse().unwrap();
            let bytes = std::fs::read(&seg).unwrap();
            for (i, line) in bytes.chunks(LINE).enumerate() {
                if line.len() == LINE {
                    assert_eq!(line, spool_line(n, i as u64).as_bytes(), "{} record {i}", seg.display());
                }
            }
        }
        let versions = state.join("policy/versions");
        for v in std::fs::read_dir(&versions).unwrap() {
            let v = v.unwrap().path();
            assert!(v.join("policy.toml").is_file() && v.join("version.json").is_file(), "{} is half", v.display());
        }
        let db = tollgate_store::open(&format!("sqlite:{}", state.join("records.db").display())).unwrap();
        let (from, to) = all_time();
        let n = db.count(tollgate_store::Dataset::Enum, from, to).unwrap();
        assert_eq!(n % BATCH, 0, "{n} records: a batch was cut in half");
    }

    #[test]
    fn backups_taken_while_the_state_is_rewritten_all_succeed_and_restore_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (state, backups, config) =
            (dir.path().join("state"), dir.path().join("backups"), dir.path().join("role.toml"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(&config, "[node]\nname = \"mgr-a\"\n").unwrap();
        let churn = Churn::start(&state);
        // Every writer has written something before the first backup.
        while !(state.join("manager-state.json").exists()
            && state.join("records.db").exists()
            && state.join("spool/engine-0-000001.seg").exists()
            && state.join("policy/versions/000001").exists())
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut taken = Vec::new();
        let mut failures = Vec::new();
        for i in 0..30 {
            match take(&backups, &config, &state, &format!("under-load-{i}")) {
                Ok(b) => taken.push(b),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let written = churn.stop();
        assert!(failures.is_empty(), "{} of 30 backups failed: {failures:?}", failures.len());
        assert!(written.iter().all(|n| *n > 0), "{written:?}");
        for b in &taken {
            let unpacked = unpack(&backups, &b.name).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            check_state(&unpacked.path().join("state"));
        }
        // The last one restores: the live state is replaced by it.
        let last = taken.last().unwrap();
        put_in_place(&unpack(&backups, &last.name).unwrap(), &config, &state).unwrap();
        check_state(&state);
    }

    #[test]
    fn a_backup_is_private_and_holds_a_closed_database() {
        let dir = tempfile::tempdir().unwrap();
        let (state, backups, config) =
            (dir.path().join("state"), dir.path().join("backups"), dir.path().join("role.toml"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(&config, "[node]\nname = \"engine-1\"\n").unwrap();
        std::fs::write(state.join("cli-token"), "secret").unwrap();
        {
            let store = tollgate_store::open(&format!("sqlite:{}", state.join("records.db").display())).unwrap();
            let mut records: Vec<Record> = (0..BATCH).map(record).collect();
            // One of them a decision of the SIP redirect server: its protocol is kept.
            if let Record::EnumQuery { record, .. } = &mut records[0] {
                record.protocol = tollgate_records::Protocol::Sip;
                record.rcode = "302".into();
            }
            store.ingest(&records).unwrap();
        }
        let b = take(&backups, &config, &state, "manual").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&backups.join(&b.name)), 0o600);
        assert_eq!(mode(&backups), 0o700);
        assert_eq!(list(&backups).len(), 1, "nothing else is left in the backups directory");
        let unpacked = unpack(&backups, &b.name).unwrap();
        assert_eq!(std::fs::read_to_string(unpacked.path().join("state/cli-token")).unwrap(), "secret");
        let db =
            tollgate_store::open(&format!("sqlite:{}", unpacked.path().join("state/records.db").display())).unwrap();
        let (from, to) = all_time();
        assert_eq!(db.count(tollgate_store::Dataset::Enum, from, to).unwrap(), BATCH);
        let mut csv = Vec::new();
        db.export_raw(tollgate_store::Dataset::Enum, from, to, None, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let protocols: Vec<&str> = csv.lines().skip(1).filter_map(|l| l.rsplit(',').next()).collect();
        assert_eq!(protocols.iter().filter(|p| **p == "sip").count(), 1, "{csv}");
        assert_eq!(protocols.iter().filter(|p| **p == "enum").count(), BATCH as usize - 1, "{csv}");
    }
}
