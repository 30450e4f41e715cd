//! Charts as inline SVG, drawn on the server: a time chart (one line per series, with a
//! legend) and a horizontal bar chart. Each function takes data and returns markup, so any
//! page (the collector's or the manager's console) can draw them.
//!
//! What reads well, and where it is done: labels are measured ([`text::width`]) and the
//! margins made to fit them, or they are shortened with an ellipsis and the full text given as
//! a tooltip ([`text::fit`]); values carry thousands separators ([`format::number`]); the time
//! axis ticks on round local times in ISO 24-hour form ([`time`]); buckets without data are a
//! gap in the line, not a zero ([`gaps`]). Every bar and every bucket carries its value in a
//! `data-tip` attribute, which the served script (`/static/tollgate.js`) shows under the
//! pointer; without the script the same text is the element's `<title>`.
//!
//! Hand-written rather than plotters: plotters draws no text at all without a font backend,
//! and a font backend means shipping a font file or depending on the host's fonts. These charts
//! let the browser render the text.

pub mod format;
pub mod gaps;
pub mod text;
pub mod time;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use maud::{Markup, PreEscaped, html};

pub use format::{number, thousands};

/// Width of every chart in SVG user units (the SVG scales to its box; text scales with it).
const W: f64 = 860.0;
const H: f64 = 280.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 36.0;
/// Font size of tick labels and of bar labels (`.chart .tick`, `.chart .bar-label`).
const TICK_PX: f64 = 11.0;
const LABEL_PX: f64 = 12.0;
/// Bar labels take at most this share of the width; longer ones are shortened.
const LABEL_SHARE: f64 = 0.5;
/// Series drawn in their own colour (`s0` .. `s7`); more share the last.
const COLOURS: usize = 8;

/// A "nice" axis step for a range: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let pow = 10f64.powf(raw.log10().floor());
    let m = raw / pow;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * pow
}

fn y_axis(max: f64) -> (f64, Vec<f64>) {
    let step = nice_step(max, 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    let ticks = (0..=((top / step).round() as i64)).map(|i| i as f64 * step).collect();
    (top, ticks)
}

/// A plain number for a `data-` attribute (no separators: scripts and tests parse it).
fn raw(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v}") }
}

/// One line of a time chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Shown in the legend and the hover text (e.g. a device name, or "all devices").
    pub name: String,
    /// Bucket start and value; `None` where there is no data (drawn as a gap).
    pub points: Vec<(DateTime<Utc>, Option<f64>)>,
}

/// The time axis of a chart.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    /// Start of the range shown.
    pub from: DateTime<Utc>,
    /// End of the range shown.
    pub to: DateTime<Utc>,
    /// Length of one bucket in seconds.
    pub bucket: i64,
    /// The zone times are shown in.
    pub tz: Tz,
    /// The present, marked when inside the range (what lies right of it is the future).
    pub now: DateTime<Utc>,
}

/// A time chart: one line per series, a legend when there is more than one, ticks on round
/// local times; every bucket's values (all series) under the pointer. `unit` names the values
/// (e.g. "decisions/s").
pub fn time_chart(series: &[Series], axis: &TimeAxis, unit: &str) -> Markup {
    let known = || series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1));
    let max = known().fold(0.0, f64::max);
    let (top, yticks) = y_axis(max);
    let left = 12.0 + yticks.iter().map(|t| text::width(&number(*t), TICK_PX)).fold(0.0, f64::max) + 8.0;
    let (t0, t1) = (axis.from.timestamp(), axis.to.timestamp().max(axis.from.timestamp() + 1));
    let span = (t1 - t0) as f64;
    let legend = if series.len() > 1 { legend_rows(series, left) } else { Vec::new() };
    let height = H + 22.0 * legend.iter().map(|r| r.1).fold(0.0, f64::max).ceil();
    let plot_bottom = H - BOTTOM;
    let x = |t: i64| left + (t - t0) as f64 / span * (W - left - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / top) * (plot_bottom - TOP);
    let offset = time::offset_at(axis.tz, t0);
    let (step, xticks) = time::ticks(t0, t1, offset, 8);
    let first = series.first();
    let total: f64 = first.map(|s| s.points.iter().filter_map(|p| p.1).sum()).unwrap_or(0.0);
    let buckets: Vec<DateTime<Utc>> = first.map(|s| s.points.iter().map(|p| p.0).collect()).unwrap_or_default();
    let has_data = known().next().is_some();
    let now = axis.now.timestamp();
    html! {
        svg class="chart time" viewBox=(format!("0 0 {W} {height}")) role="img" aria-label=(format!("{unit}, {}", series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")))
            data-points=(first.map_or(0, |s| s.points.iter().filter(|p| p.1.is_some()).count())) data-total=(raw(total)) data-series=(series.len()) {
            @for t in &yticks {
                line x1=(left) x2=(W - RIGHT) y1=(y(*t)) y2=(y(*t)) class="grid" {}
                text x=(left - 6.0) y=(y(*t) + 4.0) text-anchor="end" class="tick" { (number(*t)) }
            }
            @for t in &xticks {
                @let label = time::label(*t, step, t1 - t0, axis.tz);
                // Centred under its tick, moved in where it would run off either side.
                @let half = text::width(&label, TICK_PX) / 2.0;
                line x1=(x(*t)) x2=(x(*t)) y1=(TOP) y2=(plot_bottom) class="grid" {}
                text x=(format!("{:.1}", x(*t).clamp(half + 2.0, W - half - 2.0))) y=(H - 14.0) text-anchor="middle" class="tick" { (label) }
            }
            text x="12" y="16" class="axis" { (unit) " · " (axis.tz.name()) }
            @if (t0..t1).contains(&now) {
                line x1=(x(now)) x2=(x(now)) y1=(TOP) y2=(plot_bottom) class="now" { title { "now" } }
            }
            @if !has_data {
                text x=((left + W - RIGHT) / 2.0) y=(H / 2.0) text-anchor="middle" class="empty" { "no data in this range" }
            }
            @for (i, s) in series.iter().enumerate() {
                @let pts: Vec<(f64, Option<f64>)> = s.points.iter().map(|(t, v)| (x(t.timestamp()), v.map(y))).collect();
                @let runs = gaps::segments(&pts);
                @let class = format!("s{}", i.min(COLOURS - 1));
                path d=(gaps::path(&runs)) class=(format!("line {class}")) data-series=(s.name) {}
                @for run in runs.iter().filter(|r| r.len() == 1 || s.points.len() <= 60) {
                    @for (cx, cy) in run { circle cx=(format!("{cx:.1}")) cy=(format!("{cy:.1}")) r="2.5" class=(format!("dot {class}")) {} }
                }
            }
            @for (i, b) in buckets.iter().enumerate() {
                @let x0 = x(b.timestamp()).max(left);
                @let x1 = x(b.timestamp() + axis.bucket).min(W - RIGHT);
                @if x1 > x0 {
                    @let tip = bucket_tip(series, i, *b, axis.tz, unit);
                    rect class="hit" x=(format!("{x0:.1}")) y=(TOP) width=(format!("{:.1}", x1 - x0)) height=(plot_bottom - TOP)
                        data-tip=(tip) data-v=(series.first().and_then(|s| s.points.get(i)).and_then(|p| p.1).map(number).unwrap_or_default()) {
                        title { (tip) }
                    }
                }
            }
            @for (i, (row, line)) in legend.iter().enumerate() {
                @let ly = H + 22.0 * (line - 1.0) + 6.0;
                rect class=(format!("key s{}", i.min(COLOURS - 1))) x=(format!("{:.1}", row)) y=(ly - 9.0) width="14" height="4" {}
                text class="legend" x=(format!("{:.1}", row + 20.0)) y=(ly) { (series[i].name) }
            }
        }
    }
}

/// Where each series' legend entry goes: x and line (1-based), entries wrapping at the width.
fn legend_rows(series: &[Series], left: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(series.len());
    let (mut x, mut line) = (left, 1.0);
    for s in series {
        let w = 20.0 + text::width(&s.name, LABEL_PX) + 18.0;
        if x + w > W - RIGHT && x > left {
            x = left;
            line += 1.0;
        }
        out.push((x, line));
        x += w;
    }
    out
}

/// The hover text of bucket `i`: its time, then each series' value (or "no data").
fn bucket_tip(series: &[Series], i: usize, bucket: DateTime<Utc>, tz: Tz, unit: &str) -> String {
    let mut tip = time::stamp(bucket, tz);
    for s in series {
        let v = s.points.get(i).and_then(|p| p.1);
        tip.push('\n');
        tip.push_str(&s.name);
        tip.push_str(": ");
        match v {
            Some(v) => {
                tip.push_str(&number(v));
                tip.push(' ');
                tip.push_str(unit);
            }
            None => tip.push_str("no data"),
        }
    }
    tip
}

/// A line chart of one series of `(time, value)` points in UTC, every point known; see
/// [`time_chart`] for gaps, several series and other zones.
pub fn line_chart(points: &[(DateTime<Utc>, f64)], label: &str) -> Markup {
    let from = points.first().map_or_else(Utc::now, |p| p.0);
    let to = points.last().map_or(from, |p| p.0);
    let bucket = match points {
        [a, b, ..] => (b.0 - a.0).num_seconds().max(1),
        _ => 60,
    };
    let series = Series { name: label.to_string(), points: points.iter().map(|(t, v)| (*t, Some(*v))).collect() };
    let axis = TimeAxis { from, to: to + chrono::Duration::seconds(bucket), bucket, tz: Tz::UTC, now: to };
    time_chart(&[series], &axis, label)
}

/// One bar: its label, its value, and more text for the hover (e.g. a breakdown).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The label left of the bar (shortened with an ellipsis if it would not fit).
    pub label: String,
    /// The value (length of the bar).
    pub value: f64,
    /// Shown after the value in the hover text; may be empty.
    pub note: String,
}

impl From<(String, f64)> for Bar {
    fn from((label, value): (String, f64)) -> Bar {
        Bar { label, value, note: String::new() }
    }
}

/// A horizontal bar chart, bars in the given order; `unit` names the values. The label column
/// is as wide as the widest label (up to half the chart); values print with thousands
/// separators right of their bars.
pub fn bar_chart<B: Clone + Into<Bar>>(bars: &[B], unit: &str) -> Markup {
    let bars: Vec<Bar> = bars.iter().cloned().map(Into::into).collect();
    let row_h = 24.0;
    let height = TOP + BOTTOM + row_h * bars.len().max(1) as f64;
    let room = bars.iter().map(|b| text::width(&b.label, LABEL_PX)).fold(40.0, f64::max).min(W * LABEL_SHARE);
    let label_w = 12.0 + room + 8.0;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let (top, ticks) = y_axis(max);
    let value_room = 8.0 + bars.iter().map(|b| text::width(&number(b.value), TICK_PX)).fold(0.0, f64::max);
    let x = |v: f64| label_w + v / top * (W - label_w - RIGHT - value_room);
    let total: f64 = bars.iter().map(|b| b.value).sum();
    html! {
        svg class="chart bars" viewBox=(format!("0 0 {W} {height}")) role="group" aria-label=(unit) data-points=(bars.len()) data-total=(raw(total)) {
            text x="12" y="16" class="axis" { (unit) }
            @for t in &ticks {
                line x1=(x(*t)) x2=(x(*t)) y1=(TOP) y2=(height - BOTTOM) class="grid" {}
                text x=(x(*t)) y=(height - 14.0) text-anchor="middle" class="tick" { (number(*t)) }
            }
            @if bars.is_empty() {
                text x=(W / 2.0) y=(TOP + 20.0) text-anchor="middle" class="empty" { "no data in this range" }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let yy = TOP + 4.0 + i as f64 * row_h;
                @let (shown, cut) = text::fit(&b.label, LABEL_PX, room);
                @let tip = if b.note.is_empty() { format!("{}: {}", b.label, number(b.value)) } else { format!("{}: {} ({})", b.label, number(b.value), b.note) };
                text x=(label_w - 8.0) y=(yy + 14.0) text-anchor="end" class="bar-label" data-tip=(tip) data-full=[cut.then_some(&b.label)] {
                    (shown) @if cut { title { (b.label) } }
                }
                // Focusable, so the keyboard reaches the same hover text as the pointer.
                rect x=(label_w) y=(yy) width=(format!("{:.1}", (x(b.value) - label_w).max(1.0))) height=(row_h - 6.0) class="bar"
                    tabindex="0" aria-label=(tip) data-tip=(tip) data-v=(raw(b.value)) { title { (tip) } }
                text x=(format!("{:.1}", x(b.value) + 6.0)) y=(yy + 14.0) class="tick" { (number(b.value)) }
            }
        }
    }
}

/// The points of a series for [`Series::points`]: each value kept, `None` (a gap) for buckets
/// starting after `now`.
pub fn known_until<T: Copy>(points: &[(DateTime<Utc>, T)], now: DateTime<Utc>) -> Vec<(DateTime<Utc>, Option<T>)> {
    points.iter().map(|(t, v)| (*t, (*t <= now).then_some(*v))).collect()
}

/// Unix seconds as a time (the epoch for out-of-range values).
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// The stylesheet of every page, served at [`super::STYLESHEET`] (from this server: no
/// external resource is ever loaded, and the Content-Security-Policy needs no inline style).
pub const CSS: PreEscaped<&str> = PreEscaped(include_str!("tollgate.css"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(97.0, 4.0), 50.0);
        assert_eq!(nice_step(0.9, 4.0), 0.5);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(f64::NAN, 4.0), 1.0);
        assert_eq!(y_axis(7.0).0, 8.0);
    }

    #[test]
    fn charts_carry_their_data() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let svg = line_chart(&[(t, 1.0), (t + chrono::Duration::hours(1), 3.0)], "calls/s").into_string();
        assert!(svg.contains("data-points=\"2\"") && svg.contains("data-total=\"4\""), "{svg}");
        assert!(svg.contains(">10:00<") && svg.contains(">11:00<"), "{svg}");
        let svg = bar_chart(&[("+12125550100".to_string(), 7.0), ("<script>".into(), 1.0)], "calls").into_string();
        assert!(svg.contains("+12125550100") && svg.contains("&lt;script&gt;"), "labels are escaped: {svg}");
        assert!(line_chart(&[], "x").into_string().contains("no data"));
    }

    #[test]
    fn bar_values_have_separators_and_long_labels_fit_or_end_in_an_ellipsis() {
        let long = "reject-known-robocallers-and-spoofed-cli → terminate".to_string();
        let svg = bar_chart(&[(long.clone(), 12345.0), ("x".to_string(), 7.0)], "records").into_string();
        assert!(svg.contains(">12,345<") && svg.contains("data-v=\"12345\""), "{svg}");
        assert!(svg.contains(&long) && !svg.contains('…'), "a 52-character label fits in half the width: {svg}");
        let huge = "n".repeat(200);
        let svg = bar_chart(&[(huge.clone(), 1.0)], "records").into_string();
        assert!(svg.contains('…') && svg.contains(&format!("<title>{huge}</title>")), "{svg}");
    }

    #[test]
    fn future_buckets_are_gaps_and_every_series_is_in_the_legend_and_the_hover() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        let pts: Vec<(DateTime<Utc>, f64)> = (0..60).map(|i| (t0 + chrono::Duration::minutes(i), 2.0)).collect();
        let now = t0 + chrono::Duration::minutes(30);
        let series = [
            Series { name: "engine-a".into(), points: known_until(&pts, now) },
            Series { name: "engine-b".into(), points: known_until(&pts, now) },
        ];
        let axis = TimeAxis { from: t0, to: t0 + chrono::Duration::hours(1), bucket: 60, tz: Tz::UTC, now };
        let svg = time_chart(&series, &axis, "decisions/s").into_string();
        assert!(svg.contains("data-points=\"31\""), "31 known minutes: {svg}");
        assert!(svg.contains(">engine-a<") && svg.contains(">engine-b<"), "legend: {svg}");
        assert!(svg.contains("engine-a: 2 decisions/s\nengine-b: 2 decisions/s"), "hover: {svg}");
        assert!(svg.contains("2026-12-07 00:45 UTC\nengine-a: no data"), "the future has no data: {svg}");
        assert!(svg.contains("class=\"now\""));
        assert!(svg.contains(">00:10<") && svg.contains(">00:50<"), "ticks every ten minutes: {svg}");
    }
}
