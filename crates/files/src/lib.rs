//! Files on disk that every role shares.
//!
//! What this crate owns: how tollgate writes files that hold secrets or callers' numbers
//! ([`private_files`]: owner only, by construction) and the forced-standby flag file an agent
//! keeps for its role process ([`forced_standby`]). The agent, the manager and the roles' runtimes use them; none of them
//! keeps a copy.
//!
//! What it must not do: know about roles, HTTP or configuration.

#![warn(missing_docs)]

pub mod forced_standby;
pub mod private_files;
