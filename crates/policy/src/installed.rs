//! The policy in force, swapped atomically.
//!
//! Readers take a snapshot with one atomic load (no lock, no allocation) and keep evaluating
//! against it even if a new policy is installed meanwhile; the old policy is freed when the
//! last reader drops it. Installing therefore never drops or delays a query.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::compile::CompiledPolicy;

/// A compiled policy together with its stored version number.
#[derive(Debug)]
pub struct ActivePolicy {
    /// Version in the policy store; `None` when nothing is installed (default allow).
    pub version: Option<u64>,
    /// The compiled rules.
    pub policy: CompiledPolicy,
}

/// The installed policy, shared by every query handler.
#[derive(Debug)]
pub struct InstalledPolicy {
    current: ArcSwap<ActivePolicy>,
}

impl Default for InstalledPolicy {
    fn default() -> Self {
        Self::new(None, CompiledPolicy::allow_all())
    }
}

impl InstalledPolicy {
    /// Starts with `policy` in force.
    pub fn new(version: Option<u64>, policy: CompiledPolicy) -> Self {
        InstalledPolicy { current: ArcSwap::from_pointee(ActivePolicy { version, policy }) }
    }

    /// A snapshot of the policy in force.
    pub fn snapshot(&self) -> Arc<ActivePolicy> {
        self.current.load_full()
    }

    /// A cheap guard on the policy in force, for the hot path.
    pub fn guard(&self) -> arc_swap::Guard<Arc<ActivePolicy>> {
        self.current.load()
    }

    /// Puts a new policy in force; returns the one it replaced.
    pub fn replace(&self, version: Option<u64>, policy: CompiledPolicy) -> Arc<ActivePolicy> {
        self.current.swap(Arc::new(ActivePolicy { version, policy }))
    }

    /// Returns to the default (allow every call).
    pub fn clear(&self) -> Arc<ActivePolicy> {
        self.replace(None, CompiledPolicy::allow_all())
    }
}
