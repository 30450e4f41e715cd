//! Replays the `probe_takeover` fuzz target's seeds (fuzz/seeds/probe_takeover), and any crash
//! inputs saved under fuzz/artifacts/probe_takeover, through the same checks, so `cargo test`
//! catches what the fuzzer would on the known inputs; the seeds must be calls the probe takes
//! over, so the fuzzer starts from real checkpoints.

#[path = "support/fuzz_inputs.rs"]
mod fuzz_inputs;

use tollgate_probe::fuzzing::takeover::takeover;

#[test]
fn every_seed_passes_the_fuzz_checks_and_is_taken_over() {
    let (mut seeds, mut taken) = (0, 0);
    for input in fuzz_inputs::inputs("probe_takeover") {
        let outcome = takeover(&input.data);
        if input.seed {
            assert!(outcome.taken >= 1, "{}: {outcome:?}", input.path.display());
            seeds += 1;
            taken += outcome.taken;
        }
    }
    assert!(seeds >= 4, "seeds missing in fuzz/seeds/probe_takeover");
    // one-answered 1, three-states 3, same-call-twice 1 (the second copy is the same call),
    // extreme-values 2.
    assert_eq!(taken, 7, "calls taken over from the seeds");
}
