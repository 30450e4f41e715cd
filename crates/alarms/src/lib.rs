//! Alarms: definitions, the active set, and the raise/clear history.
//!
//! What this crate owns: the catalogue ([`AlarmDef`] constants: IDs, names, severities) and
//! [`Alarms`], the registry every role raises into and the web UI, the manager and the
//! metrics read. What it must not do: I/O of any kind; it is a small leaf crate so the engine
//! and the web layer depend on it without pulling in the Upgrade Director, ed25519 or tar.
//!
//! IDs and names follow seed 000 where it defines them (70500 SYSTEM_MIXED_VERSION ...);
//! tollgate's own conditions use the 72000 range.

#![warn(missing_docs)]

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Alarm severity, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Service is lost or about to be.
    Critical,
    /// Service is degraded.
    Major,
    /// A fault without service impact yet.
    Minor,
    /// For information.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Critical => "Critical",
            Severity::Major => "Major",
            Severity::Minor => "Minor",
            Severity::Info => "Info",
        })
    }
}

/// An alarm type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlarmDef {
    /// Numeric ID.
    pub id: u32,
    /// NAME_IN_CAPITALS.
    pub name: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What it means.
    pub text: &'static str,
}

/// The record spool is above its near-full threshold.
pub const SPOOL_NEAR_FULL: AlarmDef = AlarmDef {
    id: 72001,
    name: "SPOOL_NEAR_FULL",
    severity: Severity::Major,
    text: "The local record spool is above its near-full threshold; records are not reaching the collector fast enough.",
};
/// The record spool is at its limit.
pub const SPOOL_FULL: AlarmDef = AlarmDef {
    id: 72002,
    name: "SPOOL_FULL",
    severity: Severity::Critical,
    text: "The local record spool reached its disk limit; new records are refused (calls are still answered).",
};
/// The collector does not acknowledge records.
pub const COLLECTOR_UNREACHABLE: AlarmDef = AlarmDef {
    id: 72003,
    name: "COLLECTOR_UNREACHABLE",
    severity: Severity::Major,
    text: "Records cannot be delivered to the collector; they are kept in the local spool and sent when it answers.",
};
/// The stored policy could not be put in force.
pub const POLICY_LOAD_FAILED: AlarmDef = AlarmDef {
    id: 72004,
    name: "POLICY_LOAD_FAILED",
    severity: Severity::Major,
    text: "The stored policy could not be put in force at start; every call is allowed until a valid policy is installed.",
};
/// Unreadable spool data was set aside.
pub const SPOOL_DAMAGED: AlarmDef = AlarmDef {
    id: 72005,
    name: "SPOOL_DAMAGED",
    severity: Severity::Minor,
    text: "A spool segment held unreadable data; it was moved aside as a .damaged file for inspection.",
};

/// Answers were sent (or calls seen) whose record could not be written to the spool.
pub const RECORDS_NOT_WRITTEN: AlarmDef = AlarmDef {
    id: 72006,
    name: "RECORDS_NOT_WRITTEN",
    severity: Severity::Critical,
    text: "Records could not be written to the local spool (I/O error, no file descriptors); the calls were answered but are missing from analytics (counted in tollgate_records_not_written_total).",
};
/// The collector's quarantine reached its limit.
pub const QUARANTINE_FULL: AlarmDef = AlarmDef {
    id: 72007,
    name: "QUARANTINE_FULL",
    severity: Severity::Major,
    text: "The collector's quarantine of unreadable or invalid lines reached its size limit; batches holding such lines are refused and stay in the senders' spools.",
};
/// A listener refuses connections because it reached its limit.
pub const CONNECTION_LIMIT: AlarmDef = AlarmDef {
    id: 72008,
    name: "CONNECTION_LIMIT",
    severity: Severity::Minor,
    text: "A listener reached its connection limit (or ran out of file descriptors); new connections are refused until others close.",
};
/// Queries were answered later than the stale bound.
pub const STALE_ANSWERS: AlarmDef = AlarmDef {
    id: 72009,
    name: "STALE_ANSWERS",
    severity: Severity::Minor,
    text: "Queries were answered later than enum.stale_after_ms after the kernel received them (the engine was stalled); the SBC had most likely given up on them.",
};
/// The oldest record not yet acknowledged by the collector is older than the bound.
pub const RECORDS_LATE: AlarmDef = AlarmDef {
    id: 72015,
    name: "RECORDS_LATE",
    severity: Severity::Minor,
    text: "The oldest record in the local spool not yet acknowledged by the collector is older than spool.late_after_secs: analytics lag behind the calls (the collector is down or slower than the records arrive; see tollgate_shipper_backlog_*).",
};
/// The engine cannot exchange shared counters with Redis.
pub const SHARED_COUNTERS_UNREACHABLE: AlarmDef = AlarmDef {
    id: 72016,
    name: "SHARED_COUNTERS_UNREACHABLE",
    severity: Severity::Major,
    text: "The Redis of [shared_counters] does not answer (or answers later than shared_counters.timeout): velocity and concurrent rules count only this server's calls until it returns; the calls counted meanwhile are sent then (see tollgate_shared_counters_*).",
};
/// The probe's interface capture stopped by itself.
pub const PROBE_CAPTURE_STOPPED: AlarmDef = AlarmDef {
    id: 72017,
    name: "PROBE_CAPTURE_STOPPED",
    severity: Severity::Critical,
    text: "The probe's capture on [probe] interface stopped by itself (the interface was removed or failed): no call on it is seen any more. Restore the interface and restart the probe.",
};

/// The SRP mate is not heard (no Hello for the dead interval). Seed 000: 31233 HA Path Down.
pub const HA_PATH_DOWN: AlarmDef = AlarmDef {
    id: 31233,
    name: "HA_PATH_DOWN",
    severity: Severity::Major,
    text: "The SRP mate sent no Hello for the dead interval; this server no longer has a standby (or an active) mate.",
};
/// A switchover request got no answer. Seed 000: 31282 HA Management Fault.
pub const HA_MANAGEMENT_FAULT: AlarmDef = AlarmDef {
    id: 31282,
    name: "HA_MANAGEMENT_FAULT",
    severity: Severity::Minor,
    text: "A switchover did not complete (the mate did not answer); this server went back to Active.",
};
/// The standby's copy of the sessions is not synchronised. Seed 000: 31101 DB replication to
/// slave failure.
pub const DB_REPLICATION_TO_SLAVE_FAILURE: AlarmDef = AlarmDef {
    id: 31101,
    name: "DB_REPLICATION_TO_SLAVE_FAILURE",
    severity: Severity::Minor,
    text: "The standby's copy of the session state is not synchronised (a checkpoint failed or is missing); a full checkpoint is requested.",
};
/// Every target of an SRP monitor group is down.
pub const SRP_MONITOR_FAILURE: AlarmDef = AlarmDef {
    id: 72010,
    name: "SRP_MONITOR_FAILURE",
    severity: Severity::Major,
    text: "Every target of an SRP monitor group is down; the Active chassis switches over (non-revertible).",
};
/// The service address could not be claimed or served.
pub const SRP_SERVICE_ADDRESS_FAILED: AlarmDef = AlarmDef {
    id: 72011,
    name: "SRP_SERVICE_ADDRESS_FAILED",
    severity: Severity::Critical,
    text: "The Active chassis cannot serve all of its service address (a bind or the address claim failed: the detail names the listener); it serves what it could start and retries every 10 s.",
};
/// The mate uses this chassis' node id.
pub const SRP_DUPLICATE_NODE_ID: AlarmDef = AlarmDef {
    id: 72012,
    name: "SRP_DUPLICATE_NODE_ID",
    severity: Severity::Major,
    text: "The SRP mate uses this server's node id; its Hellos are ignored until the configuration is fixed.",
};
/// The TLS certificate this process presents (or its CA) expires within `tls.expiry_warning`.
pub const TLS_CERT_EXPIRING: AlarmDef = AlarmDef {
    id: 72013,
    name: "TLS_CERT_EXPIRING",
    severity: Severity::Major,
    text: "The TLS certificate this server presents, or its CA, expires within tls.expiry_warning; issue a new one (tollgate pki issue --force) and copy it here: it is picked up without a restart.",
};
/// The TLS certificate this process presents (or its CA) expires within 7 days, or has.
pub const TLS_CERT_EXPIRY_CRITICAL: AlarmDef = AlarmDef {
    id: 72014,
    name: "TLS_CERT_EXPIRY_CRITICAL",
    severity: Severity::Critical,
    text: "The TLS certificate this server presents, or its CA, expires within 7 days or has expired: peers will refuse this server's links. Rotate it now (tollgate pki issue --force, copy, SIGHUP).",
};

/// Servers of the system run different releases. Seed 000 Table 5: 70500 SYSTEM_MIXED_VERSION.
pub const SYSTEM_MIXED_VERSION: AlarmDef = AlarmDef {
    id: 70500,
    name: "SYSTEM_MIXED_VERSION",
    severity: Severity::Minor,
    text: "The servers in the topology are running different versions of software. Upgrade of the system is not complete.",
};
/// Servers of one cluster run different releases. Seed 000 Table 5: 70501 CLUSTER_MIXED_VERSION.
pub const CLUSTER_MIXED_VERSION: AlarmDef = AlarmDef {
    id: 70501,
    name: "CLUSTER_MIXED_VERSION",
    severity: Severity::Minor,
    text: "The servers in the specified cluster are running different versions of software. The upgrade of the cluster is not complete.",
};
/// A server does not receive its cluster's session state. Seed 000 Table 5: 70502
/// REPLICATION_INHIBITED (Table 3 calls it "Cluster Replication Inhibited").
pub const REPLICATION_INHIBITED: AlarmDef = AlarmDef {
    id: 70502,
    name: "REPLICATION_INHIBITED",
    severity: Severity::Minor,
    text: "Replication is inhibited to the specified server. It is not receiving session information.",
};
/// The Upgrade Director holds a server in forced standby. Seed 000 Table 5: 70503
/// SERVER_FORCED_STANDBY.
pub const SERVER_FORCED_STANDBY: AlarmDef = AlarmDef {
    id: 70503,
    name: "SERVER_FORCED_STANDBY",
    severity: Severity::Minor,
    text: "The specified server has been placed in forced standby and cannot provide service.",
};
/// An upgrade action failed; it can be attempted again. Seed 000 Table 5: 70506
/// UPGRADE_OPERATION_FAILED.
pub const UPGRADE_OPERATION_FAILED: AlarmDef = AlarmDef {
    id: 70506,
    name: "UPGRADE_OPERATION_FAILED",
    severity: Severity::Minor,
    text: "An upgrade operation failed on the specified server.",
};
/// An upgrade or backout runs on a server. Seed 000 Table 5: 70507 UPGRADE_IN_PROGRESS.
pub const UPGRADE_IN_PROGRESS: AlarmDef = AlarmDef {
    id: 70507,
    name: "UPGRADE_IN_PROGRESS",
    severity: Severity::Minor,
    text: "An upgrade/backout is currently in progress on the server. It may leave the cluster, become unreachable or even reboot.",
};
/// A server's state cannot be determined; no action is taken on it until support repairs it.
/// Seed 000 Table 5: 70508 ZOMBIE_SERVER.
pub const ZOMBIE_SERVER: AlarmDef = AlarmDef {
    id: 70508,
    name: "ZOMBIE_SERVER",
    severity: Severity::Critical,
    text: "The server is in an indeterminate state and must be repaired by support.",
};
/// The manager cannot reach a server. Seed 000 Table 3: 31283 Lost Communication with server
/// (elsewhere "High availability server is offline").
pub const LOST_COMMUNICATION_WITH_SERVER: AlarmDef = AlarmDef {
    id: 31283,
    name: "LOST_COMMUNICATION_WITH_SERVER",
    severity: Severity::Critical,
    text: "Lost communication with the server: it is offline or unreachable (expected while it is upgraded or backed out).",
};

/// The alarms the Upgrade Director raises and clears (seed 000 Tables 3 and 5). Seed 000 names
/// no alarm 70504 or 70505, so there are none here.
pub const UPGRADE_DIRECTOR_ALARMS: [AlarmDef; 8] = [
    SYSTEM_MIXED_VERSION,
    CLUSTER_MIXED_VERSION,
    REPLICATION_INHIBITED,
    SERVER_FORCED_STANDBY,
    UPGRADE_OPERATION_FAILED,
    UPGRADE_IN_PROGRESS,
    ZOMBIE_SERVER,
    LOST_COMMUNICATION_WITH_SERVER,
];

/// An alarm that is raised now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveAlarm {
    /// Its type.
    pub def: AlarmDef,
    /// What it is about (a server, a spool, a peer).
    pub scope: String,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// Details at raise time.
    pub detail: String,
}

/// A raise or a clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Raised (true) or cleared (false).
    pub raised: bool,
    /// Alarm ID.
    pub id: u32,
    /// Alarm name.
    pub name: &'static str,
    /// Scope.
    pub scope: String,
    /// Details.
    pub detail: String,
}

/// Most history events kept.
const HISTORY: usize = 1000;

/// The alarms of this process.
#[derive(Debug, Default)]
pub struct Alarms {
    active: Mutex<BTreeMap<(u32, String), ActiveAlarm>>,
    history: Mutex<VecDeque<AlarmEvent>>,
}

impl Alarms {
    /// Raises `def` for `scope` unless it is already raised. Returns true if it was newly raised.
    pub fn raise(&self, def: AlarmDef, scope: &str, detail: impl Into<String>) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let key = (def.id, scope.to_string());
        if active.contains_key(&key) {
            return false;
        }
        let detail = detail.into();
        let now = Utc::now();
        active.insert(key, ActiveAlarm { def, scope: scope.to_string(), raised_at: now, detail: detail.clone() });
        self.record(AlarmEvent { at: now, raised: true, id: def.id, name: def.name, scope: scope.to_string(), detail });
        true
    }

    /// Replaces the detail of `def` for `scope` if raised (what it is about changed, the alarm
    /// did not: its raise time and history stay). Returns true if it was raised.
    pub fn update_detail(&self, def: AlarmDef, scope: &str, detail: impl Into<String>) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        match active.get_mut(&(def.id, scope.to_string())) {
            Some(alarm) => {
                alarm.detail = detail.into();
                true
            }
            None => false,
        }
    }

    /// Clears `def` for `scope` if raised. Returns true if it was raised.
    pub fn clear(&self, def: AlarmDef, scope: &str) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.remove(&(def.id, scope.to_string())).is_none() {
            return false;
        }
        self.record(AlarmEvent {
            at: Utc::now(),
            raised: false,
            id: def.id,
            name: def.name,
            scope: scope.to_string(),
            detail: String::new(),
        });
        true
    }

    /// Raises or clears as `condition` says.
    pub fn set(&self, def: AlarmDef, scope: &str, condition: bool, detail: impl FnOnce() -> String) {
        if condition {
            self.raise(def, scope, detail());
        } else {
            self.clear(def, scope);
        }
    }

    fn record(&self, event: AlarmEvent) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(event);
    }

    /// Active alarms, most severe first.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        let mut v: Vec<ActiveAlarm> = self.active.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.def.severity.cmp(&b.def.severity).then(a.raised_at.cmp(&b.raised_at)));
        v
    }

    /// Raise and clear events, oldest first.
    pub fn history(&self) -> Vec<AlarmEvent> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_once_clear_once_and_keep_history() {
        let a = Alarms::default();
        assert!(a.raise(COLLECTOR_UNREACHABLE, "engine-1", "connection refused"));
        assert!(!a.raise(COLLECTOR_UNREACHABLE, "engine-1", "again"), "raised only once while the condition holds");
        assert!(a.raise(SPOOL_FULL, "engine-1", "100 MiB"));
        let active = a.active();
        assert_eq!(active.len(), 2);
        assert_eq!(active[0].def.name, "SPOOL_FULL", "most severe first");
        assert!(a.clear(COLLECTOR_UNREACHABLE, "engine-1"));
        assert!(!a.clear(COLLECTOR_UNREACHABLE, "engine-1"));
        a.set(SPOOL_FULL, "engine-1", false, String::new);
        assert!(a.active().is_empty());
        let h: Vec<(bool, &str)> = a.history().iter().map(|e| (e.raised, e.name)).collect();
        assert_eq!(
            h,
            vec![
                (true, "COLLECTOR_UNREACHABLE"),
                (true, "SPOOL_FULL"),
                (false, "COLLECTOR_UNREACHABLE"),
                (false, "SPOOL_FULL")
            ]
        );
    }

    #[test]
    fn an_active_alarms_detail_is_updated_in_place_and_a_cleared_one_is_not_raised_by_it() {
        let a = Alarms::default();
        assert!(!a.update_detail(SRP_SERVICE_ADDRESS_FAILED, "engine-1", "SIP"), "not raised: nothing to update");
        assert!(a.active().is_empty());
        assert!(a.raise(SRP_SERVICE_ADDRESS_FAILED, "engine-1", "ENUM; SIP"));
        let raised_at = a.active()[0].raised_at;
        assert!(a.update_detail(SRP_SERVICE_ADDRESS_FAILED, "engine-1", "ENUM"));
        let active = a.active();
        assert_eq!((active.len(), active[0].detail.as_str(), active[0].raised_at), (1, "ENUM", raised_at));
        assert_eq!(a.history().len(), 1, "no history event: the alarm did not change state");
    }
}
