//! Replays the `sip_redirect` fuzz target's seeds (fuzz/seeds/sip_redirect) through the same
//! check, so `cargo test` catches what the fuzzer would on the known inputs.

use std::path::PathBuf;

#[test]
fn every_seed_passes_the_fuzz_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/sip_redirect");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/sip_redirect") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        tollgate_sip_redirect::fuzzing::check(&data);
        n += 1;
    }
    assert!(n >= 6, "seeds missing in {}", dir.display());
}
