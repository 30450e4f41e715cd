//! The JSON of a record as the spool stores it, written directly for ENUM query records.
//!
//! An engine writes one ENUM query record per answer, so their encoding is on the answer path.
//! serde's derived encoding of [`Record`] goes through a map serializer (the record is
//! `#[serde(flatten)]`ed into its envelope) and formats every number, address and time through
//! `core::fmt`; [`write_record`] writes the same bytes with plain appends. It is held to that:
//! the differential test below compares it with `serde_json::to_writer` on generated records
//! (any text, IPv4 and IPv6 addresses, times with 0, 3, 6 and 9 fraction digits, absent and
//! present optional fields), so a reader never sees a difference. Anything unusual (a year
//! outside 0000-9999, a leap second) and every other kind of record take serde's path.

use std::io::Write;
use std::net::SocketAddr;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::record::{EnumQueryRecord, Protocol, Record, Transport};

/// Appends `record`'s JSON (exactly what `serde_json::to_writer` writes) to `out`.
pub fn write_record(record: &Record, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match record {
        Record::EnumQuery { v, record: r } if plain_time(&r.time) => {
            write_enum_query(*v, r, out);
            Ok(())
        }
        _ => serde_json::to_writer(out, record),
    }
}

/// A time this module writes as chrono does: a four-digit year, no leap second.
fn plain_time(t: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&t.year()) && t.nanosecond() < 1_000_000_000
}

fn write_enum_query(v: u16, r: &EnumQueryRecord, out: &mut Vec<u8>) {
    let mut ints = itoa::Buffer::new();
    out.extend_from_slice(b"{\"kind\":\"enum_query\",\"v\":");
    out.extend_from_slice(ints.format(v).as_bytes());
    out.extend_from_slice(b",\"id\":\"");
    out.extend_from_slice(r.id.array_to_str(&mut [0u8; ulid::ULID_LEN]).as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    write_time(&r.time, out);
    out.extend_from_slice(b"\",\"device\":");
    write_str(&r.device, out);
    out.extend_from_slice(b",\"client\":");
    write_str(&r.client, out);
    out.extend_from_slice(b",\"client_addr\":\"");
    write_socket_addr(&r.client_addr, out);
    out.extend_from_slice(match r.transport {
        Transport::Udp => b"\",\"transport\":\"udp\",\"source\":",
        Transport::Tcp => b"\",\"transport\":\"tcp\",\"source\":",
    });
    match r.source {
        Some(n) => {
            out.extend_from_slice(b"\"+");
            out.extend_from_slice(ints.format(n.as_u64()).as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"destination\":\"+");
    out.extend_from_slice(ints.format(r.destination.as_u64()).as_bytes());
    out.extend_from_slice(b"\",\"direction\":");
    write_str(&r.direction, out);
    out.extend_from_slice(b",\"rule\":");
    write_opt_str(r.rule.as_deref(), out);
    out.extend_from_slice(b",\"action\":");
    write_str(&r.action, out);
    out.extend_from_slice(b",\"detail\":");
    write_opt_str(r.detail.as_deref(), out);
    out.extend_from_slice(b",\"rcode\":");
    write_str(&r.rcode, out);
    if r.fail_open {
        out.extend_from_slice(b",\"fail_open\":true");
    }
    out.extend_from_slice(b",\"latency_us\":");
    out.extend_from_slice(ints.format(r.latency_us).as_bytes());
    if r.stale {
        out.extend_from_slice(b",\"stale\":true");
    }
    out.extend_from_slice(b",\"policy_version\":");
    match r.policy_version {
        Some(version) => out.extend_from_slice(ints.format(version).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    if r.protocol == Protocol::Sip {
        out.extend_from_slice(b",\"protocol\":\"sip\"");
    }
    out.push(b'}');
}

/// A JSON string: copied as it is unless it needs escaping (a quote, a backslash, a control
/// character), which serde_json does, so the escapes are its own.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_opt_str(s: Option<&str>, out: &mut Vec<u8>) {
    match s {
        Some(s) => write_str(s, out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Two digits, zero-padded.
fn two(n: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// RFC 3339 in UTC as chrono's serde writes it (`SecondsFormat::AutoSi`, `Z`): no fraction
/// for whole seconds, else 3, 6 or 9 digits, the fewest that are exact.
fn write_time(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    let year = t.year() as u32;
    two(year / 100, out);
    two(year % 100, out);
    out.push(b'-');
    two(t.month(), out);
    out.push(b'-');
    two(t.day(), out);
    out.push(b'T');
    two(t.hour(), out);
    out.push(b':');
    two(t.minute(), out);
    out.push(b':');
    two(t.second(), out);
    let nano = t.nanosecond();
    let (value, digits) = if nano == 0 {
        (0, 0)
    } else if nano.is_multiple_of(1_000_000) {
        (nano / 1_000_000, 3)
    } else if nano.is_multiple_of(1_000) {
        (nano / 1_000, 6)
    } else {
        (nano, 9)
    };
    if digits > 0 {
        out.push(b'.');
        let mut buf = [b'0'; 9];
        let mut v = value;
        for slot in buf[..digits].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..digits]);
    }
    out.push(b'Z');
}

/// A socket address as `Display` writes it (`1.2.3.4:5`, `[::1]:5`); IPv4 without `core::fmt`.
fn write_socket_addr(a: &SocketAddr, out: &mut Vec<u8>) {
    match a {
        SocketAddr::V4(v4) => {
            let mut ints = itoa::Buffer::new();
            for (i, octet) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(ints.format(*octet).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(ints.format(v4.port()).as_bytes());
        }
        SocketAddr::V6(_) => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{a}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    use chrono::TimeZone;
    use proptest::prelude::*;
    use tollgate_number::E164;

    use super::*;

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 .+-]{0,24}",
            any::<String>(),
            Just("quote \" and \\ backslash\n\t\u{7f}\u{1}".to_string()),
            Just("ünïcödé ☎".to_string()),
        ]
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((Ipv4Addr::from(ip), port))),
            (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), prop_oneof![Just(0u32), any::<u32>()]).prop_map(
                |(ip, port, flow, scope)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope))
            ),
        ]
    }

    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        let nanos = prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|ms| ms * 1_000_000),
            (0u32..1_000_000).prop_map(|us| us * 1000),
            0u32..1_000_000_000,
            // A leap second, and years chrono writes with a sign: serde's path.
            1_000_000_000u32..1_999_999_999,
        ];
        (-400_000_000_000i64..400_000_000_000, nanos)
            .prop_filter_map("a representable time", |(secs, nanos)| Utc.timestamp_opt(secs, nanos).single())
    }

    fn any_number() -> impl Strategy<Value = E164> {
        (100u64..999_999_999_999_999).prop_filter_map("an E.164 number", E164::from_u64)
    }

    prop_compose! {
        fn any_record()(
            id in any::<u128>(),
            time in any_time(),
            device in any_text(),
            client in any_text(),
            client_addr in any_addr(),
            tcp in any::<bool>(),
            source in proptest::option::of(any_number()),
            destination in any_number(),
            direction in any_text(),
            rule in proptest::option::of(any_text()),
            action in any_text(),
            detail in proptest::option::of(any_text()),
            rcode in any_text(),
            fail_open in any::<bool>(),
            latency_us in any::<u32>(),
            stale in any::<bool>(),
            policy_version in proptest::option::of(any::<u64>()),
            sip in any::<bool>(),
            v in any::<u16>(),
        ) -> Record {
            let record = EnumQueryRecord {
                id: ulid::Ulid(id), time, device, client, client_addr,
                transport: if tcp { Transport::Tcp } else { Transport::Udp },
                source, destination, direction, rule, action, detail, rcode, fail_open, latency_us, stale,
                policy_version, protocol: if sip { Protocol::Sip } else { Protocol::Enum },
            };
            Record::EnumQuery { v, record }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn written_exactly_as_serde_json_writes_it(record in any_record()) {
            let mut fast = b"frame header".to_vec();
            write_record(&record, &mut fast).unwrap();
            let reference = serde_json::to_vec(&record).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&fast[12..]), String::from_utf8_lossy(&reference)
            );
            prop_assert_eq!(&fast[..12], b"frame header", "appended, never overwriting");
        }
    }

    #[test]
    fn an_engines_record_takes_the_direct_path_and_others_serdes() {
        let time = Utc.with_ymd_and_hms(2026, 12, 6, 22, 28, 31).unwrap() + chrono::Duration::nanoseconds(59_934_105);
        assert!(plain_time(&time));
        assert!(!plain_time(&Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()));
        let Record::EnumQuery { record, .. } = crate::fixtures::enum_record(1) else { unreachable!() };
        let mut out = Vec::new();
        write_record(&Record::enum_query(EnumQueryRecord { time, ..record }), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"kind\":\"enum_query\",\"v\":"), "{text}");
        assert!(text.contains("\"time\":\"2026-12-06T22:28:31.059934105Z\""), "{text}");
    }
}
