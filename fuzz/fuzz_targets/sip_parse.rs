//! Fuzzes the SIP parser and the dialog tracker: any datagram must parse into messages or
//! errors (never a panic), every slice the parser hands out must lie inside the input, and the
//! tracker must take whatever parsed.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use tollgate_sip::dialog::{PacketInfo, Tracker, TrackerConfig};
use tollgate_sip::message::{HeaderName, parse_datagram};
use tollgate_sip::sdp::media_endpoints;
use tollgate_sip::uri::{name_addr, user_part};

static TRACKER: Mutex<Option<Tracker>> = Mutex::new(None);

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    let mut guard = TRACKER.lock().unwrap();
    let tracker = guard.get_or_insert_with(|| Tracker::new(TrackerConfig { max_open: 64, ..Default::default() }));
    let pkt = PacketInfo { ts_us: 1, src: "10.0.0.1:5060".parse().unwrap(), dst: "10.0.0.2:5060".parse().unwrap() };
    for msg in parse_datagram(data) {
        let Ok(m) = msg else { break };
        assert!(inside(data, m.body), "body outside the datagram");
        for h in &m.headers {
            assert!(inside(data, h.raw_name.as_bytes()) && inside(data, h.value.as_bytes()));
        }
        let _ = (m.call_id(), m.cseq(), m.status(), m.method());
        for h in [HeaderName::From, HeaderName::To, HeaderName::PAssertedIdentity] {
            if let Some(v) = m.header(h) {
                let na = name_addr(v);
                let _ = user_part(na.uri);
            }
        }
        let _ = media_endpoints(m.body);
        let _ = tracker.on_message(&m, &pkt);
    }
    let _ = tracker.on_udp(data, &pkt);
    let _ = tracker.expire(i64::MAX / 2);
});
