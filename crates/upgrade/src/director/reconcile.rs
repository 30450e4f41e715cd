//! Keeping forced standby and the alarms in line with the state, after every event.
//!
//! The alarms follow seed 000's alarm philosophy ("the Upgrade Director raises alarms if a server
//! is somehow impaired [or] there is activity expected of an operator"; "The Upgrade Manager
//! clears alarms when appropriate"): each is raised while its condition holds and cleared when it
//! ends.
//! * 70500 SYSTEM_MIXED_VERSION (scope `system`): servers run different releases.
//! * 70501 CLUSTER_MIXED_VERSION (cluster): the cluster's servers run different releases.
//! * 70502 REPLICATION_INHIBITED (server): the Active runs the procedure's release and this server
//!   does not, so it cannot take the Active's session state (the seed lists it once the cluster
//!   has failed over to the new version, not before).
//! * 70503 SERVER_FORCED_STANDBY (server): held in forced standby.
//! * 70506 UPGRADE_OPERATION_FAILED (server, or cluster for a failover or reapply): an action
//!   failed and has not succeeded since.
//! * 70507 UPGRADE_IN_PROGRESS (server): an upgrade or backout runs on it.
//! * 70508 ZOMBIE_SERVER (server): its state cannot be determined.
//! * 31283 LOST_COMMUNICATION_WITH_SERVER (server): it cannot be reached.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::action::ActionKind;
use super::event::Effect;
use super::log::{LogMode, LogResult, LogScope, UpgradeLogEntry};
use super::{Director, RunningAction};
use crate::release::Release;
use crate::topology::{Cluster, HaRole, SYSTEM_SCOPE, Server};
use tollgate_alarms::{self as alarms, AlarmDef};

fn def(id: u32) -> Option<AlarmDef> {
    alarms::UPGRADE_DIRECTOR_ALARMS.iter().copied().find(|d| d.id == id)
}

/// Whether replication to `s` is inhibited: the Active runs the procedure's release `t` and `s`
/// does not. Returns the Active.
fn replication_inhibited<'a>(c: &'a Cluster, s: &Server, t: Option<&Release>) -> Option<&'a Server> {
    let (a, t) = (c.active()?, t?);
    (s.ha_role != HaRole::Active && a.running_release == *t && s.running_release != *t).then_some(a)
}

/// Whether `s` must be in forced standby: every server but the Active that does not run the
/// Active's release, is out of service for an action, or is a Zombie. Without an Active, the flag
/// is left as it is. The target of a running failover is released: it is to take over.
pub(super) fn forced_standby_required(c: &Cluster, s: &Server, failover_target: Option<&str>) -> bool {
    if s.ha_role == HaRole::Active || failover_target == Some(s.hostname.as_str()) {
        return false;
    }
    match c.active() {
        None => s.forced_standby,
        Some(a) => s.zombie || s.out_of_service || s.running_release != a.running_release,
    }
}

impl Director {
    /// The alarms that should be raised now: (ID, scope).
    pub(super) fn desired_alarms(&self) -> BTreeSet<(u32, String)> {
        let mut out = BTreeSet::new();
        let t = self.target();
        if self.topology.is_mixed_version() {
            out.insert((alarms::SYSTEM_MIXED_VERSION.id, SYSTEM_SCOPE.to_string()));
        }
        for c in &self.topology.clusters {
            if c.is_mixed_version() {
                out.insert((alarms::CLUSTER_MIXED_VERSION.id, c.name.clone()));
            }
            for s in &c.servers {
                if replication_inhibited(c, s, t).is_some() {
                    out.insert((alarms::REPLICATION_INHIBITED.id, s.hostname.clone()));
                }
                for (def, on) in [
                    (alarms::SERVER_FORCED_STANDBY, s.forced_standby),
                    (alarms::ZOMBIE_SERVER, s.zombie),
                    (alarms::LOST_COMMUNICATION_WITH_SERVER, !s.reachable),
                ] {
                    if on {
                        out.insert((def.id, s.hostname.clone()));
                    }
                }
            }
        }
        for r in self.running.values().filter(|r| r.action.kind.is_server_action()) {
            out.insert((alarms::UPGRADE_IN_PROGRESS.id, r.action.scope_name().to_string()));
        }
        for scope in self.failures.keys() {
            out.insert((alarms::UPGRADE_OPERATION_FAILED.id, scope.clone()));
        }
        out
    }

    /// The details of a raised alarm.
    fn alarm_detail(&self, id: u32, scope: &str) -> String {
        let server = self.topology.find_server(scope);
        match id {
            x if x == alarms::SYSTEM_MIXED_VERSION.id => {
                let counts = self.topology.release_counts();
                let list: Vec<String> = counts.iter().map(|(r, n)| format!("{r}: {n}")).collect();
                format!("servers per release: {}", list.join(", "))
            }
            x if x == alarms::CLUSTER_MIXED_VERSION.id => self.topology.cluster(scope).map_or_else(String::new, |c| {
                c.servers.iter().map(|s| format!("{} {}", s.hostname, s.running_release)).collect::<Vec<_>>().join(", ")
            }),
            x if x == alarms::REPLICATION_INHIBITED.id => server
                .and_then(|(c, s)| replication_inhibited(c, s, self.target()).map(|a| (s, a)))
                .map_or_else(String::new, |(s, a)| {
                    format!(
                        "{} runs {}, the Active server {} runs {}",
                        s.hostname, s.running_release, a.hostname, a.running_release
                    )
                }),
            x if x == alarms::SERVER_FORCED_STANDBY.id => "placed in forced standby by the Upgrade Director".into(),
            x if x == alarms::ZOMBIE_SERVER.id => "the server's state cannot be determined".into(),
            x if x == alarms::LOST_COMMUNICATION_WITH_SERVER.id => "the server cannot be reached".into(),
            x if x == alarms::UPGRADE_IN_PROGRESS.id => server
                .and_then(|(c, _)| self.running.get(&c.name))
                .map_or_else(String::new, |r| format!("{} ({})", r.action, r.step.log_name(r.action.kind))),
            x if x == alarms::UPGRADE_OPERATION_FAILED.id => self.failures.get(scope).cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Brings forced standby and the raised alarms in line with the state. Forced-standby changes
    /// are logged under the running action of their cluster, else under `parent` when it is of
    /// that cluster (the action that just ended).
    pub(super) fn reconcile(&mut self, at: DateTime<Utc>, parent: Option<&RunningAction>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut changes = Vec::new();
        for c in &self.topology.clusters {
            let failover_target = self
                .running
                .get(&c.name)
                .filter(|r| {
                    matches!(r.action.kind, ActionKind::FailoverToNewVersion | ActionKind::FailoverToOldVersion)
                })
                .and_then(|r| r.action.server.as_deref());
            for s in &c.servers {
                let want = forced_standby_required(c, s, failover_target);
                if want != s.forced_standby {
                    changes.push((c.name.clone(), s.hostname.clone(), want));
                }
            }
        }
        for (cluster, hostname, on) in changes {
            if let Some(s) = self.topology.server_mut(&hostname) {
                s.forced_standby = on;
            }
            let parent_id = self
                .running
                .get(&cluster)
                .or(parent.filter(|p| p.action.cluster == cluster))
                .map_or(0, |r| r.parent_log.id);
            let entry = UpgradeLogEntry {
                id: self.take_log_id(),
                parent_id,
                action_name: "Modify the role/replication attributes of the server".into(),
                start: at,
                end: Some(at),
                scope: LogScope::Cluster,
                hostname: cluster.clone(),
                result: LogResult::Success,
                mode: LogMode::Automatic,
                description: format!(
                    "Automatic action for managing role/replication: {hostname} {} forced standby",
                    if on { "placed in" } else { "released from" }
                ),
                cluster,
            };
            effects.push(Effect::SetForcedStandby { hostname, on });
            effects.push(Effect::UpgradeLog(entry));
        }
        let desired = self.desired_alarms();
        let stale: Vec<(u32, String)> = self.raised.difference(&desired).cloned().collect();
        for key in stale {
            self.raised.remove(&key);
            if let Some(def) = def(key.0) {
                effects.push(Effect::ClearAlarm { def, scope: key.1 });
            }
        }
        for key in desired {
            if !self.raised.contains(&key)
                && let Some(def) = def(key.0)
            {
                let detail = self.alarm_detail(key.0, &key.1);
                effects.push(Effect::RaiseAlarm { def, scope: key.1.clone(), detail });
                self.raised.insert(key);
            }
        }
        effects
    }

    /// Brings forced standby in line and raises EVERY alarm that should be raised (not only new
    /// ones): call it after [`Director::new`] or after loading a stored Director, when the alarm
    /// registry may not hold them.
    pub fn resync(&mut self, at: DateTime<Utc>) -> Vec<Effect> {
        let mut effects: Vec<Effect> =
            self.reconcile(at, None).into_iter().filter(|e| !matches!(e, Effect::RaiseAlarm { .. })).collect();
        for (id, scope) in self.desired_alarms() {
            if let Some(def) = def(id) {
                let detail = self.alarm_detail(id, &scope);
                effects.push(Effect::RaiseAlarm { def, scope, detail });
            }
        }
        effects
    }

    pub(super) fn take_log_id(&mut self) -> u64 {
        let id = self.next_log_id;
        self.next_log_id += 1;
        id
    }
}
