//! Replays the `sip_stream` fuzz target's seeds (fuzz/seeds/sip_stream) through the same check,
//! so `cargo test` catches what the fuzzer would on the known inputs.

use std::path::PathBuf;

#[test]
fn every_sip_stream_seed_passes_the_fuzz_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/sip_stream");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/sip_stream") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        tollgate_sip::stream::fuzzing::check(&data);
        n += 1;
    }
    assert!(n >= 5, "seeds missing in {}", dir.display());
}
