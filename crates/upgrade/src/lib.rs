//! The model of the system and its upgrade logic, pure (seed 000: the CMP's
//! Upgrade Manager and its hidden Upgrade Director; seed 001: safe rollback, mixed-version
//! operation).
//!
//! What this crate owns:
//! * [`topology`]: sites, segments, clusters (manager, engine, probe, collector; Active +
//!   Standby, or georedundant with a Spare), servers with their releases and conditions; server
//!   states (Active, Standby, Spare, Forced Standby, OOS, Offline, Zombie) and cluster statuses
//!   (OK, Info, Minor, Major, Degraded, Critical). Serialisable.
//! * [`director`]: the Upgrade Director, a pure state machine
//!   (`apply(state, event) -> (state, effects)`): the next preferred action of a cluster and the
//!   other legal actions, refusals with reasons, cluster order and the parallel limit across the
//!   system, forced standby, the upgrade log and the operator audit log.
//! * [`bundle`]: release bundles (the seed's ISO): signed tar archives, their verification
//!   against trusted keys, and the staging preflight rule.
//! * [`release`]: release names and the patterns a bundle upgrades from.
//!
//! What it must not do: sockets, clocks, threads. Everything but the bundle file helpers is pure
//! and is tested exhaustively; the manager and agent runtimes carry out the Director's effects
//! and feed it events. Alarms live in `tollgate-alarms`.

#![warn(missing_docs)]

pub mod bundle;
pub mod director;
pub mod names;
pub mod release;
pub mod topology;
