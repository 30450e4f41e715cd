//! The role's configuration across an upgrade and a backout.
//!
//! Installing a release ports the role's configuration file to that release's format with the
//! release's own `tollgate config migrate` (the rules of the release that reads the file, not
//! of the agent), and keeps three things in `<agent dir>/config-history/`: the file as the
//! release it came from read it (`<from>.toml`), the ported file (`<to>.toml`) and the report
//! of every change (`<from>-to-<to>.report`). Backing out to a release puts back the file
//! kept for it, so the previous release never meets keys it does not know.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tollgate_files::private_files::{create_private_dir, write_private};

/// Where the configurations and reports of each release are kept.
pub fn history_dir(agent_dir: &Path) -> PathBuf {
    agent_dir.join("config-history")
}

/// What porting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ported {
    /// The report the release printed (one line per change, or that nothing changed).
    pub report: String,
    /// Where the report is kept.
    pub report_file: PathBuf,
}

/// Ports `role_config` for release `to` with its binary `binary`, from release `from` (the
/// release in force until now, if any). The file is replaced only when the release accepted
/// it; on any error the file is left as it was.
pub async fn port(
    binary: &Path,
    role_config: &Path,
    agent_dir: &Path,
    from: Option<&str>,
    to: &str,
) -> anyhow::Result<Ported> {
    let history = history_dir(agent_dir);
    create_private_dir(&history).with_context(|| format!("cannot create {}", history.display()))?;
    let original = std::fs::read(role_config)
        .with_context(|| format!("cannot read the role's configuration {}", role_config.display()))?;
    let from_label = from.unwrap_or("unknown");
    write_private(&history.join(format!("{from_label}.toml")), &original)
        .with_context(|| format!("cannot keep the configuration of release {from_label}"))?;
    let ported = role_config.with_extension("ported");
    let out = tokio::process::Command::new(binary)
        .arg("config")
        .arg("migrate")
        .arg(role_config)
        .arg("--out")
        .arg(&ported)
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&ported);
        anyhow::bail!(
            "release {to} cannot port the configuration {}: {}",
            role_config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = std::fs::read(&ported).with_context(|| format!("cannot read {}", ported.display()))?;
    write_private(&history.join(format!("{to}.toml")), &text)?;
    std::fs::rename(&ported, role_config)
        .with_context(|| format!("cannot put the ported configuration in place at {}", role_config.display()))?;
    let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let report_file = history.join(format!("{from_label}-to-{to}.report"));
    write_private(&report_file, format!("{report}\n").as_bytes())?;
    Ok(Ported { report, report_file })
}

/// Puts back the configuration kept for release `to` (backing out to it), if one was kept.
/// Returns whether a file was put back.
pub fn restore_for(role_config: &Path, agent_dir: &Path, to: &str) -> anyhow::Result<bool> {
    let kept = history_dir(agent_dir).join(format!("{to}.toml"));
    let Ok(text) = std::fs::read(&kept) else { return Ok(false) };
    let tmp = role_config.with_extension("restoring");
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, role_config)
        .with_context(|| format!("cannot put back the configuration of release {to} at {}", role_config.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for a release's binary: `config migrate FILE --out OUT` renames `old_key` to
    /// `new_key` and prints a report; it fails on a file containing `broken`.
    fn fake_release(dir: &Path) -> PathBuf {
        let bin = dir.join("tollgate");
        std::fs::write(
            &bin,
            "#!/bin/sh\n[ \"$1 $2\" = 'config migrate' ] || exit 2\n\
             grep -q broken \"$3\" && { echo 'line 1: broken' >&2; exit 1; }\n\
             sed 's/old_key/new_key/' \"$3\" > \"$5\"\necho \"renamed old_key to new_key\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[tokio::test]
    async fn an_upgrade_ports_the_file_keeps_the_old_one_and_a_backout_puts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_release(dir.path());
        let role = dir.path().join("role.toml");
        std::fs::write(&role, "old_key = 1\n").unwrap();
        let agent_dir = dir.path().join("agent");
        let ported = port(&bin, &role, &agent_dir, Some("1.0.0"), "2.0.0").await.unwrap();
        assert_eq!(std::fs::read_to_string(&role).unwrap(), "new_key = 1\n");
        assert_eq!(ported.report, "renamed old_key to new_key");
        assert_eq!(std::fs::read_to_string(&ported.report_file).unwrap(), "renamed old_key to new_key\n");
        let history = history_dir(&agent_dir);
        assert_eq!(std::fs::read_to_string(history.join("1.0.0.toml")).unwrap(), "old_key = 1\n");
        assert_eq!(std::fs::read_to_string(history.join("2.0.0.toml")).unwrap(), "new_key = 1\n");
        assert_eq!(std::fs::metadata(history.join("1.0.0.toml")).unwrap().permissions().mode() & 0o077, 0);
        // Backing out to 1.0.0 puts its file back; to a release nothing was kept for, nothing.
        assert!(restore_for(&role, &agent_dir, "1.0.0").unwrap());
        assert_eq!(std::fs::read_to_string(&role).unwrap(), "old_key = 1\n");
        assert!(!restore_for(&role, &agent_dir, "0.9.0").unwrap());
        assert_eq!(std::fs::read_to_string(&role).unwrap(), "old_key = 1\n");
    }

    #[tokio::test]
    async fn a_file_the_release_cannot_port_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_release(dir.path());
        let role = dir.path().join("role.toml");
        std::fs::write(&role, "old_key = 1 # broken\n").unwrap();
        let err = port(&bin, &role, &dir.path().join("agent"), Some("1.0.0"), "2.0.0").await.unwrap_err();
        assert!(err.to_string().contains("line 1: broken"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&role).unwrap(), "old_key = 1 # broken\n");
        assert!(!role.with_extension("ported").exists());
    }
}
