//! The tollgate manager's model of the system and its upgrade logic (seed 000: the CMP's
//! Upgrade Manager and its hidden Upgrade Director; seed 001: safe rollback, mixed-version
//! operation).
//!
//! What this crate owns:
//! * [`alarms`]: alarm definitions (the seed's 70500-70508 and 31xxx, tollgate's 72xxx) and the
//!   registry of active alarms with its raise/clear history.
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
//! and is tested exhaustively; the manager and agent roles (crate `tollgate`) carry out the
//! Director's effects and feed it events.

#![warn(missing_docs)]

pub mod alarms;
pub mod bundle;
pub mod director;
pub mod release;
pub mod topology;
