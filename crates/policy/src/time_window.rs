//! Time windows: days of the week and hours of the day, in a time zone.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// When a rule applies. Hours are `[start, end)` in minutes of the local day; when `end <=
/// start` the window runs past midnight and belongs to the day it started on, so
/// `days = ["fri"], hours = "22:00-06:00"` is Friday 22:00 to Saturday 06:00.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    /// Index 0 is Monday.
    days: [bool; 7],
    start_min: u16,
    end_min: u16,
    zone: Tz,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl TimeWindow {
    /// Builds a window from day specs (`"mon"`, `"mon-fri"`, `"sat-sun"`, `"all"`), an hours spec
    /// (`"09:00-17:00"`, `"22:00-06:00"`, `"00:00-24:00"`) and a zone name (IANA, e.g.
    /// `America/New_York`, or `UTC`).
    pub(crate) fn parse(days: &[String], hours: Option<&str>, zone: &str) -> Result<Self, String> {
        let zone: Tz = zone
            .parse()
            .map_err(|_| format!("unknown time zone {zone:?} (use an IANA name such as America/New_York)"))?;
        let mut set = [false; 7];
        if days.is_empty() {
            set = [true; 7];
        }
        for spec in days {
            let spec = spec.trim().to_ascii_lowercase();
            if spec == "all" || spec == "any" {
                set = [true; 7];
                continue;
            }
            let (a, b) = spec.split_once('-').unwrap_or((&spec, &spec));
            let day = |s: &str| {
                DAY_NAMES.iter().position(|d| *d == s.trim()).ok_or_else(|| {
                    format!("unknown day {s:?} (use mon, tue, wed, thu, fri, sat, sun or ranges like mon-fri)")
                })
            };
            let (a, b) = (day(a)?, day(b)?);
            let mut d = a;
            loop {
                set[d] = true;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        let (start_min, end_min) = match hours {
            None => (0, 24 * 60),
            Some(h) => parse_hours(h)?,
        };
        Ok(TimeWindow { days: set, start_min, end_min, zone })
    }

    /// True if `at` falls inside the window.
    pub(crate) fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.weekday().num_days_from_monday() as usize;
        if self.start_min < self.end_min {
            self.days[today] && minute >= self.start_min && minute < self.end_min
        } else {
            let yesterday = (today + 6) % 7;
            (self.days[today] && minute >= self.start_min) || (self.days[yesterday] && minute < self.end_min)
        }
    }
}

fn parse_hours(spec: &str) -> Result<(u16, u16), String> {
    let bad = || format!("hours {spec:?} must look like \"09:00-17:00\" (24-hour clock, end may be 24:00)");
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let minute = |s: &str, allow_24: bool| -> Result<u16, String> {
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (start, end) = (minute(a, false)?, minute(b, true)?);
    if start == end {
        return Err(format!("hours {spec:?} is an empty window (start equals end)"));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn office_hours_in_new_york() {
        let w = TimeWindow::parse(&["mon-fri".into()], Some("09:00-17:00"), "America/New_York").unwrap();
        // 2026-11-25 is a Wednesday; New York is UTC-5 in November.
        assert!(w.contains(utc(2026, 11, 25, 14, 0))); // 09:00 local
        assert!(!w.contains(utc(2026, 11, 25, 13, 59))); // 08:59 local
        assert!(!w.contains(utc(2026, 11, 25, 22, 0))); // 17:00 local, end is exclusive
        assert!(!w.contains(utc(2026, 11, 28, 15, 0))); // Saturday
    }

    #[test]
    fn overnight_window_belongs_to_its_start_day() {
        let w = TimeWindow::parse(&["fri".into()], Some("22:00-06:00"), "UTC").unwrap();
        assert!(w.contains(utc(2026, 11, 27, 23, 0))); // Friday 23:00
        assert!(w.contains(utc(2026, 11, 28, 5, 59))); // Saturday 05:59
        assert!(!w.contains(utc(2026, 11, 28, 6, 0)));
        assert!(!w.contains(utc(2026, 11, 27, 5, 0))); // Friday early morning: Thursday's window
        assert!(!w.contains(utc(2026, 11, 28, 23, 0))); // Saturday night
    }

    #[test]
    fn weekend_wraps_and_defaults() {
        let w = TimeWindow::parse(&["sat-mon".into()], None, "UTC").unwrap();
        assert!(w.contains(utc(2026, 11, 30, 12, 0))); // Monday
        assert!(!w.contains(utc(2026, 11, 25, 12, 0))); // Wednesday
        let all = TimeWindow::parse(&[], Some("00:00-24:00"), "UTC").unwrap();
        assert!(all.contains(utc(2026, 11, 25, 23, 59)));
    }

    #[test]
    fn bad_specs_name_the_problem() {
        assert!(TimeWindow::parse(&["funday".into()], None, "UTC").unwrap_err().contains("funday"));
        assert!(TimeWindow::parse(&[], Some("9-17"), "UTC").unwrap_err().contains("09:00-17:00"));
        assert!(TimeWindow::parse(&[], Some("10:00-10:00"), "UTC").unwrap_err().contains("empty"));
        assert!(TimeWindow::parse(&[], Some("25:00-26:00"), "UTC").is_err());
        assert!(TimeWindow::parse(&[], None, "Mars/Olympus").unwrap_err().contains("time zone"));
    }
}
