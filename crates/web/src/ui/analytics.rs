//! The Analytics page: the seed's four selectors (Dataset, View, Grouping, Device), range
//! presets (15 min, 1 h, 24 h, 7 d) and a custom range, in a chosen time zone; a chart, the
//! peak rate and busy hour, the tables (the per-bucket one collapsed and bounded), and CSV
//! downloads of the view and of the raw records.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use tollgate_store::{AnalyticsQuery, AnalyticsResult, Dataset, Grouping, Row, Store, View};

use super::charts::{Bar, Series, TimeAxis, bar_chart, known_until, thousands, time, time_chart};
use super::{ZoneParam, stats, urlencode};
use crate::AppState;
use crate::api::AnalyticsParams;
use crate::session::UiUser;

/// Range presets: label, `range`, the grouping that suits it.
const PRESETS: [(&str, &str, &str); 4] =
    [("15 min", "15m", "Minute"), ("1 h", "1h", "Minute"), ("24 h", "24h", "Hour"), ("7 d", "7d", "Hour")];
/// Buckets listed in a per-bucket table at most (the latest); the CSV download has them all.
pub const MAX_TABLE_BUCKETS: usize = 60;
/// What the custom range fields take: ISO date and 24-hour time (or full RFC 3339).
const TIME_PATTERN: &str = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|z|(\+|-)\d{2}:\d{2})?";
/// Devices drawn as their own line when the view is All devices.
const MAX_DEVICE_SERIES: usize = 8;

pub(crate) fn selectors(p: &AnalyticsParams, devices: &[String], q: Option<&AnalyticsQuery>, tz: Tz) -> Markup {
    let dataset = q.map_or("ENUM", |q| q.dataset.as_str());
    let view = q.map_or("Average CPS", |q| q.view.as_str());
    let grouping = q.map_or("Hour", |q| q.grouping.as_str());
    let device = p.device.clone().unwrap_or_else(|| "All".into());
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let keep =
        format!("dataset={dataset}&view={}&device={}&tz={}", urlencode(view), urlencode(&device), urlencode(tz.name()));
    html! {
        nav.presets aria-label="Range" {
            span.muted { "Last" }
            @for (label, range, grouping) in PRESETS {
                @let on = p.from.as_deref().is_none_or(str::is_empty) && p.range.as_deref().unwrap_or("24h") == range;
                a href=(format!("/analytics?{keep}&grouping={grouping}&range={range}")) class=[on.then_some("on")] data-range=(range) { (label) }
            }
        }
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
            // Text, not datetime-local: browsers show that in their locale's form (US AM/PM).
            label { "From" input type="text" name="from" id="from" size="16" pattern=(TIME_PATTERN) placeholder="YYYY-MM-DD HH:MM" title="YYYY-MM-DD HH:MM, 24-hour, in the time zone chosen" value=(q.map(|q| local(q.from)).unwrap_or_default()); }
            label { "To" input type="text" name="to" id="to" size="16" pattern=(TIME_PATTERN) placeholder="YYYY-MM-DD HH:MM" title="YYYY-MM-DD HH:MM, 24-hour, in the time zone chosen" value=(q.map(|q| local(q.to)).unwrap_or_default()); }
            (super::zone_select(tz))
            button.primary type="submit" id="show" { "Show" }
        }
    }
}

/// `from`/`to` as typed into the form (local time of `tz`) in UTC; RFC 3339 passes unchanged.
pub(crate) fn local_to_utc(s: &str, tz: Tz) -> String {
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt)
            && let Some(t) = tz.from_local_datetime(&n).earliest()
        {
            return t.with_timezone(&Utc).to_rfc3339();
        }
    }
    s.to_string()
}

fn bucket_time(t: Option<DateTime<Utc>>, tz: Tz) -> String {
    t.map(|b| b.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

/// The latest `MAX_TABLE_BUCKETS` buckets of `rows` (ordered by bucket), and how many buckets
/// there were.
fn latest_buckets<T>(rows: &[T], bucket: impl Fn(&T) -> Option<DateTime<Utc>>) -> (&[T], usize) {
    let mut seen = 0;
    let mut last = None;
    let mut start = rows.len();
    for (i, r) in rows.iter().enumerate().rev() {
        if bucket(r) != last {
            last = bucket(r);
            seen += 1;
        }
        if seen <= MAX_TABLE_BUCKETS {
            start = i;
        }
    }
    (&rows[start..], seen)
}

/// A table of many buckets: collapsed, the latest buckets only, saying so.
fn collapsed(title: &str, shown: usize, all: usize, table: Markup) -> Markup {
    html! {
        details.buckets {
            summary { (title) ": " (thousands(all as u64)) (if all == 1 { " bucket" } else { " buckets" })
                @if all > shown { " (the latest " (shown) " shown; the CSV download has all)" } }
            (table)
        }
    }
}

/// The rank of each row: 1, 2, ... restarting in each bucket.
fn ranks(buckets: impl Iterator<Item = Option<DateTime<Utc>>>) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut rank, mut last) = (0usize, None);
    for b in buckets {
        if last != Some(b) {
            rank = 0;
            last = Some(b);
        }
        rank += 1;
        out.push(rank);
    }
    out
}

fn numbers_table(ranked: &[stats::Ranked], with_bucket: bool, tz: Tz, what: &str) -> Markup {
    let rank = ranks(ranked.iter().map(|r| r.bucket));
    html! {
        table.results {
            thead { tr {
                @if with_bucket { th { "Bucket (" (tz.name()) ")" } } th.n { "#" } th { (what) " number" } th.n { "Count" } th { "Direction" }
            } }
            tbody {
                @for (r, rank) in ranked.iter().zip(&rank) {
                    tr {
                        @if with_bucket { td { (bucket_time(r.bucket, tz)) } }
                        td.n { (rank) } td { (r.number) } td.n { (thousands(r.count)) } td.breakdown { (stats::breakdown(&r.directions)) }
                    }
                }
                @if ranked.is_empty() { tr { td colspan="5" .muted { "no records in this range" } } }
            }
        }
    }
}

fn outcomes_table(view: View, rows: &[Row], with_bucket: bool, tz: Tz) -> Markup {
    let (k, d) = if view == View::ActionsByRule { ("Rule", "Action") } else { ("Disposition", "") };
    // Stale answers are counted apart: they were decided but not used.
    let stale = view == View::ActionsByRule;
    let rank = ranks(rows.iter().map(|r| r.bucket));
    html! {
        table.results {
            thead { tr {
                @if with_bucket { th { "Bucket (" (tz.name()) ")" } } th.n { "#" } th { (k) } @if !d.is_empty() { th { (d) } } th.n { "Count" }
                @if stale { th.n title="Answered after the engine's stale bound (enum.stale_after_ms): the SBC most likely did not use them" { "Stale" } }
            } }
            tbody {
                @for (r, rank) in rows.iter().zip(&rank) {
                    tr {
                        @if with_bucket { td { (bucket_time(r.bucket, tz)) } }
                        td.n { (rank) } td { (r.key) } @if !d.is_empty() { td { (r.detail) } } td.n { (thousands(r.count)) }
                        @if stale { td.n { (thousands(r.stale.unwrap_or(0))) } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="5" .muted { "no records in this range" } } }
            }
        }
    }
}

/// What the page shows beside the main result: one line per device, and the hours when the
/// main grouping is too coarse for a busy hour.
#[derive(Default)]
pub(crate) struct Extra {
    devices: Vec<(String, AnalyticsResult)>,
    hours: Option<AnalyticsResult>,
}

impl Extra {
    /// No per-device lines; `hours`: the same query grouped by hour, for the busy hour of a
    /// view grouped by day.
    pub(crate) fn with_hours(hours: Option<AnalyticsResult>) -> Extra {
        Extra { devices: Vec::new(), hours }
    }
}

fn rate_figures(r: &AnalyticsResult, extra: &Extra, tz: Tz, now: DateTime<Utc>, unit: &str) -> Markup {
    let q = &r.query;
    let elapsed = (q.to.min(now) - q.from).num_seconds().max(1) as f64;
    let points: Vec<(DateTime<Utc>, u64, f64)> = r.series.iter().map(|p| (p.bucket, p.count, p.value)).collect();
    let peak = stats::peak(&points);
    let hours = extra.hours.as_ref().unwrap_or(r);
    let counts: Vec<(DateTime<Utc>, u64)> = hours.series.iter().map(|p| (p.bucket, p.count)).collect();
    let busy = stats::busy_hour(&counts, hours.query.grouping.seconds(), time::offset_at(tz, q.from.timestamp()));
    html! {
        div.cards {
            div.card.stat { div.k { "Average CPS" } div.v #average-cps { (super::charts::number(r.total as f64 / elapsed)) } div.muted { (unit) " over the range" } }
            div.card.stat { div.k { "Peak CPS (busiest " (q.grouping.as_str()) ")" } div.v #peak-cps {
                @match peak { Some((_, v)) => { (super::charts::number(v)) } None => { "–" } } }
                div.muted { @if let Some((t, _)) = peak { (time::stamp(t, tz)) } @else { "no records" } } }
            div.card.stat { div.k { "Busy hour" } div.v #busy-hour {
                @match busy { Some((t, _)) => { (t.with_timezone(&tz).format("%H:%M")) "–" ((t + chrono::Duration::hours(1)).with_timezone(&tz).format("%H:%M")) } None => { "–" } } }
                div.muted { @match busy {
                    Some((t, n)) => { (t.with_timezone(&tz).format("%Y-%m-%d %Z")) ", " (thousands(n)) " records (" (super::charts::number(n as f64 / 3600.0)) " " (unit) ")" }
                    None => { "no records" }
                } } }
        }
    }
}

/// The unit of a dataset's rate: the engines' records are decisions (ENUM queries and SIP
/// INVITEs alike), the probes' calls.
pub(crate) fn rate_unit(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Enum => "decisions/s",
        Dataset::Sip => "calls/s",
    }
}

fn rate_view(r: &AnalyticsResult, extra: &Extra, tz: Tz, now: DateTime<Utc>) -> Markup {
    let q = &r.query;
    let per = q.grouping.as_str();
    let unit = rate_unit(q.dataset);
    let line = |name: &str, r: &AnalyticsResult| Series {
        name: name.to_string(),
        points: known_until(&r.series.iter().map(|p| (p.bucket, p.value)).collect::<Vec<_>>(), now),
    };
    let mut series = vec![line(q.device.as_deref().unwrap_or("all devices"), r)];
    series.extend(extra.devices.iter().map(|(d, r)| line(d, r)));
    let axis = TimeAxis { from: q.from, to: q.to, bucket: q.grouping.seconds(), tz, now };
    let rows: Vec<_> = r.series.iter().filter(|p| p.count > 0).collect();
    let (shown, all) = latest_buckets(&rows, |p| Some(p.bucket));
    html! {
        (rate_figures(r, extra, tz, now, unit))
        (time_chart(&series, &axis, unit))
        (collapsed(&format!("Per {per}"), shown.len(), all, html! {
            table.results {
                thead { tr { th { "Bucket (" (tz.name()) ")" } th.n { "Records" } th.n { "Average per second" } } }
                tbody { @for p in shown { tr {
                    td { (bucket_time(Some(p.bucket), tz)) } td.n { (thousands(p.count)) } td.n { (format!("{:.4}", p.value)) }
                } } }
            }
        }))
    }
}

pub(crate) fn result_view(r: &AnalyticsResult, extra: &Extra, tz: Tz, now: DateTime<Utc>) -> Markup {
    let q = &r.query;
    let per = q.grouping.as_str();
    html! {
        div.card {
            p.muted { (thousands(r.total)) " records, " (time::stamp(q.from, tz)) " to " (time::stamp(q.to, tz)) ", grouped by " (per) ", device " (q.device.as_deref().unwrap_or("All")) }
            @match q.view {
                View::AverageCps => { (rate_view(r, extra, tz, now)) }
                view @ (View::TopSource | View::TopDestination) => {
                    @let what = if view == View::TopSource { "Source" } else { "Destination" };
                    @let whole = stats::by_number(&r.summary, tollgate_store::analytics::TOP);
                    @let bars: Vec<Bar> = whole.iter().map(|x| Bar { label: x.number.clone(), value: x.count as f64, note: stats::breakdown(&x.directions) }).collect();
                    (bar_chart(&bars, "records"))
                    h2 { "Whole range" }
                    (numbers_table(&whole, false, tz, what))
                    @let per_bucket = stats::by_number(&r.per_bucket, tollgate_store::analytics::TOP);
                    @let (shown, all) = latest_buckets(&per_bucket, |x| x.bucket);
                    (collapsed(&format!("Per {per}"), per_bucket_count(shown), all, numbers_table(shown, true, tz, what)))
                }
                view => {
                    @let bars: Vec<Bar> = r.summary.iter().map(|x| Bar::from((if x.detail.is_empty() || view != View::ActionsByRule { x.key.clone() } else { format!("{} → {}", x.key, x.detail) }, x.count as f64))).collect();
                    (bar_chart(&bars, "records"))
                    h2 { "Whole range" }
                    (outcomes_table(view, &r.summary, false, tz))
                    @let (shown, all) = latest_buckets(&r.per_bucket, |x| x.bucket);
                    (collapsed(&format!("Per {per}"), per_bucket_count(shown), all, outcomes_table(view, shown, true, tz)))
                }
            }
        }
    }
}

fn per_bucket_count<T: HasBucket>(rows: &[T]) -> usize {
    let mut n = 0;
    let mut last = None;
    for r in rows {
        if Some(r.bucket()) != last {
            last = Some(r.bucket());
            n += 1;
        }
    }
    n
}

trait HasBucket {
    fn bucket(&self) -> Option<DateTime<Utc>>;
}

impl HasBucket for Row {
    fn bucket(&self) -> Option<DateTime<Utc>> {
        self.bucket
    }
}

impl HasBucket for stats::Ranked {
    fn bucket(&self) -> Option<DateTime<Utc>> {
        self.bucket
    }
}

fn query_string(p: &AnalyticsParams, q: &AnalyticsQuery) -> String {
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

/// The extra queries of an Average CPS view: each device's line (when showing All and there
/// are few devices), and hourly buckets for the busy hour when grouping by day.
fn extra(store: &dyn Store, q: &AnalyticsQuery, devices: &[String]) -> Extra {
    let mut out = Extra::default();
    if q.view != View::AverageCps {
        return out;
    }
    if q.device.is_none() && devices.len() > 1 && devices.len() <= MAX_DEVICE_SERIES {
        for d in devices {
            let dq = AnalyticsQuery { device: Some(d.clone()), ..q.clone() };
            if let Ok(r) = store.analytics(&dq) {
                out.devices.push((d.clone(), r));
            }
        }
    }
    if q.grouping == Grouping::Day {
        out.hours = store.analytics(&AnalyticsQuery { grouping: Grouping::Hour, ..q.clone() }).ok();
    }
    out
}

pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    user: UiUser,
    Query(mut p): Query<AnalyticsParams>,
    Query(zone): Query<ZoneParam>,
) -> Response {
    let tz = zone.tz();
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
    p.from = p.from.as_deref().filter(|s| !s.is_empty()).map(|s| local_to_utc(s, tz));
    p.to = p.to.as_deref().filter(|s| !s.is_empty()).map(|s| local_to_utc(s, tz));
    let now = Utc::now();
    let query = crate::api::analytics_query(&p, now);
    let q2 = query.clone();
    let (devices, result, extra) = tokio::task::spawn_blocking(move || {
        let devices = q2.as_ref().map(|q| store.devices(q.dataset).unwrap_or_default()).unwrap_or_default();
        let result = q2.as_ref().map_err(Clone::clone).and_then(|q| store.analytics(q).map_err(|e| e.to_string()));
        let extra = match (&q2, &result) {
            (Ok(q), Ok(_)) => extra(store.as_ref(), q, &devices),
            _ => Extra::default(),
        };
        (devices, result, extra)
    })
    .await
    .unwrap_or_else(|e| (Vec::new(), Err(e.to_string()), Extra::default()));
    let body = html! {
        (selectors(&p, &devices, query.as_ref().ok(), tz))
        @match &result {
            Ok(r) => {
                p { a href=(format!("/analytics.csv?{}", query_string(&p, &r.query))) id="csv" { "Download this view (CSV)" } " · "
                    @let raw = format!("/export.csv?dataset={}&from={}&to={}&device={}", r.query.dataset.as_str(), urlencode(&r.query.from.to_rfc3339()), urlencode(&r.query.to.to_rfc3339()), urlencode(p.device.as_deref().unwrap_or("All")));
                    a href=(raw) { "Download raw records (CSV)" }
                    // The ENUM dataset holds the decisions asked over ENUM and over SIP.
                    @if r.query.dataset == Dataset::Enum {
                        " (" a href=(format!("{raw}&protocol=enum")) id="raw-enum" { "ENUM queries" } ", "
                        a href=(format!("{raw}&protocol=sip")) id="raw-sip" { "SIP redirects" } " only)"
                    } }
                (result_view(r, &extra, tz, now))
            }
            Err(e) => { div.card { p.err #analytics-error { (e) } } }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_range_is_read_in_the_chosen_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(local_to_utc("2026-12-07T14:30", berlin), "2026-12-07T13:30:00+00:00");
        assert_eq!(local_to_utc("2026-12-07T14:30", Tz::UTC), "2026-12-07T14:30:00+00:00");
        assert_eq!(local_to_utc("2026-12-07T14:30:00+02:00", berlin), "2026-12-07T14:30:00+02:00");
        assert_eq!(local_to_utc("garbage", berlin), "garbage", "left for the query's own error");
    }

    #[test]
    fn tables_list_only_the_latest_buckets() {
        let rows: Vec<Option<DateTime<Utc>>> =
            (0..200).flat_map(|b| std::iter::repeat_n(Some(super::super::charts::at(b * 60)), 3)).collect();
        let (shown, all) = latest_buckets(&rows, |r| *r);
        assert_eq!(all, 200);
        assert_eq!(shown.len(), 3 * MAX_TABLE_BUCKETS);
        assert_eq!(shown[0], Some(super::super::charts::at((200 - MAX_TABLE_BUCKETS as i64) * 60)));
        let (shown, all) = latest_buckets(&rows[..6], |r| *r);
        assert_eq!((shown.len(), all), (6, 2));
        let empty: [Option<DateTime<Utc>>; 0] = [];
        assert_eq!(latest_buckets(&empty, |r| *r).1, 0);
    }
}
