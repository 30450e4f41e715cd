//! Fuzzes the HEP decoder: any bytes decode or fail cleanly; a decoded packet re-encoded as
//! HEP3 decodes to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_probe::hep::{decode, encode_v3, hep3_frame_len};

fuzz_target!(|data: &[u8]| {
    let _ = hep3_frame_len(data);
    let Ok(p) = decode(data) else { return };
    if p.payload.len() > 60_000 {
        return; // a HEP3 chunk length is 16 bits
    }
    let again = encode_v3(&p);
    let q = decode(&again).expect("a re-encoded packet decodes");
    assert_eq!((q.src, q.dst, q.ip_protocol, q.protocol_type, q.payload), (p.src, p.dst, p.ip_protocol, p.protocol_type, p.payload));
    assert_eq!(hep3_frame_len(&again), Some(again.len()));
});
