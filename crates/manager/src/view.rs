//! What the Upgrade Manager page and `tollgate upgrade status` show: the seed's grid (Name,
//! Alarm Severity, Up to Date, Server Role, Prev Release, Running Release, Upgrade Operation),
//! per cluster the next action in each direction and the other legal actions, the running
//! action's step n/3, percent and elapsed time, and the alarms.

use chrono::Utc;
use tollgate_alarms::Severity;
use tollgate_api::manager::{
    AdviceView, AlarmView, ClusterView, ManagerSummary, Operation, RunningView, ServerAlarm, ServerView, SystemStatus,
};
use tollgate_upgrade::director::{Direction, Director, RunningAction};
use tollgate_upgrade::topology::{Cluster, Server, UpToDate};

use super::Manager;

/// The "Upgrade Operation" column: step n/N, percent, elapsed time, or the last failure.
fn operation(director: &Director, cluster: &Cluster, server: &Server) -> Operation {
    let running = director.running_action(&cluster.name).filter(|r| {
        r.action.server.as_deref() == Some(server.hostname.as_str())
            || (!r.action.kind.is_server_action() && server.ha_role == tollgate_upgrade::topology::HaRole::Active)
    });
    match running {
        Some(r) => Operation::Running(running_view(r)),
        None => match director.failures().get(&server.hostname) {
            Some(why) => Operation::Idle { text: format!("Failed: {why}"), failed: true },
            None => Operation::default(),
        },
    }
}

/// A running action as the views show it.
pub fn running_view(r: &RunningAction) -> RunningView {
    let steps = r.action.kind.steps();
    let index = steps.iter().position(|s| *s == r.step).unwrap_or(0) + 1;
    let percent = (index - 1) * 100 / steps.len();
    let elapsed = (Utc::now() - r.started_at).num_seconds().max(0);
    let step_name = r.step.log_name(r.action.kind);
    RunningView {
        id: r.id.0,
        action: r.action.clone(),
        label: r.action.to_string(),
        step: step_name.to_string(),
        step_index: index as u64,
        steps: steps.len() as u64,
        percent: percent as u64,
        elapsed_secs: elapsed,
        started_at: r.started_at,
        text: format!("{} ({index}/{}) {percent}% {}:{:02}", step_name, steps.len(), elapsed / 60, elapsed % 60),
    }
}

/// The whole status (without the bundles of the repository: see [`crate::ops::status`]).
pub fn status(m: &Manager) -> SystemStatus {
    let core = m.core();
    let director = &core.shared.director;
    let target = director.target();
    let local: Vec<_> = m.alarms.active();
    let remote = m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let server_severity = |hostname: &str| -> Option<Severity> {
        let own = local.iter().filter(|a| a.scope == hostname).map(|a| a.def.severity);
        let reported = remote.get(hostname).into_iter().flatten().map(|a| a.severity);
        own.chain(reported).min()
    };
    let clusters: Vec<ClusterView> = director
        .topology()
        .clusters
        .iter()
        .map(|c| {
            let mut severities: Vec<Severity> = tollgate_upgrade::topology::alarm_severities(c, &local).collect();
            for s in &c.servers {
                severities.extend(remote.get(&s.hostname).into_iter().flatten().map(|a| a.severity));
            }
            let status = c.status(target, severities.iter().copied());
            let advice = |d: Direction| -> AdviceView {
                match director.advise(&c.name, d) {
                    Ok(a) => (&a).into(),
                    Err(r) => r.into(),
                }
            };
            let servers: Vec<ServerView> = c
                .servers
                .iter()
                .map(|s| ServerView {
                    hostname: s.hostname.clone(),
                    site: s.site.clone(),
                    alarm_severity: server_severity(&s.hostname),
                    up_to_date: s.up_to_date(target),
                    ha_role: s.ha_role,
                    role: s.state(),
                    prev_release: s.previous_release.as_ref().map(|r| r.as_str().to_string()),
                    running_release: s.running_release.as_str().to_string(),
                    forced_standby: s.forced_standby,
                    reachable: s.reachable,
                    staged: s.staged.clone(),
                    operation: operation(director, c, s),
                })
                .collect();
            ClusterView {
                name: c.name.clone(),
                application: c.application,
                designation: c.designation,
                site: c.site.clone(),
                segment: c.segment.clone(),
                status,
                alarm_severity: severities.iter().min().copied(),
                up_to_date: match target {
                    None => UpToDate::NotApplicable,
                    Some(_) if c.servers.iter().all(|s| s.up_to_date(target) == UpToDate::Yes) => UpToDate::Yes,
                    Some(_) => UpToDate::No,
                },
                mixed_version: c.is_mixed_version(),
                upgrade: advice(Direction::Upgrade),
                backout: advice(Direction::Backout),
                running: director.running_action(&c.name).map(running_view),
                servers,
            }
        })
        .collect();
    let server_alarms: Vec<ServerAlarm> = remote
        .iter()
        .flat_map(|(host, list)| list.iter().map(move |a| ServerAlarm { server: host.clone(), alarm: a.clone() }))
        .collect();
    SystemStatus {
        manager: ManagerSummary {
            hostname: m.cfg.hostname.clone(),
            ha: core.ha,
            release: m.release.clone(),
            mate: m.cfg.mate.clone(),
        },
        procedure: director.procedure().cloned(),
        mixed_version: director.topology().is_mixed_version(),
        failures: director.failures().clone(),
        clusters,
        alarms: local.iter().map(AlarmView::from).collect(),
        server_alarms,
        generation: core.shared.generation,
        bundles: Vec::new(),
    }
}
