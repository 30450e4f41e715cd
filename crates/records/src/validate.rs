//! What a collector accepts as a record: every field within the range the store, the rollups and
//! the analytics can represent truthfully.
//!
//! A record can be well-formed JSON and still be wrong: a device name of a megabyte, a time in
//! year 1 or 9999 (a broken clock, or a crafted batch), a `policy_version` that does not fit the
//! store's signed 64-bit column (it would come back as -1), or a device named `*` (the rollups'
//! "all devices" key, so its calls would be counted twice in All). [`Record::validate`] names the
//! first field that is wrong; the collector quarantines such records (kept, never stored) instead
//! of storing nonsense.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{EnumQueryRecord, Protocol, Record, SipCallRecord};

/// Longest device name (an engine's or probe's node name), bytes.
pub const MAX_DEVICE_NAME: usize = 64;
/// Longest free-text field (rule name, detail, SBC name, SIP Call-ID), bytes.
pub const MAX_TEXT: usize = 1024;
/// Device names the analytics reserve: `*` is the rollups' key for all devices together, and
/// `All` (any case) is how the UI and API select all devices.
pub const RESERVED_DEVICE_NAMES: [&str; 2] = ["*", "all"];
/// Records may be this far ahead of the collector's clock (clock skew between servers).
pub const MAX_CLOCK_AHEAD: Duration = Duration::hours(24);
/// Highest RTP jitter accepted, ms (a minute: anything above is a measurement fault).
const MAX_JITTER_MS: f64 = 60_000.0;

/// Why a record is not accepted: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidRecord {
    /// The record field, as named in the record's JSON.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidRecord {
    InvalidRecord { field, message: message.into() }
}

/// Checks a device name (a record's `device`, a configuration's `node.name` or `probe.device`):
/// 1 to 64 bytes, no control characters, no leading or trailing space, not a reserved name.
pub fn check_device_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_DEVICE_NAME {
        return Err(format!("is {} bytes long; at most {MAX_DEVICE_NAME} are allowed", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("holds a control character".into());
    }
    if name.trim() != name {
        return Err("starts or ends with a space".into());
    }
    if RESERVED_DEVICE_NAMES.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err(format!("{name:?} is reserved (analytics use `*` and `All` for all devices together)"));
    }
    Ok(())
}

/// `text` made fit for a free-text field of a record: control characters replaced by U+FFFD
/// and cut (at a character boundary) to [`MAX_TEXT`] bytes. For text taken from the network,
/// such as a SIP Call-ID, so the record passes [`Record::validate`].
pub fn record_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for c in text.chars() {
        let c = if c.is_control() { char::REPLACEMENT_CHARACTER } else { c };
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

fn check_text(field: &'static str, value: &str) -> Result<(), InvalidRecord> {
    if value.len() > MAX_TEXT {
        return Err(invalid(field, format!("is {} bytes long; at most {MAX_TEXT} are allowed", value.len())));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(field, "holds a control character"));
    }
    Ok(())
}

fn check_one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<(), InvalidRecord> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        let shown: String = value.chars().take(40).collect();
        Err(invalid(field, format!("{shown:?} is not one of {}", allowed.join(", "))))
    }
}

/// Times from 2000-01-01 to [`MAX_CLOCK_AHEAD`] past `now`.
fn check_time(field: &'static str, t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), InvalidRecord> {
    let earliest = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC);
    if t < earliest {
        return Err(invalid(field, format!("{} is before 2000-01-01 (a broken clock?)", t.to_rfc3339())));
    }
    if t > now + MAX_CLOCK_AHEAD {
        return Err(invalid(
            field,
            format!("{} is more than 24 h ahead of the collector's clock ({})", t.to_rfc3339(), now.to_rfc3339()),
        ));
    }
    Ok(())
}

/// Counters the store keeps in signed 64-bit columns.
fn check_i64(field: &'static str, v: Option<u64>) -> Result<(), InvalidRecord> {
    match v {
        Some(n) if n > i64::MAX as u64 => Err(invalid(field, format!("{n} does not fit a signed 64-bit column"))),
        _ => Ok(()),
    }
}

const DIRECTIONS: [&str; 4] = ["inbound", "outbound", "internal", "transit"];

fn check_enum_query(r: &EnumQueryRecord, now: DateTime<Utc>) -> Result<(), InvalidRecord> {
    check_device_name(&r.device).map_err(|m| invalid("device", m))?;
    check_time("time", r.time, now)?;
    check_text("client", &r.client)?;
    check_one_of("direction", &r.direction, &DIRECTIONS)?;
    check_one_of("action", &r.action, &["allow", "terminate", "redirect"])?;
    if let Some(rule) = &r.rule {
        check_text("rule", rule)?;
    }
    if let Some(detail) = &r.detail {
        check_text("detail", detail)?;
    }
    check_answer_code(r)?;
    check_i64("policy_version", r.policy_version)
}

/// The answer sent: a DNS response code name for an ENUM query, a SIP final response's status
/// code (200 to 699: the redirect server answers every INVITE it decides with a final
/// response) for a SIP decision.
fn check_answer_code(r: &EnumQueryRecord) -> Result<(), InvalidRecord> {
    let shown: String = r.rcode.chars().take(40).collect();
    match r.protocol {
        Protocol::Enum => {
            if r.rcode.is_empty() || r.rcode.len() > 16 || !r.rcode.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(invalid("rcode", format!("{shown:?} is not a DNS response code name")));
            }
        }
        Protocol::Sip => {
            let code = (r.rcode.len() == 3 && r.rcode.bytes().all(|b| b.is_ascii_digit()))
                .then(|| r.rcode.parse::<u16>().ok())
                .flatten();
            if !code.is_some_and(|c| (200..=699).contains(&c)) {
                return Err(invalid(
                    "rcode",
                    format!("{shown:?} is not a SIP final response code (200-699), as a record of protocol sip needs"),
                ));
            }
        }
    }
    Ok(())
}

fn check_sip_call(r: &SipCallRecord, now: DateTime<Utc>) -> Result<(), InvalidRecord> {
    check_device_name(&r.device).map_err(|m| invalid("device", m))?;
    check_time("time", r.time, now)?;
    if r.call_id.is_empty() {
        return Err(invalid("call_id", "is empty"));
    }
    check_text("call_id", &r.call_id)?;
    check_one_of("direction", &r.direction, &DIRECTIONS)?;
    if let Some(code) = r.final_code
        && !(100..=699).contains(&code)
    {
        return Err(invalid("final_code", format!("{code} is not a SIP response code (100-699)")));
    }
    if let Some(t) = r.answered_at {
        check_time("answered_at", t, now)?;
    }
    if let Some(t) = r.ended_at {
        check_time("ended_at", t, now)?;
    }
    check_i64("duration_ms", r.duration_ms)?;
    check_i64("rtp_packets", r.rtp_packets)?;
    check_i64("rtp_lost", r.rtp_lost)?;
    if let Some(j) = r.rtp_jitter_ms
        && !(j.is_finite() && (0.0..=MAX_JITTER_MS).contains(&j))
    {
        return Err(invalid("rtp_jitter_ms", format!("{j} is not a jitter in ms (0 to {MAX_JITTER_MS})")));
    }
    if let Some(m) = r.mos
        && !(m.is_finite() && (1.0..=5.0).contains(&m))
    {
        return Err(invalid("mos", format!("{m} is not a mean opinion score (1 to 5)")));
    }
    Ok(())
}

impl Record {
    /// Checks that every field is within what the store and the analytics represent truthfully
    /// (see the module docs); `now` is the collector's clock.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), InvalidRecord> {
        match self {
            Record::EnumQuery { record, .. } => check_enum_query(record, now),
            Record::SipCall { record, .. } => check_sip_call(record, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Disposition, Transport};
    use ulid::Ulid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
    }

    fn query() -> EnumQueryRecord {
        EnumQueryRecord {
            id: Ulid::from_parts(1, 1),
            time: now() - Duration::minutes(5),
            device: "engine-1".into(),
            client: "sbc-1".into(),
            client_addr: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            source: Some("+13125550666".parse().unwrap()),
            destination: "+12125550111".parse().unwrap(),
            direction: "inbound".into(),
            rule: Some("block".into()),
            action: "terminate".into(),
            detail: Some("reject 603".into()),
            rcode: "NOERROR".into(),
            fail_open: false,
            latency_us: 42,
            stale: false,
            policy_version: Some(3),
            protocol: Default::default(),
        }
    }

    fn call() -> SipCallRecord {
        SipCallRecord {
            id: Ulid::from_parts(1, 2),
            time: now() - Duration::minutes(5),
            device: "probe-1".into(),
            call_id: "a@b".into(),
            source: None,
            destination: None,
            direction: "transit".into(),
            disposition: Disposition::Answered,
            final_code: Some(200),
            pdd_ms: Some(100),
            duration_ms: Some(1000),
            answered_at: Some(now() - Duration::minutes(4)),
            ended_at: Some(now() - Duration::minutes(3)),
            rtp_packets: Some(10),
            rtp_lost: Some(0),
            rtp_jitter_ms: Some(1.5),
            mos: Some(4.41),
        }
    }

    /// A change to a record, and the field it makes invalid.
    type Case<R> = (&'static str, Box<dyn Fn(&mut R)>);

    fn field_of(r: Record) -> &'static str {
        r.validate(now()).expect_err("should be refused").field
    }

    #[test]
    fn ordinary_records_pass() {
        assert_eq!(Record::enum_query(query()).validate(now()), Ok(()));
        assert_eq!(Record::sip_call(call()).validate(now()), Ok(()));
        let mut q = query();
        q.time = now() + Duration::hours(1);
        q.rule = None;
        q.detail = None;
        q.policy_version = Some(i64::MAX as u64);
        assert_eq!(Record::enum_query(q).validate(now()), Ok(()), "an hour of clock skew and the largest version");
    }

    #[test]
    fn decisions_over_sip_carry_a_sip_final_response_code() {
        for code in ["302", "380", "404", "603", "200", "699"] {
            let mut q = query();
            q.protocol = Protocol::Sip;
            q.rcode = code.into();
            assert_eq!(Record::enum_query(q).validate(now()), Ok(()), "{code}");
        }
        for code in ["NOERROR", "180", "700", "42", "3020", "", "+30", "٣٠٢"] {
            let mut q = query();
            q.protocol = Protocol::Sip;
            q.rcode = code.into();
            let e = Record::enum_query(q).validate(now()).expect_err(code);
            assert_eq!(e.field, "rcode", "{code}");
            assert!(e.message.contains("SIP final response code"), "{e}");
        }
        // An ENUM query's answer is a DNS response code's name, not a SIP status.
        let mut q = query();
        q.rcode = "NXDOMAIN".into();
        assert_eq!(Record::enum_query(q.clone()).validate(now()), Ok(()));
        q.rcode = "<script>".into();
        assert!(Record::enum_query(q).validate(now()).unwrap_err().message.contains("DNS response code"));
    }

    #[test]
    fn each_out_of_range_field_is_named() {
        let cases: Vec<Case<EnumQueryRecord>> = vec![
            ("device", Box::new(|q| q.device = "x".repeat(1 << 20))),
            ("device", Box::new(|q| q.device = "*".into())),
            ("device", Box::new(|q| q.device = "ALL".into())),
            ("device", Box::new(|q| q.device = String::new())),
            ("device", Box::new(|q| q.device = "bad\nname".into())),
            ("time", Box::new(|q| q.time = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap())),
            ("time", Box::new(|q| q.time = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap())),
            ("policy_version", Box::new(|q| q.policy_version = Some(u64::MAX))),
            ("direction", Box::new(|q| q.direction = "sideways".into())),
            ("action", Box::new(|q| q.action = "maybe".into())),
            ("rule", Box::new(|q| q.rule = Some("r".repeat(MAX_TEXT + 1)))),
            ("detail", Box::new(|q| q.detail = Some("\u{0}".into()))),
            ("client", Box::new(|q| q.client = "c".repeat(MAX_TEXT + 1))),
            ("rcode", Box::new(|q| q.rcode = "<script>".into())),
        ];
        for (field, change) in cases {
            let mut q = query();
            change(&mut q);
            assert_eq!(field_of(Record::enum_query(q)), field);
        }
        let calls: Vec<Case<SipCallRecord>> = vec![
            ("device", Box::new(|c| c.device = "*".into())),
            ("call_id", Box::new(|c| c.call_id = String::new())),
            ("final_code", Box::new(|c| c.final_code = Some(42))),
            ("ended_at", Box::new(|c| c.ended_at = Some(Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap()))),
            ("duration_ms", Box::new(|c| c.duration_ms = Some(u64::MAX))),
            ("rtp_jitter_ms", Box::new(|c| c.rtp_jitter_ms = Some(-1.0))),
            ("rtp_jitter_ms", Box::new(|c| c.rtp_jitter_ms = Some(f64::INFINITY))),
            ("mos", Box::new(|c| c.mos = Some(0.0))),
            ("mos", Box::new(|c| c.mos = Some(f64::NAN))),
            ("mos", Box::new(|c| c.mos = Some(7.5))),
        ];
        for (field, change) in calls {
            let mut c = call();
            change(&mut c);
            assert_eq!(field_of(Record::sip_call(c)), field);
        }
    }

    #[test]
    fn network_text_is_made_fit_for_a_record() {
        assert_eq!(record_text("a84b4c76e66710@pc33.atlanta.com"), "a84b4c76e66710@pc33.atlanta.com");
        assert_eq!(record_text("a\u{1}b"), "a\u{fffd}b");
        let long = "é".repeat(MAX_TEXT);
        let cut = record_text(&long);
        assert!(cut.len() <= MAX_TEXT && cut.len() > MAX_TEXT - 2);
        let mut c = call();
        c.call_id = record_text(&format!("{long}\u{7}"));
        assert_eq!(Record::sip_call(c).validate(now()), Ok(()));
    }

    #[test]
    fn device_names_of_configurations_follow_the_same_rule() {
        assert!(check_device_name("east-a").is_ok());
        assert!(check_device_name("NYC engine 1").is_ok());
        for bad in ["*", "All", "all", "", " lead", &"d".repeat(65)] {
            assert!(check_device_name(bad).is_err(), "{bad:?}");
        }
    }
}
