//! The manager's API: what `tollgate manager` answers and what its clients send (the CLI's
//! `upgrade`, `health` and `backup` commands, the Upgrade Manager page, the mate manager).
//!
//! | method | path | request | answer |
//! |---|---|---|---|
//! | GET | `/api/v1/version` | | [`VersionInfo`] |
//! | GET | `/api/v1/manager/ha` | | [`HaStatus`] |
//! | GET | `/api/v1/manager/state` (mate) | | [`Snapshot`] |
//! | POST | `/api/v1/manager/sync` (mate) | [`Snapshot`] | [`SyncAnswer`] |
//! | POST | `/api/v1/manager/take-over` (mate) | [`TakeOver`] | [`HaStatus`] |
//! | GET | `/api/v1/upgrade/status` | | [`SystemStatus`] |
//! | GET | `/api/v1/upgrade/bundles` | | `Vec<`[`BundleInfo`]`>` |
//! | POST | `/api/v1/upgrade/procedure` | [`ProcedureRequest`] | [`ProcedureAnswer`] |
//! | POST | `/api/v1/upgrade/action` | [`ActionRequest`] | [`StartedAction`] |
//! | POST | `/api/v1/upgrade/next` | [`NextRequest`] | [`NextAnswer`] |
//! | GET | `/api/v1/upgrade/log[?cluster=]` | | `Vec<`[`LogEntry`]`>` |
//! | GET | `/api/v1/upgrade/log/groups[?cluster=]` | | `Vec<`[`crate::log_groups::LogGroup`]`>` |
//! | GET | `/api/v1/upgrade/audit` | | `Vec<`[`AuditEntry`]`>` |
//! | POST | `/api/v1/upgrade/zombie-repaired` | [`ZombieRequest`] | [`ZombieAnswer`] |
//! | GET | `/api/v1/alarms` | | [`ManagerAlarms`] |
//! | GET | `/api/v1/health` | | [`SystemHealth`] |
//! | POST | `/api/v1/backup` | [`BackupRequest`] | [`SystemBackup`] |
//! | GET | `/api/v1/backups` | | `Vec<`[`ServerBackups`]`>` |
//! | POST | `/api/v1/restore` | [`SystemRestoreRequest`] | [`RestoreAnswer`] |
//! | POST | `/api/v1/policy/push[?cluster=&name=]` | policy TOML or [`PolicyCandidate`] | [`PushAnswer`] |
//!
//! The other policy routes (versions, preview, roll-back, uninstall) are in [`policy`].
//!
//! The domain types of the Upgrade Director (`tollgate_upgrade`) are the contract where they
//! already serialise both ways (actions, procedures, log and audit entries, roles, statuses);
//! the types here add what the views compute.

pub mod policy;

pub use policy::*;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_alarms::Severity;

pub use crate::agent::{Backup, BackupRequest, Health, RestoreAnswer};

use tollgate_upgrade::director::{Action, Direction, Director, Procedure, Refusal, UpgradeLogEntry};

/// An entry of the audit log (`GET /api/v1/upgrade/audit`), the Director's own type.
pub use tollgate_upgrade::director::AuditEntry;
use tollgate_upgrade::topology::{
    AppType, ClusterStatus, HaRole, ManagerDesignation, ServerState, StagedBundle, UpToDate,
};

/// `GET /api/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The release this server runs.
    pub release: String,
    /// Its role (`manager`).
    pub role: String,
}

/// `GET /api/v1/manager/ha`: this manager's place in its pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    /// This manager's hostname.
    pub hostname: String,
    /// The mate's API URL (none: a manager without a mate).
    #[serde(default)]
    pub mate: Option<String>,
    /// Active or Standby.
    pub ha: HaRole,
    /// The active one is handing over to its mate.
    #[serde(default)]
    pub handing_over: bool,
    /// Configured to start as the active one.
    #[serde(default)]
    pub starts_active: bool,
    /// When it last became active (none while standby).
    #[serde(default)]
    pub active_since: Option<DateTime<Utc>>,
    /// The standby's copy of the active's state is recent (always true on the active).
    #[serde(default)]
    pub synchronised: bool,
    /// The shared state's generation.
    #[serde(default)]
    pub generation: u64,
    /// The release this manager runs.
    #[serde(default)]
    pub release: String,
    /// The server is held in forced standby.
    #[serde(default)]
    pub forced_standby: bool,
}

impl HaStatus {
    /// Whether this manager acts (active and not handing over).
    pub fn is_active(&self) -> bool {
        self.role() == HaRole::Active
    }

    /// Its role as its mate and the Director read it: a manager handing over to its mate is no
    /// longer the active one, though `ha` says Active until the mate has taken over. (Read as
    /// Active, the new active manager would take itself for the standby again and plan the
    /// failover a second time.)
    pub fn role(&self) -> HaRole {
        if self.handing_over { HaRole::Standby } else { self.ha }
    }
}

/// What the two managers of a pair share: the Director and both logs
/// (`GET /api/v1/manager/state`, `POST /api/v1/manager/sync`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// The Upgrade Director.
    pub director: Director,
    /// The upgrade log, by entry ID.
    pub log: BTreeMap<u64, UpgradeLogEntry>,
    /// The audit log of operator actions, oldest first.
    pub audit: Vec<AuditEntry>,
    /// Alarms acknowledged in the console, by [`crate::console::alarm_key`].
    #[serde(default)]
    pub alarm_acks: BTreeMap<String, crate::console::AlarmAck>,
    /// Bumped at every change.
    pub generation: u64,
    /// The policy versions the manager pushed (a state of an earlier release has none).
    #[serde(default)]
    pub policies: PolicyHistory,
}

/// `POST /api/v1/manager/sync`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncAnswer {
    /// The standby took the state (it was newer than its copy).
    pub accepted: bool,
}

/// `POST /api/v1/manager/take-over`: the active mate hands over its state and the failover
/// action whose success the new active reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeOver {
    /// The state.
    pub snapshot: Snapshot,
    /// The failover action's ID.
    pub action: u64,
}

/// A bundle in the manager's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// File name.
    pub file: String,
    /// What it installs.
    pub application: AppType,
    /// Its release.
    pub release: String,
    /// Releases it upgrades from.
    #[serde(default)]
    pub upgrades_from: Vec<String>,
    /// The newest policy schema its engine reads.
    #[serde(default)]
    pub max_policy_schema: Option<i64>,
}

/// `POST /api/v1/upgrade/procedure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureRequest {
    /// The release to roll out; none deselects.
    #[serde(default)]
    pub release: Option<String>,
}

/// `POST /api/v1/upgrade/procedure`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcedureAnswer {
    /// The procedure now selected.
    pub procedure: Option<Procedure>,
}

/// A direction as operators name it (`rollback` is `backout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectionWord {
    /// Towards the selected release.
    Upgrade,
    /// Back to the previous release.
    Backout,
    /// Same as backout.
    Rollback,
}

impl From<DirectionWord> for Direction {
    fn from(d: DirectionWord) -> Self {
        match d {
            DirectionWord::Upgrade => Direction::Upgrade,
            DirectionWord::Backout | DirectionWord::Rollback => Direction::Backout,
        }
    }
}

/// `POST /api/v1/upgrade/action`: the preferred action of a cluster in a direction, or a named
/// legal one (the "Advanced" menu).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// The cluster.
    pub cluster: String,
    /// The next preferred action in this direction...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<DirectionWord>,
    /// ... or this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// An action that started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedAction {
    /// Its ID.
    pub id: u64,
    /// Its label.
    pub action: String,
}

/// `POST /api/v1/upgrade/next`: the next action of every cluster that may move now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextRequest {
    /// Which way.
    pub direction: DirectionWord,
}

/// An action the Director refused to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAction {
    /// Its label.
    pub action: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/upgrade/next`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextAnswer {
    /// Started.
    #[serde(default)]
    pub started: Vec<StartedAction>,
    /// Refused.
    #[serde(default)]
    pub refused: Vec<RefusedAction>,
    /// Every cluster is done in that direction.
    #[serde(default)]
    pub done: bool,
}

/// `GET /api/v1/upgrade/log`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Only this cluster's entries.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// An upgrade log entry with its duration as the seed shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: UpgradeLogEntry,
    /// `H:MM:SS`, empty while in progress.
    #[serde(default)]
    pub duration: String,
    /// The duration in milliseconds (none while in progress): steps often take less than the
    /// second `duration` counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

impl From<&UpgradeLogEntry> for LogEntry {
    fn from(e: &UpgradeLogEntry) -> Self {
        let duration_ms = e.end.map(|end| (end - e.start).num_milliseconds().max(0));
        LogEntry { duration: e.duration_text(), duration_ms, entry: e.clone() }
    }
}

/// `POST /api/v1/upgrade/zombie-repaired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieRequest {
    /// The server the operator repaired.
    pub hostname: String,
}

/// `POST /api/v1/upgrade/zombie-repaired`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieAnswer {
    /// The server.
    pub repaired: String,
}

/// An alarm type, as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmDefView {
    /// Alarm ID.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Severity.
    pub severity: Severity,
    /// What it means.
    #[serde(default)]
    pub text: String,
}

impl From<&tollgate_alarms::AlarmDef> for AlarmDefView {
    fn from(d: &tollgate_alarms::AlarmDef) -> Self {
        AlarmDefView { id: d.id, name: d.name.to_string(), severity: d.severity, text: d.text.to_string() }
    }
}

/// An active alarm, as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmView {
    /// Its type.
    pub def: AlarmDefView,
    /// What it is about.
    pub scope: String,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// Details.
    #[serde(default)]
    pub detail: String,
}

impl From<&tollgate_alarms::ActiveAlarm> for AlarmView {
    fn from(a: &tollgate_alarms::ActiveAlarm) -> Self {
        AlarmView { def: (&a.def).into(), scope: a.scope.clone(), raised_at: a.raised_at, detail: a.detail.clone() }
    }
}

/// A raise or a clear, as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEventView {
    /// When.
    pub at: DateTime<Utc>,
    /// Raised (true) or cleared (false).
    pub raised: bool,
    /// Alarm ID.
    pub id: u32,
    /// Alarm name.
    pub name: String,
    /// Scope.
    pub scope: String,
    /// Details.
    #[serde(default)]
    pub detail: String,
}

impl From<&tollgate_alarms::AlarmEvent> for AlarmEventView {
    fn from(e: &tollgate_alarms::AlarmEvent) -> Self {
        AlarmEventView {
            at: e.at,
            raised: e.raised,
            id: e.id,
            name: e.name.to_string(),
            scope: e.scope.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// A role's `GET /api/v1/alarms` answer (engines, probes and collectors answer the same shape;
/// the manager adds `servers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAlarms {
    /// Raised now.
    #[serde(default)]
    pub active: Vec<AlarmView>,
    /// Raises and clears, oldest first.
    #[serde(default)]
    pub history: Vec<AlarmEventView>,
}

/// An alarm a server's role reports, as the manager keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAlarm {
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
}

impl From<&AlarmView> for RemoteAlarm {
    fn from(a: &AlarmView) -> Self {
        RemoteAlarm {
            id: a.def.id,
            name: a.def.name.clone(),
            severity: a.def.severity,
            scope: a.scope.clone(),
            detail: a.detail.clone(),
        }
    }
}

/// The manager's `GET /api/v1/alarms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerAlarms {
    /// The Director's alarms raised now.
    #[serde(default)]
    pub active: Vec<AlarmView>,
    /// Their raises and clears.
    #[serde(default)]
    pub history: Vec<AlarmEventView>,
    /// Per server, what its role reports.
    #[serde(default)]
    pub servers: BTreeMap<String, Vec<RemoteAlarm>>,
}

/// An alarm of a server, in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAlarm {
    /// The server.
    pub server: String,
    /// The alarm.
    pub alarm: RemoteAlarm,
}

/// A proposed action, as the Upgrade Manager offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalView {
    /// The seed's name ("Initiate upgrade").
    pub name: String,
    /// The action.
    pub action: Action,
    /// The servers it acts on.
    #[serde(default)]
    pub targets: Vec<String>,
    /// The button's label.
    pub label: String,
    /// What it will do.
    #[serde(default)]
    pub description: String,
}

impl From<&tollgate_upgrade::director::Proposal> for ProposalView {
    fn from(p: &tollgate_upgrade::director::Proposal) -> Self {
        ProposalView {
            name: p.name.to_string(),
            action: p.action.clone(),
            targets: p.targets.clone(),
            label: p.label.clone(),
            description: p.description.clone(),
        }
    }
}

/// What to do next on a cluster in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceView {
    /// The cluster (absent when the Director could not advise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The direction (absent when the Director could not advise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The next preferred action (the Upgrade / Backout button).
    #[serde(default)]
    pub preferred: Option<ProposalView>,
    /// Why there is none although the cluster is not done.
    #[serde(default)]
    pub waiting: Option<Refusal>,
    /// The other legal actions (the "Advanced" menu).
    #[serde(default)]
    pub others: Vec<ProposalView>,
    /// Done in this direction.
    #[serde(default)]
    pub done: bool,
    /// The button's label.
    #[serde(default)]
    pub button: String,
}

impl From<&tollgate_upgrade::director::Advice> for AdviceView {
    fn from(a: &tollgate_upgrade::director::Advice) -> Self {
        AdviceView {
            cluster: Some(a.cluster.clone()),
            direction: Some(a.direction),
            preferred: a.preferred.as_ref().map(Into::into),
            waiting: a.waiting.clone(),
            others: a.others.iter().map(Into::into).collect(),
            done: a.done,
            button: a.button.to_string(),
        }
    }
}

impl From<Refusal> for AdviceView {
    fn from(r: Refusal) -> Self {
        AdviceView { waiting: Some(r), ..Default::default() }
    }
}

/// A running action: step n/N, percent, elapsed time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningView {
    /// Its ID.
    pub id: u64,
    /// The action.
    pub action: Action,
    /// Its label.
    pub label: String,
    /// The step's name.
    pub step: String,
    /// The step's number, from 1.
    pub step_index: u64,
    /// How many steps.
    pub steps: u64,
    /// Percent done.
    pub percent: u64,
    /// Seconds since it started.
    pub elapsed_secs: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// All of it as one line.
    pub text: String,
}

/// The "Upgrade Operation" column of a server: the running action, the last failure, or
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operation {
    /// An action runs on the server.
    Running(RunningView),
    /// None runs.
    Idle {
        /// The last failure ("Failed: ..."), or empty.
        #[serde(default)]
        text: String,
        /// The last action on it failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        failed: bool,
    },
}

impl Default for Operation {
    fn default() -> Self {
        Operation::Idle { text: String::new(), failed: false }
    }
}

impl Operation {
    /// The column's text.
    pub fn text(&self) -> &str {
        match self {
            Operation::Running(r) => &r.text,
            Operation::Idle { text, .. } => text,
        }
    }

    /// Whether the last action on the server failed.
    pub fn failed(&self) -> bool {
        matches!(self, Operation::Idle { failed: true, .. })
    }
}

/// A server's row of the Upgrade Manager grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Hostname.
    pub hostname: String,
    /// Site.
    #[serde(default)]
    pub site: String,
    /// "Alarm Severity": the most severe alarm about it.
    #[serde(default)]
    pub alarm_severity: Option<Severity>,
    /// "Up to Date".
    pub up_to_date: UpToDate,
    /// Its HA role.
    pub ha_role: HaRole,
    /// "Server Role": its state.
    pub role: ServerState,
    /// "Prev Release".
    #[serde(default)]
    pub prev_release: Option<String>,
    /// "Running Release".
    pub running_release: String,
    /// Held in forced standby.
    #[serde(default)]
    pub forced_standby: bool,
    /// Its agent answers.
    #[serde(default)]
    pub reachable: bool,
    /// Bundles staged on it.
    #[serde(default)]
    pub staged: Vec<StagedBundle>,
    /// "Upgrade Operation".
    #[serde(default)]
    pub operation: Operation,
}

/// A cluster's row of the Upgrade Manager grid, with its servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Name.
    pub name: String,
    /// What it runs.
    pub application: AppType,
    /// Primary or Secondary (manager clusters).
    #[serde(default)]
    pub designation: Option<ManagerDesignation>,
    /// Site.
    #[serde(default)]
    pub site: String,
    /// Segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// Status.
    pub status: ClusterStatus,
    /// The most severe alarm about it or its servers.
    #[serde(default)]
    pub alarm_severity: Option<Severity>,
    /// "Up to Date" (N/A without a procedure).
    pub up_to_date: UpToDate,
    /// Its servers run different releases.
    #[serde(default)]
    pub mixed_version: bool,
    /// Next in the upgrade direction.
    #[serde(default)]
    pub upgrade: AdviceView,
    /// Next in the backout direction.
    #[serde(default)]
    pub backout: AdviceView,
    /// The action running on it.
    #[serde(default)]
    pub running: Option<RunningView>,
    /// Its servers.
    #[serde(default)]
    pub servers: Vec<ServerView>,
}

/// Which manager answered the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerSummary {
    /// Hostname.
    pub hostname: String,
    /// Active or Standby.
    pub ha: HaRole,
    /// Its release.
    #[serde(default)]
    pub release: String,
    /// The mate's URL.
    #[serde(default)]
    pub mate: Option<String>,
}

/// `GET /api/v1/upgrade/status`: the Upgrade Manager's whole view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemStatus {
    /// The manager that answers.
    pub manager: ManagerSummary,
    /// The selected procedure ("Current bundle").
    #[serde(default)]
    pub procedure: Option<Procedure>,
    /// The system runs more than one release.
    #[serde(default)]
    pub mixed_version: bool,
    /// Failed actions not succeeded since: scope → reason.
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
    /// The grid.
    #[serde(default)]
    pub clusters: Vec<ClusterView>,
    /// The Director's alarms.
    #[serde(default)]
    pub alarms: Vec<AlarmView>,
    /// What the servers' roles report.
    #[serde(default)]
    pub server_alarms: Vec<ServerAlarm>,
    /// The shared state's generation.
    #[serde(default)]
    pub generation: u64,
    /// The bundles in the repository.
    #[serde(default)]
    pub bundles: Vec<BundleInfo>,
}

/// One server's health in `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// Its cluster.
    pub cluster: String,
    /// Hostname.
    pub hostname: String,
    /// No class failed.
    pub ok: bool,
    /// The syscheck as text.
    #[serde(default)]
    pub text: String,
    /// The agent's report per class (none when the agent did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// `GET /api/v1/health`: every server's syscheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemHealth {
    /// Every server is healthy.
    pub ok: bool,
    /// Per server, by hostname.
    #[serde(default)]
    pub servers: Vec<ServerHealth>,
}

/// One server's part of a system backup: its backup or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBackup {
    /// Hostname.
    pub hostname: String,
    /// The backup taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
    /// Why none was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/backup`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemBackup {
    /// Every server and the manager's state were backed up.
    pub ok: bool,
    /// The reason in the names.
    #[serde(default)]
    pub why: String,
    /// The file of the manager's own state.
    #[serde(default)]
    pub manager_state: Option<String>,
    /// Per server.
    #[serde(default)]
    pub servers: Vec<ServerBackup>,
}

/// One server's backups in `GET /api/v1/backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBackups {
    /// Hostname.
    pub hostname: String,
    /// Its backups (none when the agent did not answer).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub backups: Vec<Backup>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Backup>, D::Error> {
    Ok(Option::<Vec<Backup>>::deserialize(d)?.unwrap_or_default())
}

/// `POST /api/v1/restore` (answered with the agent's [`RestoreAnswer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemRestoreRequest {
    /// The server.
    pub hostname: String,
    /// The backup's file name.
    pub name: String,
}

/// `POST /api/v1/policy/push`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushQuery {
    /// Only this engine cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The policy's file name (default `policy.toml`).
    #[serde(default)]
    pub name: Option<String>,
}

/// A server a pushed policy was installed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInstalled {
    /// Hostname.
    pub hostname: String,
    /// The version the engine gave it.
    #[serde(default)]
    pub version: Option<u64>,
}

/// `POST /api/v1/policy/push`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAnswer {
    /// The policy's schema.
    pub schema: i64,
    /// Where it was installed.
    #[serde(default)]
    pub installed: Vec<PolicyInstalled>,
    /// The manager's version recording this push (none from a manager of an earlier release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Per target cluster, what happened.
    #[serde(default)]
    pub clusters: Vec<ClusterResult>,
}
