//! The tollgate SIP meta-data probe: captures in, call records out.
//!
//! What this crate owns:
//! * capture sources: pcap and pcapng files ([`capture`]), several read as one stream in
//!   time order ([`capture_set`]), gzip-compressed or not ([`gzip_file`]), a UDP port
//!   receiving mirrored SIP
//!   and HEP v2/v3 over UDP and TCP ([`live`], [`hep`]), and (feature `live-capture`) an
//!   interface through libpcap, with a BPF filter and the kernel's drop counters
//!   (`interface`);
//! * decoding of frames into UDP/TCP payloads: Ethernet with VLAN tags, Linux cooked
//!   captures, IPv4 and IPv6, IP fragment reassembly ([`decode`]);
//! * SIP over TCP: segments put back in order per flow and cut into whole messages by
//!   Content-Length, within bounds per flow and in total ([`tcp`]);
//! * the pipeline from payloads to call records: SIP parsing and dialog tracking (the sip
//!   crate), numbers normalised by the dialing plan, call direction, RTP summaries
//!   ([`pipeline`]); offline analysis of a file ([`analyze`]);
//! * call ladders: recent calls' messages in bounded memory, drawn as sngrep does
//!   ([`ladder`]);
//! * batched UDP receive with a large socket buffer for the mirror and HEP ports
//!   ([`tollgate_udp`], in [`live`]);
//! * the probe's Prometheus metrics ([`metrics`]).
//!
//! What it must not do: store or ship records itself (records go to the spool through a
//! callback), or decide policy.

#![warn(missing_docs)]

pub mod analyze;
pub mod capture;
pub mod capture_set;
pub mod decode;
pub mod fuzzing;
pub mod gzip_file;
pub mod hep;
#[cfg(feature = "live-capture")]
pub mod interface;
pub mod ladder;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod tcp;

pub use pipeline::{AtEnd, CallReport, CallsInProgress, Probe, ProbeCounters, ProbeSettings};
