//! Replays the fuzz seeds (and any crash inputs saved next to them) through the responder with
//! the same checks as the fuzz target, so the corpus guards every `cargo test` run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType};
use tollgate_enum::respond::fuzzing;
use tollgate_enum::{EnumConfig, QueryContext};
use tollgate_records::Transport;

#[test]
fn every_seed_gets_a_well_formed_answer_or_none() {
    // The fuzz targets' own policy, so the seeds take the paths they take under the fuzzer.
    let r = fuzzing::responder(
        EnumConfig::default(),
        include_str!("../../../fuzz/policies/enum.toml"),
        BTreeMap::new(),
        1,
        "seeds",
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/enum_respond");
    let mut seen = 0;
    let mut answered = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Some((t, packet)) = data.split_first() else { continue };
        let transport = if t & 1 == 0 { Transport::Udp } else { Transport::Tcp };
        let ctx = QueryContext {
            peer: "127.0.0.1:5000".parse().unwrap(),
            transport,
            received: Instant::now(),
            now: chrono::Utc::now(),
        };
        seen += 1;
        if let Some(a) = r.respond(packet, &ctx) {
            answered += 1;
            let resp = Message::from_vec(&a.bytes)
                .unwrap_or_else(|e| panic!("{}: answer does not decode: {e}", path.display()));
            assert_eq!(resp.metadata.message_type, MessageType::Response, "{}", path.display());
            assert_eq!(resp.metadata.id, u16::from_be_bytes([packet[0], packet[1]]), "{}", path.display());
        }
    }
    assert!(seen >= 20, "seed corpus missing from {}", dir.display());
    assert_eq!(answered, seen, "every seed is at least 12 bytes and a query, so each gets an answer");
}
