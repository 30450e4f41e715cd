//! `POST /api/v1/ingest`: NDJSON records from a shipper, stored idempotently.
//!
//! Who may ship: a token of role `ingest`, and, when the collector serves TLS, a client
//! certificate of the CA naming role engine, probe or collector (a shipper is one of those
//! servers; a person's `operator` certificate or none is refused with `403`). Both: the token
//! says which shipper it is (it names the records' sender), the certificate that the batch
//! comes from a server of the deployment.
//!
//! A 200 answer means every record of the batch is durably stored (or was already). A line that
//! is not a record, or a record with a field out of range ([`Record::validate`]), is never
//! dropped and never stored: it is kept in the quarantine with the reason, counted, and the
//! batch is still acknowledged so one bad line cannot block a shipper forever.
//!
//! The batch's fate is decided before anything is kept or stored, so a batch that is refused
//! and sent again is not quarantined twice:
//! 1. a record (or an unreadable line) of a newer format version than this collector reads:
//!    `409`, nothing stored, nothing quarantined; it waits in the sender's spool;
//! 2. no room in the quarantine for the batch's bad lines: `507` (alarm 72007
//!    QUARANTINE_FULL), nothing stored; it waits in the sender's spool;
//! 3. the records are stored, then the bad lines kept; a failure of either is `503` and the
//!    shipper sends the batch again (stored records are recognised as duplicates).
//!
//! Decoding, validation, the store and the quarantine's file I/O all run on the blocking pool,
//! never on the async workers that also answer ENUM and `/healthz`.
//!
//! Bodies may be compressed with zstd (`Content-Encoding: zstd`, see
//! [`tollgate_records::wire`]); every answer says `Accept-Encoding: zstd` (RFC 7694) so a
//! shipper knows it may compress the next batch. A body decompressing to more than
//! [`MAX_BATCH`] bytes is refused with `413`, a truncated or damaged one with `400`, another
//! encoding with `415`: in each case before anything is stored or quarantined.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tollgate_alarms as alarms;
use tollgate_api::ErrorCode;
use tollgate_api::web::Ingested;
use tollgate_logthrottle::LogThrottle;
use tollgate_records::wire::{self, DecodeError};
use tollgate_records::{RECORD_VERSION, Record};
use tollgate_store::Store;

use super::{blocking, not_running};
use crate::AppState;
use crate::http::{ApiError, ApiResult};
use crate::limits::MAX_BATCH;
use crate::quarantine::{BadLine, Entries, QuarantineError};
use crate::session::Ingester;

static QUARANTINED_LOG: LogThrottle = LogThrottle::new(10_000);
static REFUSED_LOG: LogThrottle = LogThrottle::new(10_000);

/// A batch read line by line.
#[derive(Debug, Default)]
struct Batch {
    records: Vec<Record>,
    bad: Vec<BadLine>,
    /// The newest record format version seen, also in lines that could not be read.
    newest: u16,
}

/// Just the format version of a line that is not a record this collector knows.
#[derive(Deserialize)]
struct VersionOnly {
    v: Option<u16>,
}

fn read_batch(body: &[u8], now: DateTime<Utc>) -> Batch {
    let mut batch = Batch::default();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reason = match serde_json::from_slice::<Record>(line) {
            Ok(r) => {
                batch.newest = batch.newest.max(r.version());
                match r.validate(now) {
                    Ok(()) => {
                        batch.records.push(r);
                        continue;
                    }
                    Err(e) => format!("invalid record: {e}"),
                }
            }
            Err(e) => {
                if let Ok(VersionOnly { v: Some(v) }) = serde_json::from_slice(line) {
                    batch.newest = batch.newest.max(v);
                }
                format!("not a record: {e}")
            }
        };
        batch.bad.push(BadLine { line: i + 1, text: String::from_utf8_lossy(line).into_owned(), reason });
    }
    batch
}

/// What became of a batch.
enum Outcome {
    Stored { received: usize, inserted: u64, duplicates: u64, quarantined: usize },
    Newer(u16),
    QuarantineFull(QuarantineError),
    Failed(String),
    Undecodable(DecodeError),
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Zstd,
}

/// The body's `Content-Encoding`: none, `identity` or `zstd`; anything else (another coding,
/// several) is refused with `415` naming what is read.
fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let Some(value) = values.next() else { return Ok(Encoding::Identity) };
    let text = value.to_str().unwrap_or("(not text)").trim();
    match text {
        _ if values.next().is_some() => {}
        t if t.eq_ignore_ascii_case("identity") || t.is_empty() => return Ok(Encoding::Identity),
        t if t.eq_ignore_ascii_case(wire::ZSTD) => return Ok(Encoding::Zstd),
        _ => {}
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!(
            "Content-Encoding {text:?} is not read here: /api/v1/ingest reads uncompressed (identity) or zstd bodies"
        ),
    ))
}

/// Decides the batch's fate, then stores and quarantines (blocking).
///
/// The blocking thread it runs on is lowered to background priority
/// ([`tollgate_records::priority`]), so storing records never starves the answer path of a
/// process that also answers ENUM queries; the batch is only slower when the machine is full.
fn take_batch(state: &AppState, store: &dyn Store, from: &str, body: &[u8], encoding: Encoding) -> Outcome {
    tollgate_records::priority::lower_current_thread();
    let now = Utc::now();
    let decoded;
    let body = match encoding {
        Encoding::Identity => body,
        Encoding::Zstd => match wire::decompress(body, MAX_BATCH) {
            Ok(plain) => {
                decoded = plain;
                &decoded[..]
            }
            Err(e) => return Outcome::Undecodable(e),
        },
    };
    let batch = read_batch(body, now);
    if batch.newest > RECORD_VERSION {
        return Outcome::Newer(batch.newest);
    }
    let entries = Entries::encode(&batch.bad, from, now);
    let reservation = match state.quarantine.reserve(&entries) {
        Ok(r) => r,
        Err(e) => return Outcome::QuarantineFull(e),
    };
    let stored = match store.ingest(&batch.records) {
        Ok(o) => o,
        Err(e) => return Outcome::Failed(format!("cannot store the batch: {e}")),
    };
    if let Err(e) = state.quarantine.keep(reservation, &entries, now) {
        return Outcome::Failed(e.to_string());
    }
    Outcome::Stored {
        received: batch.records.len() + batch.bad.len(),
        inserted: stored.inserted,
        duplicates: stored.duplicates,
        quarantined: entries.lines(),
    }
}

pub(super) async fn ingest(
    State(state): State<Arc<AppState>>,
    shipper: crate::http::MachinePeer<crate::http::Shippers>,
    who: Ingester,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Every answer says the collector reads zstd bodies (RFC 7694), errors included.
    ([(ACCEPT_ENCODING, wire::ZSTD)], take(state, shipper, who, &headers, body).await).into_response()
}

async fn take(
    state: Arc<AppState>,
    _shipper: crate::http::MachinePeer<crate::http::Shippers>,
    Ingester(who): Ingester,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Ingested>> {
    let store = state.store.clone().ok_or_else(|| not_running("collector"))?;
    let encoding = encoding(headers)?;
    let body = body?;
    let arrived = std::time::Instant::now();
    let for_task = state.clone();
    let from = who.name.clone();
    match blocking(move || take_batch(&for_task, store.as_ref(), &from, &body, encoding)).await? {
        Outcome::Stored { received, inserted, duplicates, quarantined } => {
            state.ingest.observe_batch(arrived, received);
            state.ingest.batches.inc();
            state.ingest.inserted.inc_by(inserted);
            state.ingest.duplicates.inc_by(duplicates);
            state.ingest.quarantined.inc_by(quarantined as u64);
            if quarantined > 0 {
                state.alarms.clear(alarms::QUARANTINE_FULL, &state.node);
                if let Some(left_out) = QUARANTINED_LOG.allow() {
                    tracing::warn!(lines = quarantined, from = %who.name, dir = %state.quarantine.dir().display(), left_out, "ingest: lines that are not valid records were quarantined");
                }
            }
            Ok(Json(Ingested { received, inserted, duplicates, quarantined }))
        }
        // Records of a newer release than this collector's are refused as a batch: they stay in
        // the sender's spool and arrive once the collector is upgraded (nothing is lost).
        Outcome::Newer(newest) => Err(ApiError::conflict(format!(
            "records of format version {newest} come from a newer release; this collector reads versions 1 to \
             {RECORD_VERSION}: they stay in the sender's spool until the collector is upgraded"
        ))),
        Outcome::QuarantineFull(e) => {
            state.ingest.refused_quarantine_full.inc();
            state.alarms.raise(alarms::QUARANTINE_FULL, &state.node, e.to_string());
            if let Some(left_out) = REFUSED_LOG.allow() {
                tracing::error!(error = %e, from = %who.name, left_out, "ingest: batch refused, it stays in the sender's spool");
            }
            Err(ApiError::new(ErrorCode::InsufficientStorage, format!("{e}; the batch stays in the sender's spool")))
        }
        Outcome::Undecodable(e @ DecodeError::TooLarge { .. }) => {
            Err(ApiError::too_large(format!("{e} ({MAX_BATCH} bytes); nothing of it was stored")))
        }
        Outcome::Undecodable(e) => Err(ApiError::bad_request(format!("{e}; nothing of it was stored"))),
        Outcome::Failed(e) => {
            if let Some(left_out) = REFUSED_LOG.allow() {
                tracing::error!(error = %e, left_out, "ingest failed; the shipper will retry");
            }
            Err(ApiError::unavailable(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: u16, device: &str) -> String {
        json!({
            "kind": "enum_query", "v": v, "id": ulid::Ulid::new(), "time": Utc::now(),
            "device": device, "client": "sbc-1", "client_addr": "127.0.0.1:5060", "transport": "udp",
            "source": null, "destination": "+12125550100", "direction": "inbound", "rule": null,
            "action": "allow", "detail": null, "rcode": "NXDOMAIN", "latency_us": 40, "policy_version": 1
        })
        .to_string()
    }

    #[test]
    fn a_batch_is_split_into_records_and_kept_lines_with_reasons() {
        let body = format!("{}\n\n{{\"kind\":\n{}\n", line(2, "engine-1"), line(2, "*"));
        let b = read_batch(body.as_bytes(), Utc::now());
        assert_eq!(b.records.len(), 1);
        assert_eq!(b.bad.iter().map(|l| l.line).collect::<Vec<_>>(), vec![3, 4]);
        assert!(b.bad[0].reason.starts_with("not a record"), "{}", b.bad[0].reason);
        assert!(b.bad[1].reason.starts_with("invalid record: device:"), "{}", b.bad[1].reason);
        assert_eq!(b.newest, 2);
    }

    /// `line` with `field` set to `value`.
    fn with(line: &str, field: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v[field] = value;
        v.to_string()
    }

    #[test]
    fn a_decision_of_the_sip_redirect_server_is_read_with_its_protocol() {
        let sip = with(&with(&line(2, "engine-1"), "protocol", json!("sip")), "rcode", json!("302"));
        let sip_with_a_dns_code = with(&line(2, "engine-1"), "protocol", json!("sip"));
        let unknown = with(&line(2, "engine-1"), "protocol", json!("h323"));
        let body = format!("{sip}\n{}\n{sip_with_a_dns_code}\n{unknown}\n", line(2, "engine-1"));
        let b = read_batch(body.as_bytes(), Utc::now());
        let protocols: Vec<_> = b
            .records
            .iter()
            .map(|r| match r {
                Record::EnumQuery { record, .. } => record.protocol,
                Record::SipCall { .. } => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(protocols, vec![tollgate_records::Protocol::Sip, tollgate_records::Protocol::Enum]);
        assert_eq!(b.bad.iter().map(|l| l.line).collect::<Vec<_>>(), vec![3, 4]);
        assert!(
            b.bad[0].reason.starts_with("invalid record: rcode: \"NXDOMAIN\" is not a SIP final"),
            "{}",
            b.bad[0].reason
        );
        assert!(b.bad[1].reason.starts_with("not a record") && b.bad[1].reason.contains("h323"), "{}", b.bad[1].reason);
    }

    #[test]
    fn the_version_of_an_unreadable_line_still_counts() {
        let newer_kind = r#"{"kind":"h323_call","v":4,"id":"x"}"#;
        let b = read_batch(newer_kind.as_bytes(), Utc::now());
        assert_eq!((b.records.len(), b.bad.len(), b.newest), (0, 1, 4));
    }
}
