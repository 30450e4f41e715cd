//! One batch as it travels through Redis: the calls one engine counted in one interval, and
//! the calls in progress one probe sees. JSON (one stream entry field), so an operator can read
//! it with `redis-cli XRANGE`; bytes in, typed batch or a typed error out, never a panic
//! (fuzzed: `fuzz/fuzz_targets/shared_batch.rs`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tollgate_number::E164;
use tollgate_policy::Velocity;
use tollgate_policy::velocity::{CountedCall, MAX_VELOCITY_CALLS};

/// The largest batch read (a bigger entry is refused, not parsed).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// The longest rule name in a batch.
pub const MAX_RULE_NAME: usize = 256;
/// The longest velocity window in a batch, seconds (a policy allows up to 24 h).
pub const MAX_WINDOW_SECS: u32 = 86_400;

/// The calls one rule counted, in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCalls {
    /// Rule name.
    #[serde(rename = "rule")]
    pub rule: String,
    /// The rule's `calls` (a counter keeps `calls + 1` times).
    #[serde(rename = "calls")]
    pub calls: u32,
    /// The rule's window, seconds.
    #[serde(rename = "window")]
    pub window_secs: u32,
    /// (calling number as digits, time in µs since the epoch) of each call.
    #[serde(rename = "at")]
    pub at: Vec<(u64, i64)>,
}

/// One batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Who sent it: `<node name>/<random per process start>`.
    pub origin: String,
    /// When it was sent, µs since the epoch (its sender's clock).
    pub sent_us: i64,
    /// Calls counted, per rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counted: Vec<RuleCalls>,
    /// Calls in progress the sender's probe sees, per caller (digits, count; 0: none any more).
    /// Absent: the sender runs no probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<(u64, u32)>>,
    /// `in_progress` lists every caller with calls in progress (callers not listed have none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_progress_full: bool,
}

/// Why a batch was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_BATCH_BYTES`].
    #[error("batch of {0} bytes is larger than {MAX_BATCH_BYTES}")]
    TooLarge(usize),
    /// Not JSON of a batch.
    #[error("batch is not readable: {0}")]
    Unreadable(String),
    /// A field out of range.
    #[error("batch field {field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn field(field: &'static str, message: impl Into<String>) -> WireError {
    WireError::Field { field, message: message.into() }
}

impl Batch {
    /// Groups counted calls by rule into this batch.
    pub fn add_counted(&mut self, calls: &[CountedCall]) {
        for c in calls {
            let i = match self.counted.iter().position(|r| {
                *r.rule == *c.rule && r.calls == c.velocity.calls && r.window_secs == c.velocity.window_secs
            }) {
                Some(i) => i,
                None => {
                    self.counted.push(RuleCalls {
                        rule: c.rule.to_string(),
                        calls: c.velocity.calls,
                        window_secs: c.velocity.window_secs,
                        at: Vec::new(),
                    });
                    self.counted.len() - 1
                }
            };
            self.counted[i].at.push((c.source.as_u64(), c.at_us));
        }
    }

    /// How many counted calls it carries.
    pub fn counted_len(&self) -> usize {
        self.counted.iter().map(|r| r.at.len()).sum()
    }

    /// The counted calls, back in the table's form.
    pub fn counted_calls(&self) -> Vec<CountedCall> {
        let mut out = Vec::with_capacity(self.counted_len());
        for r in &self.counted {
            let rule: Arc<str> = Arc::from(r.rule.as_str());
            let velocity = Velocity { calls: r.calls, window_secs: r.window_secs };
            out.extend(r.at.iter().filter_map(|(n, at_us)| {
                E164::from_u64(*n).map(|source| CountedCall { rule: rule.clone(), source, at_us: *at_us, velocity })
            }));
        }
        out
    }

    /// The calls in progress it carries, as numbers.
    pub fn in_progress_calls(&self) -> Option<Vec<(E164, u32)>> {
        self.in_progress.as_ref().map(|v| v.iter().filter_map(|(n, c)| E164::from_u64(*n).map(|e| (e, *c))).collect())
    }

    /// The JSON text of the batch.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a batch, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<Batch, WireError> {
        if bytes.len() > MAX_BATCH_BYTES {
            return Err(WireError::TooLarge(bytes.len()));
        }
        let b: Batch = serde_json::from_slice(bytes).map_err(|e| WireError::Unreadable(e.to_string()))?;
        if b.origin.is_empty() || b.origin.len() > 200 || b.origin.chars().any(char::is_control) {
            return Err(field("origin", "must be 1 to 200 characters, no control characters"));
        }
        for r in &b.counted {
            if r.rule.is_empty() || r.rule.len() > MAX_RULE_NAME {
                return Err(field("counted.rule", format!("must be 1 to {MAX_RULE_NAME} bytes")));
            }
            if r.calls == 0 || r.calls > MAX_VELOCITY_CALLS {
                return Err(field("counted.calls", format!("{} is not in 1..={MAX_VELOCITY_CALLS}", r.calls)));
            }
            if r.window_secs == 0 || r.window_secs > MAX_WINDOW_SECS {
                return Err(field("counted.window", format!("{} is not in 1..={MAX_WINDOW_SECS} s", r.window_secs)));
            }
            if let Some((n, _)) = r.at.iter().find(|(n, _)| E164::from_u64(*n).is_none()) {
                return Err(field("counted.at", format!("{n} is not an E.164 number")));
            }
        }
        if let Some((n, _)) = b.in_progress.iter().flatten().find(|(n, _)| E164::from_u64(*n).is_none()) {
            return Err(field("in_progress", format!("{n} is not an E.164 number")));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        s.parse().unwrap()
    }

    #[test]
    fn a_batch_reads_back_as_it_was_written() {
        let v = Velocity { calls: 3, window_secs: 60 };
        let calls = vec![
            CountedCall { rule: Arc::from("robo"), source: n("+13125550666"), at_us: 1, velocity: v },
            CountedCall { rule: Arc::from("robo"), source: n("+13125550667"), at_us: 2, velocity: v },
            CountedCall { rule: Arc::from("other"), source: n("+13125550666"), at_us: 3, velocity: v },
        ];
        let mut b = Batch { origin: "enum-1/ab12".into(), sent_us: 9, ..Default::default() };
        b.add_counted(&calls);
        b.in_progress = Some(vec![(13125550666, 2)]);
        assert_eq!(b.counted.len(), 2, "grouped by rule");
        let back = Batch::decode(b.encode().as_bytes()).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.counted_calls(), calls);
        assert_eq!(back.in_progress_calls(), Some(vec![(n("+13125550666"), 2)]));
    }

    #[test]
    fn bad_batches_are_refused_with_the_field_named() {
        assert!(matches!(Batch::decode(b"{"), Err(WireError::Unreadable(_))));
        assert!(matches!(Batch::decode(&vec![b' '; MAX_BATCH_BYTES + 1]), Err(WireError::TooLarge(_))));
        let e = Batch::decode(br#"{"origin":"a","sent_us":1,"counted":[{"rule":"r","calls":0,"window":60,"at":[]}]}"#);
        assert!(matches!(e, Err(WireError::Field { field: "counted.calls", .. })), "{e:?}");
        let e =
            Batch::decode(br#"{"origin":"a","sent_us":1,"counted":[{"rule":"r","calls":3,"window":60,"at":[[0,1]]}]}"#);
        assert!(matches!(e, Err(WireError::Field { field: "counted.at", .. })), "{e:?}");
        let e = Batch::decode(br#"{"origin":"","sent_us":1}"#);
        assert!(matches!(e, Err(WireError::Field { field: "origin", .. })), "{e:?}");
    }
}
