//! The checks of the `srp_frame` fuzz target, shared with the seed replay in `cargo test`: what
//! arrives on the SRP port is parsed before it is authenticated (the frame header) and after
//! (the message in an authenticated frame, from a peer that may be buggy).

use crate::audit::StoreDigest;
use crate::checkpoint::{Checkpoint, CheckpointKind, Nack, NackKind, NackReason};
use crate::compress::Compression;
use crate::config::ChassisMode;
use crate::election::{PeerStatus, Refusal, State, SwitchoverReason};
use crate::frame::{Frame, FrameKey, FrameType};
use crate::message::Message;
use crate::session::Change;

/// The key fuzz inputs and seeds are authenticated with.
pub const FUZZ_KEY: &[u8] = b"tollgate-srp-fuzz-key-0123456789";

/// Feeds `data` to the frame parser (as received) and, with the first byte choosing the frame
/// type, to the message decoder; nothing panics, and whatever decodes encodes back to itself.
pub fn check(data: &[u8]) {
    let key = FrameKey::new(FUZZ_KEY);
    let _ = Frame::parse_header(data);
    if let Ok((frame, used)) = Frame::decode(data, &key) {
        let again = frame.encode(&key).expect("a decoded frame re-encodes");
        assert_eq!(again, data[..used], "a frame re-encodes to the bytes it came from");
        check_message(frame.frame_type, &frame.payload);
    }
    if let Some((t, payload)) = data.split_first() {
        check_message(FrameType::ALL[usize::from(*t) % FrameType::ALL.len()], payload);
    }
}

fn check_message(frame_type: FrameType, payload: &[u8]) {
    for compression in [Compression::Zlib, Compression::Lz4] {
        let Ok(m) = Message::decode(frame_type, payload, compression) else { continue };
        let e = m.encode(compression);
        assert_eq!(e.frame_type, frame_type);
        let back = Message::decode(e.frame_type, &e.payload, compression).expect("a re-encoded message decodes");
        assert_eq!(back, m, "a message survives encoding");
    }
}

/// One message of each kind (the seeds, and the message round-trip test).
pub fn sample_messages() -> Vec<Message> {
    vec![
        Message::Hello(PeerStatus {
            node_id: "n-a".into(),
            mode: ChassisMode::Primary,
            priority: 1,
            route_modifier: 2,
            state: State::PendingActive,
            ready: true,
            forced_standby: true,
        }),
        Message::Checkpoint(Checkpoint::new(
            CheckpointKind::Micro { cmd: 2 },
            9,
            vec![
                Change::Remove { cmd: 2, key: "k".into(), version: 3 },
                Change::Upsert {
                    cmd: 1,
                    key: "velocity/r/+13125550100".into(),
                    version: 4,
                    age_ms: 20,
                    value: vec![1, 2],
                },
            ],
        )),
        Message::Nack(Nack { kind: NackKind::Macro, cmd: None, seq: None, reason: NackReason::IncompleteFull }),
        Message::FullCheckpointRequest,
        Message::SwitchoverRequest { force: true, reason: SwitchoverReason::Manual },
        Message::SwitchoverResponse { accepted: false, refusal: Some(Refusal::PeerForcedStandby) },
        Message::AuditDigest(StoreDigest::default()),
    ]
}

/// Seed inputs: each sample message as an authenticated frame (sequence `i`), and as a
/// type byte followed by its payload, with each compression.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let key = FrameKey::new(FUZZ_KEY);
    let mut out = Vec::new();
    for (i, m) in sample_messages().into_iter().enumerate() {
        for c in [Compression::Zlib, Compression::Lz4] {
            let e = m.encode(c);
            let frame = Frame { frame_type: e.frame_type, seq: i as u64, payload: e.payload.clone() };
            out.push((format!("frame-{:?}-{c}", e.frame_type), frame.encode(&key).expect("a small frame")));
            let t = FrameType::ALL.iter().position(|t| *t == e.frame_type).expect("a known type") as u8;
            out.push((format!("message-{:?}-{c}", e.frame_type), [vec![t], e.payload].concat()));
        }
    }
    out
}
