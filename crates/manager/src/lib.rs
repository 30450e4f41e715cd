//! The tollgate manager.
//!
//! What this crate owns today: the alarm model and the registry of active alarms
//! ([`alarms`]), with the seed's severities and alarm philosophy (raised once while the
//! condition holds, cleared when it ends, both kept in a history).
//!
//! Topology, the Upgrade Director, health checks and backups come later and live here too.

#![warn(missing_docs)]

pub mod alarms;
