//! `manifest.toml`: what a bundle is (application type, release, the releases it upgrades from,
//! a description) and the sha256 of every payload file.
//!
//! ```toml
//! application = "engine"
//! version = "0.2.0"
//! upgrades_from = ["0.1.x"]
//! description = "tollgate 0.2.0"
//! max_policy_schema = 3          # optional: newest policy schema the release reads
//!
//! [[payload]]
//! path = "tollgate"
//! size = 18342112
//! sha256 = "9f2c..."
//! executable = true
//! ```

use serde::{Deserialize, Serialize};

use crate::release::{Release, ReleasePattern};
use crate::topology::AppType;

/// Longest payload path accepted.
pub const MAX_PATH_LEN: usize = 200;

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Application type the bundle installs; it must match the server's.
    pub application: AppType,
    /// Release it installs.
    pub version: Release,
    /// Releases it upgrades from (seed 000 §1.2.2 "Upgrade Paths").
    pub upgrades_from: Vec<ReleasePattern>,
    /// What it is (shown in the ISO select).
    pub description: String,
    /// Newest policy schema the release reads, when it declares one (mixed-version operation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_policy_schema: Option<i64>,
    /// Payload files.
    pub payload: Vec<PayloadFile>,
}

/// A payload file as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadFile {
    /// Path relative to the payload root (`/`-separated, no `..`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the contents, lower-case hex.
    pub sha256: String,
    /// Installed executable.
    #[serde(default)]
    pub executable: bool,
}

/// Checks a payload path: relative, `/`-separated, no empty, `.` or `..` component, printable
/// ASCII without backslashes, at most [`MAX_PATH_LEN`] bytes.
pub fn check_path(path: &str) -> Result<(), String> {
    let why = if path.is_empty() || path.len() > MAX_PATH_LEN {
        "empty or too long"
    } else if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        "only printable ASCII without spaces or backslashes is allowed"
    } else if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        "must be relative, without empty, . or .. components"
    } else {
        return Ok(());
    };
    Err(format!("payload path {path:?}: {why}"))
}

impl Manifest {
    /// Checks what serde cannot: payload paths, digests, duplicates, a non-empty description.
    pub fn check(&self) -> Result<(), String> {
        if self.description.trim().is_empty() {
            return Err("the description is empty".into());
        }
        if self.payload.is_empty() {
            return Err("the payload is empty".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.payload {
            check_path(&f.path)?;
            if !seen.insert(f.path.as_str()) {
                return Err(format!("payload path {:?} is listed twice", f.path));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("payload {:?}: sha256 must be 64 lower-case hex digits", f.path));
            }
        }
        Ok(())
    }

    /// Parses and checks `manifest.toml`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "manifest.toml is not UTF-8".to_string())?;
        let m: Manifest = toml::from_str(text).map_err(|e| format!("manifest.toml: {e}"))?;
        m.check()?;
        Ok(m)
    }

    /// Whether the bundle upgrades a server that runs `running`.
    pub fn upgrades(&self, running: &Release) -> bool {
        *running != self.version && crate::release::matches_any(&self.upgrades_from, running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        assert!(check_path("tollgate").is_ok());
        assert!(check_path("bin/tollgate").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a b", "a\\b", "é"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_digests_are_refused() {
        let good = "application = \"engine\"\nversion = \"0.2.0\"\nupgrades_from = [\"0.1.x\"]\n\
                    description = \"d\"\n[[payload]]\npath = \"tollgate\"\nsize = 1\nsha256 = \"";
        let digest = "a".repeat(64);
        let m = Manifest::parse(format!("{good}{digest}\"\n").as_bytes()).unwrap();
        assert!(m.upgrades(&Release::new("0.1.3").unwrap()));
        assert!(!m.upgrades(&Release::new("0.2.0").unwrap()));
        assert!(!m.upgrades(&Release::new("0.0.9").unwrap()));
        assert!(Manifest::parse(format!("{good}{}\"\n", "A".repeat(64)).as_bytes()).is_err());
        let extra = format!("run_as_root = true\n{good}{digest}\"\n");
        assert!(Manifest::parse(extra.as_bytes()).unwrap_err().contains("run_as_root"));
    }
}
