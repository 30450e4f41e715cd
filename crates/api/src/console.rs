//! What the manager's console shows beyond the API's views: every server's alarms in one list
//! with their acknowledgement (`GET /api/v1/alarms/all`, `POST /api/v1/alarms/acknowledge`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_alarms::Severity;

/// Who acknowledged an alarm, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmAck {
    /// The person ("alice", or "alice via cli-token").
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The key of an alarm in the acknowledgements: the server that reports it, its ID and its
/// scope.
pub fn alarm_key(server: &str, id: u32, scope: &str) -> String {
    format!("{server}/{id}/{scope}")
}

/// One active alarm of the system, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleAlarm {
    /// Its key ([`alarm_key`]).
    pub key: String,
    /// The server that reports it (the manager for the Upgrade Director's alarms).
    pub server: String,
    /// Alarm ID.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Severity.
    pub severity: Severity,
    /// What it is about.
    pub scope: String,
    /// Details.
    #[serde(default)]
    pub detail: String,
    /// When it was raised, when known (the manager's own alarms).
    #[serde(default)]
    pub raised_at: Option<DateTime<Utc>>,
    /// Its acknowledgement.
    #[serde(default)]
    pub ack: Option<AlarmAck>,
}

/// `POST /api/v1/alarms/acknowledge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    /// The alarm's key.
    pub key: String,
}
