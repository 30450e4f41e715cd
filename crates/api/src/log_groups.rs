//! The upgrade log grouped as the Upgrade Manager shows it: per cluster, one group per action
//! (the operator's or the Director's parent entry, then its steps), newest first, each with the
//! duration it really took (to the millisecond: the lab's steps take well under a second, which
//! the seed's `H:MM:SS` shows as `0:00:00`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_upgrade::director::LogResult;

use crate::manager::LogEntry;

/// One action of the upgrade log with its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogGroup {
    /// The cluster.
    pub cluster: String,
    /// The action's entry (parent ID 0), or the first step whose parent entry is not in the log.
    pub action: LogEntry,
    /// Its steps, oldest first.
    #[serde(default)]
    pub steps: Vec<LogEntry>,
    /// From the first start to the last end of the action and its steps (none while any runs).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// The duration as [`short_duration`] writes it; empty while it runs.
    #[serde(default)]
    pub duration: String,
    /// In Progress while the action or a step runs, Failure if any failed, else Success.
    pub result: LogResult,
}

/// Groups `entries` (any order): per cluster (by name), the actions newest first, each with its
/// steps oldest first. A step whose parent is not in `entries` heads a group of its own.
pub fn group_log(mut entries: Vec<LogEntry>) -> Vec<LogGroup> {
    entries.sort_by_key(|e| e.entry.id);
    let ids: std::collections::HashSet<u64> = entries.iter().map(|e| e.entry.id).collect();
    let mut groups: Vec<LogGroup> = Vec::new();
    let mut index: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for e in entries {
        let parent = e.entry.parent_id;
        if parent != 0
            && ids.contains(&parent)
            && parent != e.entry.id
            && let Some(&g) = index.get(&parent)
        {
            groups[g].steps.push(e);
            continue;
        }
        index.insert(e.entry.id, groups.len());
        let cluster = e.entry.cluster.clone();
        groups.push(LogGroup {
            cluster,
            action: e,
            steps: Vec::new(),
            duration_ms: None,
            duration: String::new(),
            result: LogResult::InProgress,
        });
    }
    for g in &mut groups {
        let all = || std::iter::once(&g.action).chain(&g.steps);
        let start: DateTime<Utc> = all().map(|e| e.entry.start).min().unwrap_or(g.action.entry.start);
        let ends: Option<Vec<DateTime<Utc>>> = all().map(|e| e.entry.end).collect();
        let results: Vec<LogResult> = all().map(|e| e.entry.result).collect();
        g.result = if results.contains(&LogResult::InProgress) {
            LogResult::InProgress
        } else if results.contains(&LogResult::Failure) {
            LogResult::Failure
        } else {
            LogResult::Success
        };
        g.duration_ms = ends
            .and_then(|ends| ends.into_iter().max())
            .filter(|_| g.result != LogResult::InProgress)
            .map(|end| (end - start).num_milliseconds().max(0));
        g.duration = g.duration_ms.map(short_duration).unwrap_or_default();
    }
    // Per cluster, newest action first.
    groups.sort_by(|a, b| a.cluster.cmp(&b.cluster).then(b.action.entry.id.cmp(&a.action.entry.id)));
    groups
}

/// A duration for people: `0.42 s` and `12.3 s` under a minute, `4 min 05 s` under an hour,
/// then `H:MM:SS` as the seed writes it.
pub fn short_duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..10_000 => format!("{:.2} s", ms as f64 / 1000.0),
        10_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => {
            let s = ms / 1000;
            format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use tollgate_upgrade::director::{LogMode, LogScope, UpgradeLogEntry};

    use super::*;

    fn entry(id: u64, parent: u64, cluster: &str, start_ms: i64, end_ms: Option<i64>, result: LogResult) -> LogEntry {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
        let at = |ms| t0 + chrono::Duration::milliseconds(ms);
        let e = UpgradeLogEntry {
            id,
            parent_id: parent,
            action_name: format!("step {id}"),
            start: at(start_ms),
            end: end_ms.map(at),
            scope: LogScope::Server,
            hostname: "a".into(),
            result,
            mode: LogMode::Manual,
            description: String::new(),
            cluster: cluster.into(),
        };
        LogEntry::from(&e)
    }

    #[test]
    fn steps_join_their_action_and_actions_come_newest_first_per_cluster() {
        use LogResult::*;
        let log = vec![
            entry(5, 4, "east", 3_000, Some(3_400), Success),
            entry(1, 0, "east", 0, Some(2_350), Success),
            entry(2, 1, "east", 0, Some(1_200), Success),
            entry(3, 1, "east", 1_200, Some(2_350), Success),
            entry(4, 0, "east", 3_000, None, InProgress),
            entry(6, 0, "west", 0, Some(90_000), Failure),
            entry(7, 6, "west", 0, Some(61_500), Failure),
            entry(9, 8, "west", 100_000, Some(100_050), Success),
        ];
        let groups = group_log(log);
        let shape: Vec<(&str, u64, Vec<u64>)> = groups
            .iter()
            .map(|g| (g.cluster.as_str(), g.action.entry.id, g.steps.iter().map(|s| s.entry.id).collect()))
            .collect();
        assert_eq!(
            shape,
            [("east", 4, vec![5]), ("east", 1, vec![2, 3]), ("west", 9, vec![]), ("west", 6, vec![7])],
            "a step whose action is not in the log heads its own group"
        );
        let east_done = &groups[1];
        assert_eq!((east_done.duration_ms, east_done.duration.as_str()), (Some(2_350), "2.35 s"));
        assert_eq!(east_done.result, Success);
        assert_eq!(groups[0].result, InProgress);
        assert_eq!((groups[0].duration_ms, groups[0].duration.as_str()), (None, ""), "still running");
        assert_eq!(groups[3].result, Failure);
        assert_eq!(groups[3].duration, "1 min 30 s");
        // Each step keeps its own duration, to the millisecond.
        assert_eq!(east_done.steps[0].duration_ms, Some(1_200));
        assert_eq!(east_done.steps[0].duration, "0:00:01");
    }

    #[test]
    fn durations_read_well_at_every_scale() {
        assert_eq!(short_duration(0), "0.00 s");
        assert_eq!(short_duration(420), "0.42 s");
        assert_eq!(short_duration(9_999), "10.00 s");
        assert_eq!(short_duration(12_340), "12.3 s");
        assert_eq!(short_duration(245_000), "4 min 05 s");
        assert_eq!(short_duration(3_600_000 + 61_000), "1:01:01");
        assert_eq!(short_duration(-5), "0.00 s");
    }
}
