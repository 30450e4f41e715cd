//! A running probe's recent calls (`GET /api/v1/probe/calls/{call_id}/messages`): the SIP
//! messages of one call as the probe captured them, for drawing its ladder.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Path of one call's messages, with `{call_id}` percent-encoded (answer: [`CallMessages`]).
/// `404 not_found` for a call the probe does not hold (never seen, or finished and forgotten
/// past `probe.ladder_calls`); `404 not_configured` on a server that runs no probe or keeps no
/// messages (`probe.ladder_calls = 0`).
pub const CALL_MESSAGES: &str = "/api/v1/probe/calls/{call_id}/messages";

/// The path of call `call_id`'s messages.
pub fn call_messages_path(call_id: &str) -> String {
    let encoded: String = call_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    CALL_MESSAGES.replace("{call_id}", &encoded)
}

/// One call's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMessages {
    /// Call-ID.
    pub call_id: String,
    /// True while the call has not ended.
    pub open: bool,
    /// The messages kept, in time order (a HEP sender's clock for messages it mirrored).
    pub messages: Vec<CallMessage>,
    /// Messages the probe did not keep (past its 200 per call): they were between
    /// `messages[dropped_at - 1]` and `messages[dropped_at]`.
    #[serde(default)]
    pub dropped: u64,
    /// Where the dropped messages were.
    #[serde(default)]
    pub dropped_at: usize,
}

/// One SIP message as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMessage {
    /// Capture time.
    pub time: DateTime<Utc>,
    /// Sender, `address:port`.
    pub src: String,
    /// Receiver, `address:port`.
    pub dst: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// The request line or status line.
    pub first_line: String,
    /// The method of a request.
    #[serde(default)]
    pub method: Option<String>,
    /// The status code of a response.
    #[serde(default)]
    pub status: Option<u16>,
    /// The message, head and body (cut at 4 KiB: then `truncated`).
    pub text: String,
    /// True when `text` was cut.
    #[serde(default)]
    pub truncated: bool,
    /// True when the same bytes went the same way shortly before.
    #[serde(default)]
    pub retransmission: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_id_is_one_path_segment() {
        assert_eq!(call_messages_path("1-2@10.0.0.1"), "/api/v1/probe/calls/1-2%4010.0.0.1/messages");
        assert_eq!(call_messages_path("a/b c"), "/api/v1/probe/calls/a%2Fb%20c/messages");
    }
}
