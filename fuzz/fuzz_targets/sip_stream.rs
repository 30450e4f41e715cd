//! Fuzzes SIP framing on a stream (`tollgate_sip::stream`, the SIP redirect server's TCP
//! listener): whatever the bytes and however they are cut into reads, the same messages,
//! each within the limit, and no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_sip::stream::fuzzing::check(data);
});
