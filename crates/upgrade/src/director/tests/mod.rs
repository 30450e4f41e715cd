//! Tests of the Upgrade Director: fixtures and a harness that carries out effects like the
//! manager would (alarms into an [`Alarms`] registry, log entries into a map).

mod exhaustive;
mod system;
mod unit;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::topology::{AppType, Cluster, ManagerDesignation, Segment, Server, Site, StagedBundle};
use tollgate_alarms::Alarms;

pub(super) const V0: &str = "0.0.9";
pub(super) const V1: &str = "0.1.0";
pub(super) const V2: &str = "0.2.0";

pub(super) fn v(s: &str) -> Release {
    Release::new(s).unwrap()
}

pub(super) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T16:00:00Z").unwrap().with_timezone(&Utc)
}

pub(super) fn procedure() -> Procedure {
    Procedure {
        release: v(V2),
        upgrades_from: vec![ReleasePattern::new("0.1.x").unwrap()],
        label: "incremental-upgrade-0.2.0".into(),
    }
}

/// A server on V1 (previous V0) with the V2 bundle of `app` staged.
pub(super) fn server(host: &str, site: &str, role: HaRole, app: AppType) -> Server {
    let mut s = Server::new(host, site, role, v(V1));
    s.previous_release = Some(v(V0));
    s.staged = vec![StagedBundle { file_name: format!("{app}-{V2}.tgb"), application: app, release: v(V2) }];
    s
}

pub(super) fn cluster(
    name: &str,
    app: AppType,
    designation: Option<ManagerDesignation>,
    site: &str,
    segment: Option<&str>,
    n: usize,
) -> Cluster {
    let roles = [HaRole::Active, HaRole::Standby, HaRole::Spare];
    let suffix = ["a", "b", "c"];
    let servers = (0..n)
        .map(|i| {
            let site = if roles[i] == HaRole::Spare { "Site2" } else { site };
            server(&format!("{name}-{}", suffix[i]), site, roles[i], app)
        })
        .collect();
    Cluster {
        name: name.into(),
        application: app,
        designation,
        site: site.into(),
        segment: segment.map(String::from),
        config_release: None,
        servers,
    }
}

pub(super) fn sites() -> Vec<Site> {
    vec![Site { name: "Site1".into(), primary: true }, Site { name: "Site2".into(), primary: false }]
}

/// The cluster shapes the exhaustive tests cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A Primary manager cluster of two servers.
    Manager2,
    /// An engine cluster of two servers.
    Engine2,
    /// A georedundant engine cluster: Active + Standby at Site1, Spare at Site2.
    Engine3,
    /// An engine cluster of one server.
    Engine1,
}

pub(super) fn single(shape: Shape) -> Director {
    let c = match shape {
        Shape::Manager2 => cluster("cmp1", AppType::Manager, Some(ManagerDesignation::Primary), "Site1", None, 2),
        Shape::Engine2 => cluster("mpe1", AppType::Engine, None, "Site1", Some("Segment 1"), 2),
        Shape::Engine3 => cluster("mpe1", AppType::Engine, None, "Site1", Some("Segment 1"), 3),
        Shape::Engine1 => cluster("mpe1", AppType::Engine, None, "Site1", Some("Segment 1"), 1),
    };
    let topology = Topology { sites: sites(), segments: vec![Segment { name: "Segment 1".into() }], clusters: vec![c] };
    Director::new(topology, Some(procedure()), DirectorConfig::default()).unwrap()
}

/// Carries out effects as the manager would.
pub(super) struct Harness {
    pub d: Director,
    pub now: DateTime<Utc>,
    pub alarms: Alarms,
    pub log: BTreeMap<u64, UpgradeLogEntry>,
    pub audit: Vec<AuditEntry>,
    pub executed: Vec<(ActionId, Action)>,
    pub forced: BTreeMap<String, bool>,
}

impl Harness {
    pub fn new(mut d: Director) -> Self {
        let now = t0();
        let effects = d.resync(now);
        let mut h = Harness {
            d,
            now,
            alarms: Alarms::default(),
            log: BTreeMap::new(),
            audit: Vec::new(),
            executed: Vec::new(),
            forced: BTreeMap::new(),
        };
        h.carry_out(&effects);
        h
    }

    pub fn carry_out(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Execute { id, action } => self.executed.push((*id, action.clone())),
                Effect::Refused { .. } | Effect::Ignored { .. } => {}
                Effect::SetForcedStandby { hostname, on } => {
                    self.forced.insert(hostname.clone(), *on);
                }
                Effect::RaiseAlarm { def, scope, detail } => {
                    self.alarms.raise(*def, scope, detail.clone());
                }
                Effect::ClearAlarm { def, scope } => {
                    self.alarms.clear(*def, scope);
                }
                Effect::UpgradeLog(entry) => {
                    self.log.insert(entry.id, entry.clone());
                }
                Effect::Audit(a) => self.audit.push(a.clone()),
            }
        }
    }

    pub fn feed(&mut self, event: Event) -> Vec<Effect> {
        let effects = self.d.apply(event);
        self.carry_out(&effects);
        effects
    }

    pub fn tick(&mut self, minutes: i64) -> DateTime<Utc> {
        self.now += Duration::minutes(minutes);
        self.now
    }

    /// Starts `action` as operator "admin"; its id, or the refusal.
    pub fn start(&mut self, action: &Action) -> Result<ActionId, Refusal> {
        let at = self.tick(1);
        let effects =
            self.feed(Event::ActionStarted { action: action.clone(), mode: Mode::Manual { user: "admin".into() }, at });
        for e in effects {
            match e {
                Effect::Execute { id, .. } => return Ok(id),
                Effect::Refused { refusal, .. } => return Err(refusal),
                _ => {}
            }
        }
        panic!("neither executed nor refused: {action}")
    }

    /// Runs `action` through its steps to success.
    pub fn run(&mut self, action: &Action) -> Result<(), Refusal> {
        let id = self.start(action)?;
        for step in action.kind.steps().iter().skip(1) {
            let at = self.tick(5);
            self.feed(Event::ActionProgress { id, step: *step, at });
        }
        let at = self.tick(5);
        self.feed(Event::ActionSucceeded { id, at });
        Ok(())
    }

    /// Takes preferred actions in `direction` on `cluster` until done; the actions taken.
    pub fn drive(&mut self, cluster: &str, direction: Direction) -> Vec<Action> {
        let mut taken = Vec::new();
        for _ in 0..12 {
            let advice = self.d.advise(cluster, direction).unwrap();
            if advice.done {
                return taken;
            }
            let p = advice.preferred.unwrap_or_else(|| panic!("stuck: {:?}", advice.waiting));
            self.run(&p.action).unwrap();
            taken.push(p.action);
        }
        panic!("{cluster} did not converge in {direction:?}: {taken:?}");
    }

    pub fn alarm_names(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> =
            self.alarms.active().into_iter().map(|a| (a.scope, a.def.name)).collect();
        v.sort();
        v
    }
}
