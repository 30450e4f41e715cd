//! The web API's wire types: what `tollgate serve` / `engine` / `collector` answer under
//! `/api/v1` and what their clients send (the CLI's `policy`, `lookup` and `analytics`
//! commands, the shippers, the agent's health checks, the tests).
//!
//! | method | path | request | answer |
//! |---|---|---|---|
//! | GET | `/api/v1/auth` | | [`WhoAmI`] |
//! | GET | `/api/v1/version` | | [`ReleaseInfo`] |
//! | GET | `/api/v1/policy` | | [`CurrentPolicy`] |
//! | POST | `/api/v1/policy` | multipart (`policy`, `list:NAME`) | [`PolicyVersion`] |
//! | POST | `/api/v1/policy/check` | multipart | [`Checked`] |
//! | DELETE | `/api/v1/policy` | | [`Uninstalled`] |
//! | GET | `/api/v1/policy/history` | | `Vec<`[`HistoryEntry`]`>` |
//! | GET | `/api/v1/policy/versions` | | `Vec<`[`PolicyVersion`]`>` |
//! | GET | `/api/v1/policy/diff?`[`DiffParams`] | | unified diff (text) |
//! | GET | `/api/v1/lookup?`[`LookupParams`] | | [`Lookup`] |
//! | POST | `/api/v1/ingest` | NDJSON records | [`Ingested`] |
//! | GET | `/api/v1/analytics?`[`AnalyticsParams`] | | [`AnalyticsResult`] (or CSV) |
//! | GET | `/api/v1/export?`[`ExportParams`] | | CSV |
//! | GET | `/api/v1/devices?`[`DevicesParams`] | | `Vec<String>` |
//! | GET | `/api/v1/alarms` | | [`RoleAlarms`] |
//! | GET | `/api/v1/tls` | | [`TlsStatus`] |
//! | GET | `/api/v1/users` | | `Vec<`[`UserInfo`]`>` |
//! | POST | `/api/v1/users` | [`SetUser`] | [`SavedUser`] |
//! | DELETE | `/api/v1/users/{name}` | | [`Removed`] (`removed`) |
//! | GET | `/api/v1/tokens` | | `Vec<`[`TokenInfo`]`>` |
//! | POST | `/api/v1/tokens` | [`NewToken`] | [`CreatedToken`] |
//! | DELETE | `/api/v1/tokens/{name}` | | [`Removed`] (`revoked`) |
//! | POST | `/api/v1/auth/password` | [`NewPassword`] | [`PasswordChanged`] |
//!
//! The SRP routes (`/api/v1/srp/...`) are typed in [`crate::srp`]. Where a domain crate's type
//! already serialises both ways (the policy in force, its history and versions, a lookup, an
//! analytics result, alarms) it is the contract and is re-exported here, not copied.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer to `GET /api/v1/alarms` (the manager's adds `servers`), with its parts.
pub use crate::manager::{AlarmDefView, AlarmEventView, AlarmView, RoleAlarms};
/// The answer to `GET /api/v1/tls`: the TLS material in force.
pub use crate::tls::{TlsCertificate, TlsStatus};
/// The answer to `GET /api/v1/lookup`: the decision, the rules checked, the NAPTR answer.
pub use tollgate_enum::lookup::Lookup;
/// The summary of a policy (name, rules, lists).
pub use tollgate_policy::PolicyMeta;
/// The answer to `GET /api/v1/policy`: the policy in force.
pub use tollgate_policy::service::CurrentPolicy;
/// An entry of `GET /api/v1/policy/history`.
pub use tollgate_policy::store::HistoryEntry;
/// A stored policy version: the answer to an install, an entry of `GET /api/v1/policy/versions`.
pub use tollgate_policy::store::VersionInfo as PolicyVersion;
/// The answer to `GET /api/v1/analytics`.
pub use tollgate_store::AnalyticsResult;

/// What a user or token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Only sends records to the collector (engines' and probes' shippers).
    Ingest,
    /// Sees dashboards, analytics, policies and alarms.
    Viewer,
    /// A viewer who also installs and uninstalls policies.
    Operator,
    /// An operator who also manages users and tokens.
    Admin,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Ingest => 0,
            Role::Viewer => 1,
            Role::Operator => 2,
            Role::Admin => 3,
        }
    }

    /// True if this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        match needed {
            Role::Ingest => matches!(self, Role::Ingest | Role::Operator | Role::Admin),
            _ => self != Role::Ingest && self.rank() >= needed.rank(),
        }
    }

    /// Parses `ingest`, `viewer`, `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ingest" => Some(Role::Ingest),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// `GET /api/v1/auth`: who the caller is (clients ask before a large upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// User or token name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Always true: an unknown caller gets `401`.
    pub authorized: bool,
}

/// `GET /api/v1/version`: the release a server runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// The release version (from the release bundle the agent installed, else the build's).
    pub release: String,
    /// The version of this build.
    pub build: String,
    /// The newest policy schema this release reads.
    pub max_policy_schema: i64,
    /// The roles this process runs.
    pub roles: Vec<String>,
}

/// An entry of `GET /api/v1/users` (no password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// An API token as stored and as listed by `GET /api/v1/tokens` (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Name (shown in histories as who made a change).
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the token's secret, hex.
    pub sha256: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working (never when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    /// True once the token has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// `POST /api/v1/users`: add a user or change one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetUser {
    /// Login name.
    pub name: String,
    /// `viewer`, `operator` or `admin` (a name, so a wrong one is refused with the list).
    pub role: String,
    /// The new password; without one, an existing user's role changes and the password stays.
    #[serde(default)]
    pub password: Option<String>,
}

/// The answer to `POST /api/v1/users`: the user as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedUser {
    /// Login name.
    pub name: String,
    /// Its role now.
    pub role: Role,
}

/// The answer to a removal: `{"removed": name}` (a user) or `{"revoked": name}` (a token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The user removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
    /// The token revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// `POST /api/v1/tokens`: create an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// Its name.
    pub name: String,
    /// `ingest`, `viewer`, `operator` or `admin`.
    pub role: String,
    /// A lifetime (`90d`, `12h`) or an RFC 3339 time; never expires when absent.
    #[serde(default)]
    pub expires: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the token as created; its secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The secret (a bearer token).
    pub token: String,
    /// When it stops working (never when null).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/auth/password`: a user changes their own password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPassword {
    /// Login name.
    pub name: String,
    /// The current password (the credential of this request).
    pub current: String,
    /// The new password.
    pub new: String,
}

/// The answer to `POST /api/v1/auth/password`: `{"name", "changed": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    /// Login name.
    pub name: String,
    /// Always true (a refusal is an error).
    pub changed: bool,
}

/// The answer to `POST /api/v1/policy/check` for a valid policy (an invalid one is `422
/// invalid` with every diagnostic in the error body's details).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    /// Always true (an invalid policy is an error).
    #[serde(default)]
    pub valid: bool,
    /// What the policy holds.
    #[serde(default)]
    pub meta: Option<PolicyMeta>,
}

/// The answer to `DELETE /api/v1/policy`: the version that was in force, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uninstalled {
    /// The version uninstalled (none: no policy was installed).
    #[serde(default)]
    pub uninstalled: Option<u64>,
}

/// Query of `GET /api/v1/policy/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffParams {
    /// Older version (0: the empty policy).
    pub from: u64,
    /// Newer version.
    pub to: u64,
}

/// Query of `GET /api/v1/lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupParams {
    /// The calling number (none: unknown).
    #[serde(default)]
    pub from: Option<String>,
    /// The called number.
    pub to: String,
}

/// The answer to `POST /api/v1/ingest`: how many lines were received, stored, already stored,
/// quarantined (all of the batch is accounted for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    /// Lines received (records and unreadable lines).
    pub received: usize,
    /// Records stored now.
    pub inserted: u64,
    /// Records stored before (a batch sent again).
    pub duplicates: u64,
    /// Lines kept in the quarantine instead of stored.
    pub quarantined: usize,
}

/// The Analytics selectors as query parameters (`GET /api/v1/analytics`, the Analytics page).
/// Missing ones take defaults: ENUM, Average CPS, Hour, All devices, the last 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsParams {
    /// `ENUM` or `SIP`.
    pub dataset: Option<String>,
    /// A view name, e.g. `Top 10 Source`.
    pub view: Option<String>,
    /// `Minute`, `Hour` or `Day`.
    pub grouping: Option<String>,
    /// A device name, or `All`.
    pub device: Option<String>,
    /// Start: RFC 3339 or `YYYY-MM-DDTHH:MM` (UTC).
    pub from: Option<String>,
    /// End: RFC 3339 or `YYYY-MM-DDTHH:MM` (UTC).
    pub to: Option<String>,
    /// A preset range ending now: `15m`, `1h`, `24h`, `7d`, `30d` (used when `from` is absent).
    pub range: Option<String>,
    /// `csv` for CSV.
    pub format: Option<String>,
}

/// Query of `GET /api/v1/export`: raw records as CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportParams {
    /// `ENUM` or `SIP`.
    pub dataset: Option<String>,
    /// Start (RFC 3339 or `YYYY-MM-DDTHH:MM`, UTC).
    pub from: String,
    /// End.
    pub to: String,
    /// One device (default all).
    pub device: Option<String>,
    /// Dataset ENUM only: the decisions asked over one protocol, `enum` (ENUM queries) or `sip`
    /// (the SIP redirect server's INVITEs); default both. Every row says its protocol in the
    /// last column.
    pub protocol: Option<String>,
}

/// Query of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesParams {
    /// `ENUM` (default) or `SIP`.
    pub dataset: Option<String>,
}

/// `params` as a URL query (`a=1&b=x+y`, without the `?`); absent options are left out.
pub fn query<T: Serialize>(params: &T) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}
