//! Fuzzes the SIP redirect server's responder: any bytes, from a client or a stranger, over
//! UDP or TCP, are handled without a panic; every response parses back with the request's
//! Call-ID and CSeq; only decided INVITEs have records, and their retransmissions get the same
//! bytes (the check is `tollgate_sip_redirect::fuzzing::check`, which a test replays on the
//! seeds).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tollgate_sip_redirect::fuzzing::check(data);
});
