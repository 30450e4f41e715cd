//! Every server's active alarms in one list, and their acknowledgement: an operator
//! acknowledges an alarm in the console; the acknowledgement (who, when) is part of the state
//! the pair shares ([`tollgate_api::manager::Snapshot::alarm_acks`]), so the standby manager
//! shows it too, and it is written to the audit log.

use std::sync::Arc;

use chrono::Utc;
use tollgate_api::console::{AlarmAck, ConsoleAlarm, alarm_key};
use tollgate_api::{ErrorBody, ErrorCode};
use tollgate_upgrade::director::{AuditEntry, AuditOutcome};

use crate::Manager;
use crate::ops::OpResult;

/// The server a manager's alarm is listed under: the server it is about (its scope names a
/// server of the topology), else the manager itself.
fn about(m: &Manager, scope: &str) -> String {
    match m.cfg.server(scope) {
        Some((_, s)) => s.hostname.clone(),
        None => m.cfg.hostname.clone(),
    }
}

/// The system's active alarms: the manager's own (its Upgrade Director's, listed under the
/// server they are about), then what every server's agent reports, most severe first, each
/// with its acknowledgement.
pub fn active(m: &Manager) -> Vec<ConsoleAlarm> {
    let acks = m.core().shared.alarm_acks.clone();
    let mut out: Vec<ConsoleAlarm> = m
        .alarms
        .active()
        .iter()
        .map(|a| ConsoleAlarm {
            key: alarm_key(&about(m, &a.scope), a.def.id, &a.scope),
            server: about(m, &a.scope),
            id: a.def.id,
            name: a.def.name.to_string(),
            severity: a.def.severity,
            scope: a.scope.clone(),
            detail: a.detail.clone(),
            raised_at: Some(a.raised_at),
            ack: None,
        })
        .collect();
    for (server, alarms) in m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for a in alarms {
            out.push(ConsoleAlarm {
                key: alarm_key(server, a.id, &a.scope),
                server: server.clone(),
                id: a.id,
                name: a.name.clone(),
                severity: a.severity,
                scope: a.scope.clone(),
                detail: a.detail.clone(),
                raised_at: None,
                ack: None,
            });
        }
    }
    for a in &mut out {
        a.ack = acks.get(&a.key).cloned();
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.server.cmp(&b.server)).then(a.id.cmp(&b.id)));
    out
}

/// `user` acknowledges the active alarm `key` (again: the first acknowledgement stays). Only
/// the active manager records it (the standby copies its state); an alarm that is not active
/// (cleared meanwhile, or never raised) is refused.
pub fn acknowledge(m: &Arc<Manager>, user: &str, key: &str) -> OpResult<ConsoleAlarm> {
    if !m.is_active() {
        return Err(ErrorBody::new(ErrorCode::Conflict, "this manager is the standby of its pair: use the active one"));
    }
    let Some(mut alarm) = active(m).into_iter().find(|a| a.key == key) else {
        return Err(ErrorBody::new(ErrorCode::NotFound, format!("no active alarm {key:?} (it may have cleared)")));
    };
    if alarm.ack.is_some() {
        return Ok(alarm);
    }
    let ack = AlarmAck { by: user.to_string(), at: Utc::now() };
    {
        let mut core = m.core();
        core.shared.alarm_acks.insert(key.to_string(), ack.clone());
        core.shared.audit.push(AuditEntry {
            at: ack.at,
            user: user.to_string(),
            operation: format!("Acknowledge alarm {} {} on {}", alarm.id, alarm.name, alarm.server),
            outcome: AuditOutcome::Accepted,
            detail: alarm.scope.clone(),
        });
        // Acknowledgements of alarms no longer active are dropped.
        let live: std::collections::HashSet<String> = active_keys(m);
        core.shared.alarm_acks.retain(|k, _| k == key || live.contains(k));
        core.shared.generation += 1;
        m.persist(&core.shared);
    }
    m.changed.notify_one();
    tracing::info!(user, alarm = alarm.id, server = alarm.server, scope = alarm.scope, "alarm acknowledged");
    alarm.ack = Some(ack);
    Ok(alarm)
}

/// The keys of the active alarms (without reading the shared state).
fn active_keys(m: &Manager) -> std::collections::HashSet<String> {
    let mut keys: std::collections::HashSet<String> =
        m.alarms.active().iter().map(|a| alarm_key(&about(m, &a.scope), a.def.id, &a.scope)).collect();
    for (server, alarms) in m.server_alarms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        keys.extend(alarms.iter().map(|a| alarm_key(server, a.id, &a.scope)));
    }
    keys
}
