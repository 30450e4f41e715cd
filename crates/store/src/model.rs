//! The Analytics screen's selectors (seed 002: Dataset, View, Grouping, Device) and results.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dataset {
    /// ENUM queries answered by engines.
    #[serde(rename = "ENUM")]
    Enum,
    /// SIP calls seen by probes.
    #[serde(rename = "SIP")]
    Sip,
}

impl Dataset {
    /// `ENUM` or `SIP`, as the Analytics screen names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Enum => "ENUM",
            Dataset::Sip => "SIP",
        }
    }

    /// Both datasets.
    pub const ALL: [Dataset; 2] = [Dataset::Enum, Dataset::Sip];
}

/// What is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum View {
    /// Records per second, averaged over each bucket.
    #[serde(rename = "Average CPS")]
    AverageCps,
    /// The ten most frequent calling numbers.
    #[serde(rename = "Top 10 Source")]
    TopSource,
    /// The ten most frequent called numbers.
    #[serde(rename = "Top 10 Destination")]
    TopDestination,
    /// ENUM decisions by deciding rule and action.
    #[serde(rename = "Actions by Rule")]
    ActionsByRule,
    /// SIP calls by disposition (answered, busy, no answer, cancelled, failed).
    #[serde(rename = "Calls by Disposition")]
    CallsByDisposition,
}

impl View {
    /// The name shown in the selector.
    pub fn as_str(self) -> &'static str {
        match self {
            View::AverageCps => "Average CPS",
            View::TopSource => "Top 10 Source",
            View::TopDestination => "Top 10 Destination",
            View::ActionsByRule => "Actions by Rule",
            View::CallsByDisposition => "Calls by Disposition",
        }
    }

    /// Every view, in selector order.
    pub const ALL: [View; 5] =
        [View::AverageCps, View::TopSource, View::TopDestination, View::ActionsByRule, View::CallsByDisposition];
}

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grouping {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One (UTC) day.
    Day,
}

impl Grouping {
    /// Bucket length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Grouping::Minute => 60,
            Grouping::Hour => 3600,
            Grouping::Day => 86_400,
        }
    }

    /// `minute`, `hour` or `day` (the name stored in rollup tables).
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Minute => "minute",
            Grouping::Hour => "hour",
            Grouping::Day => "day",
        }
    }

    /// The start of the bucket holding unix second `t`.
    pub fn bucket_of(self, t: i64) -> i64 {
        t.div_euclid(self.seconds()) * self.seconds()
    }

    /// Every grouping, smallest first.
    pub const ALL: [Grouping; 3] = [Grouping::Minute, Grouping::Hour, Grouping::Day];
}

macro_rules! parse_by_name {
    ($ty:ty, $what:literal) => {
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let wanted = s.trim().replace(['_', '-', '+'], " ").to_ascii_lowercase();
                <$ty>::ALL
                    .into_iter()
                    .find(|v| {
                        v.as_str().to_ascii_lowercase() == wanted
                            || format!("{v:?}").to_ascii_lowercase() == wanted.replace(' ', "")
                    })
                    .ok_or_else(|| {
                        format!(
                            "unknown {} {s:?} (one of: {})",
                            $what,
                            <$ty>::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

parse_by_name!(Dataset, "dataset");
parse_by_name!(View, "view");
parse_by_name!(Grouping, "grouping");

/// One Analytics request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsQuery {
    /// ENUM or SIP.
    pub dataset: Dataset,
    /// What to show.
    pub view: View,
    /// Bucket size.
    pub grouping: Grouping,
    /// One device, or `None` for All.
    pub device: Option<String>,
    /// Start (inclusive).
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
}

/// A chart point: one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Bucket start.
    pub bucket: DateTime<Utc>,
    /// Records in the bucket (within the range).
    pub count: u64,
    /// The value charted: average per second for Average CPS, else the count.
    pub value: f64,
}

/// A table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Bucket start, or `None` for the whole range.
    pub bucket: Option<DateTime<Utc>>,
    /// Number, rule or disposition.
    pub key: String,
    /// Direction (numbers), action (rules), or empty.
    pub detail: String,
    /// Records.
    pub count: u64,
    /// Average per second (Average CPS rows only).
    pub cps: Option<f64>,
    /// Of `count`, the stale answers (Actions by Rule only): sent after the engine's stale
    /// bound, so the SBC most likely did not use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<u64>,
}

/// The answer to an [`AnalyticsQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsResult {
    /// The request.
    pub query: AnalyticsQuery,
    /// One point per bucket in the range, zero-filled.
    pub series: Vec<Point>,
    /// Over the whole range: the top 10 (Top views), counts per key (other views), or one row
    /// per bucket (Average CPS).
    pub summary: Vec<Row>,
    /// Per bucket: the top 10 / counts per key of each bucket (empty for Average CPS).
    pub per_bucket: Vec<Row>,
    /// Total records in the range.
    pub total: u64,
}
