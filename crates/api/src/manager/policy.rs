//! Cluster-wide policy on the manager: the versions it pushed, the preview of a candidate
//! against what each engine cluster has, roll-back and uninstall.
//!
//! | method | path | caller | request | answer |
//! |---|---|---|---|---|
//! | GET | `/api/v1/policy/versions` | viewer | | `Vec<`[`PolicyVersionSummary`]`>` |
//! | GET | `/api/v1/policy/versions/{version}` | viewer | | [`PolicyVersion`] |
//! | POST | `/api/v1/policy/preview` | viewer | [`PolicyCandidate`] | [`PolicyPreview`] |
//! | POST | `/api/v1/policy/push` | operator | [`PolicyCandidate`] (JSON) or the TOML text | [`super::PushAnswer`] |
//! | POST | `/api/v1/policy/rollback` | operator | [`RollbackRequest`] | [`super::PushAnswer`] |
//! | POST | `/api/v1/policy/uninstall` | operator | [`UninstallRequest`] | [`UninstallAnswer`] |
//!
//! Refusals carry the stable labels of [`crate::ErrorCode`]: `conflict` (mixed-version: an
//! engine's release cannot read the policy's schema; a standby manager), `not_found` (no such
//! cluster or version), `invalid` (an engine refused the policy, `details` say where),
//! `confirmation_required` (an uninstall without [`UNINSTALL_CONFIRMATION`]), `upstream` (a
//! server did not install it: the version is recorded with each server's result).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The words an uninstall request must carry in [`UninstallRequest::confirm`]: what uninstalling
/// does to the clusters named.
pub const UNINSTALL_CONFIRMATION: &str = "every call is allowed";

/// A policy as the manager takes it for a preview or a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCandidate {
    /// The policy file's text (TOML).
    pub policy: String,
    /// Its file name, in the engines' history and messages (default `policy.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its number lists: list name (as in `[lists]`) to the list's text, one number a line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lists: BTreeMap<String, String>,
    /// The engine clusters it is for; empty: every engine cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

/// What a change to the policy was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChangeKind {
    /// A policy pushed.
    Push,
    /// An earlier version's policy pushed again.
    Rollback,
    /// The policy removed: every call is allowed.
    Uninstall,
}

/// One server's part of a push, roll-back or uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerResult {
    /// The server.
    pub hostname: String,
    /// Done on this server.
    pub ok: bool,
    /// The version the engine gave the policy in its own history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<u64>,
    /// Why it was not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One engine cluster's part of a push, roll-back or uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterResult {
    /// The engine cluster.
    pub cluster: String,
    /// Done on every server of the cluster.
    pub ok: bool,
    /// Per server.
    pub servers: Vec<ServerResult>,
}

/// A version as listed: everything but the policy's text and lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersionSummary {
    /// The manager's version number (1, 2, ...).
    pub version: u64,
    /// Push, roll-back or uninstall.
    pub kind: PolicyChangeKind,
    /// For people: `push`, `rollback to v3`, `uninstall`.
    pub label: String,
    /// The version a roll-back pushed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// Who: the person named in `X-Actor` ("alice via cli") or the token's user.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The policy's file name (empty for an uninstall).
    #[serde(default)]
    pub name: String,
    /// The policy's schema (none for an uninstall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<i64>,
    /// How many rules the policy has.
    #[serde(default)]
    pub rules: usize,
    /// Its lists' names.
    #[serde(default)]
    pub list_names: Vec<String>,
    /// Per target cluster, what happened.
    pub clusters: Vec<ClusterResult>,
    /// Done on every server of every target cluster.
    pub ok: bool,
}

/// A version with its policy (`GET /api/v1/policy/versions/{version}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// What it was.
    #[serde(flatten)]
    pub summary: PolicyVersionSummary,
    /// The policy's text (empty for an uninstall).
    #[serde(default)]
    pub text: String,
    /// Its lists, by name.
    #[serde(default)]
    pub lists: BTreeMap<String, String>,
}

/// The manager's record of policy, shared with its standby mate (part of
/// [`super::Snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyHistory {
    /// Every version, oldest first (the oldest are dropped past the manager's limit).
    #[serde(default)]
    pub versions: Vec<PolicyVersion>,
    /// Per engine cluster, the version in force on every one of its servers (`None`:
    /// uninstalled); a cluster missing here has had nothing complete from this manager.
    #[serde(default)]
    pub installed: BTreeMap<String, Option<u64>>,
}

impl PolicyHistory {
    /// The version numbered `version`.
    pub fn get(&self, version: u64) -> Option<&PolicyVersion> {
        self.versions.iter().find(|v| v.summary.version == version)
    }

    /// The number the next version gets.
    pub fn next_version(&self) -> u64 {
        self.versions.last().map_or(1, |v| v.summary.version + 1)
    }
}

/// Rules and list entries one policy changes against another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChanges {
    /// Rules (by name) only the candidate has.
    #[serde(default)]
    pub rules_added: Vec<String>,
    /// Rules only the installed policy has.
    #[serde(default)]
    pub rules_removed: Vec<String>,
    /// Rules of the same name whose content differs.
    #[serde(default)]
    pub rules_changed: Vec<String>,
    /// Lists whose entries differ (or that only one policy has).
    #[serde(default)]
    pub lists: Vec<ListChange>,
    /// The counts.
    pub counts: ChangeCounts,
}

impl PolicyChanges {
    /// Whether the candidate changes nothing.
    pub fn is_empty(&self) -> bool {
        self.counts == ChangeCounts::default() && self.lists.is_empty()
    }
}

/// How many rules and list entries a change touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// Rules added.
    pub rules_added: usize,
    /// Rules removed.
    pub rules_removed: usize,
    /// Rules changed.
    pub rules_changed: usize,
    /// List entries added, over every list.
    pub entries_added: usize,
    /// List entries removed, over every list.
    pub entries_removed: usize,
}

/// One list's change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChange {
    /// The list's name.
    pub list: String,
    /// The installed policy has no such list.
    #[serde(default)]
    pub new_list: bool,
    /// The candidate has no such list.
    #[serde(default)]
    pub dropped_list: bool,
    /// How many entries only the candidate has.
    pub added_count: usize,
    /// How many entries only the installed policy has.
    pub removed_count: usize,
    /// The first added entries (at most [`LIST_SAMPLE`]).
    #[serde(default)]
    pub added: Vec<String>,
    /// The first removed entries (at most [`LIST_SAMPLE`]).
    #[serde(default)]
    pub removed: Vec<String>,
}

/// How many entries of a list change a preview names (the counts are always whole).
pub const LIST_SAMPLE: usize = 50;

/// What the candidate is compared with on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The version this manager installed there (text and lists).
    Manager,
    /// The text the cluster's engine reports (this manager installed nothing complete there):
    /// its lists' entries are not known, so every entry counts as added.
    Engine,
    /// Nothing is installed there.
    Nothing,
    /// No server of the cluster answered and this manager installed nothing complete there:
    /// every rule and entry counts as added.
    Unknown,
}

/// What a candidate changes on one engine cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPreview {
    /// The engine cluster.
    pub cluster: String,
    /// Its servers, which all receive the policy.
    pub servers: Vec<String>,
    /// The manager's version in force there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<u64>,
    /// What the changes are counted against.
    pub baseline: Baseline,
    /// The changes.
    pub changes: PolicyChanges,
}

/// A server whose release cannot read the candidate's schema (or that cannot be asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaBlocker {
    /// The server.
    pub hostname: String,
    /// Its engine cluster.
    pub cluster: String,
    /// The release it runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The newest schema it reads, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_policy_schema: Option<i64>,
    /// In words.
    pub reason: String,
}

/// `POST /api/v1/policy/preview`'s answer: what a push of the candidate would change, per
/// target cluster, and whether it would be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPreview {
    /// The schema the candidate declares.
    pub schema: i64,
    /// Its rules.
    pub rules: usize,
    /// The engine clusters that receive it.
    pub clusters: Vec<ClusterPreview>,
    /// A push would be refused, nothing installed: the mixed-version refusal in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The servers behind the refusal.
    #[serde(default)]
    pub blockers: Vec<SchemaBlocker>,
    /// An engine of the first target cluster that answered checked the candidate: whether it
    /// is valid (none: no engine could check it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Who checked it (the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_by: Option<String>,
    /// What that engine found wrong, each with file, line and field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<crate::Detail>,
}

/// `POST /api/v1/policy/rollback`: push an earlier version's policy again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// The version to go back to (a push or a roll-back, not an uninstall).
    pub version: u64,
    /// The engine clusters; empty: the ones that version was pushed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

/// `POST /api/v1/policy/uninstall`: remove the policy from the engine clusters named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UninstallRequest {
    /// The engine clusters (at least one; none means none, never all).
    pub clusters: Vec<String>,
    /// Must be [`UNINSTALL_CONFIRMATION`]: the operator saw what it does.
    #[serde(default)]
    pub confirm: String,
}

/// `POST /api/v1/policy/uninstall`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UninstallAnswer {
    /// The version recording the uninstall.
    pub version: u64,
    /// Per cluster.
    pub clusters: Vec<ClusterResult>,
}
