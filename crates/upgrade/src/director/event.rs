//! What the Upgrade Director is told ([`Event`]) and what it asks its owner to do ([`Effect`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::action::{Action, ActionId, Mode, Step};
use super::log::{AuditEntry, UpgradeLogEntry};
use super::{Procedure, Refusal};
use crate::release::Release;
use crate::topology::{HaRole, StagedBundle};
use tollgate_alarms::AlarmDef;

/// What a server's agent reports (or, with `reachable: false`, that the manager could not reach
/// it). Fields left `None` are unknown and keep their last value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReport {
    /// The manager reached the server; when false, nothing else in the report is used.
    pub reachable: bool,
    /// The release it runs; `None` when the agent cannot tell, which makes it a Zombie.
    pub running_release: Option<Release>,
    /// The release whose image it keeps for a backout.
    pub previous_release: Option<Release>,
    /// Its HA role.
    pub ha_role: Option<HaRole>,
    /// Whether it is held in forced standby.
    pub forced_standby: Option<bool>,
    /// What is staged in its staging directory.
    pub staged: Option<Vec<StagedBundle>>,
    /// Whether an upgrade or backout runs on it now.
    pub busy: bool,
}

impl ServerReport {
    /// The manager could not reach the server.
    pub fn unreachable() -> Self {
        ServerReport {
            reachable: false,
            running_release: None,
            previous_release: None,
            ha_role: None,
            forced_standby: None,
            staged: None,
            busy: false,
        }
    }
}

/// An input of the Upgrade Director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An operator (Mode Manual) or the manager (Automatic) starts an action. The Director
    /// checks it: a legal action is recorded and answered with [`Effect::Execute`], an illegal
    /// one with [`Effect::Refused`].
    ActionStarted {
        /// The action.
        action: Action,
        /// Who starts it.
        mode: Mode,
        /// When.
        at: DateTime<Utc>,
    },
    /// The executor of an action moved on to a later step.
    ActionProgress {
        /// The action ([`Effect::Execute`] gave it).
        id: ActionId,
        /// The step it is now in.
        step: Step,
        /// When.
        at: DateTime<Utc>,
    },
    /// The action completed.
    ActionSucceeded {
        /// The action.
        id: ActionId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The action failed. It can be attempted again unless `indeterminate`.
    ActionFailed {
        /// The action.
        id: ActionId,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: String,
        /// The server is left in a state the executor cannot determine: it becomes a Zombie.
        indeterminate: bool,
    },
    /// A server's agent reported (or could not be reached).
    ServerReported {
        /// The server.
        hostname: String,
        /// What it reported.
        report: ServerReport,
        /// When it was observed (when the agent was asked). A report observed before the last
        /// action of its cluster ended is ignored as stale.
        at: DateTime<Utc>,
    },
    /// This Director was promoted by a failover of the manager cluster: it does not have the
    /// full history, so it waits to hear from every unreachable server, and from the server of
    /// every action that was running, before acting on them.
    ManagerFailover {
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator selected another upgrade procedure (the seed's "Current ISO"), abandoning the
    /// current one; none deselects it.
    ProcedureSelected {
        /// The new procedure.
        procedure: Option<Procedure>,
        /// Who.
        user: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Support repaired a Zombie server: the Director takes it back once it reports.
    ZombieRepaired {
        /// The server.
        hostname: String,
        /// Who says so.
        user: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// An output of the Upgrade Director, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// Carry out the action, then report [`Event::ActionProgress`] at each step and finally
    /// [`Event::ActionSucceeded`] or [`Event::ActionFailed`] with this id. Initiate upgrade /
    /// backout: the agent on the server runs the steps ([`crate::director::ActionKind::steps`]).
    /// Failover: switch the cluster over to the named server, lifting its forced standby for the
    /// switchover (the Director sets forced standby as the releases require once it succeeded).
    /// Reapply configuration: push the configuration to the cluster's Active server.
    Execute {
        /// The action's id.
        id: ActionId,
        /// The action.
        action: Action,
    },
    /// A request was refused; nothing changed.
    Refused {
        /// The action refused (none for other requests).
        action: Option<Action>,
        /// Why.
        refusal: Refusal,
    },
    /// Place a server in forced standby, or release it ("Modify the role/replication attributes
    /// of the server").
    SetForcedStandby {
        /// The server.
        hostname: String,
        /// In (true) or out (false) of forced standby.
        on: bool,
    },
    /// Raise an alarm (idempotent: [`tollgate_alarms::Alarms::raise`]).
    RaiseAlarm {
        /// Which.
        def: AlarmDef,
        /// On what: a hostname, a cluster name, or [`crate::topology::SYSTEM_SCOPE`].
        scope: String,
        /// Details.
        detail: String,
    },
    /// Clear an alarm.
    ClearAlarm {
        /// Which.
        def: AlarmDef,
        /// On what.
        scope: String,
    },
    /// Store this upgrade log entry, replacing any with the same ID.
    UpgradeLog(UpgradeLogEntry),
    /// Append this to the operator audit log.
    Audit(AuditEntry),
    /// The event referred to nothing the Director knows (a stale action id, an unknown server).
    Ignored {
        /// Why.
        reason: String,
    },
}
