//! The inputs a fuzz target's `cargo test` replays: its seeds (fuzz/seeds/TARGET) and any
//! crash inputs saved under fuzz/artifacts/TARGET.

use std::path::{Path, PathBuf};

/// One input: its file, its bytes, and whether it is a seed (else a saved crash input).
pub struct Input {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub seed: bool,
}

/// The seeds, then the saved crash inputs, of fuzz target `target`.
pub fn inputs(target: &str) -> Vec<Input> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for (sub, seed) in [("seeds", true), ("artifacts", false)] {
        let Ok(entries) = std::fs::read_dir(root.join(sub).join(target)) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            out.push(Input { path: entry.path(), data, seed });
        }
    }
    out
}
