//! Replays the `srp_frame` fuzz seeds (and any crash inputs saved next to them) through the
//! fuzz target's checks, so the corpus guards every `cargo test` run. The seeds are written by
//! `cargo test -p tollgate-srp --test fuzz_seeds -- --ignored` (one of each message, framed and
//! bare).

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
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(seed_dir().join(&name)).unwrap_or_default();
        assert_eq!(on_disk, bytes, "{name}: run the ignored write_seeds test to refresh the seeds");
    }
}

#[test]
#[ignore = "writes fuzz/seeds/srp_frame"]
fn write_seeds() {
    std::fs::create_dir_all(seed_dir()).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(seed_dir().join(name), bytes).unwrap();
    }
}
