//! The Analytics page: the seed's four selectors (Dataset, View, Grouping, Device) and a time
//! range; a chart, the tables, and CSV downloads of the view and of the raw records.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};
use tollgate_store::{AnalyticsResult, Dataset, Grouping, Row, View};

use super::charts::{bar_chart, line_chart};
use super::{thousands, urlencode};
use crate::AppState;
use crate::api::AnalyticsParams;
use crate::session::UiUser;

fn selectors(p: &AnalyticsParams, devices: &[String], q: Option<&tollgate_store::AnalyticsQuery>) -> Markup {
    let dataset = q.map_or("ENUM", |q| q.dataset.as_str());
    let view = q.map_or("Average CPS", |q| q.view.as_str());
    let grouping = q.map_or("Hour", |q| q.grouping.as_str());
    let device = p.device.clone().unwrap_or_else(|| "All".into());
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M").to_string();
    html! {
        form.selectors.card method="get" action="/analytics" {
            label { "Dataset" select name="dataset" id="dataset" { @for d in Dataset::ALL { option selected[d.as_str() == dataset] { (d.as_str()) } } } }
            label { "View" select name="view" id="view" { @for v in View::ALL { option selected[v.as_str() == view] { (v.as_str()) } } } }
            label { "Grouping" select name="grouping" id="grouping" { @for g in Grouping::ALL {
                @let name = format!("{g:?}");
                option selected[g.as_str() == grouping] { (name) } } } }
            label { "Device" select name="device" id="device" {
                option selected[device.eq_ignore_ascii_case("all")] { "All" }
                @for d in devices { option selected[*d == device] { (d) } }
            } }
            label { "From (UTC)" input type="datetime-local" name="from" value=(q.map(|q| fmt(q.from)).unwrap_or_default()); }
            label { "To (UTC)" input type="datetime-local" name="to" value=(q.map(|q| fmt(q.to)).unwrap_or_default()); }
            button.primary type="submit" id="show" { "Show" }
        }
    }
}

fn key_header(view: View) -> (&'static str, &'static str) {
    match view {
        View::TopSource => ("Source number", "Direction"),
        View::TopDestination => ("Destination number", "Direction"),
        View::ActionsByRule => ("Rule", "Action"),
        _ => ("Disposition", ""),
    }
}

fn rows_table(view: View, rows: &[Row], with_bucket: bool) -> Markup {
    let (k, d) = key_header(view);
    // Stale answers are counted apart: they were decided but not used.
    let stale = view == View::ActionsByRule;
    // Rank restarts in each bucket.
    let mut ranked = Vec::with_capacity(rows.len());
    let mut rank = 0usize;
    let mut last = None;
    for r in rows {
        if last != Some(r.bucket) {
            rank = 0;
            last = Some(r.bucket);
        }
        rank += 1;
        ranked.push((rank, r));
    }
    html! {
        table.results {
            thead { tr {
                @if with_bucket { th { "Bucket (UTC)" } } th { "#" } th { (k) } @if !d.is_empty() { th { (d) } } th.n { "Count" }
                @if stale { th.n title="Answered after the engine's stale bound (enum.stale_after_ms): the SBC most likely did not use them" { "Stale" } }
            } }
            tbody {
                @for (rank, r) in &ranked {
                    tr {
                        @if with_bucket { td { (r.bucket.map(|b| b.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()) } }
                        td.n { (rank) } td { (r.key) } @if !d.is_empty() { td { (r.detail) } } td.n { (thousands(r.count)) }
                        @if stale { td.n { (thousands(r.stale.unwrap_or(0))) } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="5" .muted { "no records in this range" } } }
            }
        }
    }
}

fn result_view(r: &AnalyticsResult) -> Markup {
    let q = &r.query;
    html! {
        div.card {
            p.muted { (thousands(r.total)) " records, " (q.from.format("%Y-%m-%d %H:%M")) " to " (q.to.format("%Y-%m-%d %H:%M")) " UTC, grouped by " (q.grouping.as_str()) ", device " (q.device.as_deref().unwrap_or("All")) }
            @match q.view {
                View::AverageCps => {
                    @let unit = if q.dataset == Dataset::Enum { "queries/s" } else { "calls/s" };
                    (line_chart(&r.series.iter().map(|p| (p.bucket, p.value)).collect::<Vec<_>>(), &format!("average {unit} per {}", q.grouping.as_str())))
                    table.results {
                        thead { tr { th { "Bucket (UTC)" } th.n { "Records" } th.n { "Average per second" } } }
                        tbody { @for p in r.series.iter().filter(|p| p.count > 0) { tr {
                            td { (p.bucket.format("%Y-%m-%d %H:%M")) } td.n { (thousands(p.count)) } td.n { (format!("{:.4}", p.value)) }
                        } } }
                    }
                }
                view => {
                    @let bars: Vec<(String, f64)> = r.summary.iter().map(|x| (if x.detail.is_empty() || view != View::ActionsByRule { x.key.clone() } else { format!("{} → {}", x.key, x.detail) }, x.count as f64)).collect();
                    (bar_chart(&bars, "records"))
                    h2 { "Whole range" }
                    (rows_table(view, &r.summary, false))
                    h2 { "Per " (q.grouping.as_str()) }
                    (rows_table(view, &r.per_bucket, true))
                }
            }
        }
    }
}

fn query_string(p: &AnalyticsParams, q: &tollgate_store::AnalyticsQuery) -> String {
    format!(
        "dataset={}&view={}&grouping={:?}&device={}&from={}&to={}",
        q.dataset.as_str(),
        urlencode(q.view.as_str()),
        q.grouping,
        urlencode(p.device.as_deref().unwrap_or("All")),
        urlencode(&q.from.to_rfc3339()),
        urlencode(&q.to.to_rfc3339())
    )
}

pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    user: UiUser,
    Query(p): Query<AnalyticsParams>,
) -> Response {
    let Some(store) = state.store.clone() else {
        return super::page(
            "Analytics",
            "Analytics",
            &user,
            None,
            html! { div.card.muted { "This server runs no collector." } },
        )
        .into_response();
    };
    let query = crate::api::analytics_query(&p, Utc::now());
    let q2 = query.clone();
    let (devices, result) = tokio::task::spawn_blocking(move || {
        let devices = q2.as_ref().map(|q| store.devices(q.dataset).unwrap_or_default()).unwrap_or_default();
        let result = q2.as_ref().map_err(Clone::clone).and_then(|q| store.analytics(q).map_err(|e| e.to_string()));
        (devices, result)
    })
    .await
    .unwrap_or_else(|e| (Vec::new(), Err(e.to_string())));
    let body = html! {
        (selectors(&p, &devices, query.as_ref().ok()))
        @match &result {
            Ok(r) => {
                p { a href=(format!("/analytics.csv?{}", query_string(&p, &r.query))) id="csv" { "Download this view (CSV)" } " · "
                    a href=(format!("/export.csv?dataset={}&from={}&to={}&device={}", r.query.dataset.as_str(), urlencode(&r.query.from.to_rfc3339()), urlencode(&r.query.to.to_rfc3339()), urlencode(p.device.as_deref().unwrap_or("All")))) { "Download raw records (CSV)" } }
                (result_view(r))
            }
            Err(e) => { div.card { p.err { (e) } } }
        }
    };
    super::page("Analytics", "Analytics", &user, None, body).into_response()
}

pub(super) async fn csv(
    State(state): State<Arc<AppState>>,
    _user: UiUser,
    Query(mut p): Query<AnalyticsParams>,
) -> Response {
    let Some(store) = state.store.clone() else { return (StatusCode::NOT_FOUND, "no collector").into_response() };
    p.format = Some("csv".into());
    let q = match crate::api::analytics_query(&p, Utc::now()) {
        Ok(q) => q,
        Err(m) => return (StatusCode::BAD_REQUEST, m).into_response(),
    };
    match tokio::task::spawn_blocking(move || store.analytics(&q)).await {
        Ok(Ok(r)) => {
            let mut out = Vec::new();
            match tollgate_store::export::analytics(&r, &mut out) {
                Ok(()) => crate::api::csv_download(out, "analytics.csv"),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(super) async fn export(
    State(state): State<Arc<AppState>>,
    _user: UiUser,
    Query(p): Query<crate::api::ExportParams>,
) -> Response {
    crate::api::export_csv(&state, p).await.into_response()
}
