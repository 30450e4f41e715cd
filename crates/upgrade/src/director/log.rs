//! The two logs, kept apart as seed 000 §1.3.1.1 says: "It is important to note that this is
//! NOT the audit log. The audit log is meant to track what the operator has done. This log is
//! meant to capture the sequence of upgrade activity—whether it was initiated by an operator or
//! automatically triggered."

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The upgrade log's columns, as the seed names them.
pub const UPGRADE_LOG_COLUMNS: [&str; 11] = [
    "ID",
    "Parent ID",
    "Action Name",
    "Start Time",
    "End Time",
    "Duration",
    "Scope",
    "Hostname",
    "Result",
    "Mode",
    "Description",
];

/// The Scope column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogScope {
    /// The entry is about one server.
    Server,
    /// The entry is about the cluster.
    Cluster,
}

/// The Result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogResult {
    /// Still running.
    #[serde(rename = "In Progress")]
    InProgress,
    /// Done.
    Success,
    /// Failed (the description says why).
    Failure,
}

/// The Mode column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogMode {
    /// Started by an operator.
    Manual,
    /// Started by the Upgrade Director.
    Automatic,
}

impl fmt::Display for LogScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogScope::Server => "Server",
            LogScope::Cluster => "Cluster",
        })
    }
}

impl fmt::Display for LogResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogResult::InProgress => "In Progress",
            LogResult::Success => "Success",
            LogResult::Failure => "Failure",
        })
    }
}

impl fmt::Display for LogMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogMode::Manual => "Manual",
            LogMode::Automatic => "Automatic",
        })
    }
}

/// One upgrade log entry. An entry is emitted when it opens and again, with the same ID, when
/// it closes: store it by ID, replacing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeLogEntry {
    /// "ID", unique in the system, increasing.
    pub id: u64,
    /// "Parent ID": the entry of the operator's action this one belongs to; 0 for none.
    pub parent_id: u64,
    /// "Action Name" ("Preflight Check", "Upgrading server", "Modify the role/replication
    /// attributes of the server", "Failover to new version", ...).
    pub action_name: String,
    /// "Start Time".
    pub start: DateTime<Utc>,
    /// "End Time" (none while in progress).
    pub end: Option<DateTime<Utc>>,
    /// "Scope".
    pub scope: LogScope,
    /// "Hostname": the server, or the cluster for cluster-scope entries.
    pub hostname: String,
    /// "Result".
    pub result: LogResult,
    /// "Mode".
    pub mode: LogMode,
    /// "Description".
    pub description: String,
    /// The cluster it belongs to (the log is shown per cluster).
    pub cluster: String,
}

impl UpgradeLogEntry {
    /// "Duration" in seconds (none while in progress).
    pub fn duration_secs(&self) -> Option<i64> {
        self.end.map(|e| (e - self.start).num_seconds().max(0))
    }

    /// "Duration" as the seed shows it: `H:MM:SS`, empty while in progress.
    pub fn duration_text(&self) -> String {
        match self.duration_secs() {
            None => String::new(),
            Some(s) => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        }
    }

    /// Closes the entry.
    pub(crate) fn close(&mut self, at: DateTime<Utc>, result: LogResult, reason: Option<&str>) {
        self.end = Some(at.max(self.start));
        self.result = result;
        if let Some(r) = reason {
            self.description.push_str(": ");
            self.description.push_str(r);
        }
    }
}

/// What became of an operator's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditOutcome {
    /// Carried out.
    Accepted,
    /// Refused (the detail says why).
    Refused,
}

/// One operator audit log entry: what an operator asked of the Upgrade Director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub user: String,
    /// What was asked ("Initiate upgrade CMP175-55", "Select upgrade procedure 0.2.0").
    pub operation: String,
    /// Accepted or refused.
    pub outcome: AuditOutcome,
    /// Why it was refused, or what it started.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_is_shown_as_the_seed_does() {
        let start = DateTime::parse_from_rfc3339("2017-09-25T13:02:45Z").unwrap().with_timezone(&Utc);
        let mut e = UpgradeLogEntry {
            id: 2,
            parent_id: 1,
            action_name: "Upgrading server".into(),
            start,
            end: None,
            scope: LogScope::Server,
            hostname: "CMP175-55".into(),
            result: LogResult::InProgress,
            mode: LogMode::Automatic,
            description: "Automatic action: upgrading server".into(),
            cluster: "CMP Site1 Cluster".into(),
        };
        assert_eq!(e.duration_text(), "");
        e.close(start + chrono::Duration::seconds(20 * 60 + 20), LogResult::Success, None);
        assert_eq!(e.duration_text(), "0:20:20");
        assert_eq!(e.result.to_string(), "Success");
        assert_eq!(serde_json::to_value(LogResult::InProgress).unwrap(), "In Progress");
        assert_eq!(UPGRADE_LOG_COLUMNS[1], "Parent ID");
    }
}
