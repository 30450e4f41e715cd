//! The actions the Upgrade Director offers, with the seed's names ("Initiate upgrade CMP175-55
//! (next)", "Failover to new version mpe300 (next)", "Initiate backout MPE175-57 (back)", "Failover
//! to old version", "Reapply configuration"), and the steps each runs through (the upgrade log's
//! "Preflight Check", "Upgrading server", "Wait for replication to synchronize", ...).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which way a cluster is moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Towards the procedure's release ("Start Upgrade", "Continue Upgrade").
    Upgrade,
    /// Back to each server's previous release ("Start Rollback", "Continue Rollback").
    Backout,
}

/// Kinds of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    /// Upgrade a server that is not Active to the procedure's release.
    InitiateUpgrade,
    /// Restore a server's pre-upgrade image.
    InitiateBackout,
    /// Make a server that runs the procedure's release Active in place of one that does not.
    FailoverToNewVersion,
    /// Make a server that does not run the procedure's release Active in place of one that does.
    FailoverToOldVersion,
    /// Push the configuration to a non-manager cluster in its Active server's release's format.
    ReapplyConfiguration,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: [ActionKind; 5] = [
        ActionKind::InitiateUpgrade,
        ActionKind::InitiateBackout,
        ActionKind::FailoverToNewVersion,
        ActionKind::FailoverToOldVersion,
        ActionKind::ReapplyConfiguration,
    ];

    /// The seed's name.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::InitiateUpgrade => "Initiate upgrade",
            ActionKind::InitiateBackout => "Initiate backout",
            ActionKind::FailoverToNewVersion => "Failover to new version",
            ActionKind::FailoverToOldVersion => "Failover to old version",
            ActionKind::ReapplyConfiguration => "Reapply configuration",
        }
    }

    /// The direction it moves a cluster in (none for Reapply configuration, which both take).
    pub fn direction(self) -> Option<Direction> {
        match self {
            ActionKind::InitiateUpgrade | ActionKind::FailoverToNewVersion => Some(Direction::Upgrade),
            ActionKind::InitiateBackout | ActionKind::FailoverToOldVersion => Some(Direction::Backout),
            ActionKind::ReapplyConfiguration => None,
        }
    }

    /// Whether it acts on one server (log scope "Server") rather than on the cluster.
    pub fn is_server_action(self) -> bool {
        matches!(self, ActionKind::InitiateUpgrade | ActionKind::InitiateBackout)
    }

    /// The steps it runs through, in order; the first is logged as the parent entry.
    pub fn steps(self) -> &'static [Step] {
        match self {
            ActionKind::InitiateUpgrade => &[Step::PreflightCheck, Step::UpgradingServer, Step::WaitForReplication],
            ActionKind::InitiateBackout => &[Step::BackingOutServerUpgrade, Step::WaitForReplication],
            ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion => &[Step::Failover],
            ActionKind::ReapplyConfiguration => &[Step::ReapplyConfiguration],
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step of an action, as the upgrade log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    /// "Preflight Check": conditions that guarantee a failed upgrade (the staged bundle).
    PreflightCheck,
    /// "Upgrading server": the server is out of service, installing the new release.
    UpgradingServer,
    /// "Backing out server upgrade": the server is out of service, restoring its previous image.
    BackingOutServerUpgrade,
    /// "Wait for replication to synchronize" ("Waiting ..." in a backout).
    WaitForReplication,
    /// The switchover of a failover action.
    Failover,
    /// Pushing the configuration.
    ReapplyConfiguration,
}

impl Step {
    /// The name the upgrade log gives the step within `kind`.
    pub fn log_name(self, kind: ActionKind) -> &'static str {
        match self {
            Step::PreflightCheck => "Preflight Check",
            Step::UpgradingServer => "Upgrading server",
            Step::BackingOutServerUpgrade => "Backing out server upgrade",
            Step::WaitForReplication if kind == ActionKind::InitiateBackout => "Waiting for replication to synchronize",
            Step::WaitForReplication => "Wait for replication to synchronize",
            Step::Failover => kind.name(),
            Step::ReapplyConfiguration => "Reapply configuration",
        }
    }

    /// Whether the server is out of service (OOS) during the step.
    pub fn takes_server_out(self) -> bool {
        matches!(self, Step::UpgradingServer | Step::BackingOutServerUpgrade | Step::WaitForReplication)
    }
}

/// An action on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Action {
    /// What.
    pub kind: ActionKind,
    /// The cluster.
    pub cluster: String,
    /// The server upgraded or backed out, or the one a failover makes Active; none for Reapply
    /// configuration.
    pub server: Option<String>,
}

impl Action {
    /// Initiate upgrade of `server`.
    pub fn initiate_upgrade(cluster: &str, server: &str) -> Self {
        Action { kind: ActionKind::InitiateUpgrade, cluster: cluster.into(), server: Some(server.into()) }
    }

    /// Initiate backout of `server`.
    pub fn initiate_backout(cluster: &str, server: &str) -> Self {
        Action { kind: ActionKind::InitiateBackout, cluster: cluster.into(), server: Some(server.into()) }
    }

    /// Failover to new version: `to` becomes Active.
    pub fn failover_to_new_version(cluster: &str, to: &str) -> Self {
        Action { kind: ActionKind::FailoverToNewVersion, cluster: cluster.into(), server: Some(to.into()) }
    }

    /// Failover to old version: `to` becomes Active.
    pub fn failover_to_old_version(cluster: &str, to: &str) -> Self {
        Action { kind: ActionKind::FailoverToOldVersion, cluster: cluster.into(), server: Some(to.into()) }
    }

    /// Reapply configuration to `cluster`.
    pub fn reapply_configuration(cluster: &str) -> Self {
        Action { kind: ActionKind::ReapplyConfiguration, cluster: cluster.into(), server: None }
    }

    /// What the upgrade log's Hostname column and the alarms name: the server for a server
    /// action, else the cluster.
    pub fn scope_name(&self) -> &str {
        match &self.server {
            Some(s) if self.kind.is_server_action() => s,
            _ => &self.cluster,
        }
    }
}

impl fmt::Display for Action {
    /// As the seed's confirmation dialog: "Initiate upgrade CMP175-55", "Failover to new version
    /// mpe300".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.scope_name())
    }
}

/// An action offered for a cluster: the preferred one behind the Upgrade / Backout button, or one
/// of the "Advanced" menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The seed's name ("Initiate upgrade").
    pub name: &'static str,
    /// The action.
    pub action: Action,
    /// The servers it acts on (the one upgraded or backed out; for a failover, the one made
    /// Active then the one giving up; for Reapply configuration, the Active one).
    pub targets: Vec<String>,
    /// The button's label: "Initiate upgrade CMP175-55 (next)", "Initiate backout MPE175-57
    /// (back)"; no suffix for the other actions.
    pub label: String,
    /// What it will do.
    pub description: String,
}

/// Who started an action: the upgrade log's Mode column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// An operator ("User initiated action").
    Manual {
        /// Who.
        user: String,
    },
    /// The manager itself.
    Automatic,
}

/// Identifies a started action in the events that report on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
