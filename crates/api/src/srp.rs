//! The SRP chassis' operator API: the `show srp ...` views and the `srp ...` commands (the
//! Service Redundancy Protocol of an engine pair), as one typed list shared by the CLI, the
//! web router and the SRP runtime.
//!
//! Routes (`tollgate-web`): `GET /api/v1/srp/show/{view}` ([`SrpView`]) and
//! `POST /api/v1/srp/{command}` ([`SrpCommand`]); bodies [`NackBody`], [`ForcedStandbyBody`],
//! query [`SwitchoverQuery`]. Every answer is an [`SrpReply`]: the text the CLI prints and the
//! same as data, whose type depends on the view or command (the runtime's `SrpData`).
//!
//! Compatibility: views and commands are addressed by name in the URL; a name this release does
//! not know is refused by the server (404), so a newer CLI asking an older engine gets an
//! answer, not a crash. Names are never renamed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One `show srp ...` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrpView {
    /// `show srp info`: this chassis, its mate, the connection.
    Info,
    /// `show srp statistics`: the link and the switchovers.
    Statistics,
    /// `show srp checkpoint statistics`.
    CheckpointStatistics,
    /// `show srp checkpoint info`: per micro-checkpoint command.
    CheckpointInfo,
    /// `show srp monitor`: each monitored target.
    Monitor,
    /// `show srp call-loss statistics`: what each switchover recovered.
    CallLossStatistics,
    /// `show srp audit-statistics`.
    AuditStatistics,
    /// The velocity counters (on a Standby, its copy of the Active's).
    Velocity,
    /// Calls in progress per caller (on a Standby, its copy of the Active's).
    Concurrent,
}

impl SrpView {
    /// Every view, in the order help texts list them.
    pub const ALL: [SrpView; 9] = [
        SrpView::Info,
        SrpView::Statistics,
        SrpView::CheckpointStatistics,
        SrpView::CheckpointInfo,
        SrpView::Monitor,
        SrpView::CallLossStatistics,
        SrpView::AuditStatistics,
        SrpView::Velocity,
        SrpView::Concurrent,
    ];

    /// Every view.
    pub fn all() -> &'static [SrpView] {
        &Self::ALL
    }

    /// The view's name in URLs and on the command line (`checkpoint-statistics`).
    pub fn name(self) -> &'static str {
        match self {
            SrpView::Info => "info",
            SrpView::Statistics => "statistics",
            SrpView::CheckpointStatistics => "checkpoint-statistics",
            SrpView::CheckpointInfo => "checkpoint-info",
            SrpView::Monitor => "monitor",
            SrpView::CallLossStatistics => "call-loss-statistics",
            SrpView::AuditStatistics => "audit-statistics",
            SrpView::Velocity => "velocity",
            SrpView::Concurrent => "concurrent",
        }
    }

    /// The view of words as an operator types them (`checkpoint statistics`,
    /// `call-loss statistics`, `audit-statistics`): joined with `-`, case-insensitive.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<SrpView, UnknownName> {
        let joined: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        joined.join("-").parse()
    }

    /// The names of every view, comma-separated (for help and error texts).
    pub fn names() -> String {
        Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
    }

    /// The API path of this view.
    pub fn path(self) -> String {
        format!("/api/v1/srp/show/{}", self.name())
    }
}

impl fmt::Display for SrpView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A view or command name this release does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SRP {what} {name:?} (one of: {known})")]
pub struct UnknownName {
    /// `view` or `command`.
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The names known, comma-separated.
    pub known: String,
}

impl FromStr for SrpView {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<SrpView, UnknownName> {
        let lower = s.trim().to_lowercase();
        Self::ALL.into_iter().find(|v| v.name() == lower).ok_or_else(|| UnknownName {
            what: "view",
            name: s.to_string(),
            known: Self::names(),
        })
    }
}

/// One `srp ...` command (`POST /api/v1/srp/{command}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SrpCommand {
    /// `srp validate-switchover`: is the standby ready for a planned switchover?
    ValidateSwitchover,
    /// `srp initiate-switchover [--force]`.
    InitiateSwitchover,
    /// `srp initiate-audit`.
    InitiateAudit,
    /// `srp disable|enable nack micro-chkpt-cmd N` (body [`NackBody`]).
    Nack,
    /// `srp forced-standby on|off` (body [`ForcedStandbyBody`]).
    ForcedStandby,
    /// `srp validate-configuration`.
    ValidateConfiguration,
}

impl SrpCommand {
    /// Every command.
    pub const ALL: [SrpCommand; 6] = [
        SrpCommand::ValidateSwitchover,
        SrpCommand::InitiateSwitchover,
        SrpCommand::InitiateAudit,
        SrpCommand::Nack,
        SrpCommand::ForcedStandby,
        SrpCommand::ValidateConfiguration,
    ];

    /// Every command.
    pub fn all() -> &'static [SrpCommand] {
        &Self::ALL
    }

    /// The command's name in URLs.
    pub fn name(self) -> &'static str {
        match self {
            SrpCommand::ValidateSwitchover => "validate-switchover",
            SrpCommand::InitiateSwitchover => "initiate-switchover",
            SrpCommand::InitiateAudit => "initiate-audit",
            SrpCommand::Nack => "nack",
            SrpCommand::ForcedStandby => "forced-standby",
            SrpCommand::ValidateConfiguration => "validate-configuration",
        }
    }

    /// Whether the command only reads (a viewer may run it); the others change the chassis
    /// (operator).
    pub fn read_only(self) -> bool {
        matches!(self, SrpCommand::ValidateSwitchover | SrpCommand::ValidateConfiguration)
    }

    /// The names of every command, comma-separated.
    pub fn names() -> String {
        Self::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
    }

    /// The API path of this command.
    pub fn path(self) -> String {
        format!("/api/v1/srp/{}", self.name())
    }
}

impl fmt::Display for SrpCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SrpCommand {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<SrpCommand, UnknownName> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| UnknownName {
            what: "command",
            name: s.to_string(),
            known: Self::names(),
        })
    }
}

/// An operator request to the SRP chassis, as the runtime receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SrpRequest {
    /// `show srp <view>`.
    Show(SrpView),
    /// `srp validate-switchover`.
    ValidateSwitchover,
    /// `srp initiate-switchover [force]`.
    InitiateSwitchover {
        /// Even when the standby is not synchronised.
        force: bool,
    },
    /// `srp initiate-audit`.
    InitiateAudit,
    /// `srp disable|enable nack micro-chkpt-cmd N`.
    Nack {
        /// The micro-checkpoint command id.
        cmd: u16,
        /// Enable (true) or disable.
        enable: bool,
    },
    /// `srp validate-configuration`.
    ValidateConfiguration,
    /// `srp forced-standby on|off`: hold this chassis out of service (the Upgrade Director's
    /// forced standby), or release it.
    ForcedStandby {
        /// Hold (true) or release.
        on: bool,
    },
}

impl SrpRequest {
    /// The command this request is (none for a `show`).
    pub fn command(&self) -> Option<SrpCommand> {
        Some(match self {
            SrpRequest::Show(_) => return None,
            SrpRequest::ValidateSwitchover => SrpCommand::ValidateSwitchover,
            SrpRequest::InitiateSwitchover { .. } => SrpCommand::InitiateSwitchover,
            SrpRequest::InitiateAudit => SrpCommand::InitiateAudit,
            SrpRequest::Nack { .. } => SrpCommand::Nack,
            SrpRequest::ValidateConfiguration => SrpCommand::ValidateConfiguration,
            SrpRequest::ForcedStandby { .. } => SrpCommand::ForcedStandby,
        })
    }
}

/// Body of `POST /api/v1/srp/nack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackBody {
    /// The micro-checkpoint command id (1..=255).
    pub cmd: u16,
    /// Enable (true) or disable.
    pub enable: bool,
}

/// Body of `POST /api/v1/srp/forced-standby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedStandbyBody {
    /// Hold (true) or release.
    pub on: bool,
}

/// Query of `POST /api/v1/srp/initiate-switchover`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverQuery {
    /// Even when the standby is not synchronised.
    #[serde(default)]
    pub force: bool,
}

impl SwitchoverQuery {
    /// The path and query of `initiate-switchover` with these options.
    pub fn path(self) -> String {
        format!("{}?force={}", SrpCommand::InitiateSwitchover.path(), self.force)
    }
}

/// Every SRP answer: the text as the CLI prints it, and the same as data (`D` depends on the
/// view or command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SrpReply<D> {
    /// Human-readable output, one line or a table, ending in a newline.
    pub text: String,
    /// Machine-readable output.
    pub data: D,
}

/// Data of `validate-switchover`: the standby is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverValidated {
    /// Always true (a refusal is an error).
    pub valid: bool,
}

/// Data of `initiate-audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStarted {
    /// Always true (a refusal is an error).
    pub started: bool,
}

/// Data of `nack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackSet {
    /// The micro-checkpoint command id.
    pub cmd: u16,
    /// NACKs now enabled for it.
    pub nack_enabled: bool,
}

/// Data of `validate-configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationValid {
    /// Always true (a refusal is an error).
    pub valid: bool,
    /// Whether the mate's configuration digest matches (none: not connected).
    #[serde(default)]
    pub peer_config_matches: Option<bool>,
}

/// One velocity counter (`show srp velocity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VelocityCounter {
    /// Rule name.
    pub rule: String,
    /// Calling number (E.164, `+` and digits).
    pub source: String,
    /// The rule's window, µs.
    #[serde(default)]
    pub window_us: i64,
    /// Times of the most recent calls, µs, oldest first.
    pub times: Vec<i64>,
}

/// Calls in progress of one caller (`show srp concurrent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrentCalls {
    /// Calling number.
    pub source: String,
    /// Calls in progress.
    pub calls: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_commands_parse_from_their_names() {
        for v in SrpView::all() {
            assert_eq!(v.name().parse::<SrpView>().unwrap(), *v);
        }
        for c in SrpCommand::all() {
            assert_eq!(c.name().parse::<SrpCommand>().unwrap(), *c);
        }
        assert_eq!(SrpView::from_words(&["checkpoint", "statistics"]).unwrap(), SrpView::CheckpointStatistics);
        assert_eq!(SrpView::from_words(&["Call-Loss", "statistics"]).unwrap(), SrpView::CallLossStatistics);
        let e = "nonsense".parse::<SrpView>().unwrap_err().to_string();
        assert!(e.contains("concurrent"), "{e}");
    }
}
