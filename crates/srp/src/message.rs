//! SRP messages and their frame payloads.
//!
//! Control messages (handshake, hello, NACK, switchover, full checkpoint request) are JSON, small
//! and easy to read in a capture; checkpoints use their own compact binary form
//! ([`Checkpoint::encode`]) compressed with the algorithm agreed in the handshake; audit digests are
//! JSON compressed the same way.

use serde::{Deserialize, Serialize};

use crate::audit::StoreDigest;
use crate::checkpoint::{Checkpoint, CheckpointDecodeError, MAX_BODY_LEN, Nack};
use crate::compress::Compression;
use crate::election::{PeerStatus, Refusal, SwitchoverReason};
use crate::frame::FrameType;

/// SRP protocol version spoken in the handshake.
///
/// Still 1 since key confirmation was added: both sides reject another version, so the change is
/// carried by the [`Handshake::key_confirmation`] and [`HandshakeAck::key_confirmation`] flags,
/// which releases before it neither send nor read (serde ignores unknown fields and defaults
/// missing ones to `false`). A pair in the middle of a rolling upgrade keeps linking either way.
pub const PROTOCOL_VERSION: u8 = 1;

/// The dialer's first frame (authenticated with the shared key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Protocol version.
    pub protocol: u8,
    /// Dialer's node id.
    pub node_id: String,
    /// Dialer's configured compression.
    pub compression: Compression,
    /// Dialer's [`SrpConfig::shared_digest`](crate::config::SrpConfig::shared_digest).
    pub config_digest: String,
    /// Dialer's random nonce, hex.
    pub nonce: String,
    /// The dialer proves the session key with a [`HandshakeConfirm`] frame when the ack asks for
    /// it. `false` from releases before key confirmation: the acceptor then takes the dialer's
    /// first frame authenticated with the session key (sequence 1) as the proof.
    #[serde(default)]
    pub key_confirmation: bool,
}

/// The acceptor's answer (authenticated with the shared key). Its fresh nonce is the challenge:
/// the session key depends on it, so only a dialer holding the shared key now can answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeAck {
    /// Protocol version.
    pub protocol: u8,
    /// Acceptor's node id.
    pub node_id: String,
    /// Acceptor's configured compression.
    pub compression: Compression,
    /// The algorithm both use on this connection.
    pub agreed: Compression,
    /// Acceptor's configuration digest.
    pub config_digest: String,
    /// Acceptor's random nonce, hex.
    pub nonce: String,
    /// The dialer's nonce, echoed (proves the answer is fresh).
    pub dialer_nonce: String,
    /// The acceptor expects a [`HandshakeConfirm`] before it takes the connection. `false` from
    /// releases before key confirmation: the dialer then sends none (such an acceptor would close
    /// the connection on a frame type it does not know).
    #[serde(default)]
    pub key_confirmation: bool,
}

/// The dialer's proof that it holds this connection's session key: its third frame, sequence 0,
/// authenticated with [`FrameKey::session`](crate::frame::FrameKey::session) of both nonces, and
/// naming both nonces and both node ids. The acceptor replaces a live connection only after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeConfirm {
    /// Dialer's node id.
    pub dialer_node_id: String,
    /// Acceptor's node id.
    pub acceptor_node_id: String,
    /// Dialer's nonce.
    pub dialer_nonce: String,
    /// Acceptor's nonce (the challenge).
    pub acceptor_nonce: String,
}

/// What the two chassis say to each other after the handshake.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Status, every hello interval and on each change.
    Hello(PeerStatus),
    /// A micro or full checkpoint.
    Checkpoint(Checkpoint),
    /// The Standby could not apply a checkpoint.
    Nack(Nack),
    /// "Send me a full checkpoint".
    FullCheckpointRequest,
    /// "Take over".
    SwitchoverRequest {
        /// Even when not synchronised.
        force: bool,
        /// Why.
        reason: SwitchoverReason,
    },
    /// Answer to a switchover request.
    SwitchoverResponse {
        /// Taking over.
        accepted: bool,
        /// Why not.
        refusal: Option<Refusal>,
    },
    /// A session store digest, for an audit.
    AuditDigest(StoreDigest),
}

/// Why a frame payload is not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// A checkpoint that does not decode (reported to the checkpointer, which NACKs it).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointDecodeError),
    /// A JSON payload that does not parse.
    #[error("malformed {frame_type:?} payload: {detail}")]
    Malformed {
        /// The frame type.
        frame_type: FrameType,
        /// What is wrong.
        detail: String,
    },
    /// A frame type not expected after the handshake.
    #[error("unexpected {0:?} frame after the handshake")]
    Unexpected(FrameType),
}

/// An encoded message, with checkpoint sizes for the statistics.
#[derive(Debug, Clone)]
pub struct EncodedMessage {
    /// Frame type.
    pub frame_type: FrameType,
    /// Frame payload.
    pub payload: Vec<u8>,
    /// Bytes before compression (compressed messages only).
    pub uncompressed_len: usize,
    /// Bytes after compression (compressed messages only).
    pub compressed_len: usize,
}

#[derive(Serialize, Deserialize)]
struct SwitchoverRequestBody {
    force: bool,
    reason: SwitchoverReason,
}

#[derive(Serialize, Deserialize)]
struct SwitchoverResponseBody {
    accepted: bool,
    refusal: Option<Refusal>,
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(frame_type: FrameType, payload: &[u8]) -> Result<T, MessageError> {
    serde_json::from_slice(payload).map_err(|e| MessageError::Malformed { frame_type, detail: e.to_string() })
}

impl Message {
    /// The frame type and payload of the message.
    pub fn encode(&self, compression: Compression) -> EncodedMessage {
        let plain = |frame_type, payload: Vec<u8>| EncodedMessage {
            frame_type,
            payload,
            uncompressed_len: 0,
            compressed_len: 0,
        };
        match self {
            Message::Hello(s) => plain(FrameType::Hello, json(s)),
            Message::Checkpoint(cp) => {
                let enc = cp.encode(compression);
                EncodedMessage {
                    frame_type: FrameType::Checkpoint,
                    payload: enc.bytes,
                    uncompressed_len: enc.uncompressed_len,
                    compressed_len: enc.compressed_len,
                }
            }
            Message::Nack(n) => plain(FrameType::Nack, json(n)),
            Message::FullCheckpointRequest => plain(FrameType::FullCheckpointRequest, b"{}".to_vec()),
            Message::SwitchoverRequest { force, reason } => {
                plain(FrameType::SwitchoverRequest, json(&SwitchoverRequestBody { force: *force, reason: *reason }))
            }
            Message::SwitchoverResponse { accepted, refusal } => plain(
                FrameType::SwitchoverResponse,
                json(&SwitchoverResponseBody { accepted: *accepted, refusal: *refusal }),
            ),
            Message::AuditDigest(d) => {
                let body = json(d);
                let compressed = compression.compress(&body);
                let mut payload = Vec::with_capacity(4 + compressed.len());
                payload.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
                payload.extend_from_slice(&compressed);
                EncodedMessage {
                    frame_type: FrameType::AuditDigest,
                    payload,
                    uncompressed_len: body.len(),
                    compressed_len: compressed.len(),
                }
            }
        }
    }

    /// The message in a frame payload.
    pub fn decode(frame_type: FrameType, payload: &[u8], compression: Compression) -> Result<Message, MessageError> {
        Ok(match frame_type {
            FrameType::Hello => Message::Hello(parse(frame_type, payload)?),
            FrameType::Checkpoint => Message::Checkpoint(Checkpoint::decode(payload, compression)?),
            FrameType::Nack => Message::Nack(parse(frame_type, payload)?),
            FrameType::FullCheckpointRequest => Message::FullCheckpointRequest,
            FrameType::SwitchoverRequest => {
                let b: SwitchoverRequestBody = parse(frame_type, payload)?;
                Message::SwitchoverRequest { force: b.force, reason: b.reason }
            }
            FrameType::SwitchoverResponse => {
                let b: SwitchoverResponseBody = parse(frame_type, payload)?;
                Message::SwitchoverResponse { accepted: b.accepted, refusal: b.refusal }
            }
            FrameType::AuditDigest => {
                let malformed = |detail: String| MessageError::Malformed { frame_type, detail };
                let (len, body) = payload.split_at_checked(4).ok_or_else(|| malformed("truncated".into()))?;
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let json = compression.decompress(body, len, MAX_BODY_LEN).map_err(|e| malformed(e.to_string()))?;
                Message::AuditDigest(parse(frame_type, &json)?)
            }
            FrameType::Handshake | FrameType::HandshakeAck | FrameType::HandshakeConfirm => {
                return Err(MessageError::Unexpected(frame_type));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let msgs = crate::fuzzing::sample_messages();
        for c in [Compression::Zlib, Compression::Lz4] {
            for m in &msgs {
                let e = m.encode(c);
                assert_eq!(&Message::decode(e.frame_type, &e.payload, c).unwrap(), m);
            }
        }
    }

    #[test]
    fn a_hello_from_a_release_without_forced_standby_reads_as_not_forced() {
        let old =
            br#"{"node_id":"n-a","mode":"primary","priority":1,"route_modifier":2,"state":"Standby","ready":true}"#;
        match Message::decode(FrameType::Hello, old, Compression::Zlib).unwrap() {
            Message::Hello(p) => assert!(p.ready && !p.forced_standby),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn handshakes_of_a_release_without_key_confirmation_read_as_not_confirming() {
        let hs = br#"{"protocol":1,"node_id":"n-a","compression":"zlib","config_digest":"d","nonce":"00"}"#;
        let hs: Handshake = serde_json::from_slice(hs).unwrap();
        assert!(!hs.key_confirmation);
        let ack = br#"{"protocol":1,"node_id":"n-b","compression":"lz4","agreed":"zlib","config_digest":"d","nonce":"01","dialer_nonce":"00"}"#;
        let ack: HandshakeAck = serde_json::from_slice(ack).unwrap();
        assert!(!ack.key_confirmation);
    }

    #[test]
    fn garbage_payloads_are_errors() {
        for t in crate::frame::FrameType::ALL {
            if t == FrameType::FullCheckpointRequest {
                continue;
            }
            for p in [&b""[..], b"\x00\x01\x02", b"{not json", b"\xff\xff\xff\xff\x00"] {
                assert!(Message::decode(t, p, Compression::Zlib).is_err(), "{t:?} {p:?}");
            }
        }
    }
}
