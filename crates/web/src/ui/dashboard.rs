//! Dashboard: traffic per device over the last hour (queries/s for engines, calls/s for
//! probes), decisions by action, the policy in force, the spool, and active alarms. Refreshes
//! itself every 5 seconds.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use maud::{Markup, html};
use tollgate_store::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, View};

use super::charts::{bar_chart, line_chart};
use super::thousands;
use crate::AppState;
use crate::session::UiUser;

/// Traffic of the last hour, per device and in all.
struct Traffic {
    dataset: Dataset,
    all: AnalyticsResult,
    devices: Vec<(String, AnalyticsResult)>,
    actions: Option<AnalyticsResult>,
}

fn last_hour(dataset: Dataset, view: View, device: Option<String>) -> AnalyticsQuery {
    let now = Utc::now();
    let to = now + Duration::minutes(1);
    AnalyticsQuery { dataset, view, grouping: Grouping::Minute, device, from: to - Duration::hours(1), to }
}

fn traffic(state: &AppState) -> Vec<Traffic> {
    let Some(store) = &state.store else { return Vec::new() };
    let mut out = Vec::new();
    for dataset in Dataset::ALL {
        let Ok(all) = store.analytics(&last_hour(dataset, View::AverageCps, None)) else { continue };
        let devices = store
            .devices(dataset)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| {
                store.analytics(&last_hour(dataset, View::AverageCps, Some(d.clone()))).ok().map(|r| (d, r))
            })
            .collect();
        let outcome_view = if dataset == Dataset::Enum { View::ActionsByRule } else { View::CallsByDisposition };
        let mut q = last_hour(dataset, outcome_view, None);
        q.grouping = Grouping::Minute;
        let actions = store.analytics(&q).ok();
        let devices: Vec<_> = devices;
        // A dataset nobody sends (say SIP without probes) is left off the dashboard.
        if all.total > 0 || !devices.is_empty() || dataset == Dataset::Enum {
            out.push(Traffic { dataset, all, devices, actions });
        }
    }
    out
}

/// The rate of the last complete minute.
fn last_minute_rate(r: &AnalyticsResult) -> f64 {
    let now = Utc::now().timestamp();
    r.series.iter().rev().find(|p| p.bucket.timestamp() + 60 <= now).map_or(0.0, |p| p.count as f64 / 60.0)
}

fn traffic_card(t: &Traffic) -> Markup {
    let unit = if t.dataset == Dataset::Enum { "queries/s" } else { "calls/s" };
    // Complete minutes only: the minute in progress would show a rate over a few seconds.
    let now = Utc::now().timestamp();
    let points: Vec<_> =
        t.all.series.iter().filter(|p| p.bucket.timestamp() + 60 <= now).map(|p| (p.bucket, p.value)).collect();
    html! {
        div.card {
            h2 { (t.dataset.as_str()) ": " (unit) ", last hour, all devices" }
            (line_chart(&points, unit))
            table {
                thead { tr { th { "Device" } th.n { (unit) " (last minute)" } th.n { "last hour" } } }
                tbody {
                    @for (device, r) in &t.devices {
                        tr { td { a href=(format!("/analytics?dataset={}&view=Average+CPS&grouping=Minute&range=1h&device={}", t.dataset.as_str(), super::urlencode(device))) { (device) } }
                             td.n { (format!("{:.2}", last_minute_rate(r))) } td.n { (thousands(r.total)) } }
                    }
                    @if t.devices.is_empty() { tr { td colspan="3" .muted { "no records yet" } } }
                }
            }
            @if let Some(a) = &t.actions {
                @let bars: Vec<(String, f64)> = a.summary.iter().map(|r| (if r.detail.is_empty() { r.key.clone() } else { format!("{} → {}", r.key, r.detail) }, r.count as f64)).collect();
                h2 { (if t.dataset == Dataset::Enum { "Decisions by rule and action, last hour" } else { "Calls by disposition, last hour" }) }
                (bar_chart(&bars, "records"))
            }
        }
    }
}

pub(super) async fn page(State(state): State<Arc<AppState>>, user: UiUser) -> Response {
    let st = state.clone();
    let traffic = tokio::task::spawn_blocking(move || traffic(&st)).await.unwrap_or_default();
    let alarms = state.alarms.active();
    let policy = state.policy.as_ref().map(|p| p.installed().snapshot());
    let status = state.status.as_ref().map(|f| f()).unwrap_or_default();
    let body = html! {
        div.cards {
            div.card.stat { div.k { "Node" } div.v { (state.node) } }
            @if let Some(active) = &policy {
                div.card.stat { div.k { "Policy in force" } div.v {
                    @match active.version { Some(v) => { "v" (v) " " span.muted { (active.policy.meta().name) } } None => { "none (allow all)" } }
                } }
            }
            div.card.stat { div.k { "Active alarms" } div class=(if alarms.is_empty() { "v ok" } else { "v err" }) { (alarms.len()) } }
            @for (k, v) in &status { div.card.stat { div.k { (k) } div.v { (v) } } }
        }
        @if !alarms.is_empty() {
            div.card {
                h2 { "Active alarms" }
                table {
                    thead { tr { th { "Severity" } th { "ID" } th { "Name" } th { "Scope" } th { "Raised" } th { "Detail" } } }
                    tbody { @for a in &alarms { tr {
                        td { span class=(format!("sev sev-{}", a.def.severity)) { (a.def.severity) } }
                        td { (a.def.id) } td { (a.def.name) } td { (a.scope) } td { (a.raised_at.format("%Y-%m-%d %H:%M:%S UTC")) } td { (a.detail) }
                    } } }
                }
            }
        }
        @if state.store.is_none() { div.card.muted { "This server runs no collector: traffic is shown by the collector's UI." } }
        @for t in &traffic { (traffic_card(t)) }
    };
    super::page("Dashboard", "Dashboard", &user, Some(5), body).into_response()
}
