//! Fuzzes SIP over TCP: arbitrary segments (sequence numbers, SYN/FIN/RST, bytes) of a few
//! flows through the stream reassembly and the probe. The checks (bounds, every byte
//! accounted for, messages that start with a start line, no more calls than INVITEs) are in
//! `tollgate_probe::fuzzing`, shared with the seed replay of `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_probe::fuzzing::sip_tcp(data);
});
