//! Records for this crate's tests.

use crate::{EnumQueryRecord, Record, Transport};

/// An ENUM record of engine `e1`, now, for the called number `+1212555<i>` (i < 10,000).
pub(crate) fn enum_record(i: u64) -> Record {
    Record::enum_query(EnumQueryRecord {
        id: ulid::Ulid::new(),
        time: chrono::Utc::now(),
        device: "e1".into(),
        client: "sbc".into(),
        client_addr: "127.0.0.1:1".parse().unwrap(),
        transport: Transport::Udp,
        source: None,
        destination: format!("+1212555{i:04}").parse().unwrap(),
        direction: "inbound".into(),
        rule: None,
        action: "allow".into(),
        detail: None,
        rcode: "NXDOMAIN".into(),
        fail_open: false,
        latency_us: 1,
        stale: false,
        policy_version: None,
        protocol: Default::default(),
    })
}
