//! The transitions: `(state, event) -> (state, effects)`.

use chrono::{DateTime, Utc};

use super::action::{Action, ActionId, ActionKind, Direction, Mode, Step};
use super::event::{Effect, Event, ServerReport};
use super::log::{AuditEntry, AuditOutcome, LogMode, LogResult, LogScope, UpgradeLogEntry};
use super::{Before, Director, Procedure, Refusal, RefusalKind, RunningAction};
use crate::topology::HaRole;

/// Applies `event` to `state`: the new state and the effects to carry out, in order.
pub fn apply(mut state: Director, event: Event) -> (Director, Vec<Effect>) {
    let effects = state.apply(event);
    (state, effects)
}

/// How an action ended.
enum Outcome {
    Succeeded,
    Failed { reason: String, indeterminate: bool },
}

fn audit(at: DateTime<Utc>, user: &str, operation: String, outcome: AuditOutcome, detail: String) -> Effect {
    Effect::Audit(AuditEntry { at, user: user.to_string(), operation, outcome, detail })
}

impl Director {
    /// Applies `event`; returns the effects to carry out, in order.
    pub fn apply(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::ActionStarted { action, mode, at } => self.on_started(action, mode, at),
            Event::ActionProgress { id, step, at } => self.on_progress(id, step, at),
            Event::ActionSucceeded { id, at } => self.on_finished(id, at, Outcome::Succeeded),
            Event::ActionFailed { id, at, reason, indeterminate } => {
                self.on_finished(id, at, Outcome::Failed { reason, indeterminate })
            }
            Event::ServerReported { hostname, report, at } => self.on_report(&hostname, report, at),
            Event::ManagerFailover { at } => self.on_manager_failover(at),
            Event::ProcedureSelected { procedure, user, at } => self.on_procedure_selected(procedure, &user, at),
            Event::ZombieRepaired { hostname, user, at } => self.on_zombie_repaired(&hostname, &user, at),
        }
    }

    fn cluster_of(&self, id: ActionId) -> Option<String> {
        self.running.values().find(|r| r.id == id).map(|r| r.action.cluster.clone())
    }

    /// Opens a log entry for `step` of `action`: the parent entry (mode given) or a child.
    fn open_entry(
        &mut self,
        action: &Action,
        step: Step,
        mode: Option<&Mode>,
        at: DateTime<Utc>,
        parent_id: u64,
    ) -> UpgradeLogEntry {
        let (scope, hostname) = if action.kind.is_server_action() {
            (LogScope::Server, action.scope_name().to_string())
        } else {
            (LogScope::Cluster, action.cluster.clone())
        };
        let (log_mode, description) = match mode {
            Some(Mode::Manual { user }) => (LogMode::Manual, format!("User initiated action: {action} (by {user})")),
            Some(Mode::Automatic) => (LogMode::Automatic, format!("Automatic action: {action}")),
            None => (LogMode::Automatic, format!("Automatic action for {action}: {}", step.log_name(action.kind))),
        };
        UpgradeLogEntry {
            id: self.take_log_id(),
            parent_id,
            action_name: step.log_name(action.kind).to_string(),
            start: at,
            end: None,
            scope,
            hostname,
            result: LogResult::InProgress,
            mode: log_mode,
            description,
            cluster: action.cluster.clone(),
        }
    }

    fn on_started(&mut self, action: Action, mode: Mode, at: DateTime<Utc>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let checked = self.check(&action);
        if let Mode::Manual { user } = &mode {
            let (outcome, detail) = match &checked {
                Ok(()) => (AuditOutcome::Accepted, "started".to_string()),
                Err(r) => (AuditOutcome::Refused, r.reason.clone()),
            };
            effects.push(audit(at, user, action.to_string(), outcome, detail));
        }
        if let Err(refusal) = checked {
            effects.push(Effect::Refused { action: Some(action), refusal });
            return effects;
        }
        // check() found the cluster, the server (when named) and a procedure.
        let (Some(c), Some(target)) = (self.topology.cluster(&action.cluster), self.target().cloned()) else {
            return effects;
        };
        let active = c.active();
        let server = action.server.as_deref().and_then(|h| c.server(h));
        let before = match (action.kind.is_server_action(), server, active) {
            (true, Some(s), _) => Before {
                running: s.running_release.clone(),
                previous: s.previous_release.clone(),
                active: active.map(|a| a.hostname.clone()),
                role: Some(s.ha_role),
            },
            (false, _, Some(a)) => Before {
                running: a.running_release.clone(),
                previous: None,
                active: Some(a.hostname.clone()),
                role: server.map(|s| s.ha_role),
            },
            _ => return effects,
        };
        let id = ActionId(self.next_action_id);
        self.next_action_id += 1;
        let first = action.kind.steps().first().copied().unwrap_or(Step::Failover);
        let parent_log = self.open_entry(&action, first, Some(&mode), at, 0);
        effects.push(Effect::UpgradeLog(parent_log.clone()));
        if first.takes_server_out()
            && action.kind.is_server_action()
            && let Some(s) = self.topology.server_mut(action.scope_name())
        {
            s.out_of_service = true;
        }
        let running = RunningAction {
            id,
            action: action.clone(),
            mode,
            step: first,
            target,
            started_at: at,
            before,
            orphaned: false,
            parent_log,
            step_log: None,
        };
        self.running.insert(action.cluster.clone(), running);
        effects.extend(self.reconcile(at, None));
        effects.push(Effect::Execute { id, action });
        effects
    }

    fn on_progress(&mut self, id: ActionId, step: Step, at: DateTime<Utc>) -> Vec<Effect> {
        let Some(cluster) = self.cluster_of(id) else {
            return vec![Effect::Ignored { reason: format!("no running action {id}") }];
        };
        let Some(mut ra) = self.running.remove(&cluster) else { return Vec::new() };
        let steps = ra.action.kind.steps();
        let (now, next) = (steps.iter().position(|s| *s == ra.step), steps.iter().position(|s| *s == step));
        if !matches!((now, next), (Some(a), Some(b)) if b > a) {
            let reason = format!("{} of {} does not follow {:?}", step.log_name(ra.action.kind), ra.action, ra.step);
            self.running.insert(cluster, ra);
            return vec![Effect::Ignored { reason }];
        }
        let mut effects = Vec::new();
        match ra.step_log.take() {
            Some(mut current) => {
                current.close(at, LogResult::Success, None);
                effects.push(Effect::UpgradeLog(current));
            }
            None => {
                ra.parent_log.close(at, LogResult::Success, None);
                effects.push(Effect::UpgradeLog(ra.parent_log.clone()));
            }
        }
        let child = self.open_entry(&ra.action, step, None, at, ra.parent_log.id);
        effects.push(Effect::UpgradeLog(child.clone()));
        ra.step_log = Some(child);
        ra.step = step;
        if step.takes_server_out()
            && ra.action.kind.is_server_action()
            && let Some(s) = self.topology.server_mut(ra.action.scope_name())
        {
            s.out_of_service = true;
        }
        self.running.insert(cluster, ra);
        effects.extend(self.reconcile(at, None));
        effects
    }

    fn on_finished(&mut self, id: ActionId, at: DateTime<Utc>, outcome: Outcome) -> Vec<Effect> {
        let Some(cluster) = self.cluster_of(id) else {
            return vec![Effect::Ignored { reason: format!("no running action {id}") }];
        };
        let Some((mut effects, ra)) = self.finish(&cluster, at, outcome) else { return Vec::new() };
        effects.extend(self.reconcile(at, Some(&ra)));
        effects
    }

    /// Ends the action running in `cluster`: closes its log entry, applies the outcome to the
    /// topology, records or clears the failure. Does not reconcile.
    fn finish(&mut self, cluster: &str, at: DateTime<Utc>, outcome: Outcome) -> Option<(Vec<Effect>, RunningAction)> {
        let mut ra = self.running.remove(cluster)?;
        self.settled_at.insert(cluster.to_string(), at);
        let scope = ra.action.scope_name().to_string();
        let (result, reason) = match &outcome {
            Outcome::Succeeded => (LogResult::Success, None),
            Outcome::Failed { reason, .. } => (LogResult::Failure, Some(reason.as_str())),
        };
        let entry = match ra.step_log.as_mut() {
            Some(current) => current,
            None => &mut ra.parent_log,
        };
        entry.close(at, result, reason);
        let effects = vec![Effect::UpgradeLog(entry.clone())];
        match outcome {
            Outcome::Succeeded => {
                self.failures.remove(&scope);
                if let Some(direction) = ra.action.kind.direction() {
                    self.last_direction.insert(ra.action.cluster.clone(), direction);
                }
                self.apply_success(&ra);
                self.clear_failures_if_done(&ra.action.cluster);
            }
            Outcome::Failed { reason, indeterminate } => {
                self.failures.insert(scope.clone(), format!("{}: {reason}", ra.action));
                if ra.action.kind.is_server_action()
                    && let Some(s) = self.topology.server_mut(&scope)
                {
                    s.out_of_service = false;
                    s.zombie |= indeterminate;
                }
            }
        }
        Some((effects, ra))
    }

    /// Sets what a successful action leaves, from the state before it (idempotent: reports may
    /// have shown part of it already).
    fn apply_success(&mut self, ra: &RunningAction) {
        let before = &ra.before;
        let Some(c) = self.topology.cluster_mut(&ra.action.cluster) else { return };
        match ra.action.kind {
            ActionKind::InitiateUpgrade | ActionKind::InitiateBackout => {
                let Some(s) = c.server_mut(ra.action.scope_name()) else { return };
                if ra.action.kind == ActionKind::InitiateUpgrade {
                    s.running_release = ra.target.clone();
                } else if let Some(p) = &before.previous {
                    s.running_release = p.clone();
                }
                s.previous_release = Some(before.running.clone());
                s.out_of_service = false;
            }
            ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion => {
                let to = ra.action.server.clone().unwrap_or_default();
                for s in c.servers.iter_mut() {
                    if s.hostname == to {
                        s.ha_role = HaRole::Active;
                    } else if s.ha_role == HaRole::Active || before.active.as_deref() == Some(s.hostname.as_str()) {
                        s.ha_role = before.role.unwrap_or(HaRole::Standby);
                    }
                }
            }
            ActionKind::ReapplyConfiguration => {
                c.config_release = c.active().map(|a| a.running_release.clone());
            }
        }
    }

    /// "The Upgrade Manager clears alarms when appropriate, such as when server and cluster
    /// upgrades are complete": a cluster done in either direction keeps no failure.
    fn clear_failures_if_done(&mut self, cluster: &str) {
        let Some(c) = self.topology.cluster(cluster) else { return };
        let done =
            [Direction::Upgrade, Direction::Backout].into_iter().any(|d| matches!(self.default_step(c, d), Ok(None)));
        if done {
            let scopes: Vec<String> =
                std::iter::once(c.name.clone()).chain(c.servers.iter().map(|s| s.hostname.clone())).collect();
            self.failures.retain(|scope, _| !scopes.contains(scope));
        }
    }

    /// Sets `hostname`'s HA role; a server reported Active takes the place of the previous one,
    /// which gets the reported server's former role.
    fn set_role(&mut self, cluster: &str, hostname: &str, role: HaRole) {
        let Some(c) = self.topology.cluster_mut(cluster) else { return };
        let Some(old) = c.server(hostname).map(|s| s.ha_role) else { return };
        if old == role {
            return;
        }
        for s in c.servers.iter_mut() {
            if s.hostname == hostname {
                s.ha_role = role;
            } else if role == HaRole::Active && s.ha_role == HaRole::Active {
                s.ha_role = old;
            }
        }
    }

    fn on_report(&mut self, hostname: &str, report: ServerReport, at: DateTime<Utc>) -> Vec<Effect> {
        let Some(cluster) = self.topology.find_server(hostname).map(|(c, _)| c.name.clone()) else {
            return vec![Effect::Ignored { reason: format!("no server {hostname:?}") }];
        };
        if self.settled_at.get(&cluster).is_some_and(|t| at < *t) {
            return vec![Effect::Ignored {
                reason: format!("a report of {hostname} observed before the last action on {cluster} ended"),
            }];
        }
        let mut indeterminate = false;
        if let Some(s) = self.topology.server_mut(hostname) {
            if !report.reachable {
                s.reachable = false;
            } else {
                s.reachable = true;
                s.awaiting_contact = false;
                s.busy = report.busy;
                if let Some(staged) = &report.staged {
                    s.staged = staged.clone();
                }
                if let Some(fs) = report.forced_standby {
                    s.forced_standby = fs;
                }
                match &report.running_release {
                    None => {
                        indeterminate = true;
                        s.zombie = true;
                    }
                    Some(r) => {
                        s.running_release = r.clone();
                        if report.previous_release.is_some() {
                            s.previous_release = report.previous_release.clone();
                        }
                    }
                }
            }
        }
        if report.reachable
            && !indeterminate
            && let Some(role) = report.ha_role
        {
            self.set_role(&cluster, hostname, role);
        }
        let mut effects = Vec::new();
        let mut ended = None;
        if report.reachable
            && let Some(outcome) = self.resolution(&cluster, hostname, &report, indeterminate)
            && let Some((e, ra)) = self.finish(&cluster, at, outcome)
        {
            effects.extend(e);
            ended = Some(ra);
        }
        effects.extend(self.reconcile(at, ended.as_ref()));
        effects
    }

    /// What a report from `hostname` says of the action running in its cluster: a server whose
    /// state cannot be determined ends its action as indeterminate; after a manager failover, the
    /// report tells whether the orphaned action happened.
    fn resolution(&self, cluster: &str, hostname: &str, report: &ServerReport, indeterminate: bool) -> Option<Outcome> {
        let ra = self.running.get(cluster)?;
        if ra.action.server.as_deref() != Some(hostname) {
            return None;
        }
        let server_action = ra.action.kind.is_server_action();
        if indeterminate && server_action {
            return Some(Outcome::Failed {
                reason: "the server's state cannot be determined".into(),
                indeterminate: true,
            });
        }
        if !ra.orphaned || report.busy {
            return None;
        }
        let interrupted = "it did not complete before the manager failover; it can be attempted again";
        if server_action {
            let now = &report.running_release.as_ref()?;
            let expected = if ra.action.kind == ActionKind::InitiateUpgrade {
                Some(&ra.target)
            } else {
                ra.before.previous.as_ref()
            };
            return Some(if expected == Some(now) {
                Outcome::Succeeded
            } else if **now == ra.before.running {
                Outcome::Failed { reason: interrupted.into(), indeterminate: false }
            } else {
                Outcome::Failed {
                    reason: format!(
                        "after the manager failover the server runs {now}, which this action cannot explain"
                    ),
                    indeterminate: true,
                }
            });
        }
        match report.ha_role? {
            HaRole::Active => Some(Outcome::Succeeded),
            _ => Some(Outcome::Failed { reason: interrupted.into(), indeterminate: false }),
        }
    }

    fn on_manager_failover(&mut self, at: DateTime<Utc>) -> Vec<Effect> {
        for c in self.topology.clusters.iter_mut() {
            for s in c.servers.iter_mut().filter(|s| !s.reachable) {
                s.awaiting_contact = true;
            }
        }
        let mut effects = Vec::new();
        let clusters: Vec<String> = self.running.keys().cloned().collect();
        for cluster in clusters {
            let Some(ra) = self.running.get_mut(&cluster) else { continue };
            if ra.action.kind == ActionKind::ReapplyConfiguration {
                let outcome = Outcome::Failed {
                    reason: "interrupted by the manager failover; reapply the configuration again".into(),
                    indeterminate: false,
                };
                if let Some((e, _)) = self.finish(&cluster, at, outcome) {
                    effects.extend(e);
                }
                continue;
            }
            ra.orphaned = true;
            let target = ra.action.server.clone().unwrap_or_default();
            if let Some(s) = self.topology.server_mut(&target) {
                s.awaiting_contact = true;
            }
        }
        effects.extend(self.reconcile(at, None));
        effects
    }

    fn on_procedure_selected(&mut self, procedure: Option<Procedure>, user: &str, at: DateTime<Utc>) -> Vec<Effect> {
        let operation = format!(
            "Select upgrade procedure {}",
            procedure.as_ref().map_or("(none)".to_string(), |p| format!("{} ({})", p.label, p.release))
        );
        if let Some(ra) = self.running.values().next() {
            let refusal = Refusal::new(
                RefusalKind::ActionInProgress,
                format!("{} ({}) is in progress in {}: wait for it to finish", ra.action, ra.id, ra.action.cluster),
            );
            return vec![
                audit(at, user, operation, AuditOutcome::Refused, refusal.reason.clone()),
                Effect::Refused { action: None, refusal },
            ];
        }
        self.procedure = procedure;
        self.failures.clear();
        let mut effects =
            vec![audit(at, user, operation, AuditOutcome::Accepted, "the previous procedure is abandoned".into())];
        effects.extend(self.reconcile(at, None));
        effects
    }

    fn on_zombie_repaired(&mut self, hostname: &str, user: &str, at: DateTime<Utc>) -> Vec<Effect> {
        let operation = format!("Repaired Zombie server {hostname}");
        let refusal = match self.topology.server_mut(hostname) {
            None => Refusal::new(RefusalKind::UnknownServer, format!("no server {hostname:?}")),
            Some(s) if !s.zombie => Refusal::new(RefusalKind::NotApplicable, format!("{hostname} is not a Zombie")),
            Some(s) => {
                s.zombie = false;
                s.awaiting_contact = true;
                self.failures.remove(hostname);
                let mut effects = vec![audit(
                    at,
                    user,
                    operation,
                    AuditOutcome::Accepted,
                    "the Upgrade Director takes the server back once it reports".into(),
                )];
                effects.extend(self.reconcile(at, None));
                return effects;
            }
        };
        vec![
            audit(at, user, operation, AuditOutcome::Refused, refusal.reason.clone()),
            Effect::Refused { action: None, refusal },
        ]
    }
}
