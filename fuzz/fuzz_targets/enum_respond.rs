//! Fuzzes ENUM query handling: any bytes from the network must yield either no answer or a
//! well-formed DNS response with the query's id, never a panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use tollgate_enum::respond::fuzzing;
use tollgate_enum::{EnumConfig, QueryContext, Responder};
use tollgate_records::Transport;

/// The policy both ENUM fuzz targets answer with.
const POLICY: &str = include_str!("../policies/enum.toml");

fn responder() -> &'static Responder {
    static R: OnceLock<Responder> = OnceLock::new();
    R.get_or_init(|| fuzzing::responder(EnumConfig::default(), POLICY, BTreeMap::new(), 1, "fuzz"))
}

fuzz_target!(|data: &[u8]| {
    let (transport, packet) = match data.split_first() {
        Some((t, rest)) => (if t & 1 == 0 { Transport::Udp } else { Transport::Tcp }, rest),
        None => return,
    };
    let ctx = QueryContext {
        peer: "127.0.0.1:5000".parse().unwrap(),
        transport,
        received: Instant::now(),
        now: chrono::Utc::now(),
    };
    if let Some(answer) = responder().respond(packet, &ctx) {
        let resp = Message::from_vec(&answer.bytes).expect("every answer decodes");
        assert_eq!(resp.metadata.message_type, MessageType::Response);
        assert_eq!(resp.metadata.id, u16::from_be_bytes([packet[0], packet[1]]));
        if transport == Transport::Udp {
            assert!(answer.bytes.len() <= 1232, "UDP answers respect the size limit");
        }
    }
});
