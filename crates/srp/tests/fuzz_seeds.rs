//! Replays the `srp_frame` fuzz seeds (and any crash inputs saved next to them) through the
//! fuzz target's checks, so the corpus guards every `cargo test` run. The seeds (one of each
//! message, framed and bare) are compared with the current encodings; `TOLLGATE_WRITE_SEEDS=1
//! cargo test -p tollgate-srp --test fuzz_seeds` rewrites them after a message format change.

use std::path::PathBuf;

use tollgate_srp::fuzzing::{check, seeds};

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/srp_frame")
}

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let mut seen = 0;
    for entry in std::fs::read_dir(seed_dir()).expect("fuzz/seeds/srp_frame") {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        seen += 1;
    }
    assert!(seen >= seeds().len(), "seed corpus missing from {}", seed_dir().display());
}

#[test]
fn the_seeds_on_disk_are_the_current_encodings() {
    let write = std::env::var_os("TOLLGATE_WRITE_SEEDS").is_some();
    for (name, bytes) in seeds() {
        let path = seed_dir().join(&name);
        if write {
            std::fs::create_dir_all(seed_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert_eq!(on_disk, bytes, "{name}: TOLLGATE_WRITE_SEEDS=1 rewrites the seeds");
    }
}

fn monitor_seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/srp_monitor")
}

#[test]
fn every_monitor_seed_passes_the_fuzz_checks_and_is_current() {
    use tollgate_srp::probe::fuzzing;
    let write = std::env::var_os("TOLLGATE_WRITE_SEEDS").is_some();
    for (name, bytes) in fuzzing::seeds() {
        let path = monitor_seed_dir().join(&name);
        if write {
            std::fs::create_dir_all(monitor_seed_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert_eq!(on_disk, bytes, "{name}: TOLLGATE_WRITE_SEEDS=1 rewrites the seeds");
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(monitor_seed_dir()).expect("fuzz/seeds/srp_monitor") {
        fuzzing::check(&std::fs::read(entry.unwrap().path()).unwrap());
        seen += 1;
    }
    assert!(seen >= fuzzing::seeds().len());
}
