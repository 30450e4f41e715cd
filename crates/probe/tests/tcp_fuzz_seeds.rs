//! Replays the `sip_tcp` fuzz target's seeds (fuzz/seeds/sip_tcp), and any crash inputs saved
//! under fuzz/artifacts/sip_tcp, through the same checks, so `cargo test` catches what the
//! fuzzer would on the known inputs; the seeds must hold calls, so the fuzzer starts from SIP.

use std::path::Path;

use tollgate_probe::fuzzing::sip_tcp;

#[test]
fn every_seed_passes_the_fuzz_checks_and_holds_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let (mut seeds, mut calls) = (0, 0);
    for sub in ["seeds/sip_tcp", "artifacts/sip_tcp"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            let outcome = sip_tcp(&data);
            if sub.starts_with("seeds") {
                assert!(outcome.messages >= 2, "{}: {outcome:?}", entry.path().display());
                seeds += 1;
                calls += outcome.calls;
            }
        }
    }
    assert!(seeds >= 4, "seeds missing in fuzz/seeds/sip_tcp");
    assert!(calls >= 4, "the seeds hold calls: {calls}");
}
