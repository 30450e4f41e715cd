//! Synthetic calls as HEP3 packets, for the HEP rate bench's sender (examples/hep_sender.rs)
//! and the batch receiver's tests: call `n` is INVITE, 100, 180, 200, ACK, BYE, 200 with a
//! Call-ID, a caller and a callee of its own. The seven packets are encoded once (with
//! `tollgate_probe::hep::encode_v3`) with fixed-width placeholders; each call's packets are
//! copies with the placeholders and the HEP timestamp written in place, so the sender spends
//! its time sending, not formatting.

use std::net::SocketAddr;

use tollgate_probe::hep::{HepPacket, encode_v3};

/// Packets (SIP messages) per call.
pub const MESSAGES_PER_CALL: usize = 7;

/// Placeholders, each as wide as what replaces it: the call number (10 digits), the caller's
/// and the callee's numbers (10 digits each).
const CALL: &[u8] = b"@@CALL_NO@";
const CALLER: &[u8] = b"@@CALLER@@";
const CALLEE: &[u8] = b"@@CALLEE@@";

/// One message's packet with where its placeholders and timestamp are.
struct Template {
    bytes: Vec<u8>,
    call_at: Vec<usize>,
    caller_at: Vec<usize>,
    callee_at: Vec<usize>,
    /// Offsets of the data of HEP chunks 9 (seconds) and 10 (microseconds).
    secs_at: usize,
    micros_at: usize,
}

/// The seven packets of a call, for any call number.
pub struct CallPackets {
    templates: Vec<Template>,
}

fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

/// Offset of the data of generic HEP3 chunk `kind`.
fn chunk_data(packet: &[u8], kind: u16) -> usize {
    let mut at = 6;
    while at + 6 <= packet.len() {
        let vendor = u16::from_be_bytes([packet[at], packet[at + 1]]);
        let k = u16::from_be_bytes([packet[at + 2], packet[at + 3]]);
        let len = usize::from(u16::from_be_bytes([packet[at + 4], packet[at + 5]]));
        if vendor == 0 && k == kind {
            return at + 6;
        }
        at += len;
    }
    panic!("encode_v3 wrote no chunk {kind}")
}

fn digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl CallPackets {
    /// Packets whose Call-IDs carry `run` (so calls of different runs never share an id).
    pub fn new(run: &str) -> Self {
        let caller: SocketAddr = "10.0.0.1:5060".parse().expect("an address");
        let callee: SocketAddr = "10.0.0.2:5060".parse().expect("an address");
        let call = std::str::from_utf8(CALL).expect("ASCII");
        let (from, to) = (std::str::from_utf8(CALLER).expect("ASCII"), std::str::from_utf8(CALLEE).expect("ASCII"));
        let message = |start: &str, cseq: &str, to_tag: &str| {
            format!(
                "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{run}-{call}\r\nFrom: <sip:{from}@10.0.0.1>;tag=a{call}\r\nTo: <sip:{to}@10.0.0.2>{to_tag}\r\nCall-ID: hep-bench-{run}-{call}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let tag = ";tag=b";
        let messages = [
            (message(&format!("INVITE sip:{to}@10.0.0.2 SIP/2.0"), "1 INVITE", ""), true),
            (message("SIP/2.0 100 Trying", "1 INVITE", ""), false),
            (message("SIP/2.0 180 Ringing", "1 INVITE", tag), false),
            (message("SIP/2.0 200 OK", "1 INVITE", tag), false),
            (message(&format!("ACK sip:{to}@10.0.0.2 SIP/2.0"), "1 ACK", tag), true),
            (message(&format!("BYE sip:{to}@10.0.0.2 SIP/2.0"), "2 BYE", tag), true),
            (message("SIP/2.0 200 OK", "2 BYE", tag), false),
        ];
        let templates = messages
            .iter()
            .map(|(text, from_caller)| {
                let (src, dst) = if *from_caller { (caller, callee) } else { (callee, caller) };
                let bytes = encode_v3(&HepPacket {
                    version: 3,
                    src,
                    dst,
                    ip_protocol: 17,
                    ts_us: 1,
                    protocol_type: 1,
                    capture_id: 2001,
                    payload: text.as_bytes(),
                });
                Template {
                    call_at: positions(&bytes, CALL),
                    caller_at: positions(&bytes, CALLER),
                    callee_at: positions(&bytes, CALLEE),
                    secs_at: chunk_data(&bytes, 9),
                    micros_at: chunk_data(&bytes, 10),
                    bytes,
                }
            })
            .collect();
        CallPackets { templates }
    }

    /// Writes packet `message` (0 to 6) of call `call` into `out` (replacing what was there),
    /// stamped `ts_us` (µs since the epoch).
    pub fn write(&self, call: u64, message: usize, ts_us: i64, out: &mut Vec<u8>) {
        let t = &self.templates[message];
        out.clear();
        out.extend_from_slice(&t.bytes);
        for &at in &t.call_at {
            digits(&mut out[at..at + CALL.len()], call);
        }
        for &at in &t.caller_at {
            digits(&mut out[at..at + CALLER.len()], 2_125_550_000 + call % 10_000);
        }
        for &at in &t.callee_at {
            digits(&mut out[at..at + CALLEE.len()], 4_155_550_000 + (call / 10_000) % 10_000);
        }
        out[t.secs_at..t.secs_at + 4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_be_bytes());
        out[t.micros_at..t.micros_at + 4].copy_from_slice(&((ts_us % 1_000_000) as u32).to_be_bytes());
    }
}
