//! Charts as inline SVG, drawn on the server: a time-series line chart and a bar chart.
//!
//! Hand-written rather than plotters: plotters draws no text at all without a font backend,
//! and a font backend means shipping a font file or depending on the host's fonts. These charts
//! let the browser render the text.

use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};

const W: f64 = 860.0;
const H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 36.0;

/// A "nice" axis step for a range: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 {
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

fn fmt_value(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn y_axis(max: f64) -> (f64, Vec<f64>) {
    let step = nice_step(max, 4.0);
    let top = (max / step).ceil().max(1.0) * step;
    let ticks = (0..=((top / step).round() as i64)).map(|i| i as f64 * step).collect();
    (top, ticks)
}

/// A line chart of `(time, value)` points; `label` names the value (e.g. "queries/s").
pub fn line_chart(points: &[(DateTime<Utc>, f64)], label: &str) -> Markup {
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (top, ticks) = y_axis(max);
    let (t0, t1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (a.0.timestamp() as f64, b.0.timestamp() as f64),
        _ => (0.0, 1.0),
    };
    let span = (t1 - t0).max(1.0);
    let x = |t: f64| LEFT + (t - t0) / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / top) * (H - TOP - BOTTOM);
    let path: String = points
        .iter()
        .enumerate()
        .map(|(i, (t, v))| format!("{}{:.1},{:.1}", if i == 0 { "M" } else { " L" }, x(t.timestamp() as f64), y(*v)))
        .collect();
    let day_span = span > 2.0 * 86_400.0;
    let n_labels = 6.min(points.len());
    let labels: Vec<(f64, String)> = (0..n_labels)
        .map(|i| {
            let idx = if n_labels <= 1 { 0 } else { i * (points.len() - 1) / (n_labels - 1) };
            let t = points[idx].0;
            (
                x(t.timestamp() as f64),
                if day_span { t.format("%m-%d").to_string() } else { t.format("%H:%M").to_string() },
            )
        })
        .collect();
    let total: f64 = points.iter().map(|p| p.1).sum();
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) data-points=(points.len()) data-total=(fmt_value(total)) {
            @for t in &ticks {
                line x1=(LEFT) x2=(W - RIGHT) y1=(y(*t)) y2=(y(*t)) class="grid" {}
                text x=(LEFT - 6.0) y=(y(*t) + 4.0) text-anchor="end" class="tick" { (fmt_value(*t)) }
            }
            @for (lx, text) in &labels {
                text x=(lx) y=(H - 12.0) text-anchor="middle" class="tick" { (text) }
            }
            text x="12" y="16" class="axis" { (label) }
            @if points.is_empty() {
                text x=(W / 2.0) y=(H / 2.0) text-anchor="middle" class="empty" { "no data in this range" }
            } @else {
                path d=(path) class="line" {}
                @for (t, v) in points.iter().filter(|p| p.1 > 0.0) {
                    circle cx=(x(t.timestamp() as f64)) cy=(y(*v)) r="2.5" class="dot" { title { (t.format("%Y-%m-%d %H:%M UTC")) ": " (fmt_value(*v)) } }
                }
            }
        }
    }
}

/// A horizontal bar chart of labelled values, in the given order.
pub fn bar_chart(bars: &[(String, f64)], label: &str) -> Markup {
    let row_h = 24.0;
    let height = TOP + BOTTOM + row_h * bars.len().max(1) as f64;
    let label_w = 230.0;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let (top, ticks) = y_axis(max);
    let x = |v: f64| label_w + v / top * (W - label_w - RIGHT - 40.0);
    let total: f64 = bars.iter().map(|b| b.1).sum();
    html! {
        svg class="chart" viewBox=(format!("0 0 {W} {height}")) role="img" aria-label=(label) data-points=(bars.len()) data-total=(fmt_value(total)) {
            text x="12" y="16" class="axis" { (label) }
            @for t in &ticks {
                line x1=(x(*t)) x2=(x(*t)) y1=(TOP) y2=(height - BOTTOM) class="grid" {}
                text x=(x(*t)) y=(height - 14.0) text-anchor="middle" class="tick" { (fmt_value(*t)) }
            }
            @if bars.is_empty() {
                text x=(W / 2.0) y=(TOP + 20.0) text-anchor="middle" class="empty" { "no data in this range" }
            }
            @for (i, (name, v)) in bars.iter().enumerate() {
                @let yy = TOP + 4.0 + i as f64 * row_h;
                text x=(label_w - 8.0) y=(yy + 14.0) text-anchor="end" class="bar-label" { (name) }
                rect x=(label_w) y=(yy) width=((x(*v) - label_w).max(1.0)) height=(row_h - 6.0) class="bar" { title { (name) ": " (fmt_value(*v)) } }
                text x=(x(*v) + 6.0) y=(yy + 14.0) class="tick" { (fmt_value(*v)) }
            }
        }
    }
}

/// The stylesheet of every page, served at [`super::STYLESHEET`] (from this server: no
/// external resource is ever loaded, and the Content-Security-Policy needs no inline style).
pub const CSS: PreEscaped<&str> = PreEscaped(
    r#"
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2733;background:#f3f5f8}
header{background:#14324f;color:#fff;display:flex;align-items:center;gap:24px;padding:0 24px;height:52px}
header .brand{font-weight:700;font-size:17px;letter-spacing:.5px}header nav a{color:#cfe0f2;text-decoration:none;margin-right:16px}
header nav a.on{color:#fff;border-bottom:2px solid #5fb0ff;padding-bottom:14px}header .who{margin-left:auto;font-size:13px;color:#cfe0f2}header .who a{color:#fff}
header form{display:inline}header button{background:none;border:1px solid #6f8fae;color:#cfe0f2;border-radius:4px;padding:2px 8px;cursor:pointer}
main{padding:20px 24px;max-width:1200px}h1{font-size:20px;margin:0 0 14px}h2{font-size:16px;margin:22px 0 8px}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:14px 16px;margin-bottom:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}.stat .v{font-size:24px;font-weight:600}.stat .k{color:#5c6b7a;font-size:12px;text-transform:uppercase}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e9ee}th{background:#f0f3f7;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}form.selectors{display:flex;flex-wrap:wrap;gap:10px;align-items:end}
label{display:flex;flex-direction:column;font-size:12px;color:#4a5866;gap:2px}select,input{font:inherit;padding:4px 6px;border:1px solid #bfc9d4;border-radius:4px}
button.primary{background:#1f6fbf;color:#fff;border:0;border-radius:4px;padding:6px 14px;cursor:pointer}button.danger{background:#b3261e;color:#fff;border:0;border-radius:4px;padding:6px 14px;cursor:pointer}
.chart{width:100%;height:auto;background:#fff}.chart .grid{stroke:#e6eaef}.chart .tick{fill:#5c6b7a;font-size:11px}.chart .axis{fill:#33404d;font-size:12px;font-weight:600}
.chart .line{fill:none;stroke:#1f6fbf;stroke-width:2}.chart .dot{fill:#1f6fbf}.chart .bar{fill:#3d8bd9}.chart .bar-label{fill:#1d2733;font-size:12px}.chart .empty{fill:#8a97a5}
.sev-Critical{color:#fff;background:#b3261e}.sev-Major{background:#f2a03d}.sev-Minor{background:#f7d96b}.sev-Info{background:#cfe0f2}.sev{padding:1px 6px;border-radius:3px;font-size:12px}
.ok{color:#1e7b34}.err{color:#b3261e}.muted{color:#6b7886}pre.diff{background:#fff;border:1px solid #dde3ea;padding:10px;overflow:auto}
pre.diff .add{color:#1e7b34}pre.diff .del{color:#b3261e}.diags td{color:#b3261e}.login{max-width:340px;margin:60px auto}.login input{width:100%}
"#,
);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(97.0, 4.0), 50.0);
        assert_eq!(nice_step(0.9, 4.0), 0.5);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(y_axis(7.0).0, 8.0);
    }

    #[test]
    fn charts_carry_their_data() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let svg = line_chart(&[(t, 1.0), (t + chrono::Duration::hours(1), 3.0)], "calls/s").into_string();
        assert!(svg.contains("data-points=\"2\"") && svg.contains("data-total=\"4\""), "{svg}");
        assert!(svg.contains(">10:00<") && svg.contains(">11:00<"), "{svg}");
        let svg = bar_chart(&[("+12125550100".into(), 7.0), ("<script>".into(), 1.0)], "calls").into_string();
        assert!(svg.contains("+12125550100") && svg.contains("&lt;script&gt;"), "labels are escaped: {svg}");
        assert!(line_chart(&[], "x").into_string().contains("no data"));
    }
}
