//! A call's messages drawn as a ladder diagram, as sngrep draws one: the hosts (address:port)
//! as columns in the order they appear, one row per message with its time (the first
//! absolute, in UTC; then the time since the previous message) and an arrow from the sender's
//! column to the receiver's labelled with the method or the status code and reason. A message
//! carrying SDP says `(SDP)`; a retransmission says `(retrans)`.
//!
//! The drawing fits `width` characters: columns are between 16 and 30 characters wide (so
//! with many hosts a row may be wider), host names and labels too long for their space are cut
//! with `…`. A pure function: messages in, lines out.

use chrono::{TimeZone, Utc};

use super::store::{CallMessages, LadderMessage};

/// Width of the time column, including the space after it.
pub const TIME_WIDTH: usize = 27;
/// Narrowest host column.
const MIN_COLUMN: usize = 16;
/// Widest host column.
const MAX_COLUMN: usize = 30;

/// The label on a message's arrow: the method of a request, the code and reason of a
/// response; `(SDP)` when it carries SDP, `(retrans)` when it is a retransmission.
pub fn label(m: &LadderMessage) -> String {
    let line = m.first_line.trim();
    let mut label = match line.strip_prefix("SIP/") {
        Some(rest) => rest.split_once(' ').map(|(_, status)| status.trim()).unwrap_or(rest).to_string(),
        None => line.split_whitespace().next().unwrap_or("?").to_string(),
    };
    if carries_sdp(&m.text) {
        label.push_str(" (SDP)");
    }
    label
}

fn carries_sdp(text: &str) -> bool {
    text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n")).is_some_and(|(_, body)| body.starts_with("v=0"))
}

/// `s` in at most `max` characters, cut with `…`.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `label`, with `suffix` kept when the label is cut to `max` characters.
fn fit_with(label: &str, suffix: &str, max: usize) -> String {
    let suffix_len = suffix.chars().count();
    if label.chars().count() + suffix_len <= max || suffix_len >= max {
        return fit(&format!("{label}{suffix}"), max);
    }
    format!("{}{suffix}", fit(label, max - suffix_len))
}

/// The time of the first message (UTC, µs) or the time since the previous one.
fn time_cell(ts_us: i64, previous: Option<i64>) -> String {
    match previous {
        None => match Utc.timestamp_micros(ts_us).single() {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            None => ts_us.to_string(),
        },
        Some(p) => {
            let d = ts_us.saturating_sub(p);
            let sign = if d < 0 { '-' } else { '+' };
            let d = d.unsigned_abs();
            format!("{sign}{}.{:06}", d / 1_000_000, d % 1_000_000)
        }
    }
}

/// Writes `s` into `row` from column `at`.
fn put(row: &mut [char], at: usize, s: &str) {
    for (i, c) in s.chars().enumerate() {
        if let Some(cell) = row.get_mut(at + i) {
            *cell = c;
        }
    }
}

fn line(row: &[char]) -> String {
    row.iter().collect::<String>().trim_end().to_string()
}

/// The ladder of `call`, in lines of about `width` characters (without line ends).
pub fn render(call: &CallMessages, width: usize) -> Vec<String> {
    let mut hosts: Vec<std::net::SocketAddr> = Vec::new();
    for m in &call.messages {
        for a in [m.src, m.dst] {
            if !hosts.contains(&a) {
                hosts.push(a);
            }
        }
    }
    let n = hosts.len().max(1);
    let column = (width.saturating_sub(TIME_WIDTH) / n).clamp(MIN_COLUMN, MAX_COLUMN);
    let total = TIME_WIDTH + n * column;
    let center = |i: usize| TIME_WIDTH + i * column + column / 2;
    let column_of = |a: &std::net::SocketAddr| hosts.iter().position(|h| h == a).unwrap_or(0);
    let blank = || {
        let mut row = vec![' '; total];
        for i in 0..hosts.len() {
            row[center(i)] = '|';
        }
        row
    };

    let mut out = Vec::with_capacity(call.messages.len() + 3);
    let mut head = vec![' '; total];
    put(&mut head, 0, "time (UTC)");
    for (i, h) in hosts.iter().enumerate() {
        let name = fit(&h.to_string(), column - 2);
        let len = name.chars().count();
        put(&mut head, (center(i) + 1).saturating_sub(len.div_ceil(2)), &name);
    }
    out.push(line(&head));
    out.push(line(&blank()));

    let mut previous = None;
    for (i, m) in call.messages.iter().enumerate() {
        if call.dropped > 0 && i == call.dropped_at {
            let mut row = blank();
            put(&mut row, 0, &fit(&format!("… {} messages not kept", call.dropped), TIME_WIDTH - 1));
            out.push(line(&row));
        }
        let mut row = blank();
        put(&mut row, 0, &fit(&time_cell(m.ts_us, previous), TIME_WIDTH - 1));
        previous = Some(m.ts_us);
        let (from, to) = (center(column_of(&m.src)), center(column_of(&m.dst)));
        let suffix = if m.retransmission { " (retrans)" } else { "" };
        if from == to {
            // To itself: the label beside its column.
            put(&mut row, from + 1, &fit_with(&format!("<> {}", label(m)), suffix, column - 2));
        } else {
            let (l, r) = (from.min(to), from.max(to));
            for cell in &mut row[l + 1..r] {
                *cell = '-';
            }
            if from < to {
                row[r - 1] = '>';
            } else {
                row[l + 1] = '<';
            }
            // The label inside the arrow, a dash and the head on each side.
            let text = fit_with(&label(m), suffix, r - l - 5);
            let len = text.chars().count();
            put(&mut row, l + 1 + (r - l - 1 - len) / 2, &text);
        }
        out.push(line(&row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Transport;

    fn msg(ms: i64, src: &str, dst: &str, text: &str) -> LadderMessage {
        LadderMessage::new(ms * 1000, src.parse().unwrap(), dst.parse().unwrap(), Transport::Udp, text.as_bytes(), 4096)
    }

    const A: &str = "10.0.0.1:5060";
    const P: &str = "10.0.0.2:5060";
    const B: &str = "10.0.0.3:5080";
    const INVITE: &str = "INVITE sip:bob@b SIP/2.0\r\nCall-ID: c\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n";

    fn call(messages: Vec<LadderMessage>) -> CallMessages {
        CallMessages { call_id: "c".into(), open: false, messages, dropped: 0, dropped_at: 0 }
    }

    #[test]
    fn a_small_call_is_drawn_exactly() {
        let mut retrans = msg(1_764_000_000_500, A, P, INVITE);
        retrans.retransmission = true;
        let c = call(vec![
            msg(1_764_000_000_000, A, P, INVITE),
            retrans,
            msg(1_764_000_000_501, P, A, "SIP/2.0 100 Trying\r\n\r\n"),
            msg(1_764_000_000_502, P, B, INVITE),
            msg(1_764_000_001_750, B, P, "SIP/2.0 486 Busy Here\r\n\r\n"),
            msg(1_764_000_001_751, P, A, "SIP/2.0 486 Busy Here\r\n\r\n"),
            msg(1_764_000_001_760, A, P, "ACK sip:bob@b SIP/2.0\r\n\r\n"),
        ]);
        let got = render(&c, 99).join("\n");
        let want = "\
time (UTC)                       10.0.0.1:5060           10.0.0.2:5060           10.0.0.3:5080
                                       |                       |                       |
2025-11-24 16:00:00.000000             |-----INVITE (SDP)----->|                       |
+0.500000                              |--INVITE (… (retrans)->|                       |
+0.001000                              |<-----100 Trying-------|                       |
+0.001000                              |                       |-----INVITE (SDP)----->|
+1.248000                              |                       |<----486 Busy Here-----|
+0.001000                              |<----486 Busy Here-----|                       |
+0.009000                              |----------ACK--------->|                       |";
        assert_eq!(got, want, "\n{got}\n");
    }

    #[test]
    fn labels_say_method_or_status_and_long_ones_are_cut() {
        assert_eq!(label(&msg(0, A, B, "SIP/2.0 183 Session Progress\r\n\r\n")), "183 Session Progress");
        assert_eq!(label(&msg(0, A, B, "BYE sip:x SIP/2.0\r\n\r\n")), "BYE");
        assert_eq!(label(&msg(0, A, B, "")), "?");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit_with("INVITE (SDP)", " (retrans)", 14), "INV… (retrans)");
        assert_eq!(fit_with("abc", " (retrans)", 5), "abc …");
        let long = format!("SIP/2.0 500 {}\r\n\r\n", "very long reason ".repeat(10));
        for l in render(&call(vec![msg(0, A, B, &long)]), 80) {
            assert!(l.chars().count() <= 80, "{l}");
        }
    }

    #[test]
    fn many_hosts_keep_a_minimum_width_and_a_gap_is_shown() {
        let hosts: Vec<String> = (1..=8).map(|i| format!("[2001:db8::{i}]:5060")).collect();
        let messages: Vec<_> = hosts.windows(2).enumerate().map(|(i, w)| msg(i as i64, &w[0], &w[1], INVITE)).collect();
        let mut c = call(messages);
        c.dropped = 40;
        c.dropped_at = 3;
        let lines = render(&c, 80);
        assert!(lines[0].contains("[2001:db8::1]…"), "{}", lines[0]);
        assert_eq!(lines.len(), 2 + 7 + 1);
        assert!(lines[5].starts_with("… 40 messages not kept"), "{}", lines[5]);
        assert!(lines.iter().all(|l| l.chars().count() <= TIME_WIDTH + 8 * MIN_COLUMN));
        assert_eq!(time_cell(5_000_000, Some(6_500_000)), "-1.500000");
    }

    #[test]
    fn a_message_to_its_own_sender_is_drawn_beside_its_column() {
        let lines = render(&call(vec![msg(0, A, A, "OPTIONS sip:a SIP/2.0\r\n\r\n")]), 80);
        assert!(lines[2].ends_with("|<> OPTIONS"), "{lines:?}");
    }
}
