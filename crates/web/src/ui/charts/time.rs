//! The time axis: ticks on round minutes, hours or days of the chosen time zone, labelled in
//! ISO 24-hour form (`14:30`, `12-07`, `12-07 00:00`), and the zone itself.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Tick steps, in seconds, from one minute to a week: each a round interval of a clock.
pub const STEPS: [i64; 15] =
    [60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800, 2_419_200];

/// The zone named `name` (an IANA name such as `Europe/Berlin`, or `UTC`), if known.
pub fn zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

/// Seconds `tz` is ahead of UTC at `t` (Unix seconds).
pub fn offset_at(tz: Tz, t: i64) -> i64 {
    let at = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    i64::from(tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc())
}

/// Ticks for the range `[t0, t1]` (Unix seconds): the smallest step of [`STEPS`] giving at most
/// `max` ticks, and the ticks, multiples of the step in local time (`offset` seconds ahead of
/// UTC), inside the range.
pub fn ticks(t0: i64, t1: i64, offset: i64, max: usize) -> (i64, Vec<i64>) {
    let span = (t1 - t0).max(0);
    let max = max.max(2) as i64;
    let step = STEPS.iter().copied().find(|s| span / s < max).unwrap_or(STEPS[STEPS.len() - 1]);
    let first = (t0 + offset).div_euclid(step) * step + if (t0 + offset).rem_euclid(step) == 0 { 0 } else { step };
    let mut out = Vec::new();
    let mut local = first;
    while local - offset <= t1 {
        out.push(local - offset);
        local += step;
    }
    (step, out)
}

/// The label of tick `t` on an axis of `step` seconds spanning `span` seconds, in `tz`:
/// `HH:MM` within a day, `MM-DD HH:MM` at midnight of a longer range, `MM-DD` for day steps.
pub fn label(t: i64, step: i64, span: i64, tz: Tz) -> String {
    let at = Utc.timestamp_opt(t, 0).single().unwrap_or_default().with_timezone(&tz);
    if step >= 86_400 {
        at.format("%m-%d").to_string()
    } else if span > 86_400 && at.format("%H:%M").to_string() == "00:00" {
        at.format("%m-%d %H:%M").to_string()
    } else {
        at.format("%H:%M").to_string()
    }
}

/// A time as a hover text or a table shows it: ISO date and 24-hour time in `tz`, with the
/// zone's abbreviation (`2026-12-07 14:30 CET`).
pub fn stamp(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_round_local_times_inside_the_range_and_are_few() {
        let base = 1_796_601_600; // 2026-12-07 00:00 UTC
        let spans = [0, 59, 60, 300, 900, 3600, 5400, 86_400, 2 * 86_400, 7 * 86_400, 30 * 86_400, 90 * 86_400];
        let offsets = [0, 3600, -5 * 3600, 19_800, 45 * 60 + 12 * 3600];
        for start in [base, base + 37, base + 1799, base + 86_399] {
            for span in spans {
                for offset in offsets {
                    for max in [2, 6, 8, 12] {
                        let (step, ts) = ticks(start, start + span, offset, max);
                        assert!(STEPS.contains(&step));
                        // Few enough ticks, unless even the longest step gives more.
                        if span / STEPS[STEPS.len() - 1] < max.max(2) as i64 {
                            assert!(ts.len() <= max.max(2), "{span} {max}: {} ticks", ts.len());
                        }
                        for t in &ts {
                            assert!((start..=start + span).contains(t), "{t} outside");
                            assert_eq!((t + offset).rem_euclid(step), 0, "{t} not on a step of {step}");
                        }
                        assert!(ts.windows(2).all(|w| w[1] - w[0] == step));
                        // The step is the smallest that gives few enough ticks.
                        if let Some(smaller) = STEPS.iter().rev().find(|s| **s < step) {
                            assert!(span / smaller >= max.max(2) as i64, "{smaller} would do for {span}");
                        }
                        // A range of at least two steps has at least one tick.
                        if span >= 2 * step {
                            assert!(!ts.is_empty());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn one_hour_gets_ticks_every_ten_minutes_and_a_week_every_day() {
        let t0 = 1_796_601_600 + 7 * 60; // 00:07 UTC
        let (step, ts) = ticks(t0, t0 + 3600, 0, 8);
        assert_eq!(step, 600);
        let labels: Vec<String> = ts.iter().map(|t| label(*t, step, 3600, Tz::UTC)).collect();
        assert_eq!(labels, ["00:10", "00:20", "00:30", "00:40", "00:50", "01:00"]);
        let (step, ts) = ticks(1_796_601_600, 1_796_601_600 + 7 * 86_400, 0, 8);
        assert_eq!((step, ts.len()), (86_400, 8));
        assert_eq!(label(ts[1], step, 7 * 86_400, Tz::UTC), "12-08");
    }

    #[test]
    fn labels_are_iso_24_hour_in_the_chosen_zone() {
        let t = 1_796_601_600 + 13 * 3600 + 30 * 60; // 2026-12-07 13:30 UTC
        assert_eq!(label(t, 600, 3600, Tz::UTC), "13:30");
        let berlin = zone("Europe/Berlin").unwrap();
        assert_eq!(label(t, 600, 3600, berlin), "14:30");
        assert_eq!(offset_at(berlin, t), 3600);
        assert_eq!(label(1_796_601_600, 21_600, 2 * 86_400, Tz::UTC), "12-07 00:00");
        assert_eq!(stamp(Utc.timestamp_opt(t, 0).unwrap(), berlin), "2026-12-07 14:30 CET");
        assert_eq!(stamp(Utc.timestamp_opt(t, 0).unwrap(), Tz::UTC), "2026-12-07 13:30 UTC");
        assert!(zone("Mars/Olympus").is_none());
    }
}
