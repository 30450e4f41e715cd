//! The counters a call's rules read, as `lookup` shows them: for each rule with a `velocity` or
//! `concurrent` condition, what the engine knows now (network-wide when counters are shared).

use serde::{Deserialize, Serialize};
use tollgate_number::E164;

use crate::compile::CompiledPolicy;
use crate::velocity::{VelocityCounters, VelocityTable};

/// Which condition a counter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CounterKind {
    /// `velocity = { calls, window }`: calls in the window.
    Velocity,
    /// `concurrent = N`: calls in progress.
    Concurrent,
}

/// One counter of one rule for one caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterView {
    /// Rule name.
    pub rule: String,
    /// Velocity or concurrent.
    pub kind: CounterKind,
    /// Calls counted in the window (this call not included; at most `limit + 1` are kept), or
    /// calls in progress.
    pub count: u32,
    /// The rule's `calls` or `concurrent`.
    pub limit: u32,
    /// The velocity window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u32>,
}

impl CompiledPolicy {
    /// The counters of every rule with a velocity or concurrent condition, for calls from
    /// `source` at `at_us`, read from `table` without counting anything.
    pub fn counters_for(&self, source: E164, at_us: i64, table: &VelocityTable) -> Vec<CounterView> {
        let mut out = Vec::new();
        for rule in &self.rules {
            if let Some(v) = rule.velocity {
                out.push(CounterView {
                    rule: rule.name.to_string(),
                    kind: CounterKind::Velocity,
                    count: table.window_count(&rule.name, source, at_us, v),
                    limit: v.calls,
                    window_secs: Some(v.window_secs),
                });
            }
            if let Some(n) = rule.concurrent {
                out.push(CounterView {
                    rule: rule.name.to_string(),
                    kind: CounterKind::Concurrent,
                    count: table.concurrent(source),
                    limit: n,
                    window_secs: None,
                });
            }
        }
        out
    }
}
