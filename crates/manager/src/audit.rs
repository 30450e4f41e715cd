//! The audit log of operator requests beyond the Upgrade Director's (which writes its own):
//! policy pushes, alarm acknowledgements. An entry is part of the state the pair shares, so the
//! standby manager shows it too.

use chrono::Utc;
use tollgate_upgrade::director::{AuditEntry, AuditOutcome};

use crate::Manager;

/// Records that `user` asked for `operation` and how it ended (`Ok(detail)`: carried out;
/// `Err(reason)`: refused). Persisted and pushed to the mate like the Director's entries. Only
/// the active manager records (the standby's state is its mate's copy: an entry of its own
/// would be lost at the next copy, and its newer generation would refuse the copy).
pub fn record(m: &Manager, user: &str, operation: String, outcome: Result<String, String>) {
    if !m.is_active() {
        return;
    }
    let (outcome, detail) = match outcome {
        Ok(d) => (AuditOutcome::Accepted, d),
        Err(r) => (AuditOutcome::Refused, r),
    };
    {
        let mut core = m.core();
        core.shared.audit.push(AuditEntry { at: Utc::now(), user: user.to_string(), operation, outcome, detail });
        core.shared.generation += 1;
        m.persist(&core.shared);
    }
    m.changed.notify_one();
}
