//! The Upgrade Director (seed 000 §1.3.1.4): a pure state machine that tracks the servers,
//! clusters and system during an upgrade or a backout and decides what may happen next.
//!
//! * Per cluster it proposes the NEXT PREFERRED ACTION in each direction (the Upgrade / Backout
//!   buttons, "Initiate upgrade CMP175-55 (next)") and the OTHER LEGAL ACTIONS (the "Advanced"
//!   menu), see [`Director::advise`]; any other action is refused with a reason
//!   ([`Director::check`]).
//! * Across the system it orders clusters (manager clusters first, the Primary before the
//!   Secondary, then segment by segment with the primary site first; backout in reverse) and caps
//!   the clusters in progress at once ([`DirectorConfig::max_parallel_clusters`]), see
//!   [`Director::next_actions`].
//! * It is driven by [`Event`]s through [`Director::apply`] (or the free function [`apply`]) and
//!   answers with [`Effect`]s: actions to execute, forced-standby changes, alarms to raise and
//!   clear, upgrade log and audit log entries.
//!
//! Rules, from seed 000:
//! * Upgrade order within a cluster (§1.3.1.6 "Upgrade Order"): upgrade the Standby, fail over to
//!   the new version, reapply the configuration (non-manager clusters), upgrade the Spare, upgrade
//!   the remaining server. A backout takes the reverse order (§1.8.1).
//! * "It should be possible to reverse directions at any time ... However, you are not permitted
//!   to reverse direction if there is an ongoing action": one action at a time per cluster; while
//!   it runs, every other action on the cluster is refused.
//! * "Every server that is NOT running the same version as the active server must be in forced
//!   standby": the Director keeps forced standby itself ([`Effect::SetForcedStandby`]); a server
//!   taken out of service by an action is in forced standby too; the target of a running failover
//!   is released from it so that it can take over.
//! * Service continues: a server action never targets the Active server of a cluster of two or
//!   more (fail over first), and needs the Active in service; one action at a time keeps a second
//!   server from leaving.
//! * "Any failure should generate an UPGRADE_OPERATION_FAILED alarm. In such cases, the operation
//!   can be attempted again"; "if the server is in an indeterminate state, the server is declared a
//!   ZOMBIE and no further action can be taken on the server".
//! * "The promoted Upgrade Director ... waits until it can contact the unreachable server before
//!   it takes action on the server" ([`Event::ManagerFailover`]).
//! * Mixed versions (§1.2.3.2, Table 1): no non-manager server is upgraded before every manager
//!   server runs the new release, and no manager server is backed out while a non-manager server
//!   still runs it; the Primary manager cluster goes first, the Secondary last back.
//!
//! No I/O, no clock: times come in with the events. The whole state is serialisable.

mod action;
mod apply;
mod event;
mod log;
mod plan;
mod reconcile;
mod rules;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use action::{Action, ActionId, ActionKind, Direction, Mode, Proposal, Step};
pub use apply::apply;
pub use event::{Effect, Event, ServerReport};
pub use log::{AuditEntry, AuditOutcome, LogMode, LogResult, LogScope, UPGRADE_LOG_COLUMNS, UpgradeLogEntry};
pub use plan::Advice;

use crate::release::{Release, ReleasePattern};
use crate::topology::{HaRole, Topology, TopologyError};

/// The seed's limit: "Up to 16 non-CMP clusters can be upgraded in parallel".
pub const DEFAULT_MAX_PARALLEL_CLUSTERS: usize = 16;

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorConfig {
    /// Most clusters in progress (upgrading or backing out, not settled) at once; at least 1.
    pub max_parallel_clusters: usize,
}

impl Default for DirectorConfig {
    fn default() -> Self {
        DirectorConfig { max_parallel_clusters: DEFAULT_MAX_PARALLEL_CLUSTERS }
    }
}

/// The upgrade procedure in force: the seed's "Current ISO" (the manager's verified bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Procedure {
    /// The release it installs.
    pub release: Release,
    /// The releases it upgrades from.
    pub upgrades_from: Vec<ReleasePattern>,
    /// Its label ("incremental-upgrade-0.2.0").
    pub label: String,
}

/// Kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefusalKind {
    /// No upgrade procedure is selected.
    NoProcedure,
    /// No such cluster.
    UnknownCluster,
    /// No such server in the cluster.
    UnknownServer,
    /// An action already runs in the cluster (or, for a procedure change, anywhere).
    ActionInProgress,
    /// The server is a Zombie.
    Zombie,
    /// The server cannot be reached.
    Offline,
    /// The Director was promoted after a manager failover and has not heard from the server.
    AwaitingContact,
    /// The action does not apply to the current state (already done, nothing to undo).
    NotApplicable,
    /// The action would leave the cluster without a serving server.
    WouldStopService,
    /// Clusters go in order: manager clusters first (Primary, then Secondary), back out last.
    UpgradeOrder,
    /// The limit of clusters in progress at once is reached.
    ParallelLimit,
    /// The server's staged bundle would fail the preflight check.
    PreflightWouldFail,
    /// The procedure does not upgrade from the server's release.
    UnsupportedUpgradePath,
    /// The server keeps no pre-upgrade image to back out to.
    NoPreviousRelease,
}

/// Why something was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Kind.
    pub kind: RefusalKind,
    /// For the operator.
    pub reason: String,
}

impl Refusal {
    pub(crate) fn new(kind: RefusalKind, reason: impl Into<String>) -> Self {
        Refusal { kind, reason: reason.into() }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What a server or cluster looked like when an action started; a success sets the outcome from
/// it, so that reports arriving meanwhile cannot be applied twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Before {
    /// The server's running release (for Reapply configuration: the Active's).
    pub running: Release,
    /// The server's previous release.
    pub previous: Option<Release>,
    /// The Active server (failovers).
    pub active: Option<String>,
    /// The HA role of the server the action targets.
    pub role: Option<HaRole>,
}

/// An action that runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningAction {
    /// Its id.
    pub id: ActionId,
    /// The action.
    pub action: Action,
    /// Who started it.
    pub mode: Mode,
    /// The step it is in.
    pub step: Step,
    /// The release of the procedure it runs under.
    pub target: Release,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// State before it.
    pub before: Before,
    /// Started before a manager failover: its outcome is learnt from the server's reports.
    pub orphaned: bool,
    /// The log entry of its first step (the parent of the others).
    pub parent_log: UpgradeLogEntry,
    /// The log entry of its current step, when past the first.
    pub step_log: Option<UpgradeLogEntry>,
}

/// The Upgrade Director's whole state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Director {
    topology: Topology,
    procedure: Option<Procedure>,
    config: DirectorConfig,
    /// Running actions, by cluster.
    running: BTreeMap<String, RunningAction>,
    /// Failed actions not succeeded since (70506), by scope: reason.
    failures: BTreeMap<String, String>,
    /// Alarms raised: (alarm ID, scope).
    raised: BTreeSet<(u32, String)>,
    /// The direction of each cluster's last successful action (for the buttons' labels).
    #[serde(default)]
    last_direction: BTreeMap<String, Direction>,
    /// When the last action of each cluster ended: a report observed before then is stale
    /// (it may show the roles or releases from before a failover or an install).
    #[serde(default)]
    settled_at: BTreeMap<String, DateTime<Utc>>,
    next_action_id: u64,
    next_log_id: u64,
}

impl Director {
    /// A Director for a validated `topology`. Non-manager clusters whose configuration release is
    /// not recorded are taken to have their Active's configuration applied. Call
    /// [`Director::resync`] next and carry out its effects.
    pub fn new(
        mut topology: Topology,
        procedure: Option<Procedure>,
        config: DirectorConfig,
    ) -> Result<Director, Vec<TopologyError>> {
        topology.validate()?;
        for c in topology.clusters.iter_mut().filter(|c| !c.is_manager() && c.config_release.is_none()) {
            c.config_release = c.active().map(|a| a.running_release.clone());
        }
        Ok(Director {
            topology,
            procedure,
            config,
            running: BTreeMap::new(),
            failures: BTreeMap::new(),
            raised: BTreeSet::new(),
            last_direction: BTreeMap::new(),
            settled_at: BTreeMap::new(),
            next_action_id: 1,
            next_log_id: 1,
        })
    }

    /// The topology as the Director knows it.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The procedure in force.
    pub fn procedure(&self) -> Option<&Procedure> {
        self.procedure.as_ref()
    }

    /// The release the procedure installs.
    pub fn target(&self) -> Option<&Release> {
        self.procedure.as_ref().map(|p| &p.release)
    }

    /// Settings.
    pub fn config(&self) -> DirectorConfig {
        self.config
    }

    /// Changes the settings (a lower parallel limit stops new clusters from starting; it never
    /// interrupts the clusters in progress).
    pub fn set_config(&mut self, config: DirectorConfig) {
        self.config = config;
    }

    /// The action running in `cluster`.
    pub fn running_action(&self, cluster: &str) -> Option<&RunningAction> {
        self.running.get(cluster)
    }

    /// Every running action.
    pub fn running_actions(&self) -> impl Iterator<Item = &RunningAction> {
        self.running.values()
    }

    /// Failed actions not succeeded since, by scope (hostname or cluster): why.
    pub fn failures(&self) -> &BTreeMap<String, String> {
        &self.failures
    }

    /// Alarms the Director has raised: (alarm ID, scope).
    pub fn raised_alarms(&self) -> &BTreeSet<(u32, String)> {
        &self.raised
    }
}
