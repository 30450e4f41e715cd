//! Releases on a server, under the agent's directory:
//!
//! ```text
//! staging/<file>.tgb      bundles staged for the next install (verified when staged)
//! releases/<version>/     each installed release: its payload and manifest.toml
//! current -> releases/v2  the release in force
//! previous -> releases/v1 the release before it, kept so a backout restores it
//! ```
//!
//! Switching is replacing a symlink (atomic rename), so a crash leaves either the old or the
//! new release in force, never a mix.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tollgate_upgrade::bundle::{self, Manifest, TrustedKeys, VerifiedBundle};
use tollgate_upgrade::release::Release;
use tollgate_upgrade::topology::{AppType, StagedBundle};

/// An installed release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// Its version.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The newest policy schema it reads, if its manifest says.
    pub max_policy_schema: Option<i64>,
}

/// The release directory of one server.
#[derive(Debug, Clone)]
pub struct Releases {
    root: PathBuf,
}

fn link_target(link: &Path) -> Option<PathBuf> {
    std::fs::read_link(link).ok()
}

/// Points `link` at `target` atomically (a new symlink renamed over the old one).
fn relink(link: &Path, target: &Path) -> std::io::Result<()> {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

impl Releases {
    /// The releases under `root` (created when missing).
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("staging"))?;
        std::fs::create_dir_all(root.join("releases"))?;
        Ok(Releases { root: root.to_path_buf() })
    }

    /// Where bundles are staged.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn read(&self, link: &str) -> Option<Installed> {
        let dir = link_target(&self.root.join(link))?;
        let dir = if dir.is_relative() { self.root.join(dir) } else { dir };
        let manifest = std::fs::read(dir.join("manifest.toml")).ok().and_then(|b| Manifest::parse(&b).ok())?;
        Some(Installed {
            version: manifest.version.as_str().to_string(),
            dir,
            max_policy_schema: manifest.max_policy_schema,
        })
    }

    /// The release in force.
    pub fn current(&self) -> Option<Installed> {
        self.read("current")
    }

    /// The release before it.
    pub fn previous(&self) -> Option<Installed> {
        self.read("previous")
    }

    /// Stages the bundle received into `incoming` (a hidden file in the staging directory) as
    /// `file_name`, after checking its signature, digests and application type (a file larger
    /// than `max_bytes` is refused). Nothing else changes; a refused bundle is not kept.
    pub fn stage_file(
        &self,
        file_name: &str,
        incoming: tempfile::TempPath,
        trusted: &TrustedKeys,
        app: AppType,
        max_bytes: u64,
    ) -> Result<Manifest, String> {
        let limits = bundle::VerifyLimits { max_archive_bytes: max_bytes, ..Default::default() };
        let verified = bundle::verify_file(&incoming, trusted, &limits).map_err(|e| e.to_string())?;
        if verified.manifest.application != app {
            return Err(format!(
                "{file_name}: a {} bundle cannot be staged on a {} server",
                verified.manifest.application.as_str(),
                app.as_str()
            ));
        }
        let safe: String = tollgate_upgrade::names::file_word(file_name);
        let path = self.staging().join(if safe.ends_with(".tgb") { safe } else { format!("{safe}.tgb") });
        incoming.persist(&path).map_err(|e| format!("{}: {}", path.display(), e.error))?;
        Ok(verified.manifest)
    }

    /// Staged bundles, with the application and release their manifests name (not verified
    /// here: the preflight does that).
    pub fn staged(&self) -> Vec<StagedBundle> {
        bundle::bundles_in(&self.staging())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(p, m)| {
                let file_name = p.file_name()?.to_string_lossy().into_owned();
                Some(StagedBundle { file_name, application: m.application, release: m.version })
            })
            .collect()
    }

    /// Removes the staged bundle `name` (a plain file name in the staging directory).
    pub fn unstage(&self, name: &str) -> Result<(), String> {
        if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\\') {
            return Err(format!("{name:?} is not a staged bundle's name"));
        }
        let path = self.staging().join(name);
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Removes every staged bundle.
    pub fn unstage_all(&self) -> std::io::Result<()> {
        for f in bundle::staged_files(&self.staging())? {
            std::fs::remove_file(f)?;
        }
        Ok(())
    }

    /// The seed's preflight: exactly one staged bundle of this server's type, verified, for
    /// `target`, upgrading what runs (anything, when nothing runs yet).
    pub fn preflight(&self, app: AppType, target: &Release, trusted: &TrustedKeys) -> Result<VerifiedBundle, String> {
        let running = self.current().and_then(|c| Release::new(&c.version).ok());
        match running {
            Some(r) => {
                bundle::preflight_dir(&self.staging(), app, &r, Some(target), trusted).map_err(|e| e.to_string())
            }
            None => {
                // First install: any staged bundle of the right type and release.
                let files = bundle::staged_files(&self.staging()).map_err(|e| e.to_string())?;
                if files.len() != 1 {
                    return Err(format!("exactly one bundle must be staged, found {}", files.len()));
                }
                let path = &files[0];
                let b = bundle::verify_file(path, trusted, &Default::default()).map_err(|e| e.to_string())?;
                if b.manifest.application != app || &b.manifest.version != target {
                    return Err(format!("{}: not a {} bundle of {}", path.display(), app.as_str(), target.as_str()));
                }
                Ok(b)
            }
        }
    }

    /// Installs a verified bundle: extracts it, then makes it current and the old current
    /// previous. The staged file is removed.
    pub fn install(&self, b: &VerifiedBundle) -> Result<Installed, String> {
        let version = b.manifest.version.as_str();
        let dir = self.root.join("releases").join(version);
        let _ = std::fs::remove_dir_all(&dir);
        b.extract_to(&dir).map_err(|e| e.to_string())?;
        let manifest = toml::to_string(&b.manifest).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("manifest.toml"), manifest).map_err(|e| e.to_string())?;
        if let Some(cur) = self.current()
            && cur.version != version
        {
            relink(&self.root.join("previous"), &cur.dir).map_err(|e| e.to_string())?;
        }
        relink(&self.root.join("current"), &dir).map_err(|e| e.to_string())?;
        // The release is switched: a staged file that cannot be removed is not a failed install.
        if let Err(e) = self.unstage_all() {
            tracing::warn!(error = %e, "the installed bundle could not be removed from staging");
        }
        self.current().ok_or_else(|| "the installed release cannot be read back".into())
    }

    /// Backout: the previous release becomes current again (and the backed-out one previous,
    /// so a new upgrade does not need it staged again).
    pub fn backout(&self) -> Result<Installed, String> {
        let (cur, prev) = match (self.current(), self.previous()) {
            (Some(c), Some(p)) => (c, p),
            _ => return Err("no previous release to back out to".into()),
        };
        relink(&self.root.join("current"), &prev.dir).map_err(|e| e.to_string())?;
        relink(&self.root.join("previous"), &cur.dir).map_err(|e| e.to_string())?;
        self.current().ok_or_else(|| "the restored release cannot be read back".into())
    }
}
