//! NACKs: the Standby's "I could not apply a checkpoint, send me a full one", and the limit on how
//! many it sends (`max-response` per 10-minute window).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::session::CmdId;

/// The seed's NACK window.
pub const NACK_WINDOW: Duration = Duration::from_secs(600);

/// Which kind of checkpoint failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NackKind {
    /// A micro-checkpoint.
    Micro,
    /// A macro (full) checkpoint.
    Macro,
}

/// Why a NACK is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum NackReason {
    /// A sequence number was skipped.
    SequenceGap {
        /// Expected.
        expected: u64,
        /// Received.
        received: u64,
    },
    /// The checkpoint did not decode or its checksum did not match.
    Corrupt {
        /// The decoder's message.
        detail: String,
    },
    /// A full checkpoint's parts were not contiguous.
    IncompleteFull,
    /// This Standby holds no synchronised copy and no full checkpoint came.
    NotSynchronised,
}

/// A NACK, sent by the Standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    /// Which kind of checkpoint failed.
    pub kind: NackKind,
    /// The micro-checkpoint command id, when known.
    pub cmd: Option<CmdId>,
    /// The failed checkpoint's sequence number, when known.
    pub seq: Option<u64>,
    /// Why.
    pub reason: NackReason,
}

/// At most `max_response` NACKs per 10-minute window.
#[derive(Debug, Clone)]
pub struct NackLimiter {
    max_response: u16,
    window: Duration,
    window_start: Option<Instant>,
    sent: u16,
}

impl NackLimiter {
    /// A limiter of `max_response` per [`NACK_WINDOW`].
    pub fn new(max_response: u16) -> NackLimiter {
        NackLimiter { max_response, window: NACK_WINDOW, window_start: None, sent: 0 }
    }

    /// Whether one more NACK may be sent now; counts it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < self.window => {}
            _ => {
                self.window_start = Some(now);
                self.sent = 0;
            }
        }
        if self.sent < self.max_response {
            self.sent += 1;
            true
        } else {
            false
        }
    }

    /// A full checkpoint was applied: a new window starts with the next failure.
    pub fn reset(&mut self) {
        self.window_start = None;
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ten_minute_window() {
        let t0 = Instant::now();
        let mut l = NackLimiter::new(3);
        assert!(l.allow(t0));
        assert!(l.allow(t0 + Duration::from_secs(1)));
        assert!(l.allow(t0 + Duration::from_secs(2)));
        assert!(!l.allow(t0 + Duration::from_secs(599)));
        assert!(l.allow(t0 + Duration::from_secs(600)), "new window");
        l.reset();
        let t1 = t0 + Duration::from_secs(601);
        assert!(l.allow(t1) && l.allow(t1) && l.allow(t1));
        assert!(!l.allow(t1));
        let mut zero = NackLimiter::new(0);
        assert!(!zero.allow(t0), "max-response 0 sends none");
    }

    #[test]
    fn nack_json_is_stable() {
        let n = Nack {
            kind: NackKind::Micro,
            cmd: Some(4),
            seq: Some(10),
            reason: NackReason::SequenceGap { expected: 9, received: 10 },
        };
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"micro","cmd":4,"seq":10,"reason":{"reason":"sequence-gap","expected":9,"received":10}}"#
        );
        assert_eq!(serde_json::from_str::<Nack>(&j).unwrap(), n);
    }
}
