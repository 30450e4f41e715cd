//! What to do next: the preferred action of a cluster in each direction, the other legal actions,
//! and the order of clusters across the system.

use serde::Serialize;

use super::action::{Action, ActionKind, Direction, Proposal};
use super::{Director, Refusal, RefusalKind};
use crate::release::Release;
use crate::topology::{Cluster, HaRole, ManagerDesignation, Server};

/// What the Upgrade Manager shows for a selected cluster and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advice {
    /// The cluster.
    pub cluster: String,
    /// The direction.
    pub direction: Direction,
    /// The next preferred action: what the Upgrade / Backout button does.
    pub preferred: Option<Proposal>,
    /// Why there is no preferred action although the cluster is not done (the button is grey).
    pub waiting: Option<Refusal>,
    /// The other legal actions, either direction (the "Advanced" menu).
    pub others: Vec<Proposal>,
    /// The cluster is done in this direction.
    pub done: bool,
    /// The button's label, as the seed's Upgrade Manager shows it: "Start Upgrade", "Continue
    /// Upgrade", "Resume Upgrade" (after backing out), "Start Rollback", "Continue Rollback".
    pub button: &'static str,
}

fn find<'a>(c: &'a Cluster, role: HaRole, on_target: Option<bool>, t: &Release) -> Option<&'a Server> {
    c.servers.iter().find(|s| s.ha_role == role && on_target.is_none_or(|want| (s.running_release == *t) == want))
}

impl Director {
    /// The default sequence's next step for `c` (seed 000 §1.3.1.6 "Upgrade Order", reversed for
    /// a backout); `Ok(None)` when the cluster is done in that direction, `Err` when there is no
    /// step to take (an action runs, no Active server, no procedure).
    pub fn default_step(&self, c: &Cluster, direction: Direction) -> Result<Option<Action>, Refusal> {
        let t = self
            .target()
            .ok_or_else(|| Refusal::new(RefusalKind::NoProcedure, "no upgrade procedure is selected (Current ISO)"))?;
        if let Some(r) = self.running.get(&c.name) {
            return Err(Refusal::new(
                RefusalKind::ActionInProgress,
                format!("{} ({}) is in progress: wait for it to finish", r.action, r.id),
            ));
        }
        let a = c
            .active()
            .ok_or_else(|| Refusal::new(RefusalKind::WouldStopService, format!("{} has no Active server", c.name)))?;
        let name = c.name.as_str();
        let upgrade = |s: &Server| Action::initiate_upgrade(name, &s.hostname);
        let backout = |s: &Server| Action::initiate_backout(name, &s.hostname);
        let on = a.running_release == *t;
        let step = match (direction, on) {
            // Upgrade the standby, fail over to it, (reapply,) upgrade the spare, upgrade the rest.
            (Direction::Upgrade, false) => Some(if let Some(s) = find(c, HaRole::Standby, Some(true), t) {
                Action::failover_to_new_version(name, &s.hostname)
            } else if let Some(s) = find(c, HaRole::Standby, None, t) {
                upgrade(s)
            } else if let Some(s) = find(c, HaRole::Spare, Some(true), t) {
                Action::failover_to_new_version(name, &s.hostname)
            } else if let Some(s) = find(c, HaRole::Spare, None, t) {
                upgrade(s)
            } else {
                upgrade(a)
            }),
            (Direction::Upgrade, true) if c.needs_reapply() => Some(Action::reapply_configuration(name)),
            (Direction::Upgrade, true) => {
                find(c, HaRole::Spare, Some(false), t).or_else(|| find(c, HaRole::Standby, Some(false), t)).map(upgrade)
            }
            // Back out the standby, then the spare, fail over to the old version, (reapply,) back
            // out the rest.
            (Direction::Backout, true) => Some(if let Some(s) = find(c, HaRole::Standby, Some(true), t) {
                backout(s)
            } else if let Some(s) = find(c, HaRole::Spare, Some(true), t) {
                backout(s)
            } else if let Some(s) = find(c, HaRole::Standby, None, t) {
                Action::failover_to_old_version(name, &s.hostname)
            } else if let Some(s) = find(c, HaRole::Spare, None, t) {
                Action::failover_to_old_version(name, &s.hostname)
            } else {
                backout(a)
            }),
            (Direction::Backout, false) if c.needs_reapply() => Some(Action::reapply_configuration(name)),
            (Direction::Backout, false) => {
                find(c, HaRole::Standby, Some(true), t).or_else(|| find(c, HaRole::Spare, Some(true), t)).map(backout)
            }
        };
        Ok(step)
    }

    /// Whether `cluster` is done in `direction`: no action runs and its default sequence has no
    /// step left (upgrade: every server runs the procedure's release and the configuration is
    /// applied; backout: none runs it and the configuration matches the Active's release).
    pub fn is_done(&self, cluster: &str, direction: Direction) -> bool {
        self.topology.cluster(cluster).is_some_and(|c| matches!(self.default_step(c, direction), Ok(None)))
    }

    /// The preferred action for `cluster` in `direction`, the other legal actions, or why there is
    /// none.
    pub fn advise(&self, cluster: &str, direction: Direction) -> Result<Advice, Refusal> {
        let c = self
            .topology
            .cluster(cluster)
            .ok_or_else(|| Refusal::new(RefusalKind::UnknownCluster, format!("no cluster {cluster:?}")))?;
        let mut advice = Advice {
            cluster: c.name.clone(),
            direction,
            preferred: None,
            waiting: None,
            others: Vec::new(),
            done: false,
            button: self.button(c, direction),
        };
        match self.default_step(c, direction) {
            Err(refusal) => advice.waiting = Some(refusal),
            Ok(None) => advice.done = true,
            Ok(Some(action)) => match self.check(&action) {
                Ok(()) => advice.preferred = Some(self.proposal(&action, Some(direction))),
                Err(r) => advice.waiting = Some(Refusal::new(r.kind, format!("{action}: {}", r.reason))),
            },
        }
        let preferred = advice.preferred.as_ref().map(|p| &p.action);
        advice.others = self
            .candidate_actions(c)
            .into_iter()
            .filter(|a| Some(a) != preferred && self.check(a).is_ok())
            .map(|a| self.proposal(&a, None))
            .collect();
        Ok(advice)
    }

    /// The label of `direction`'s button for `c`: "Start ..." on a settled cluster or when it last
    /// moved the other way (except upgrade after a backout: "Resume Upgrade"), "Continue ..."
    /// when it last moved this way.
    pub fn button(&self, c: &Cluster, direction: Direction) -> &'static str {
        let last = self.last_direction.get(&c.name).copied().filter(|_| self.in_progress(c));
        match (direction, last) {
            (Direction::Upgrade, Some(Direction::Upgrade)) => "Continue Upgrade",
            (Direction::Upgrade, Some(Direction::Backout)) => "Resume Upgrade",
            (Direction::Upgrade, None) => "Start Upgrade",
            (Direction::Backout, Some(Direction::Backout)) => "Continue Rollback",
            (Direction::Backout, _) => "Start Rollback",
        }
    }

    /// Every action that can be named for `c`: each kind on each server, and Reapply
    /// configuration. Most are refused in any one state.
    pub fn candidate_actions(&self, c: &Cluster) -> Vec<Action> {
        let mut out = Vec::new();
        for s in &c.servers {
            out.push(Action::initiate_upgrade(&c.name, &s.hostname));
            out.push(Action::initiate_backout(&c.name, &s.hostname));
            out.push(Action::failover_to_new_version(&c.name, &s.hostname));
            out.push(Action::failover_to_old_version(&c.name, &s.hostname));
        }
        out.push(Action::reapply_configuration(&c.name));
        out
    }

    /// Every legal action for `cluster` now, either direction.
    pub fn legal_actions(&self, cluster: &str) -> Vec<Proposal> {
        let Some(c) = self.topology.cluster(cluster) else { return Vec::new() };
        self.candidate_actions(c)
            .into_iter()
            .filter(|a| self.check(a).is_ok())
            .map(|a| self.proposal(&a, None))
            .collect()
    }

    /// Describes `action`; `preferred_in` gives the label its "(next)" / "(back)" suffix.
    pub fn proposal(&self, action: &Action, preferred_in: Option<Direction>) -> Proposal {
        let c = self.topology.cluster(&action.cluster);
        let server = c.and_then(|c| action.server.as_deref().and_then(|h| c.server(h)));
        let active = c.and_then(|c| c.active());
        let t = self.target().map_or("?", |t| t.as_str());
        let host = |s: Option<&Server>| s.map_or("?".to_string(), |s| s.hostname.clone());
        let runs = |s: Option<&Server>| s.map_or("?".to_string(), |s| s.running_release.to_string());
        let role = |s: Option<&Server>| s.map_or("?".to_string(), |s| s.ha_role.to_string());
        let alone = c.is_some_and(|c| c.servers.len() == 1);
        let (targets, description) = match action.kind {
            ActionKind::InitiateUpgrade => (
                vec![host(server)],
                format!(
                    "Upgrade {} ({}) from {} to {t}: preflight check of the staged bundle, upgrade (the server is out of \
                     service and may reboot), then wait for replication to synchronize.{}",
                    host(server),
                    role(server),
                    runs(server),
                    if alone { " The cluster has no other server: its service stops meanwhile." } else { "" }
                ),
            ),
            ActionKind::InitiateBackout => (
                vec![host(server)],
                format!(
                    "Back out {} ({}) from {t} to {}: restore its pre-upgrade image (the server is out of service and may \
                     reboot), then wait for replication to synchronize.{}",
                    host(server),
                    role(server),
                    server.and_then(|s| s.previous_release.as_ref()).map_or("?", |p| p.as_str()),
                    if alone { " The cluster has no other server: its service stops meanwhile." } else { "" }
                ),
            ),
            ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion => (
                vec![host(server), host(active)],
                format!(
                    "Switch {} over: {} (running {}) becomes Active; {} (running {}) goes to forced standby.",
                    action.cluster,
                    host(server),
                    runs(server),
                    host(active),
                    runs(active)
                ),
            ),
            ActionKind::ReapplyConfiguration => (
                vec![host(active)],
                format!(
                    "Push the configuration to {} in the format of {} (its Active server {}'s release); the cluster's \
                     upgrade or backout is not complete until this is done.",
                    action.cluster,
                    runs(active),
                    host(active)
                ),
            ),
        };
        let suffix = match preferred_in {
            Some(Direction::Upgrade) => " (next)",
            Some(Direction::Backout) => " (back)",
            None => "",
        };
        Proposal {
            name: action.kind.name(),
            action: action.clone(),
            targets,
            label: format!("{action}{suffix}"),
            description,
        }
    }

    /// Clusters in the order the system is upgraded: the Primary manager cluster, the Secondary
    /// one, then the others by segment and, within a segment, the primary site first (seed 000
    /// §1.2.3.1). Backout takes the reverse order.
    pub fn cluster_order(&self, direction: Direction) -> Vec<&str> {
        let t = &self.topology;
        let mut order: Vec<&Cluster> = t.clusters.iter().collect();
        order.sort_by_key(|c| match (c.is_manager(), c.designation) {
            (true, Some(ManagerDesignation::Primary)) => (0, 0, 0),
            (true, _) => (1, 0, 0),
            (false, _) => (2, t.segment_rank(c.segment.as_deref()), t.site_rank(&c.site)),
        });
        if direction == Direction::Backout {
            order.reverse();
        }
        order.into_iter().map(|c| c.name.as_str()).collect()
    }

    /// The preferred actions that may start now across the system, in cluster order, keeping the
    /// clusters in progress within [`super::DirectorConfig::max_parallel_clusters`].
    pub fn next_actions(&self, direction: Direction) -> Vec<Proposal> {
        let max = self.config.max_parallel_clusters.max(1);
        let mut busy = self.clusters_in_progress().len();
        let mut out = Vec::new();
        for name in self.cluster_order(direction) {
            let (Some(c), Ok(advice)) = (self.topology.cluster(name), self.advise(name, direction)) else { continue };
            let Some(p) = advice.preferred else { continue };
            if !self.in_progress(c) {
                if busy >= max {
                    continue;
                }
                busy += 1;
            }
            out.push(p);
        }
        out
    }
}
