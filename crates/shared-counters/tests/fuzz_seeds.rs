//! Replays the `shared_batch` fuzz target's seeds (fuzz/seeds/shared_batch) through the same
//! check, so `cargo test` catches what the fuzzer would on the known inputs, and checks the
//! seeds are readable batches.

use std::path::PathBuf;

use tollgate_shared_counters::wire::Batch;

#[test]
fn every_seed_passes_the_fuzz_check_and_reads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/shared_batch");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/shared_batch") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        tollgate_shared_counters::fuzzing::check(&data);
        Batch::decode(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 3, "seeds missing in {}", dir.display());
}
