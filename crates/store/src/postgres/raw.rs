//! Raw records into PostgreSQL: a batch is streamed with `COPY ... FROM STDIN (FORMAT binary)`
//! into a temporary staging table (emptied at every commit), then moved into the raw table with
//! one `INSERT ... SELECT ... ON CONFLICT (id) DO NOTHING`, tagged with the batch number. The
//! statement's row count says whether every record was new (the usual case); when it was not (a
//! resend), the new ones are those whose stored row carries this batch's number.

use std::collections::HashSet;

use postgres::Transaction;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use tollgate_records::{EnumQueryRecord, Record, SipCallRecord, Transport};

use crate::StoreError;

/// The per-session staging tables (temporary: each connection has its own; emptied on commit).
pub(super) const STAGING_DDL: &str = "
CREATE TEMP TABLE IF NOT EXISTS enum_stage (
    id TEXT, ts BIGINT, device TEXT, client TEXT, client_addr TEXT, transport TEXT, source TEXT,
    destination TEXT, direction TEXT, rule TEXT, action TEXT, detail TEXT, rcode TEXT,
    fail_open BIGINT, latency_us BIGINT, policy_version BIGINT, v BIGINT, stale BIGINT, protocol TEXT
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sip_stage (
    id TEXT, ts BIGINT, device TEXT, call_id TEXT, source TEXT, destination TEXT, direction TEXT,
    disposition TEXT, final_code BIGINT, pdd_ms BIGINT, duration_ms BIGINT, answered_at BIGINT,
    ended_at BIGINT, v BIGINT, rtp_packets BIGINT, rtp_lost BIGINT, rtp_jitter_us BIGINT, mos_x100 BIGINT
) ON COMMIT DELETE ROWS";

const ENUM_COLUMNS: &str = "id, ts, device, client, client_addr, transport, source, destination, direction, rule, action, detail, rcode, fail_open, latency_us, policy_version, v, stale, protocol";
const ENUM_TYPES: [Type; 19] = [
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];
const SIP_COLUMNS: &str = "id, ts, device, call_id, source, destination, direction, disposition, final_code, pdd_ms, duration_ms, answered_at, ended_at, v, rtp_packets, rtp_lost, rtp_jitter_us, mos_x100";
const SIP_TYPES: [Type; 18] = [
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

fn copy_enum(tx: &mut Transaction<'_>, records: &[(u16, &EnumQueryRecord)]) -> Result<u64, StoreError> {
    let sink = tx.copy_in(&format!("COPY enum_stage ({ENUM_COLUMNS}) FROM STDIN (FORMAT binary)"))?;
    let mut w = BinaryCopyInWriter::new(sink, &ENUM_TYPES);
    for (v, r) in records {
        let transport = match r.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        let row: [&(dyn ToSql + Sync); 19] = [
            &r.id.to_string(),
            &r.time.timestamp_micros(),
            &r.device,
            &r.client,
            &r.client_addr.to_string(),
            &transport,
            &r.source.map(|s| s.to_string()),
            &r.destination.to_string(),
            &r.direction,
            &r.rule,
            &r.action,
            &r.detail,
            &r.rcode,
            &i64::from(r.fail_open),
            &i64::from(r.latency_us),
            &r.policy_version.map(|p| p as i64),
            &i64::from(*v),
            &i64::from(r.stale),
            &r.protocol.as_str(),
        ];
        w.write(&row)?;
    }
    Ok(w.finish()?)
}

fn copy_sip(tx: &mut Transaction<'_>, records: &[(u16, &SipCallRecord)]) -> Result<u64, StoreError> {
    let sink = tx.copy_in(&format!("COPY sip_stage ({SIP_COLUMNS}) FROM STDIN (FORMAT binary)"))?;
    let mut w = BinaryCopyInWriter::new(sink, &SIP_TYPES);
    for (v, r) in records {
        let row: [&(dyn ToSql + Sync); 18] = [
            &r.id.to_string(),
            &r.time.timestamp_micros(),
            &r.device,
            &r.call_id,
            &r.source.map(|s| s.to_string()),
            &r.destination.map(|s| s.to_string()),
            &r.direction,
            &r.disposition.as_str(),
            &r.final_code.map(i64::from),
            &r.pdd_ms.map(i64::from),
            &r.duration_ms.map(|d| d as i64),
            &r.answered_at.map(|t| t.timestamp_micros()),
            &r.ended_at.map(|t| t.timestamp_micros()),
            &i64::from(*v),
            &r.rtp_packets.map(|n| n as i64),
            &r.rtp_lost.map(|n| n as i64),
            &r.rtp_jitter_ms.map(crate::sqlite::jitter_us),
            &r.mos.map(crate::sqlite::mos_x100),
        ];
        w.write(&row)?;
    }
    Ok(w.finish()?)
}

/// Moves one staging table into its raw table under `batch`; returns the ids of the records
/// stored for the first time, or `None` when all `staged` were (the usual case).
fn insert_staged(
    tx: &mut Transaction<'_>,
    raw: &str,
    stage: &str,
    columns: &str,
    staged: u64,
    batch: i64,
) -> Result<Option<Vec<String>>, StoreError> {
    let inserted = tx.execute(
        &format!("INSERT INTO {raw} ({columns}, batch) SELECT {columns}, $1 FROM {stage} ON CONFLICT (id) DO NOTHING"),
        &[&batch],
    )?;
    if inserted == staged {
        return Ok(None);
    }
    let rows =
        tx.query(&format!("SELECT s.id FROM {stage} s JOIN {raw} r ON r.id = s.id WHERE r.batch = $1"), &[&batch])?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

/// Stores `records` under `batch` in `tx`; returns which of them are new: `None` for all, else
/// the new ids, each once (a record sent twice within the batch is new once).
pub(super) fn store(
    tx: &mut Transaction<'_>,
    records: &[Record],
    batch: i64,
) -> Result<Option<HashSet<String>>, StoreError> {
    let mut enums = Vec::new();
    let mut sips = Vec::new();
    for r in records {
        match r {
            Record::EnumQuery { v, record } => enums.push((*v, record)),
            Record::SipCall { v, record } => sips.push((*v, record)),
        }
    }
    let mut enum_new = None;
    if !enums.is_empty() {
        let staged = copy_enum(tx, &enums)?;
        enum_new = insert_staged(tx, "enum_queries", "enum_stage", ENUM_COLUMNS, staged, batch)?;
    }
    let mut sip_new = None;
    if !sips.is_empty() {
        let staged = copy_sip(tx, &sips)?;
        sip_new = insert_staged(tx, "sip_calls", "sip_stage", SIP_COLUMNS, staged, batch)?;
    }
    if enum_new.is_none() && sip_new.is_none() {
        return Ok(None);
    }
    let mut ids = HashSet::new();
    match enum_new {
        Some(new) => ids.extend(new),
        None => ids.extend(enums.iter().map(|(_, r)| r.id.to_string())),
    }
    match sip_new {
        Some(new) => ids.extend(new),
        None => ids.extend(sips.iter().map(|(_, r)| r.id.to_string())),
    }
    Ok(Some(ids))
}
