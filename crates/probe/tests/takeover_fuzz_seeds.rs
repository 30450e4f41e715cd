//! Replays the `probe_takeover` fuzz target's seeds (fuzz/seeds/probe_takeover), and any crash
//! inputs saved under fuzz/artifacts/probe_takeover, through the same checks, so `cargo test`
//! catches what the fuzzer would on the known inputs; the seeds must be calls the probe takes
//! over, so the fuzzer starts from real checkpoints.

use std::path::Path;

use tollgate_probe::fuzzing::takeover::takeover;

#[test]
fn every_seed_passes_the_fuzz_checks_and_is_taken_over() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let (mut seeds, mut taken) = (0, 0);
    for sub in ["seeds/probe_takeover", "artifacts/probe_takeover"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            let outcome = takeover(&data);
            if sub.starts_with("seeds") {
                assert!(outcome.taken >= 1, "{}: {outcome:?}", entry.path().display());
                seeds += 1;
                taken += outcome.taken;
            }
        }
    }
    assert!(seeds >= 4, "seeds missing in fuzz/seeds/probe_takeover");
    // one-answered 1, three-states 3, same-call-twice 1 (the second copy is the same call),
    // extreme-values 2.
    assert_eq!(taken, 7, "calls taken over from the seeds");
}
