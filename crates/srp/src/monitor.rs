//! Monitor groups: which monitored targets (AAA servers, BGP peers, Diameter peers) are up, and
//! when a whole group goes down or comes back.
//!
//! Probing itself (authentication probes, BGP session state, Diameter watchdogs) is not done here:
//! the owner reports each target's state with [`MonitorSet::report`] and feeds the returned
//! [`Event`]s to the election state machine. A group is down when every one of its targets is down
//! (the seed: "SRP initiates a switchover when none of the configured AAA servers responds"; "ICSR
//! failover would occur if all peers within a group fail"). Targets start up, so a chassis that has
//! not probed yet never switches over.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{MonitorGroupConfig, MonitorKind};
use crate::election::Event;

/// One monitor group: its kind and group number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MonitorGroupId {
    /// What the group's targets are.
    pub kind: MonitorKind,
    /// Group number within the kind.
    pub group: u32,
}

impl fmt::Display for MonitorGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} group {}", self.kind, self.group)
    }
}

/// The state of one target, for `show srp monitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The group the target is in.
    pub group: MonitorGroupId,
    /// The target.
    pub target: String,
    /// Whether it answered its last probe.
    pub up: bool,
}

/// Every configured monitor group and the last reported state of its targets.
#[derive(Debug, Clone, Default)]
pub struct MonitorSet {
    groups: BTreeMap<MonitorGroupId, BTreeMap<String, bool>>,
}

impl MonitorSet {
    /// The groups of a configuration, every target up.
    pub fn new(config: &[MonitorGroupConfig]) -> MonitorSet {
        let mut groups: BTreeMap<MonitorGroupId, BTreeMap<String, bool>> = BTreeMap::new();
        for g in config {
            let id = MonitorGroupId { kind: g.kind, group: g.group };
            let targets = groups.entry(id).or_default();
            for t in &g.targets {
                targets.insert(t.clone(), true);
            }
        }
        MonitorSet { groups }
    }

    /// Records that `target` of kind `kind` is up or down; returns a `MonitorDown` or `MonitorUp`
    /// event for each group that changed as a whole. Unknown targets are ignored.
    pub fn report(&mut self, kind: MonitorKind, target: &str, up: bool) -> Vec<Event> {
        let mut events = Vec::new();
        for (id, targets) in self.groups.iter_mut().filter(|(id, _)| id.kind == kind) {
            let Some(state) = targets.get_mut(target) else { continue };
            if *state == up {
                continue;
            }
            let was_down = targets.values().all(|u| !u);
            if let Some(s) = targets.get_mut(target) {
                *s = up;
            }
            let is_down = targets.values().all(|u| !u);
            match (was_down, is_down) {
                (false, true) => events.push(Event::MonitorDown(*id)),
                (true, false) => events.push(Event::MonitorUp(*id)),
                _ => {}
            }
        }
        events
    }

    /// Marks every target of `kind` up again (`srp reset-auth-probe-fail`, `srp
    /// reset-diameter-fail`); returns the `MonitorUp` events of groups that were down.
    pub fn reset(&mut self, kind: MonitorKind) -> Vec<Event> {
        let mut events = Vec::new();
        for (id, targets) in self.groups.iter_mut().filter(|(id, _)| id.kind == kind) {
            if targets.values().all(|u| !u) {
                events.push(Event::MonitorUp(*id));
            }
            targets.values_mut().for_each(|u| *u = true);
        }
        events
    }

    /// Marks every target up again, without events: for a chassis that stops serving (the machine
    /// forgets monitor state when it releases the service address).
    pub fn reset_all(&mut self) {
        self.groups.values_mut().flat_map(|t| t.values_mut()).for_each(|u| *u = true);
    }

    /// Groups whose targets are all down.
    pub fn down_groups(&self) -> Vec<MonitorGroupId> {
        self.groups.iter().filter(|(_, t)| t.values().all(|u| !u)).map(|(id, _)| *id).collect()
    }

    /// Every target and its state (`show srp monitor all`).
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.groups
            .iter()
            .flat_map(|(id, t)| t.iter().map(|(name, up)| TargetStatus { group: *id, target: name.clone(), up: *up }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> MonitorSet {
        MonitorSet::new(&[
            MonitorGroupConfig::new(MonitorKind::Bgp, 1, vec!["a".into(), "b".into()]),
            MonitorGroupConfig::new(MonitorKind::Bgp, 2, vec!["c".into()]),
            MonitorGroupConfig::new(MonitorKind::Aaa, 0, vec!["a".into()]),
        ])
    }

    #[test]
    fn a_group_is_down_only_when_all_its_targets_are() {
        let mut m = set();
        let g1 = MonitorGroupId { kind: MonitorKind::Bgp, group: 1 };
        assert!(m.report(MonitorKind::Bgp, "a", false).is_empty());
        assert_eq!(m.report(MonitorKind::Bgp, "b", false), vec![Event::MonitorDown(g1)]);
        assert!(m.report(MonitorKind::Bgp, "b", false).is_empty(), "no repeat");
        assert_eq!(m.down_groups(), vec![g1]);
        assert_eq!(m.report(MonitorKind::Bgp, "a", true), vec![Event::MonitorUp(g1)]);
        assert!(m.report(MonitorKind::Bgp, "zz", false).is_empty());
        // Same target name under another kind is independent.
        assert_eq!(m.targets().iter().filter(|t| !t.up).count(), 1);
    }

    #[test]
    fn reset_brings_groups_up() {
        let mut m = set();
        let aaa = MonitorGroupId { kind: MonitorKind::Aaa, group: 0 };
        assert_eq!(m.report(MonitorKind::Aaa, "a", false), vec![Event::MonitorDown(aaa)]);
        assert_eq!(m.reset(MonitorKind::Aaa), vec![Event::MonitorUp(aaa)]);
        assert!(m.down_groups().is_empty());
        m.report(MonitorKind::Bgp, "c", false);
        m.reset_all();
        assert!(m.down_groups().is_empty());
    }
}
