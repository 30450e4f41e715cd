//! The checks of the `srp_frame` fuzz target, shared with the seed replay in `cargo test`: what
//! arrives on the SRP port is parsed before it is authenticated (the frame header) and after
//! (the handshake or message in an authenticated frame, from a peer that may be buggy).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::StoreDigest;
use crate::checkpoint::{Checkpoint, CheckpointKind, Nack, NackKind, NackReason};
use crate::compress::Compression;
use crate::config::ChassisMode;
use crate::election::{PeerStatus, Refusal, State, SwitchoverReason};
use crate::frame::{Frame, FrameKey, FrameType};
use crate::message::{Handshake, HandshakeAck, HandshakeConfirm, Message, PROTOCOL_VERSION};
use crate::session::Change;

/// The key fuzz inputs and seeds are authenticated with.
pub const FUZZ_KEY: &[u8] = b"tollgate-srp-fuzz-key-0123456789";

/// Feeds `data` to the frame parser (as received) and, with the first byte choosing the frame
/// type, to the handshake and message decoders; nothing panics, and whatever decodes encodes
/// back to itself.
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
    match frame_type {
        FrameType::Handshake => round_trip::<Handshake>(payload),
        FrameType::HandshakeAck => round_trip::<HandshakeAck>(payload),
        FrameType::HandshakeConfirm => round_trip::<HandshakeConfirm>(payload),
        _ => {}
    }
    for compression in [Compression::Zlib, Compression::Lz4] {
        let Ok(m) = Message::decode(frame_type, payload, compression) else { continue };
        let e = m.encode(compression);
        assert_eq!(e.frame_type, frame_type);
        let back = Message::decode(e.frame_type, &e.payload, compression).expect("a re-encoded message decodes");
        assert_eq!(back, m, "a message survives encoding");
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("a handshake message serialises")
}

/// A handshake payload that parses serialises to one that parses to the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(payload: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(payload) else { return };
    let again = json(&v);
    let back: T = serde_json::from_slice(&again).expect("a re-encoded handshake message parses");
    assert_eq!(back, v, "a handshake message survives encoding");
}

/// One handshake frame payload of each kind, and a handshake of a release before key
/// confirmation (the seeds).
pub fn sample_handshakes() -> Vec<(String, FrameType, Vec<u8>)> {
    let hs = Handshake {
        protocol: PROTOCOL_VERSION,
        node_id: "n-d".into(),
        compression: Compression::Lz4,
        config_digest: "0f1e2d3c".into(),
        nonce: "00112233445566778899aabbccddeeff".into(),
        key_confirmation: true,
    };
    let ack = HandshakeAck {
        protocol: PROTOCOL_VERSION,
        node_id: "n-a".into(),
        compression: Compression::Zlib,
        agreed: Compression::Zlib,
        config_digest: "0f1e2d3c".into(),
        nonce: "ffeeddccbbaa99887766554433221100".into(),
        dialer_nonce: hs.nonce.clone(),
        key_confirmation: true,
    };
    let confirm = crate::handshake::confirmation(&hs, &ack);
    let previous = br#"{"protocol":1,"node_id":"n-d","compression":"zlib","config_digest":"0f1e2d3c","nonce":"00"}"#;
    vec![
        ("Handshake".into(), FrameType::Handshake, json(&hs)),
        ("HandshakeAck".into(), FrameType::HandshakeAck, json(&ack)),
        ("HandshakeConfirm".into(), FrameType::HandshakeConfirm, json(&confirm)),
        ("Handshake-previous-release".into(), FrameType::Handshake, previous.to_vec()),
    ]
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
/// type byte followed by its payload, with each compression; each sample handshake the same
/// way (sequence 0).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let key = FrameKey::new(FUZZ_KEY);
    let mut out = Vec::new();
    let type_byte = |t: FrameType| FrameType::ALL.iter().position(|a| *a == t).expect("a known type") as u8;
    for (name, frame_type, payload) in sample_handshakes() {
        let frame = Frame { frame_type, seq: 0, payload: payload.clone() };
        out.push((format!("frame-{name}"), frame.encode(&key).expect("a small frame")));
        out.push((format!("message-{name}"), [vec![type_byte(frame_type)], payload].concat()));
    }
    for (i, m) in sample_messages().into_iter().enumerate() {
        for c in [Compression::Zlib, Compression::Lz4] {
            let e = m.encode(c);
            let frame = Frame { frame_type: e.frame_type, seq: i as u64, payload: e.payload.clone() };
            out.push((format!("frame-{:?}-{c}", e.frame_type), frame.encode(&key).expect("a small frame")));
            out.push((format!("message-{:?}-{c}", e.frame_type), [vec![type_byte(e.frame_type)], e.payload].concat()));
        }
    }
    out
}
