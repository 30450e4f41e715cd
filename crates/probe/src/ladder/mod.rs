//! Call ladders: the SIP messages of recent calls, kept in bounded memory ([`store`]), and
//! drawn as a ladder diagram the way sngrep does ([`render`]).
//!
//! The probe feeds the store with every parsed message that carries a Call-ID of a call it
//! tracks ([`crate::Probe::with_ladder`]); `tollgate probe --pcap F --call ID` draws one call,
//! and the API route `GET /api/v1/probe/calls/{call_id}/messages` returns one call's
//! messages from a running probe.

pub mod render;
pub mod store;

pub use render::render;
pub use store::{CallMessages, LadderLimits, LadderMessage, LadderStats, LadderStore};
