//! Records of what tollgate saw and decided, and the local spool that keeps them.
//!
//! What this crate owns:
//! * the versioned record types ([`Record`], [`EnumQueryRecord`]) shared by engines, probes and
//!   the collector;
//! * the spool ([`spool`]): append-only segment files, one CRC-32 checksummed frame per record,
//!   written before a record counts as accepted and fsync'd in batches.
//!
//! What it must not do: decide policy, speak DNS/SIP, or talk to the collector (shipping is a
//! separate concern built on [`spool::SpoolReader`]).

#![warn(missing_docs)]

mod record;
pub mod spool;

pub use record::{Disposition, EnumQueryRecord, RECORD_VERSION, Record, SipCallRecord, Transport};
