//! What the Upgrade Manager page and `tollgate upgrade status` show: the seed's grid (Name,
//! Alarm Severity, Up to Date, Server Role, Prev Release, Running Release, Upgrade Operation),
//! per cluster the next action in each direction and the other legal actions, the running
//! action's step n/3, percent and elapsed time, and the alarms.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_alarms::Severity;
use tollgate_upgrade::director::{Direction, Director, RunningAction};
use tollgate_upgrade::topology::{Cluster, Server};

use super::Manager;

/// An alarm a server's role reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteAlarm {
    /// Alarm ID.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Critical, Major, Minor or Info.
    pub severity: String,
    /// What it is about.
    pub scope: String,
    /// Details.
    pub detail: String,
}

/// The active alarms of a role's `/api/v1/alarms` answer.
pub fn remote_alarms(answer: &Value) -> Vec<RemoteAlarm> {
    answer["active"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| RemoteAlarm {
                    id: a["def"]["id"].as_u64().unwrap_or_default() as u32,
                    name: a["def"]["name"].as_str().unwrap_or_default().to_string(),
                    severity: a["def"]["severity"].as_str().unwrap_or("Info").to_string(),
                    scope: a["scope"].as_str().unwrap_or_default().to_string(),
                    detail: a["detail"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn severity_of(text: &str) -> Severity {
    match text {
        "Critical" => Severity::Critical,
        "Major" => Severity::Major,
        "Minor" => Severity::Minor,
        _ => Severity::Info,
    }
}

/// The "Upgrade Operation" column: step n/N, percent, elapsed time, or the last failure.
fn operation(director: &Director, cluster: &Cluster, server: &Server) -> Value {
    let running = director.running_action(&cluster.name).filter(|r| {
        r.action.server.as_deref() == Some(server.hostname.as_str())
            || (!r.action.kind.is_server_action() && server.ha_role == tollgate_upgrade::topology::HaRole::Active)
    });
    match running {
        Some(r) => running_json(r),
        None => match director.failures().get(&server.hostname) {
            Some(why) => json!({ "text": format!("Failed: {why}"), "failed": true }),
            None => json!({ "text": "" }),
        },
    }
}

fn running_json(r: &RunningAction) -> Value {
    let steps = r.action.kind.steps();
    let index = steps.iter().position(|s| *s == r.step).unwrap_or(0) + 1;
    let percent = (index - 1) * 100 / steps.len();
    let elapsed = (Utc::now() - r.started_at).num_seconds().max(0);
    let step_name = r.step.log_name(r.action.kind);
    json!({
        "id": r.id.0,
        "action": r.action,
        "label": r.action.to_string(),
        "step": step_name,
        "step_index": index,
        "steps": steps.len(),
        "percent": percent,
        "elapsed_secs": elapsed,
        "started_at": r.started_at,
        "text": format!(
            "{} ({index}/{}) {percent}% {}:{:02}",
            step_name,
            steps.len(),
            elapsed / 60,
            elapsed % 60
        ),
    })
}

/// The whole status.
pub fn status(m: &Manager) -> Value {
    let core = m.core();
    let director = &core.shared.director;
    let target = director.target();
    let local: Vec<_> = m.alarms.active();
    let remote = m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let server_severity = |hostname: &str| -> Option<String> {
        let own = local.iter().filter(|a| a.scope == hostname).map(|a| a.def.severity);
        let reported = remote.get(hostname).into_iter().flatten().map(|a| severity_of(&a.severity));
        own.chain(reported).min().map(|s| s.to_string())
    };
    let clusters: Vec<Value> = director
        .topology()
        .clusters
        .iter()
        .map(|c| {
            let mut severities: Vec<Severity> = tollgate_upgrade::topology::alarm_severities(c, &local).collect();
            for s in &c.servers {
                severities.extend(remote.get(&s.hostname).into_iter().flatten().map(|a| severity_of(&a.severity)));
            }
            let status = c.status(target, severities.iter().copied());
            let advice = |d: Direction| match director.advise(&c.name, d) {
                Ok(a) => serde_json::to_value(a).unwrap_or_default(),
                Err(r) => json!({ "waiting": r, "preferred": null, "others": [], "done": false, "button": "" }),
            };
            let servers: Vec<Value> = c
                .servers
                .iter()
                .map(|s| {
                    json!({
                        "hostname": s.hostname,
                        "site": s.site,
                        "alarm_severity": server_severity(&s.hostname),
                        "up_to_date": s.up_to_date(target).to_string(),
                        "ha_role": s.ha_role.to_string(),
                        "role": s.state().to_string(),
                        "prev_release": s.previous_release.as_ref().map(|r| r.as_str().to_string()),
                        "running_release": s.running_release.as_str(),
                        "forced_standby": s.forced_standby,
                        "reachable": s.reachable,
                        "staged": s.staged,
                        "operation": operation(director, c, s),
                    })
                })
                .collect();
            json!({
                "name": c.name,
                "application": c.application.as_str(),
                "designation": c.designation,
                "site": c.site,
                "segment": c.segment,
                "status": status.to_string(),
                "alarm_severity": severities.iter().min().map(|s| s.to_string()),
                "up_to_date": match target {
                    None => "N/A",
                    Some(_) if c.servers.iter().all(|s| s.up_to_date(target).to_string() == "Y") => "Y",
                    Some(_) => "N",
                },
                "mixed_version": c.is_mixed_version(),
                "upgrade": advice(Direction::Upgrade),
                "backout": advice(Direction::Backout),
                "running": director.running_action(&c.name).map(running_json),
                "servers": servers,
            })
        })
        .collect();
    let remote_list: Vec<Value> = remote
        .iter()
        .flat_map(|(host, list)| list.iter().map(move |a| json!({ "server": host, "alarm": a })))
        .collect();
    json!({
        "manager": { "hostname": m.cfg.hostname, "ha": core.ha.to_string(), "release": m.release, "mate": m.cfg.mate },
        "procedure": director.procedure(),
        "mixed_version": director.topology().is_mixed_version(),
        "failures": director.failures(),
        "clusters": clusters,
        "alarms": local,
        "server_alarms": remote_list,
        "generation": core.shared.generation,
    })
}
