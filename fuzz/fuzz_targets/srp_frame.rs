//! Fuzzes what arrives on the SRP port: the frame parser (before authentication) and the
//! handshake and message decoders (after it, from a peer that may be buggy); nothing panics, and
//! whatever decodes encodes back to itself. The checks live in `tollgate_srp::fuzzing`, shared with the
//! seed replay of `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tollgate_srp::fuzzing::check(data));
