//! What `lookup` shows about the sharing of the counters, and the trait the sync task (crate
//! `tollgate-shared-counters`) implements to report it through the table.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of the shared counters, as `lookup` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedState {
    /// Not configured: counters are this process's own.
    Off,
    /// The last exchange with Redis succeeded.
    #[serde(rename = "in step")]
    InStep,
    /// Redis does not answer: counts are this server's own until it returns.
    Unreachable,
}

impl fmt::Display for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SharedState::Off => "off",
            SharedState::InStep => "in step",
            SharedState::Unreachable => "unreachable",
        })
    }
}

/// What `lookup` shows about the shared counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedView {
    /// Off, in step or unreachable.
    pub state: SharedState,
    /// Since the last successful exchange with Redis, ms (none yet: absent).
    pub age_ms: Option<u64>,
    /// The Redis URL, without its password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

impl SharedView {
    /// Counters not shared.
    pub fn off() -> SharedView {
        SharedView { state: SharedState::Off, age_ms: None, url: String::new() }
    }

    /// One line for people (`lookup`, the Dashboard); none when counters are not shared.
    pub fn describe(&self) -> Option<String> {
        let age = self.age_ms.map_or("no exchange yet".to_string(), |ms| format!("last exchange {ms} ms ago"));
        match self.state {
            SharedState::Off => None,
            SharedState::InStep => Some(format!("in step through {}, {age}", self.url)),
            SharedState::Unreachable => {
                Some(format!("unreachable: {} ({age}); counting this server's calls only (alarm 72016)", self.url))
            }
        }
    }
}

/// Reports how the sharing of a table's counters is going (the sync task's status).
pub trait SyncReport: Send + Sync + fmt::Debug {
    /// The view at `now_us` (µs since the epoch).
    fn view(&self, now_us: i64) -> SharedView;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_for_each_state() {
        assert_eq!(SharedView::off().describe(), None);
        let v = |state, age_ms| SharedView { state, age_ms, url: "redis://r:6379/0".into() };
        assert_eq!(
            v(SharedState::InStep, Some(12)).describe().as_deref(),
            Some("in step through redis://r:6379/0, last exchange 12 ms ago")
        );
        assert_eq!(
            v(SharedState::Unreachable, None).describe().as_deref(),
            Some("unreachable: redis://r:6379/0 (no exchange yet); counting this server's calls only (alarm 72016)")
        );
    }
}
