//! The SRP handshake: how a TCP connection between the two chassis becomes a link connection,
//! and what each side has proven when it does.
//!
//! ```text
//! dialer                                              acceptor
//!   Handshake { nonce_d, .. }          shared key  ->  checks the MAC, version, node id
//!                                   <- shared key      HandshakeAck { nonce_a, echo of nonce_d, .. }
//!   checks the echo of nonce_d
//!   HandshakeConfirm { ids, nonces }  session key  ->  checks it: only now is the connection
//!                                                      the link's (and replaces a live one)
//! ```
//!
//! The session key is [`FrameKey::session`] of the shared key and both nonces. The acceptor's
//! fresh nonce is its challenge: a recorded Handshake frame still carries a valid MAC under the
//! shared key, but whoever replays it cannot compute the session key of the new nonce, so it
//! cannot confirm and never replaces the live connection. The dialer's nonce, echoed in the
//! answer, does the same for the dialer.
//!
//! Mixed releases (a rolling upgrade): the [`Handshake::key_confirmation`] and
//! [`HandshakeAck::key_confirmation`] flags say whether each side knows the confirmation. A
//! dialer of an older release sends none; the acceptor then takes its first frame after the
//! answer (sequence 1, authenticated with the session key, normally its Hello) as the proof and
//! delivers it as the first message of the connection. A dialer facing an older acceptor sends
//! no confirmation (that acceptor would close the connection on an unknown frame type).

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::compress::Compression;
use crate::frame::{Frame, FrameError, FrameKey, FrameType};
use crate::link::{ConnectionInfo, LinkConfig, ReadError, Shared, read_frame, write_frame};
use crate::message::{Handshake, HandshakeAck, HandshakeConfirm, PROTOCOL_VERSION};

/// Largest handshake, answer or confirmation payload: bounds what an unauthenticated peer makes
/// this side allocate.
pub const MAX_HANDSHAKE_LEN: usize = 16 * 1024;

/// Largest first frame accepted as the proof of a dialer without key confirmation (an older
/// release; normally its Hello, a few hundred bytes). A larger one is refused and that dialer
/// retries a hello interval later.
pub const MAX_LEGACY_PROOF_LEN: usize = 1024 * 1024;

/// Which step of the handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The TLS handshake under the SRP one ([`crate::link_tls`]), when the link has TLS.
    Tls,
    /// Sending or receiving the dialer's handshake.
    Handshake,
    /// Sending or receiving the acceptor's answer.
    Answer,
    /// Sending or receiving the dialer's confirmation.
    Confirmation,
    /// Receiving the first frame of a dialer without key confirmation.
    FirstFrame,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Tls => "TLS handshake",
            Stage::Handshake => "handshake",
            Stage::Answer => "handshake answer",
            Stage::Confirmation => "handshake confirmation",
            Stage::FirstFrame => "first frame of a dialer without key confirmation",
        })
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer closed the connection.
    #[error("{stage}: connection closed by the peer")]
    Closed {
        /// Where.
        stage: Stage,
    },
    /// Reading or writing failed.
    #[error("{stage}: {source}")]
    Io {
        /// Where.
        stage: Stage,
        /// The error.
        source: std::io::Error,
    },
    /// A frame that is not valid, or fails authentication.
    #[error("{stage}: {source}")]
    Frame {
        /// Where.
        stage: Stage,
        /// The error.
        source: FrameError,
    },
    /// The handshake did not finish within the dead interval.
    #[error("{stage}: not finished within the dead interval")]
    TimedOut {
        /// The last step begun.
        stage: Stage,
    },
    /// A frame of another type or sequence number than this step expects.
    #[error("{stage}: expected a {expected:?} frame with sequence {expected_seq}, got {got:?} sequence {seq}")]
    UnexpectedFrame {
        /// Where.
        stage: Stage,
        /// The type expected.
        expected: FrameType,
        /// The sequence number expected.
        expected_seq: u64,
        /// The type received.
        got: FrameType,
        /// The sequence number received.
        seq: u64,
    },
    /// An authenticated payload that does not parse.
    #[error("{stage}: malformed payload: {detail}")]
    Malformed {
        /// Where.
        stage: Stage,
        /// What the parser said.
        detail: String,
    },
    /// Another protocol version.
    #[error("peer speaks SRP protocol {0}, this chassis {PROTOCOL_VERSION}")]
    Protocol(u8),
    /// The peer has this chassis' node id.
    #[error("peer uses this chassis' node id {0}")]
    SameNodeId(String),
    /// The answer is not for this connection's handshake.
    #[error("handshake answer does not echo this connection's nonce (replayed?)")]
    NonceNotEchoed,
    /// The acceptor agreed on another compression than the rule gives.
    #[error("peer chose {chose} compression, {expected} expected")]
    Compression {
        /// What it chose.
        chose: Compression,
        /// What the rule gives.
        expected: Compression,
    },
    /// A confirmation (authenticated with this session key) naming another connection.
    #[error("handshake confirmation names another connection ({field} differs)")]
    ConfirmationMismatch {
        /// The first field that differs.
        field: &'static str,
    },
}

impl HandshakeError {
    /// Whether TLS failed: its own handshake, or an alert from the mate (which refuses this
    /// chassis' certificate after its handshake has seemed to succeed, at the first read).
    pub fn is_tls(&self) -> bool {
        match self {
            HandshakeError::Io { stage, source } => *stage == Stage::Tls || crate::link_tls::is_tls_error(source),
            HandshakeError::Closed { stage } | HandshakeError::TimedOut { stage } => *stage == Stage::Tls,
            _ => false,
        }
    }

    fn read(stage: Stage) -> impl Fn(ReadError) -> HandshakeError {
        move |e| match e {
            ReadError::Closed => HandshakeError::Closed { stage },
            ReadError::Io(source) => HandshakeError::Io { stage, source },
            ReadError::Frame(source) => HandshakeError::Frame { stage, source },
        }
    }

    fn write(stage: Stage) -> impl Fn(std::io::Error) -> HandshakeError {
        move |source| HandshakeError::Io { stage, source }
    }
}

/// A handshake that succeeded.
pub(crate) struct Established {
    /// The session key.
    pub key: FrameKey,
    /// The connection.
    pub info: ConnectionInfo,
    /// A dialer without key confirmation: its first frame (sequence 1), already authenticated,
    /// to be delivered before anything read later.
    pub first: Option<Frame>,
}

/// A fresh random nonce, hex.
fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn payload<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The payload of `frame` if it has the type and sequence number `stage` expects.
fn expect<T: for<'de> serde::Deserialize<'de>>(
    frame: Frame,
    stage: Stage,
    expected: FrameType,
) -> Result<T, HandshakeError> {
    if frame.frame_type != expected || frame.seq != 0 {
        return Err(HandshakeError::UnexpectedFrame {
            stage,
            expected,
            expected_seq: 0,
            got: frame.frame_type,
            seq: frame.seq,
        });
    }
    serde_json::from_slice(&frame.payload).map_err(|e| HandshakeError::Malformed { stage, detail: e.to_string() })
}

/// The acceptor's checks of a handshake (its MAC already verified).
pub fn check_handshake(hs: &Handshake, own_node_id: &str) -> Result<(), HandshakeError> {
    if hs.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::Protocol(hs.protocol));
    }
    if hs.node_id == own_node_id {
        return Err(HandshakeError::SameNodeId(hs.node_id.clone()));
    }
    Ok(())
}

/// The dialer's checks of the answer to `sent` (its MAC already verified).
pub fn check_ack(sent: &Handshake, ack: &HandshakeAck) -> Result<(), HandshakeError> {
    let expected = Compression::negotiate(sent.compression, ack.compression);
    if ack.protocol != PROTOCOL_VERSION {
        Err(HandshakeError::Protocol(ack.protocol))
    } else if ack.dialer_nonce != sent.nonce {
        Err(HandshakeError::NonceNotEchoed)
    } else if ack.node_id == sent.node_id {
        Err(HandshakeError::SameNodeId(ack.node_id.clone()))
    } else if ack.agreed != expected {
        Err(HandshakeError::Compression { chose: ack.agreed, expected })
    } else {
        Ok(())
    }
}

/// The confirmation the dialer of `hs` sends after `ack`.
pub fn confirmation(hs: &Handshake, ack: &HandshakeAck) -> HandshakeConfirm {
    HandshakeConfirm {
        dialer_node_id: hs.node_id.clone(),
        acceptor_node_id: ack.node_id.clone(),
        dialer_nonce: hs.nonce.clone(),
        acceptor_nonce: ack.nonce.clone(),
    }
}

/// The acceptor's check of a confirmation (its MAC under the session key already verified).
pub fn check_confirmation(got: &HandshakeConfirm, expected: &HandshakeConfirm) -> Result<(), HandshakeError> {
    let field = if got.dialer_node_id != expected.dialer_node_id {
        "dialer_node_id"
    } else if got.acceptor_node_id != expected.acceptor_node_id {
        "acceptor_node_id"
    } else if got.dialer_nonce != expected.dialer_nonce {
        "dialer_nonce"
    } else if got.acceptor_nonce != expected.acceptor_nonce {
        "acceptor_nonce"
    } else {
        return Ok(());
    };
    Err(HandshakeError::ConfirmationMismatch { field })
}

/// The dialer's half, on a connected stream; `stage` follows the step under way (for a
/// timeout's message).
pub(crate) async fn dial<R, W>(
    reader: &mut R,
    writer: &mut W,
    config: &LinkConfig,
    peer_address: std::net::SocketAddr,
    shared: &Shared,
    stage: &mut Stage,
) -> Result<Established, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let shared_key = FrameKey::new(&config.shared_key);
    let hs = Handshake {
        protocol: PROTOCOL_VERSION,
        node_id: config.node_id.clone(),
        compression: config.compression,
        config_digest: config.config_digest.clone(),
        nonce: nonce(),
        key_confirmation: true,
    };
    *stage = Stage::Handshake;
    let frame = Frame { frame_type: FrameType::Handshake, seq: 0, payload: payload(&hs) };
    write_frame(writer, &shared_key, frame).await.map_err(HandshakeError::write(*stage))?;
    *stage = Stage::Answer;
    let frame =
        read_frame(reader, &shared_key, MAX_HANDSHAKE_LEN, shared).await.map_err(HandshakeError::read(*stage))?;
    let ack: HandshakeAck = expect(frame, *stage, FrameType::HandshakeAck)?;
    check_ack(&hs, &ack)?;
    let key = FrameKey::session(&config.shared_key, hs.nonce.as_bytes(), ack.nonce.as_bytes());
    if ack.key_confirmation {
        *stage = Stage::Confirmation;
        let confirm = confirmation(&hs, &ack);
        let frame = Frame { frame_type: FrameType::HandshakeConfirm, seq: 0, payload: payload(&confirm) };
        write_frame(writer, &key, frame).await.map_err(HandshakeError::write(*stage))?;
    }
    Ok(Established {
        key,
        info: ConnectionInfo {
            peer_node_id: ack.node_id,
            peer_address,
            compression: ack.agreed,
            config_matches: ack.config_digest == config.config_digest,
        },
        first: None,
    })
}

/// The acceptor's half: succeeds only once the dialer has proven the session key.
pub(crate) async fn accept<R, W>(
    reader: &mut R,
    writer: &mut W,
    config: &LinkConfig,
    peer_address: std::net::SocketAddr,
    shared: &Shared,
    stage: &mut Stage,
) -> Result<Established, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let shared_key = FrameKey::new(&config.shared_key);
    *stage = Stage::Handshake;
    let frame =
        read_frame(reader, &shared_key, MAX_HANDSHAKE_LEN, shared).await.map_err(HandshakeError::read(*stage))?;
    let hs: Handshake = expect(frame, *stage, FrameType::Handshake)?;
    check_handshake(&hs, &config.node_id)?;
    let agreed = Compression::negotiate(config.compression, hs.compression);
    let ack = HandshakeAck {
        protocol: PROTOCOL_VERSION,
        node_id: config.node_id.clone(),
        compression: config.compression,
        agreed,
        config_digest: config.config_digest.clone(),
        nonce: nonce(),
        dialer_nonce: hs.nonce.clone(),
        key_confirmation: true,
    };
    *stage = Stage::Answer;
    let frame = Frame { frame_type: FrameType::HandshakeAck, seq: 0, payload: payload(&ack) };
    write_frame(writer, &shared_key, frame).await.map_err(HandshakeError::write(*stage))?;
    let key = FrameKey::session(&config.shared_key, hs.nonce.as_bytes(), ack.nonce.as_bytes());
    let first = if hs.key_confirmation {
        *stage = Stage::Confirmation;
        let frame = read_frame(reader, &key, MAX_HANDSHAKE_LEN, shared).await.map_err(HandshakeError::read(*stage))?;
        let got: HandshakeConfirm = expect(frame, *stage, FrameType::HandshakeConfirm)?;
        check_confirmation(&got, &confirmation(&hs, &ack))?;
        None
    } else {
        *stage = Stage::FirstFrame;
        let frame =
            read_frame(reader, &key, MAX_LEGACY_PROOF_LEN, shared).await.map_err(HandshakeError::read(*stage))?;
        let handshake_type =
            matches!(frame.frame_type, FrameType::Handshake | FrameType::HandshakeAck | FrameType::HandshakeConfirm);
        if frame.seq != 1 || handshake_type {
            return Err(HandshakeError::UnexpectedFrame {
                stage: *stage,
                expected: FrameType::Hello,
                expected_seq: 1,
                got: frame.frame_type,
                seq: frame.seq,
            });
        }
        Some(frame)
    };
    Ok(Established {
        key,
        info: ConnectionInfo {
            peer_node_id: hs.node_id,
            peer_address,
            compression: agreed,
            config_matches: hs.config_digest == config.config_digest,
        },
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs() -> Handshake {
        Handshake {
            protocol: PROTOCOL_VERSION,
            node_id: "n-d".into(),
            compression: Compression::Lz4,
            config_digest: "x".into(),
            nonce: "aa".into(),
            key_confirmation: true,
        }
    }

    fn ack() -> HandshakeAck {
        HandshakeAck {
            protocol: PROTOCOL_VERSION,
            node_id: "n-a".into(),
            compression: Compression::Lz4,
            agreed: Compression::Lz4,
            config_digest: "x".into(),
            nonce: "bb".into(),
            dialer_nonce: "aa".into(),
            key_confirmation: true,
        }
    }

    #[test]
    fn the_dialer_refuses_an_answer_to_another_handshake() {
        assert!(check_ack(&hs(), &ack()).is_ok());
        let replayed = HandshakeAck { dialer_nonce: "cc".into(), ..ack() };
        assert!(matches!(check_ack(&hs(), &replayed), Err(HandshakeError::NonceNotEchoed)));
        let same = HandshakeAck { node_id: "n-d".into(), ..ack() };
        assert!(matches!(check_ack(&hs(), &same), Err(HandshakeError::SameNodeId(_))));
        let v2 = HandshakeAck { protocol: 2, ..ack() };
        assert_eq!(check_ack(&hs(), &v2).unwrap_err().to_string(), "peer speaks SRP protocol 2, this chassis 1");
        let zlib = HandshakeAck { agreed: Compression::Zlib, ..ack() };
        assert!(matches!(check_ack(&hs(), &zlib), Err(HandshakeError::Compression { .. })));
    }

    #[test]
    fn the_acceptor_refuses_its_own_node_id_and_another_version() {
        assert!(check_handshake(&hs(), "n-a").is_ok());
        assert!(matches!(check_handshake(&hs(), "n-d"), Err(HandshakeError::SameNodeId(_))));
        assert!(matches!(check_handshake(&Handshake { protocol: 0, ..hs() }, "n-a"), Err(HandshakeError::Protocol(0))));
    }

    #[test]
    fn a_confirmation_must_name_this_connection() {
        let expected = confirmation(&hs(), &ack());
        assert!(check_confirmation(&expected, &expected).is_ok());
        for (field, got) in [
            ("dialer_node_id", HandshakeConfirm { dialer_node_id: "n-x".into(), ..expected.clone() }),
            ("acceptor_node_id", HandshakeConfirm { acceptor_node_id: "n-x".into(), ..expected.clone() }),
            ("dialer_nonce", HandshakeConfirm { dialer_nonce: "00".into(), ..expected.clone() }),
            ("acceptor_nonce", HandshakeConfirm { acceptor_nonce: "00".into(), ..expected.clone() }),
        ] {
            match check_confirmation(&got, &expected) {
                Err(HandshakeError::ConfirmationMismatch { field: f }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
