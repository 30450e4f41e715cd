//! The tollgate SIP meta-data probe: captures in, call records out.
//!
//! What this crate owns:
//! * capture sources: pcap and pcapng files ([`capture`]), a UDP port receiving mirrored SIP
//!   and HEP v2/v3 over UDP and TCP ([`live`], [`hep`]), and (feature `live-capture`) an
//!   interface through libpcap;
//! * decoding of frames into UDP/TCP payloads: Ethernet with VLAN tags, Linux cooked
//!   captures, IPv4 and IPv6, IP fragment reassembly ([`decode`]);
//! * SIP over TCP: segments put back in order per flow and cut into whole messages by
//!   Content-Length, within bounds per flow and in total ([`tcp`]);
//! * the pipeline from payloads to call records: SIP parsing and dialog tracking (the sip
//!   crate), numbers normalised by the dialing plan, call direction, RTP summaries
//!   ([`pipeline`]); offline analysis of a file ([`analyze`]);
//! * the probe's Prometheus metrics ([`metrics`]).
//!
//! What it must not do: store or ship records itself (records go to the spool through a
//! callback), or decide policy.

#![warn(missing_docs)]

pub mod analyze;
pub mod capture;
pub mod decode;
pub mod fuzzing;
pub mod hep;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod tcp;

pub use pipeline::{CallReport, CallsInProgress, Probe, ProbeCounters, ProbeSettings};
