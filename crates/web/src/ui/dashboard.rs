//! Dashboard: traffic per device over the last hour (decisions/s for engines, ENUM queries and
//! SIP INVITEs together; calls/s for probes; one line per device with a legend), decisions by
//! action, the policy in force, the spool, and active alarms. The served script refreshes the
//! live part in place every 5 seconds (`GET /?part=live`, which does not extend the login
//! session); without the script the page is simply static.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use tollgate_store::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, View};

use super::charts::{Series, TimeAxis, bar_chart, known_until, time_chart};
use super::{ZoneParam, thousands, urlencode};
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

/// The last hour's points of `r`, complete minutes only: the minute in progress would show a
/// rate over a few seconds, and later minutes have no data yet (both are gaps, not zeros).
fn complete_minutes(r: &AnalyticsResult, now: chrono::DateTime<Utc>) -> Vec<(chrono::DateTime<Utc>, Option<f64>)> {
    let points: Vec<_> = r.series.iter().map(|p| (p.bucket, p.value)).collect();
    known_until(&points, now - Duration::minutes(1))
}

/// What a dataset's traffic card shows: the engines' records hold ENUM and SIP redirect
/// decisions alike, the probes' the calls they saw.
fn traffic_title(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Enum => "Engine decisions (ENUM and SIP)",
        Dataset::Sip => "Probe calls",
    }
}

fn traffic_card(t: &Traffic, tz: Tz) -> Markup {
    let unit = crate::ui::analytics::rate_unit(t.dataset);
    let now = Utc::now();
    let mut series = vec![Series { name: "all devices".into(), points: complete_minutes(&t.all, now) }];
    if t.devices.len() > 1 {
        series.extend(t.devices.iter().map(|(d, r)| Series { name: d.clone(), points: complete_minutes(r, now) }));
    }
    let axis = TimeAxis { from: t.all.query.from, to: t.all.query.to, bucket: 60, tz, now };
    html! {
        div.card {
            h2 { (traffic_title(t.dataset)) ": " (unit) ", last hour" }
            (time_chart(&series, &axis, unit))
            table {
                thead { tr { th { "Device" } th.n { (unit) " (last minute)" } th.n { "last hour" } } }
                tbody {
                    @for (device, r) in &t.devices {
                        tr { td { a href=(format!("/analytics?dataset={}&view=Average+CPS&grouping=Minute&range=1h&device={}&tz={}", t.dataset.as_str(), urlencode(device), urlencode(tz.name()))) { (device) } }
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

/// The part of the Dashboard that the script refreshes.
async fn live(state: &Arc<AppState>, tz: Tz) -> Markup {
    let st = state.clone();
    let traffic = tokio::task::spawn_blocking(move || traffic(&st)).await.unwrap_or_default();
    let alarms = state.alarms.active();
    let policy = state.policy.as_ref().map(|p| p.installed().snapshot());
    let status = state.status.as_ref().map(|f| f()).unwrap_or_default();
    html! {
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
                        td { (a.def.id) } td { (a.def.name) } td { (a.scope) } td { (super::charts::time::stamp(a.raised_at, tz)) } td { (a.detail) }
                    } } }
                }
            }
        }
        @if state.store.is_none() { div.card.muted { "This server runs no collector: traffic is shown by the collector's UI." } }
        @for t in &traffic { (traffic_card(t, tz)) }
    }
}

pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    user: UiUser,
    Query(part): Query<super::Part>,
    Query(zone): Query<ZoneParam>,
) -> Response {
    let tz = zone.tz();
    let live = live(&state, tz).await;
    if let Some(only) = part.live_only(&live) {
        return only;
    }
    let body = html! {
        form.selectors method="get" action="/" { (super::zone_select(tz)) noscript { button type="submit" { "Show" } } }
        p.muted.live-note #live-note { "Live: refreshed every 5 seconds while this page is open." }
        div #live data-refresh=(format!("/?part=live&tz={}", urlencode(tz.name()))) data-every="5" { (live) }
    };
    super::page("Dashboard", "Dashboard", &user, None, body).into_response()
}
