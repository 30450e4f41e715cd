//! Record types. Every record carries a unique id (a ULID) so delivery can be made idempotent,
//! and the record format version it was written in.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_number::E164;
use ulid::Ulid;

/// The newest record format version this build writes, and so the newest a collector of this
/// build reads. A collector reads every version up to its own, so engines and probes of the
/// previous release keep shipping to an upgraded one; a record newer than a collector's waits
/// in the sender's spool (the collector answers 409) until the collector is upgraded.
///
/// * 1: ENUM query and SIP call records.
/// * 2: SIP call records may carry RTP statistics (`rtp_packets`, `rtp_lost`, `rtp_jitter_ms`,
///   and since issue 18 `mos`, an optional field older collectors ignore);
///   a version-1 record has none and reads as "not measured". ENUM query records may carry
///   `stale: true`; a record without it is not stale. (An optional field that older readers
///   may ignore does not need a new version: bumping it would make every collector of the
///   previous release refuse every record of an upgraded engine.)
/// * 3: decisions of the SIP redirect server (`protocol: "sip"` in an `enum_query` record).
///   Only they are written at 3 ([`Record::enum_query`]): a collector of the previous release
///   would ignore the field it does not know and store the decision as an ENUM query, so it
///   must refuse them instead, and they wait in the spool. Every other record is still written
///   at 2, so an upgraded engine's ENUM queries and probe's calls keep flowing to it.
pub const RECORD_VERSION: u16 = 3;

/// The version every record but a SIP redirect decision is written at (see [`RECORD_VERSION`]).
pub const BASE_RECORD_VERSION: u16 = 2;

// A collector of the previous release reads up to BASE_RECORD_VERSION only.
const _: () = assert!(RECORD_VERSION > BASE_RECORD_VERSION);

/// Transport a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// DNS over UDP.
    Udp,
    /// DNS over TCP.
    Tcp,
}

/// The protocol a decision was asked over: the ENUM dataset holds both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// An ENUM (DNS NAPTR) query.
    #[default]
    Enum,
    /// A SIP INVITE to the engine's redirect server, answered with a 3xx or a final error.
    Sip,
}

impl Protocol {
    /// The lowercase name used in records, the store and the export.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Enum => "enum",
            Protocol::Sip => "sip",
        }
    }

    /// True for ENUM, the protocol of records written before the field existed (serde skips it
    /// then, so records of ENUM queries are written exactly as before).
    pub fn is_enum(&self) -> bool {
        *self == Protocol::Enum
    }
}

/// One ENUM query an engine answered, or one SIP INVITE its redirect server answered
/// ([`EnumQueryRecord::protocol`]): the decision record of the ENUM dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumQueryRecord {
    /// Unique id of this record.
    pub id: Ulid,
    /// When the query arrived.
    pub time: DateTime<Utc>,
    /// The engine that answered (its configured node name): the analytics "Device".
    pub device: String,
    /// The SBC that asked: its configured name, or its IP address when unnamed.
    pub client: String,
    /// The SBC's address.
    pub client_addr: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// Calling number, when the SBC sent one.
    pub source: Option<E164>,
    /// Called number.
    pub destination: E164,
    /// `inbound`, `outbound`, `internal` or `transit`.
    pub direction: String,
    /// Name of the rule that decided, `None` for the default.
    pub rule: Option<String>,
    /// `allow`, `terminate` or `redirect`.
    pub action: String,
    /// The action's details, e.g. `reject 603`, `intercept default`, `+12125550199`.
    pub detail: Option<String>,
    /// DNS response code sent (`NOERROR`, `NXDOMAIN`, ...); for SIP, the status code sent
    /// (`302`, `603`, ...).
    pub rcode: String,
    /// True when the engine failed internally and answered allow (fail-open).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// Microseconds from the kernel receiving the query to having the answer ready.
    pub latency_us: u32,
    /// True when the answer was ready later than the engine's `enum.stale_after_ms` after the
    /// kernel received the query (the engine was stalled): the SBC had most likely given up, so
    /// the decision was not used. Absent (false) in every other record, so records that are
    /// not stale are written exactly as before and collectors of the previous release, which
    /// ignore the field, still read every record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Installed policy version that decided (`None`: no policy installed).
    pub policy_version: Option<u64>,
    /// ENUM (absent in the JSON, as in every record before the field existed) or SIP.
    #[serde(default, skip_serializing_if = "Protocol::is_enum")]
    pub protocol: Protocol,
}

/// How a SIP call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Answered (2xx to the INVITE).
    Answered,
    /// The callee was busy (486, 600).
    Busy,
    /// Not answered before the caller or a timer gave up (408, 480, or no final answer).
    NoAnswer,
    /// The caller cancelled before an answer (CANCEL / 487).
    Cancelled,
    /// The call was redirected (3xx).
    Redirected,
    /// Any other failure (4xx-6xx not listed above).
    Failed,
}

impl Disposition {
    /// The snake_case name used in records and analytics.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Redirected => "redirected",
            Disposition::Failed => "failed",
        }
    }
}

/// One SIP call a probe saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SipCallRecord {
    /// Unique id of this record.
    pub id: Ulid,
    /// When the INVITE was seen.
    pub time: DateTime<Utc>,
    /// The probe that saw it: the analytics "Device".
    pub device: String,
    /// SIP Call-ID.
    pub call_id: String,
    /// Calling number, normalised, when one could be read.
    pub source: Option<E164>,
    /// Called number, normalised, when one could be read.
    pub destination: Option<E164>,
    /// `inbound`, `outbound`, `internal` or `transit`.
    pub direction: String,
    /// How the call ended.
    pub disposition: Disposition,
    /// Final response code to the INVITE, if one was seen.
    pub final_code: Option<u16>,
    /// Post-dial delay, ms: from the INVITE to the first 18x, else to the answer or final response.
    pub pdd_ms: Option<u32>,
    /// Milliseconds from answer to end.
    pub duration_ms: Option<u64>,
    /// When the call was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended (BYE, final failure, or timeout).
    pub ended_at: Option<DateTime<Utc>>,
    /// RTP packets seen for the call's negotiated media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_packets: Option<u64>,
    /// RTP packets lost (from sequence numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_lost: Option<u64>,
    /// Highest RTP interarrival jitter of the call's streams, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_jitter_ms: Option<f64>,
    /// Estimated listening quality (MOS, 1 to 4.5, 2 decimals) of the call's worst RTP stream,
    /// from its loss and jitter (simplified ITU-T G.107 E-model); `None` without RTP. Records
    /// of probes before it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mos: Option<f64>,
}

/// Any record, tagged with its kind and format version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An ENUM query answered by an engine.
    EnumQuery {
        /// Record format version.
        v: u16,
        /// The record.
        #[serde(flatten)]
        record: EnumQueryRecord,
    },
    /// A SIP call seen by a probe.
    SipCall {
        /// Record format version.
        v: u16,
        /// The record.
        #[serde(flatten)]
        record: SipCallRecord,
    },
}

impl Record {
    /// Wraps a decision record at the oldest format version that holds it: an ENUM query at
    /// [`BASE_RECORD_VERSION`], a SIP redirect decision at [`RECORD_VERSION`] (3), so a
    /// collector that cannot tell it from an ENUM query refuses it rather than mislabel it.
    pub fn enum_query(record: EnumQueryRecord) -> Self {
        let v = match record.protocol {
            Protocol::Enum => BASE_RECORD_VERSION,
            Protocol::Sip => RECORD_VERSION,
        };
        Record::EnumQuery { v, record }
    }

    /// Wraps a SIP call record at the current format version for SIP calls
    /// ([`BASE_RECORD_VERSION`]).
    pub fn sip_call(record: SipCallRecord) -> Self {
        Record::SipCall { v: BASE_RECORD_VERSION, record }
    }

    /// The record's unique id.
    pub fn id(&self) -> Ulid {
        match self {
            Record::EnumQuery { record, .. } => record.id,
            Record::SipCall { record, .. } => record.id,
        }
    }

    /// The record's time.
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Record::EnumQuery { record, .. } => record.time,
            Record::SipCall { record, .. } => record.time,
        }
    }

    /// The format version the record was written in.
    pub fn version(&self) -> u16 {
        match self {
            Record::EnumQuery { v, .. } | Record::SipCall { v, .. } => *v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_sip_call_records_still_read() {
        let v1 = r#"{"kind":"sip_call","v":1,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","time":"2026-01-01T00:00:00Z","device":"probe-1","call_id":"a@b","source":"+13125550100","destination":"+12125550100","direction":"inbound","disposition":"answered","final_code":200,"pdd_ms":120,"duration_ms":5000,"answered_at":null,"ended_at":null}"#;
        let r: Record = serde_json::from_str(v1).expect("a release-1 record");
        assert_eq!(r.version(), 1);
        let Record::SipCall { record, .. } = &r else { panic!("a SIP call record") };
        assert_eq!((record.rtp_packets, record.rtp_lost, record.rtp_jitter_ms, record.mos), (None, None, None, None));
        let now = Record::sip_call(record.clone());
        assert_eq!(now.version(), BASE_RECORD_VERSION);
    }

    #[test]
    fn json_shape_is_tagged_and_versioned() {
        let r = Record::enum_query(EnumQueryRecord {
            id: Ulid::from_parts(1, 2),
            time: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
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
        });
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["kind"], "enum_query");
        assert_eq!(json["v"], BASE_RECORD_VERSION);
        assert!(json.get("protocol").is_none(), "an ENUM query is written as before the field existed");
        assert_eq!(json["destination"], "+12125550111");
        assert!(json.get("fail_open").is_none());
        assert!(json.get("stale").is_none());
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn stale_is_written_only_when_true_and_read_as_false_when_absent() {
        let line = r#"{"kind":"enum_query","v":2,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","time":"2026-01-01T00:00:00Z","device":"engine-1","client":"sbc-1","client_addr":"127.0.0.1:5060","transport":"udp","source":null,"destination":"+12125550111","direction":"inbound","rule":null,"action":"allow","detail":null,"rcode":"NXDOMAIN","latency_us":42,"policy_version":null}"#;
        let r: Record = serde_json::from_str(line).expect("a record without the field");
        let Record::EnumQuery { mut record, .. } = r.clone() else { panic!("an ENUM record") };
        assert!(!record.stale);
        assert_eq!(serde_json::to_string(&r).unwrap(), line, "a record that is not stale is written as before");
        record.stale = true;
        let json = serde_json::to_value(Record::enum_query(record)).unwrap();
        assert_eq!(json["stale"], true);
    }

    #[test]
    fn sip_redirect_decisions_are_written_at_version_3_so_older_collectors_refuse_them() {
        let line = r#"{"kind":"enum_query","v":2,"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","time":"2026-01-01T00:00:00Z","device":"engine-1","client":"sbc-1","client_addr":"127.0.0.1:5060","transport":"udp","source":null,"destination":"+12125550111","direction":"inbound","rule":null,"action":"allow","detail":null,"rcode":"NXDOMAIN","latency_us":42,"policy_version":null}"#;
        let Record::EnumQuery { mut record, .. } = serde_json::from_str(line).unwrap() else {
            panic!("an ENUM record")
        };
        assert_eq!(Record::enum_query(record.clone()).version(), BASE_RECORD_VERSION);
        record.protocol = Protocol::Sip;
        record.rcode = "302".into();
        let sip = Record::enum_query(record);
        assert_eq!(sip.version(), RECORD_VERSION);
        let json = serde_json::to_value(&sip).unwrap();
        assert_eq!((json["v"].as_u64(), json["protocol"].as_str()), (Some(3), Some("sip")));
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), sip);
    }
}
