//! Analytics on the console: the collector UI's views (the same selectors, range presets, time
//! zone, charts and tables), computed over every collector cluster at once
//! ([`crate::manager_api::analytics::gather`]), with a line per collector cluster saying which
//! server answered or why none did. Raw-record downloads stay on each collector's own UI.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::html;
use tollgate_store::{Grouping, View};

use super::{ApiState, ConsoleUser, frame, respond};
use crate::api::AnalyticsParams;
use crate::manager_api::analytics::{devices, gather};
use crate::ui::ZoneParam;
use crate::ui::analytics::{Extra, local_to_utc, result_view, selectors};

/// `GET /analytics`.
pub(super) async fn page(
    State(s): State<ApiState>,
    user: ConsoleUser,
    Query(mut p): Query<AnalyticsParams>,
    Query(zone): Query<ZoneParam>,
) -> Response {
    let tz = zone.tz();
    p.from = p.from.as_deref().filter(|s| !s.is_empty()).map(|s| local_to_utc(s, tz));
    p.to = p.to.as_deref().filter(|s| !s.is_empty()).map(|s| local_to_utc(s, tz));
    let now = Utc::now();
    let query = crate::api::analytics_query(&p, now);
    let answer = match &query {
        Ok(_) => gather(&s.manager, &p).await,
        Err(e) => Err(e.clone()),
    };
    // The busy hour of a view grouped by day needs hourly buckets.
    let hours = match (&query, &answer) {
        (Ok(q), Ok(a)) if q.view == View::AverageCps && q.grouping == Grouping::Day && a.result.is_some() => {
            let hourly = AnalyticsParams { grouping: Some("Hour".into()), ..p.clone() };
            gather(&s.manager, &hourly).await.ok().and_then(|a| a.result)
        }
        _ => None,
    };
    let extra = Extra::with_hours(hours);
    let dataset = query.as_ref().map(|q| q.dataset.as_str()).unwrap_or("ENUM");
    let devices = devices(&s.manager, dataset).await;
    let body = html! {
        (selectors(&p, &devices, query.as_ref().ok(), tz))
        @match &answer {
            Ok(a) => {
                div.card #sources {
                    h2 { "Collector clusters" }
                    ul {
                        @for src in &a.sources { li data-cluster=(src.cluster) {
                            strong { (src.cluster) } ": "
                            @match (&src.server, &src.error) {
                                (Some(server), _) => { span.ok { "answered by " (server) } }
                                (None, Some(e)) => { span.err { "no answer (" (e) "); not counted below" } }
                                (None, None) => { span.err { "no answer" } }
                            }
                        } }
                        @if a.sources.is_empty() { li.muted { "No collector cluster is configured ([manager] clusters with application = \"collector\")." } }
                    }
                }
                @match &a.result {
                    Some(r) => { (result_view(r, &extra, tz, now)) }
                    None => { div.card.muted #analytics-empty { "No collector cluster answered: nothing to show." } }
                }
            }
            Err(e) => { div.card { p.err #analytics-error { (e) } } }
        }
    };
    let status = if answer.is_err() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    respond(status, None, frame("Analytics", "Analytics", Some(&user), body, Some("tollgate.js")))
}
