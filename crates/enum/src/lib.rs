//! The tollgate ENUM server: SBCs ask, per call, over DNS NAPTR (RFC 6116), and get the policy's
//! decision rendered as an answer they already know how to follow.
//!
//! What this crate owns:
//! * [`config`]: suffixes, how the calling number is found (EDNS0 Source-URI option or a
//!   query-name label), per-action answer templates, intercepts, devices;
//! * [`respond`]: one query's bytes in, one answer's bytes and one record out, with no I/O, so
//!   it is tested and fuzzed directly; malformed input gets FORMERR, names outside the suffixes
//!   REFUSED or NXDOMAIN, and any internal failure an allow answer (fail-open);
//! * [`server`]: UDP and TCP listeners (tokio) that write each record to the spool before the
//!   answer is sent (UDP in batches: `recvmmsg`, one spool write, `sendmmsg`); UDP latency counts from the kernel's receive timestamp, TCP connections
//!   are limited per source and in time;
//! * [`metrics`]: Prometheus counters and latency histograms.
//!
//! DNS wire encoding is hickory-proto's, but for the common query (one NAPTR or ANY question,
//! class IN, optional EDNS0 with the Source-URI option), which the fast path (`respond/fast.rs`)
//! parses in place and answers byte for byte as hickory-proto would (a differential test and
//! the `enum_fastpath` fuzz target hold it to that). Policy evaluation is the policy crate's;
//! this crate only asks it.

#![warn(missing_docs)]

pub mod config;
pub mod lookup;
pub mod metrics;
pub mod respond;
pub mod server;
mod tcp;
pub mod template;
mod udp;

pub use config::{AnswerTemplate, ConfigError, EnumConfig, SourceLabelNumbers};
pub use respond::{Answered, Decided, QueryContext, Responder};
pub use template::Template;
/// When a datagram arrived, from its kernel receive timestamp (shared with the SIP redirect
/// server's UDP listener).
pub use udp::arrival;
