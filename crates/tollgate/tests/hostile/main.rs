//! The hostile-input suite (issue 11): tollgate tried as a hostile or careless user would, with
//! real processes and sockets. Each module holds the regression tests of one area; every test
//! names the defect it guards against. Tests that load the machine (thousands of connections,
//! traffic floods) take [`exclusive`] so they do not run alongside each other.

#[path = "../common/mod.rs"]
mod common;

mod agent_files;
mod connections;
mod enum_queries;
mod ingest;
mod login;
mod spool;
mod srp_replay;

use std::sync::{Mutex, MutexGuard};

/// Serialises the tests that load the machine (many connections, floods, large bodies), so
/// their resource measurements do not include each other.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}
