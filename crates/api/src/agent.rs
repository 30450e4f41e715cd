//! The agent's API (`/agent/v1/*`): what the manager and the CLI send to the agent of a server
//! and what it answers.
//!
//! | method | path | request | answer |
//! |---|---|---|---|
//! | GET | [`STATUS`] | | [`AgentStatus`] |
//! | POST | [`STAGE`]`?name=FILE` ([`StageQuery`]) | the bundle's bytes | [`StageAnswer`] |
//! | POST | [`PREFLIGHT`] | [`VersionRequest`] | [`PreflightAnswer`] |
//! | POST | [`INSTALL`] | [`VersionRequest`] | [`AgentStatus`] |
//! | POST | [`BACKOUT`] | | [`AgentStatus`] |
//! | POST | [`RESTART`] | | [`AgentStatus`] |
//! | POST | [`BACKUP`] | [`BackupRequest`] (optional) | [`Backup`] |
//! | GET | [`BACKUPS`] | | `Vec<`[`Backup`]`>` |
//! | POST | [`RESTORE`] | [`RestoreRequest`] | [`RestoreAnswer`] |
//! | GET | [`HEALTH`] | | [`HealthAnswer`] |
//! | POST | [`UNSTAGE`] | [`UnstageRequest`] | [`AgentStatus`] |
//! | POST | [`FORCED_STANDBY`] | [`ForcedStandbyRequest`] | [`AgentStatus`] |
//! | POST | [`HA_ROLE`] | [`HaRoleRequest`] | [`AgentStatus`] |
//! | GET, POST, DELETE | [`ROLE`]`/{path}` ([`role_path`]) | passed to the role's API | the role's answer |
//!
//! Errors are an [`crate::ErrorBody`]. Release names, application types and roles travel as
//! the strings the upgrade crate writes (`system-2.0.0`, `engine`); the reader parses them, so
//! this crate needs no part of the Upgrade Director.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// GET: the agent's [`AgentStatus`].
pub const STATUS: &str = "/agent/v1/status";
/// POST: stage a bundle (body: the archive; query [`StageQuery`]).
pub const STAGE: &str = "/agent/v1/stage";
/// POST: the preflight of one release.
pub const PREFLIGHT: &str = "/agent/v1/preflight";
/// POST: install a staged release.
pub const INSTALL: &str = "/agent/v1/install";
/// POST: back out to the previous release.
pub const BACKOUT: &str = "/agent/v1/backout";
/// POST: restart the role process.
pub const RESTART: &str = "/agent/v1/restart";
/// POST: take a backup.
pub const BACKUP: &str = "/agent/v1/backup";
/// GET: the backups kept.
pub const BACKUPS: &str = "/agent/v1/backups";
/// POST: restore a backup.
pub const RESTORE: &str = "/agent/v1/restore";
/// GET: the server's syscheck.
pub const HEALTH: &str = "/agent/v1/health";
/// POST: remove one staged bundle.
pub const UNSTAGE: &str = "/agent/v1/unstage";
/// POST: hold the server in forced standby, or release it.
pub const FORCED_STANDBY: &str = "/agent/v1/forced-standby";
/// POST: record the HA role of a role without SRP.
pub const HA_ROLE: &str = "/agent/v1/ha-role";
/// GET or POST `ROLE/{path}`: a call on the role's own API, passed through.
pub const ROLE: &str = "/agent/v1/role";

/// The agent's path of a call on the role's API `path` (e.g. `api/v1/srp/show/info`).
pub fn role_path(path: &str) -> String {
    format!("{ROLE}/{}", path.trim_start_matches('/'))
}

/// The path of POST [`STAGE`] for a bundle named `file_name` (percent-encoded).
pub fn stage_path(file_name: &str) -> String {
    let mut name = String::new();
    for b in file_name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{STAGE}?name={name}")
}

/// The HA role a server holds, as the agent reports it (`ha_role` of [`AgentStatus`]) and the
/// manager records it ([`HaRoleRequest`]). On the wire the names of the seeds: `"Active"`,
/// `"Standby"`, `"Spare"`; anything else an agent sends (a newer role, a damaged file) reads as
/// [`HaRole::Unknown`] instead of failing the whole status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HaRole {
    /// Serves.
    Active,
    /// Takes over when the Active fails.
    Standby,
    /// Georedundant third server, at a secondary site.
    Spare,
    /// A role this release does not know.
    #[serde(other)]
    Unknown,
}

impl HaRole {
    /// The seed's name (`Active`, `Standby`, `Spare`; `Unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            HaRole::Active => "Active",
            HaRole::Standby => "Standby",
            HaRole::Spare => "Spare",
            HaRole::Unknown => "Unknown",
        }
    }

    /// Reads a role name as an agent writes it (surrounding blanks ignored); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<HaRole> {
        match text.trim() {
            "Active" => Some(HaRole::Active),
            "Standby" => Some(HaRole::Standby),
            "Spare" => Some(HaRole::Spare),
            _ => None,
        }
    }
}

impl fmt::Display for HaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bundle in the agent's staging directory, as its manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedBundle {
    /// File name in the staging directory.
    pub file_name: String,
    /// Application type its manifest declares (`engine`, `probe`, ...).
    pub application: String,
    /// Release its manifest declares (`system-2.0.0`).
    pub release: String,
}

/// The role process, as the agent's supervisor sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// Running now.
    #[serde(default)]
    pub running: bool,
    /// Its pid.
    #[serde(default)]
    pub pid: Option<u32>,
    /// When it was started.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Restarts after it died.
    #[serde(default)]
    pub restarts: u64,
    /// How it last exited.
    #[serde(default)]
    pub last_exit: Option<String>,
}

/// GET [`STATUS`], and the answer of every call that changes the server (install, backout,
/// restart, unstage, forced standby, HA role).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The server's name (`[agent] server`).
    pub server: String,
    /// Its application type (`engine`, `probe`, `collector`, `manager`).
    pub application: String,
    /// The role the agent runs (`[agent] role`).
    pub role: String,
    /// The release in force (`None`: nothing installed yet).
    #[serde(default)]
    pub release: Option<String>,
    /// The release kept for a backout.
    #[serde(default)]
    pub previous_release: Option<String>,
    /// The highest policy schema the release in force reads.
    #[serde(default)]
    pub max_policy_schema: Option<i64>,
    /// Bundles staged.
    #[serde(default)]
    pub staged: Vec<StagedBundle>,
    /// The role process.
    #[serde(default)]
    pub process: ProcessStatus,
    /// The role's API base URL.
    #[serde(default)]
    pub role_api: String,
    /// The manager holds the server in forced standby.
    #[serde(default)]
    pub forced_standby: bool,
    /// An install, backout, restart or restore is under way.
    #[serde(default)]
    pub busy: bool,
    /// The HA role the manager recorded for a role without SRP (`None`: none recorded).
    #[serde(default)]
    pub ha_role: Option<HaRole>,
}

/// The query of POST [`STAGE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageQuery {
    /// The bundle's file name.
    pub name: String,
}

/// The answer of POST [`STAGE`]: the bundle was verified and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageAnswer {
    /// The release staged.
    pub staged: String,
    /// Its application type.
    pub application: String,
}

/// The body of POST [`PREFLIGHT`] and POST [`INSTALL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRequest {
    /// The release (`system-2.0.0`).
    pub version: String,
}

/// The answer of POST [`PREFLIGHT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightAnswer {
    /// `"ok"`.
    pub preflight: String,
    /// The release whose bundle passed.
    pub version: String,
}

/// The optional body of POST [`BACKUP`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    /// Why (goes into the backup's name; `manual` when absent).
    #[serde(default)]
    pub why: Option<String>,
}

/// A backup file kept by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// File name.
    pub name: String,
    /// Size in bytes.
    #[serde(default)]
    pub bytes: u64,
}

/// The body of POST [`RESTORE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// The backup's file name.
    pub name: String,
}

/// The answer of POST [`RESTORE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreAnswer {
    /// The backup restored.
    pub restored: String,
}

/// The body of POST [`UNSTAGE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnstageRequest {
    /// The staged bundle's file name.
    pub name: String,
}

/// The body of POST [`FORCED_STANDBY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedStandbyRequest {
    /// Hold (true) or release (false).
    pub on: bool,
}

/// The body of POST [`HA_ROLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaRoleRequest {
    /// The role to record.
    pub role: HaRole,
}

/// The outcome of one syscheck class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Nothing wrong.
    #[serde(rename = "OK")]
    Ok,
    /// Worth a look, not a failure (e.g. no time-sync information).
    #[serde(rename = "INFO")]
    Info,
    /// A failure.
    #[serde(rename = "FAILURE")]
    Failure,
    /// A verdict this release does not know (counts as a failure).
    #[serde(other)]
    Unknown,
}

impl Verdict {
    /// The syscheck word (`OK`, `INFO`, `FAILURE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Info => "INFO",
            Verdict::Failure | Verdict::Unknown => "FAILURE",
        }
    }
}

/// One syscheck class's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassResult {
    /// Class name (disk, hardware, proc, net, replication, alarms, system, upgrade).
    pub class: String,
    /// Outcome.
    pub verdict: Verdict,
    /// What was checked, what was found.
    #[serde(default)]
    pub detail: String,
}

/// A server's health, class by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The server.
    pub server: String,
    /// Each class.
    #[serde(default)]
    pub classes: Vec<ClassResult>,
    /// The role's TLS material (certificate, expiry), when the role reports it.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsStatus>,
}

impl Health {
    /// True when no class failed.
    pub fn ok(&self) -> bool {
        self.classes.iter().all(|c| !matches!(c.verdict, Verdict::Failure | Verdict::Unknown))
    }

    /// syscheck-style text ("Running modules in class disk... OK  (...)").
    pub fn text(&self) -> String {
        let mut out = format!("{}:\n", self.server);
        for c in &self.classes {
            out.push_str(&format!("Running modules in class {}... {}  ({})\n", c.class, c.verdict.as_str(), c.detail));
        }
        out
    }
}

/// The answer of GET [`HEALTH`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthAnswer {
    /// No class failed.
    pub ok: bool,
    /// The syscheck text.
    #[serde(default)]
    pub text: String,
    /// Class by class.
    #[serde(default)]
    pub health: Health,
}

/// Stages `bundle` as `file_name` on the agent `client` talks to (POST [`STAGE`], the archive
/// as the body).
#[cfg(feature = "client")]
pub async fn stage(
    client: &crate::Client,
    file_name: &str,
    bundle: Vec<u8>,
) -> Result<StageAnswer, crate::ClientError> {
    let request = client.request(reqwest::Method::POST, &stage_path(file_name)).body(bundle);
    crate::Client::json(client.send(request).await?).await
}

/// [`stage`] for synchronous callers.
#[cfg(feature = "client")]
pub fn stage_blocking(
    client: &crate::BlockingClient,
    file_name: &str,
    bundle: Vec<u8>,
) -> Result<StageAnswer, crate::ClientError> {
    client.block_on(stage(client.inner(), file_name, bundle))
}
