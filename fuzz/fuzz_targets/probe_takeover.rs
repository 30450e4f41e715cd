//! Fuzzes a probe pair's takeover: open calls as the mate checkpoints them (JSON, the SRP
//! session values), taken over by a probe that then hears one more message of each, its
//! timeouts and the end of its input. Any bytes give no panic, no call reported twice and
//! none left open (`tollgate_probe::fuzzing::takeover`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_probe::fuzzing::takeover::takeover(data);
});
