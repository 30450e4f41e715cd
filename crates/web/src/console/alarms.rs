//! Alarms from every server: the active ones (the manager's own and what every server's agent
//! reports), filtered by severity and server, each acknowledged with one button (operator
//! role; recorded with who and when, replicated to the standby manager and audited); then the
//! history: the acknowledgements, every server's raises and clears (as its role reported them
//! at the last poll) and the manager's own.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use tollgate_alarms::Severity;
use tollgate_api::console::ConsoleAlarm;
use tollgate_manager::{alarm_acks, ops};

use super::{ConsoleUser, csrf_field, error_page, frame, respond};
use crate::auth::Role;
use crate::manager_api::ManagerApi;
use crate::session::UiForm;

/// `?severity=&server=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AlarmFilter {
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    server: Option<String>,
}

const SEVERITIES: [Severity; 4] = [Severity::Critical, Severity::Major, Severity::Minor, Severity::Info];

/// True if `a` passes `f`.
fn wanted(a: &ConsoleAlarm, f: &AlarmFilter) -> bool {
    let sev = f.severity.as_deref().filter(|s| !s.is_empty());
    let server = f.server.as_deref().filter(|s| !s.is_empty());
    sev.is_none_or(|s| a.severity.to_string() == s) && server.is_none_or(|s| a.server == s)
}

/// `GET /alarms`.
pub(super) async fn page(
    State(s): State<Arc<ManagerApi>>,
    user: ConsoleUser,
    Query(f): Query<AlarmFilter>,
) -> Response {
    let all = alarm_acks::active(&s.manager);
    let mut servers: Vec<String> = s.manager.cfg.servers().map(|(_, sv)| sv.hostname.clone()).collect();
    if !servers.contains(&s.manager.cfg.hostname) {
        servers.insert(0, s.manager.cfg.hostname.clone());
    }
    let shown: Vec<&ConsoleAlarm> = all.iter().filter(|a| wanted(a, &f)).collect();
    let may_ack = user.who().role.allows(Role::Operator);
    let history = ops::alarms(&s.manager).history;
    // Every server's raises and clears, newest first, for the server filter.
    let mut server_history: Vec<(String, tollgate_api::manager::AlarmEventView)> = s
        .manager
        .server_alarm_history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(host, _)| f.server.as_deref().filter(|s| !s.is_empty()).is_none_or(|s| s == host.as_str()))
        .flat_map(|(host, events)| events.iter().map(move |e| (host.clone(), e.clone())))
        .collect();
    server_history.sort_by_key(|e| std::cmp::Reverse(e.1.at));
    let acks: Vec<_> =
        ops::audit(&s.manager).into_iter().rev().filter(|e| e.operation.starts_with("Acknowledge alarm")).collect();
    let sel_sev = f.severity.as_deref().unwrap_or("");
    let sel_server = f.server.as_deref().unwrap_or("");
    let body = html! {
        form.filters method="get" action="/alarms" {
            label { "Severity"
                select name="severity" id="severity" {
                    option value="" { "any" }
                    @for sev in SEVERITIES { option value=(sev.to_string()) selected[sel_sev == sev.to_string()] { (sev.to_string()) } }
                }
            }
            label { "Server"
                select name="server" id="server" {
                    option value="" { "any" }
                    @for h in &servers { option value=(h) selected[sel_server == h.as_str()] { (h) } }
                }
            }
            button.primary type="submit" id="filter" { "Filter" }
        }
        h2 { "Active " span.muted #active-count { "(" (shown.len()) " of " (all.len()) ")" } }
        table #active {
            thead { tr { th { "Severity" } th { "ID" } th { "Name" } th { "Server" } th { "Scope" } th { "Detail" } th { "Raised (UTC)" } th { "Acknowledged" } } }
            tbody {
                @for a in &shown {
                    tr data-key=(a.key) data-server=(a.server) data-id=(a.id) data-severity=(a.severity.to_string())
                       data-acked=(a.ack.is_some()) class=[a.ack.as_ref().map(|_| "acked")] {
                        td { span class=(format!("sev sev-{}", a.severity)) { (a.severity.to_string()) } }
                        td { (a.id) } td { (a.name) } td { (a.server) } td { (a.scope) } td { (a.detail) }
                        td { @if let Some(t) = a.raised_at { (t.format("%Y-%m-%d %H:%M:%S")) } @else { span.muted { "reported" } } }
                        td.ack {
                            @if let Some(ack) = &a.ack {
                                (ack.by) " at " (ack.at.format("%Y-%m-%d %H:%M:%S"))
                            } @else if may_ack {
                                form method="post" action="/alarms" {
                                    (csrf_field(&user))
                                    input type="hidden" name="key" value=(a.key);
                                    button.primary.ack type="submit" aria-label=(format!("Acknowledge {} {} on {}", a.id, a.name, a.server)) { "Acknowledge" }
                                }
                            } @else { span.muted { "not yet" } }
                        }
                    }
                }
                @if shown.is_empty() { tr { td colspan="8" .muted #no-alarm { "No active alarm." } } }
            }
        }
        h2 { "Acknowledgements" }
        table #acks {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "Alarm" } th { "Scope" } } }
            tbody {
                @for e in &acks { tr { td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { (e.user) } td { (e.operation.trim_start_matches("Acknowledge alarm ")) } td { (e.detail) } } }
                @if acks.is_empty() { tr { td colspan="4" .muted { "None yet." } } }
            }
        }
        h2 { "History of the servers' alarms" }
        table #server-history {
            thead { tr { th { "When (UTC)" } th { "Server" } th { "Event" } th { "ID" } th { "Name" } th { "Scope" } th { "Detail" } } }
            tbody {
                @for (host, e) in server_history.iter().take(200) {
                    tr data-server=(host) { td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { (host) }
                         td { @if e.raised { span.err { "raised" } } @else { span.ok { "cleared" } } }
                         td { (e.id) } td { (e.name) } td { (e.scope) } td { (e.detail) } }
                }
                @if server_history.is_empty() { tr { td colspan="7" .muted { "No server reported a raise or a clear." } } }
            }
        }
        h2 { "History of the manager's alarms" }
        table #history {
            thead { tr { th { "When (UTC)" } th { "Event" } th { "ID" } th { "Name" } th { "Scope" } th { "Detail" } } }
            tbody {
                @for e in history.iter().rev().take(200) {
                    tr { td { (e.at.format("%Y-%m-%d %H:%M:%S")) } td { @if e.raised { span.err { "raised" } } @else { span.ok { "cleared" } } }
                         td { (e.id) } td { (e.name) } td { (e.scope) } td { (e.detail) } }
                }
                @if history.is_empty() { tr { td colspan="6" .muted { "Nothing raised since the manager started." } } }
            }
        }
    };
    respond(StatusCode::OK, None, frame("Alarms", "Alarms", Some(&user), body, None))
}

/// The acknowledge form.
#[derive(Debug, Deserialize)]
pub(super) struct AckForm {
    key: String,
}

/// `POST /alarms`: acknowledges one alarm (operator role), then back to the list.
pub(super) async fn acknowledge(State(s): State<Arc<ManagerApi>>, UiForm(user, f): UiForm<AckForm>) -> Response {
    let user = ConsoleUser(user);
    if let Err(refused) = user.require(Role::Operator) {
        return refused;
    }
    match alarm_acks::acknowledge(&s.manager, &user.who().name, &f.key) {
        Ok(_) => Redirect::to("/alarms").into_response(),
        Err(e) => error_page(
            StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::CONFLICT),
            Some(&user),
            "The alarm was not acknowledged",
            html! { p.err #why { (e.message) } p { a href="/alarms" { "Back to the alarms" } } },
        ),
    }
}
