//! Fuzzes what the SRP monitors' probes read from the network: a RADIUS server's answer to the
//! Access-Request probe and a Diameter peer's answers to CER and DWR; nothing panics, and what
//! is accepted is a valid answer. The checks live in `tollgate_srp::probe::fuzzing`, shared with
//! the seed replay of `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_srp::probe::fuzzing::check(data));
