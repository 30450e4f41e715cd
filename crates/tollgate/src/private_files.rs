//! Owner-only files: the functions live in [`tollgate_files::private_files`] (the agent and the
//! roles share them); what needs the role's configuration stays here.

use std::path::Path;

pub use tollgate_files::private_files::*;

/// A role's private data outside its state directory: a spool directory and an SQLite record
/// store configured elsewhere. The state directory itself, then these, are tightened.
pub fn tighten_role_state(config: &crate::config::Config) -> anyhow::Result<()> {
    let state = &config.node.state_dir;
    tighten_state(state, "state directory")?;
    let spool = config.spool_dir();
    if !spool.starts_with(state) {
        tighten_state(&spool, "spool directory")?;
    }
    if let Some(db) = config.store_url().strip_prefix("sqlite:").map(Path::new)
        && !db.starts_with(state)
    {
        // The database and its sidecars only: its directory may be shared.
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            if file.is_file() {
                tighten_state(&file, "record store")?;
            }
        }
    }
    Ok(())
}
