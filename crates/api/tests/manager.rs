//! The manager's wire types: they round-trip, and what the previous release's manager sent
//! (its `json!` views) still decodes.

#![recursion_limit = "256"]

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tollgate_alarms::Severity;
use tollgate_api::manager::*;
use tollgate_upgrade::director::{Action, ActionKind};
use tollgate_upgrade::topology::{AppType, ClusterStatus, HaRole, ServerState, UpToDate};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let text = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, v, "{text}");
}

/// `GET /api/v1/upgrade/status` as release 0.1 sent it (`manager/view.rs`, `json!`): a cluster
/// with an action running on one server, a failure on another, a remote alarm.
fn status_0_1() -> serde_json::Value {
    json!({
        "manager": { "hostname": "mgr-a", "ha": "Active", "release": "0.1.0", "mate": "http://127.0.0.1:9001" },
        "procedure": { "release": "0.2.0", "upgrades_from": ["0.1.*"], "label": "tollgate-0.2.0" },
        "mixed_version": true,
        "failures": { "eng-b": "preflight failed" },
        "clusters": [{
            "name": "engines",
            "application": "engine",
            "designation": null,
            "site": "north",
            "segment": "s1",
            "status": "Minor",
            "alarm_severity": "Minor",
            "up_to_date": "N",
            "mixed_version": true,
            "upgrade": {
                "cluster": "engines", "direction": "Upgrade",
                "preferred": {
                    "name": "Initiate upgrade",
                    "action": { "kind": "InitiateUpgrade", "cluster": "engines", "server": "eng-b" },
                    "targets": ["eng-b"], "label": "Initiate upgrade eng-b (next)", "description": "upgrade eng-b"
                },
                "waiting": null, "others": [], "done": false, "button": "Continue Upgrade"
            },
            "backout": { "waiting": { "kind": "NoProcedure", "reason": "no procedure" }, "preferred": null, "others": [], "done": false, "button": "" },
            "running": {
                "id": 7,
                "action": { "kind": "InitiateUpgrade", "cluster": "engines", "server": "eng-a" },
                "label": "Initiate upgrade eng-a",
                "step": "Upgrading server",
                "step_index": 2, "steps": 3, "percent": 33, "elapsed_secs": 65,
                "started_at": "2026-01-02T03:04:05Z",
                "text": "Upgrading server (2/3) 33% 1:05"
            },
            "servers": [
                {
                    "hostname": "eng-a", "site": "north", "alarm_severity": null, "up_to_date": "N",
                    "ha_role": "Standby", "role": "OOS", "prev_release": null, "running_release": "0.1.0",
                    "forced_standby": true, "reachable": true,
                    "staged": [{ "file_name": "tollgate-engine-0.2.0.tar.gz", "application": "engine", "release": "0.2.0" }],
                    "operation": {
                        "id": 7,
                        "action": { "kind": "InitiateUpgrade", "cluster": "engines", "server": "eng-a" },
                        "label": "Initiate upgrade eng-a", "step": "Upgrading server",
                        "step_index": 2, "steps": 3, "percent": 33, "elapsed_secs": 65,
                        "started_at": "2026-01-02T03:04:05Z", "text": "Upgrading server (2/3) 33% 1:05"
                    }
                },
                {
                    "hostname": "eng-b", "site": "north", "alarm_severity": "Minor", "up_to_date": "N",
                    "ha_role": "Active", "role": "Active", "prev_release": "0.0.9", "running_release": "0.1.0",
                    "forced_standby": false, "reachable": true, "staged": [],
                    "operation": { "text": "Failed: preflight failed", "failed": true }
                },
                {
                    "hostname": "eng-c", "site": "south", "alarm_severity": null, "up_to_date": "N/A",
                    "ha_role": "Spare", "role": "Forced Standby", "prev_release": null, "running_release": "0.1.0",
                    "forced_standby": true, "reachable": false, "staged": [],
                    "operation": { "text": "" }
                }
            ]
        }],
        "alarms": [{
            "def": { "id": 70500, "name": "SYSTEM_MIXED_VERSION", "severity": "Minor", "text": "the system runs more than one release" },
            "scope": "system", "raised_at": "2026-01-02T03:00:00Z", "detail": "0.1.0, 0.2.0"
        }],
        "server_alarms": [{ "server": "eng-b", "alarm": { "id": 70001, "name": "X", "severity": "Minor", "scope": "spool", "detail": "" } }],
        "generation": 42,
        "bundles": [{ "file": "tollgate-engine-0.2.0.tar.gz", "application": "engine", "release": "0.2.0", "upgrades_from": ["0.1.*"], "max_policy_schema": 2 }],
        "some_field_of_a_newer_release": { "ignored": true }
    })
}

#[test]
fn the_previous_releases_status_decodes() {
    let s: SystemStatus = serde_json::from_value(status_0_1()).unwrap();
    assert_eq!(s.manager.ha, HaRole::Active);
    assert_eq!(s.procedure.as_ref().unwrap().label, "tollgate-0.2.0");
    assert_eq!(s.failures["eng-b"], "preflight failed");
    let c = &s.clusters[0];
    assert_eq!((c.application, c.status, c.up_to_date), (AppType::Engine, ClusterStatus::Minor, UpToDate::No));
    assert_eq!(c.alarm_severity, Some(Severity::Minor));
    let preferred = c.upgrade.preferred.as_ref().unwrap();
    assert_eq!(preferred.action, Action::initiate_upgrade("engines", "eng-b"));
    assert_eq!(c.upgrade.button, "Continue Upgrade");
    assert_eq!(c.upgrade.direction, Some(tollgate_upgrade::director::Direction::Upgrade));
    assert_eq!(c.backout.cluster, None);
    assert_eq!(c.backout.waiting.as_ref().unwrap().reason, "no procedure");
    assert_eq!(c.running.as_ref().unwrap().percent, 33);
    let [a, b, spare] = &c.servers[..] else { panic!("three servers") };
    assert_eq!(a.role, ServerState::Oos);
    assert!(matches!(&a.operation, Operation::Running(r) if r.id == 7 && r.action.kind == ActionKind::InitiateUpgrade));
    assert_eq!(a.operation.text(), "Upgrading server (2/3) 33% 1:05");
    assert!(!a.operation.failed());
    assert!(b.operation.failed());
    assert_eq!(b.operation.text(), "Failed: preflight failed");
    assert_eq!(b.prev_release.as_deref(), Some("0.0.9"));
    assert_eq!(
        (spare.role, spare.up_to_date, spare.reachable),
        (ServerState::ForcedStandby, UpToDate::NotApplicable, false)
    );
    assert_eq!(spare.operation, Operation::default());
    assert_eq!(s.alarms[0].def.id, 70500);
    assert_eq!(s.server_alarms[0].alarm.severity, Severity::Minor);
    assert_eq!(s.bundles[0].max_policy_schema, Some(2));
}

#[test]
fn the_status_round_trips_and_writes_what_the_page_reads() {
    let s: SystemStatus = serde_json::from_value(status_0_1()).unwrap();
    round_trip(&s);
    // The page and older CLIs read these keys and values as text.
    let v = serde_json::to_value(&s).unwrap();
    let server = &v["clusters"][0]["servers"][1];
    assert_eq!(server["operation"], json!({ "text": "Failed: preflight failed", "failed": true }));
    assert_eq!(v["clusters"][0]["servers"][2]["operation"], json!({ "text": "" }));
    assert_eq!(v["clusters"][0]["servers"][2]["role"], "Forced Standby");
    assert_eq!(v["clusters"][0]["servers"][2]["up_to_date"], "N/A");
    assert_eq!(v["clusters"][0]["status"], "Minor");
    assert_eq!(v["clusters"][0]["application"], "engine");
    assert_eq!(v["manager"]["ha"], "Active");
    assert_eq!(v["clusters"][0]["running"]["step_index"], 2);
}

#[test]
fn the_previous_releases_ha_answer_decodes_and_a_minimal_one_too() {
    let old = json!({
        "hostname": "mgr-b", "mate": "http://127.0.0.1:9000", "ha": "Standby", "handing_over": false,
        "starts_active": false, "active_since": null, "synchronised": true, "generation": 9,
        "release": "0.1.0", "forced_standby": false
    });
    let ha: HaStatus = serde_json::from_value(old).unwrap();
    assert_eq!((ha.ha, ha.generation, ha.is_active()), (HaRole::Standby, 9, false));
    round_trip(&ha);
    let minimal: HaStatus = serde_json::from_value(json!({ "hostname": "m", "ha": "Active" })).unwrap();
    assert!(minimal.is_active() && minimal.mate.is_none());
}

#[test]
fn a_manager_handing_over_is_read_as_the_standby() {
    let ha = |ha: &str, handing_over: bool| -> HaStatus {
        serde_json::from_value(json!({ "hostname": "mgr-a", "ha": ha, "handing_over": handing_over })).unwrap()
    };
    assert_eq!((ha("Active", false).role(), ha("Active", false).is_active()), (HaRole::Active, true));
    assert_eq!((ha("Active", true).role(), ha("Active", true).is_active()), (HaRole::Standby, false));
    assert_eq!((ha("Standby", false).role(), ha("Standby", false).is_active()), (HaRole::Standby, false));
}

#[test]
fn the_previous_releases_action_answers_decode() {
    let next: NextAnswer = serde_json::from_value(json!({
        "started": [{ "id": 3, "action": "Initiate upgrade eng-a" }],
        "refused": [{ "action": "Initiate upgrade mgr-b", "reason": null }, { "action": "x", "reason": "busy" }],
        "done": false
    }))
    .unwrap();
    assert_eq!(next.started[0].id, 3);
    assert_eq!(next.refused[1].reason.as_deref(), Some("busy"));
    round_trip(&next);
    let req: ActionRequest = serde_json::from_value(json!({ "cluster": "engines", "direction": "rollback" })).unwrap();
    assert_eq!(req.direction, Some(DirectionWord::Rollback));
    round_trip(&req);
    let named: ActionRequest = serde_json::from_value(json!({
        "cluster": "engines", "action": { "kind": "FailoverToNewVersion", "cluster": "engines", "server": "eng-a" }
    }))
    .unwrap();
    assert_eq!(named.action.unwrap().kind, ActionKind::FailoverToNewVersion);
    round_trip(&ProcedureRequest { release: Some("0.2.0".into()) });
    round_trip(&NextRequest { direction: DirectionWord::Upgrade });
}

#[test]
fn the_previous_releases_log_health_and_backups_decode() {
    let log: Vec<LogEntry> = serde_json::from_value(json!([{
        "id": 5, "parent_id": 4, "action_name": "Upgrading server", "start": "2026-01-02T03:04:05Z",
        "end": "2026-01-02T03:05:10Z", "scope": "Server", "hostname": "eng-a", "result": "Success",
        "mode": "Manual", "description": "ok", "cluster": "engines", "duration": "0:01:05"
    }]))
    .unwrap();
    assert_eq!((log[0].entry.id, log[0].duration.as_str()), (5, "0:01:05"));
    round_trip(&log);

    let health: SystemHealth = serde_json::from_value(json!({ "ok": false, "servers": [
        { "cluster": "engines", "hostname": "eng-a", "ok": true, "text": "disk ok\n", "health": { "server": "eng-a", "classes": [{ "class": "disk", "verdict": "OK", "detail": "fine" }] } },
        { "cluster": "engines", "hostname": "eng-b", "ok": false, "text": "eng-b: the agent does not answer: refused\n" }
    ]}))
    .unwrap();
    assert!(!health.ok && health.servers[0].ok && health.servers[1].health.is_none());
    round_trip(&health);

    let backup: SystemBackup = serde_json::from_value(json!({
        "ok": false, "why": "manual", "manager_state": "x-manager-state.json",
        "servers": [
            { "hostname": "eng-a", "backup": { "name": "eng-a.tar.gz", "bytes": 1234 } },
            { "hostname": "eng-b", "error": "connection refused" }
        ]
    }))
    .unwrap();
    assert_eq!(backup.servers[0].backup.as_ref().unwrap().bytes, 1234);
    assert_eq!(backup.servers[1].error.as_deref(), Some("connection refused"));
    // Either key, as before: a client tells them apart by which key is present.
    let v = serde_json::to_value(&backup).unwrap();
    assert!(v["servers"][0].get("error").is_none() && v["servers"][1].get("backup").is_none());
    round_trip(&backup);

    // An agent that did not answer was listed with `null`.
    let list: Vec<ServerBackups> = serde_json::from_value(json!([
        { "hostname": "eng-a", "backups": [{ "name": "a.tar.gz", "bytes": 1 }] },
        { "hostname": "eng-b", "backups": null }
    ]))
    .unwrap();
    assert_eq!((list[0].backups.len(), list[1].backups.len()), (1, 0));
    round_trip(&list);
}

#[test]
fn a_roles_alarms_answer_decodes_into_remote_alarms() {
    let answer: RoleAlarms = serde_json::from_value(json!({
        "active": [{ "def": { "id": 70010, "name": "SPOOL_FULL", "severity": "Major", "text": "t" },
                     "scope": "spool", "raised_at": "2026-01-02T03:00:00Z", "detail": "95%" }],
        "history": [{ "at": "2026-01-02T03:00:00Z", "raised": true, "id": 70010, "name": "SPOOL_FULL", "scope": "spool", "detail": "95%" }]
    }))
    .unwrap();
    let remote: Vec<RemoteAlarm> = answer.active.iter().map(Into::into).collect();
    assert_eq!(remote[0].severity, Severity::Major);
    assert_eq!(remote[0].detail, "95%");
    round_trip(&answer);
    let alarms = ManagerAlarms { servers: [("eng-a".to_string(), remote)].into(), ..Default::default() };
    round_trip(&alarms);
}
