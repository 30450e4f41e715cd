//! Replays the `sip_tcp` fuzz target's seeds (fuzz/seeds/sip_tcp), and any crash inputs saved
//! under fuzz/artifacts/sip_tcp, through the same checks, so `cargo test` catches what the
//! fuzzer would on the known inputs; the seeds must hold calls, so the fuzzer starts from SIP.

#[path = "support/fuzz_inputs.rs"]
mod fuzz_inputs;

use tollgate_probe::fuzzing::sip_tcp;

#[test]
fn every_seed_passes_the_fuzz_checks_and_holds_calls() {
    let (mut seeds, mut calls) = (0, 0);
    for input in fuzz_inputs::inputs("sip_tcp") {
        let outcome = sip_tcp(&input.data);
        if input.seed {
            assert!(outcome.messages >= 2, "{}: {outcome:?}", input.path.display());
            seeds += 1;
            calls += outcome.calls;
        }
    }
    assert!(seeds >= 4, "seeds missing in fuzz/seeds/sip_tcp");
    assert!(calls >= 4, "the seeds hold calls: {calls}");
}
