//! E.164 telephone numbers for tollgate.
//!
//! This crate owns one idea: turning what operators and SBCs write for a phone number into one
//! canonical E.164 value, and back out again as text or as an ENUM domain name (RFC 6116).
//!
//! * [`E164`] is a validated international number (country code + national significant number,
//!   at most 15 digits, no leading zero), stored as a `u64` so it is `Copy`, hashes fast and a
//!   list of millions of numbers stays compact.
//! * [`DialingPlan`] normalises national, international-prefixed and `+`-prefixed input by a
//!   configurable country code, national (trunk) prefix and international prefix.
//! * [`enum_name`] converts numbers to and from ENUM names under configurable suffixes.
//! * [`uri`] extracts the telephone number from `sip:`/`sips:`/`tel:` URIs.
//!
//! The crate does no I/O.

#![warn(missing_docs)]

mod e164;
pub mod enum_name;
mod error;
mod plan;
pub mod uri;

pub use e164::E164;
pub use error::NumberError;
pub use plan::DialingPlan;
