//! SIP for tollgate's probe: a lenient, zero-copy message parser, SDP media lines, RTP
//! headers, and the dialog tracker that turns messages into calls.
//!
//! What this crate owns:
//! * [`message`]: SIP messages borrowed from the packet bytes: start line, headers (compact
//!   forms, folded lines), body by Content-Length, several messages per datagram; a bad message
//!   is an error to count, never a panic;
//! * [`uri`]: the parts of name-addrs and URIs a probe needs (user part, tag);
//! * [`sdp`]: media endpoints (`c=` and `m=` lines) of an offer or answer;
//! * [`rtp`]: RTP headers and per-stream loss and jitter (RFC 3550);
//! * [`mos`]: a per-stream MOS estimate from loss and jitter (ITU-T G.107 E-model, simplified);
//! * [`media`]: which call an RTP packet belongs to, by (address, port, SSRC, time);
//! * [`stream`]: where each message ends on a stream transport (TCP): head, Content-Length;
//! * [`dialog`]: the call tracker, a pure function of (state, message, time) -> finished calls.
//!
//! What it must not do: capture packets, normalise numbers, or write records (the probe crate
//! does).

#![warn(missing_docs)]

pub mod dialog;
pub mod media;
pub mod message;
pub mod mos;
pub mod rtp;
pub mod sdp;
pub mod stream;
pub mod uri;

pub use message::{Header, HeaderName, Method, ParseError, SipMessage, StartLine, parse_datagram};
