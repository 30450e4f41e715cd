//! The bundle's file I/O: writing a built bundle, reading one to verify it, the staging
//! directory's preflight, and installing a verified payload. Everything else in the crate is pure.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use super::{BundleError, BundleFile, BundleSpec, PreflightError, TrustedKeys, VerifiedBundle, VerifyLimits};
use crate::release::Release;
use crate::topology::AppType;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.display().to_string(), source }
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename, so that
/// a reader never sees half a file.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), BundleError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("bundle");
    let tmp = path.with_file_name(format!(".{name}.part"));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
    drop(f);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Builds a signed bundle (see [`super::build`]) and writes it to `path`.
pub fn build_file(path: &Path, spec: &BundleSpec, payload: &[BundleFile], key: &SigningKey) -> Result<(), BundleError> {
    let archive = super::build(spec, payload, key)?;
    write_atomically(path, &archive, 0o644)
}

/// Reads the bundle at `path` (refusing files beyond `limits`) and verifies it.
pub fn verify_file(path: &Path, trusted: &TrustedKeys, limits: &VerifyLimits) -> Result<VerifiedBundle, BundleError> {
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if len > limits.max_archive_bytes {
        return Err(BundleError::TooLarge { limit: limits.max_archive_bytes });
    }
    let archive = fs::read(path).map_err(io_err(path))?;
    super::verify_with_limits(&archive, trusted, limits)
}

/// The bundles staged in `dir`: its regular files, except hidden ones (a transfer in progress
/// writes to a hidden file), sorted by name.
pub fn staged_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The agent's "Preflight Check" on its staging directory: exactly one bundle is staged, it
/// verifies against `trusted`, it is for `application`, it installs `target` (when given) and it
/// upgrades `running`. Returns the verified bundle, ready to install.
pub fn preflight_dir(
    dir: &Path,
    application: AppType,
    running: &Release,
    target: Option<&Release>,
    trusted: &TrustedKeys,
) -> Result<VerifiedBundle, PreflightError> {
    let files = staged_files(dir).map_err(|source| PreflightError::Io { dir: dir.display().to_string(), source })?;
    let name = |p: &PathBuf| p.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let path = match files.as_slice() {
        [] => return Err(PreflightError::NothingStaged),
        [one] => one,
        many => return Err(PreflightError::SeveralStaged(many.iter().map(name).collect())),
    };
    let file = name(path);
    let bundle = verify_file(path, trusted, &VerifyLimits::default())
        .map_err(|source| PreflightError::Bundle { file: file.clone(), source })?;
    let m = &bundle.manifest;
    if m.application != application {
        return Err(PreflightError::WrongApplication { file, staged: m.application, server: application });
    }
    if let Some(t) = target.filter(|t| **t != m.version) {
        return Err(PreflightError::WrongRelease { file, staged: m.version.clone(), target: t.clone() });
    }
    bundle.check_applies_to(application, running).map_err(|source| PreflightError::Bundle { file, source })?;
    Ok(bundle)
}

impl VerifiedBundle {
    /// Writes the payload under `dir` (created if needed), each file atomically, executables
    /// with mode 0755.
    pub fn extract_to(&self, dir: &Path) -> Result<(), BundleError> {
        for f in &self.files {
            // Paths were checked when the bundle was verified: relative, no `..`.
            super::manifest::check_path(&f.path).map_err(BundleError::UnsafePath)?;
            let path = dir.join(&f.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            write_atomically(&path, &f.data, if f.executable { 0o755 } else { 0o644 })?;
        }
        Ok(())
    }
}

/// The manifest of the bundle at `path`, read without verifying anything: for listing what is
/// staged. Only [`verify_file`] (and so the preflight) decides whether a bundle may run.
pub fn peek_manifest(path: &Path) -> Result<super::Manifest, BundleError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(io_err(path))? {
        let mut entry = entry.map_err(io_err(path))?;
        if entry.path().map_err(io_err(path))?.as_os_str() == "manifest.toml" {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(io_err(path))?;
            return super::Manifest::parse(&data).map_err(BundleError::InvalidManifest);
        }
    }
    Err(BundleError::MissingManifest)
}

/// The bundles in `dir` ([`staged_files`]) whose manifest can be read, with it (unverified,
/// see [`peek_manifest`]); a file that is not a bundle is left out.
pub fn bundles_in(dir: &Path) -> std::io::Result<Vec<(PathBuf, super::Manifest)>> {
    Ok(staged_files(dir)?.into_iter().filter_map(|p| peek_manifest(&p).ok().map(|m| (p, m))).collect())
}
