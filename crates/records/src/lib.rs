//! Records of what tollgate saw and decided, and the local spool that keeps them.
//!
//! What this crate owns:
//! * the versioned record types ([`Record`], [`EnumQueryRecord`]) shared by engines, probes and
//!   the collector;
//! * the spool ([`spool`]): append-only segment files, one CRC-32 checksummed frame per record,
//!   written before a record counts as accepted and fsync'd in batches; its accounting of what
//!   the collector has not acknowledged yet, and its one-writer lock;
//! * shipping ([`ship`]): batches of spooled records sent through an [`ship::Uplink`] (the
//!   binary provides HTTP), deleted only once the collector acknowledged them, several batches
//!   in flight and spread over several collectors ([`spread`]);
//! * the batch body on the wire ([`wire`]): NDJSON, or NDJSON compressed with zstd;
//! * directory locks ([`dirlock`]): one writing process per directory, naming the holder to
//!   anyone else (the spool uses it, and the binary uses it for its state directory).
//!
//! What it must not do: decide policy, speak DNS/SIP, or know how the uplink reaches the
//! collector.

#![warn(missing_docs)]

pub mod dirlock;
#[cfg(test)]
mod fixtures;
pub mod json;
mod pipeline;
pub mod priority;
mod record;
pub mod ship;
pub mod spool;
pub mod spread;
pub mod synth;
mod validate;
pub mod wire;

pub use record::{
    BASE_RECORD_VERSION, Disposition, EnumQueryRecord, Protocol, RECORD_VERSION, Record, SipCallRecord, Transport,
};
pub use validate::{InvalidRecord, MAX_DEVICE_NAME, MAX_TEXT, RESERVED_DEVICE_NAMES, check_device_name, record_text};
