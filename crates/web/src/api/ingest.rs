//! `POST /api/v1/ingest`: NDJSON records from a shipper, stored idempotently.
//!
//! A 200 answer means every record of the batch is durably stored (or was already). A line
//! that is not a record (say, a kind this collector does not know) is never dropped: it is
//! appended to `<quarantine>/YYYY-MM-DD.ndjson` with the reason, counted, and the batch is
//! still acknowledged so one bad line cannot block a shipper forever.

use std::io::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_records::{RECORD_VERSION, Record};

use super::{blocking, error};
use crate::AppState;
use crate::auth::Role;
use crate::session::{ApiUser, require};

fn quarantine(state: &AppState, lines: &[(usize, String, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(&state.quarantine)?;
    let path = state.quarantine.join(format!("{}.ndjson", chrono::Utc::now().format("%Y-%m-%d")));
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for (line, text, reason) in lines {
        writeln!(f, "{}", json!({ "at": chrono::Utc::now(), "line": line, "reason": reason, "text": text }))?;
    }
    f.sync_all()
}

pub(super) async fn ingest(State(state): State<Arc<AppState>>, ApiUser(who): ApiUser, body: Bytes) -> Response {
    if let Err(r) = require(&who, Role::Ingest) {
        return r;
    }
    let Some(store) = state.store.clone() else {
        return error(StatusCode::NOT_FOUND, "this server runs no collector");
    };
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => records.push(r),
            Err(e) => bad.push((i + 1, String::from_utf8_lossy(line).into_owned(), e.to_string())),
        }
    }
    if !bad.is_empty() {
        if let Err(e) = quarantine(&state, &bad) {
            // Without a place to keep them, refusing the batch keeps the lines in the spool.
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot quarantine {} bad lines: {e}", bad.len()));
        }
        tracing::warn!(lines = bad.len(), from = %who.name, "ingest: lines that are not records were quarantined");
    }
    // Records of a newer release than this collector's are refused as a batch: they stay in
    // the sender's spool and arrive once the collector is upgraded (nothing is lost).
    if let Some(newest) = records.iter().map(Record::version).filter(|v| *v > RECORD_VERSION).max() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "records of format version {newest} come from a newer release; this collector reads versions 1 to \
                 {RECORD_VERSION}: they stay in the sender's spool until the collector is upgraded"
            ),
        );
    }
    let count = records.len();
    match blocking(move || store.ingest(&records)).await {
        Ok(Ok(outcome)) => {
            state.ingest.batches.inc();
            state.ingest.inserted.inc_by(outcome.inserted);
            state.ingest.duplicates.inc_by(outcome.duplicates);
            state.ingest.quarantined.inc_by(bad.len() as u64);
            Json(json!({ "received": count, "inserted": outcome.inserted, "duplicates": outcome.duplicates, "quarantined": bad.len() }))
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "ingest failed; the shipper will retry");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(r) => r,
    }
}
