//! Analytics and export routes, and the parameters the API and the UI share.

use std::io::Write;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
pub use tollgate_api::web::{AnalyticsParams, DevicesParams, ExportParams};
use tollgate_records::Protocol;
use tollgate_store::{AnalyticsQuery, Dataset, Grouping, RawFilter, Store, StoreError, View};

use super::{blocking, not_running};
use crate::AppState;
use crate::http::{ApiError, ApiResult, QueryParams};
use crate::session::Viewer;

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(format!("{what} {s:?} is not a time (use RFC 3339 or YYYY-MM-DDTHH:MM, UTC)"))
}

/// The store query the Analytics selectors `p` mean at `now`.
pub fn query_of(p: &AnalyticsParams, now: DateTime<Utc>) -> Result<AnalyticsQuery, String> {
    let dataset: Dataset = p.dataset.as_deref().filter(|s| !s.is_empty()).unwrap_or("ENUM").parse()?;
    let view: View = p.view.as_deref().filter(|s| !s.is_empty()).unwrap_or("Average CPS").parse()?;
    let grouping: Grouping = p.grouping.as_deref().filter(|s| !s.is_empty()).unwrap_or("Hour").parse()?;
    let device = p.device.clone().filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("all"));
    let span = match p.range.as_deref().unwrap_or("24h") {
        "15m" => Ok(Duration::minutes(15)),
        "1h" => Ok(Duration::hours(1)),
        "24h" | "" => Ok(Duration::hours(24)),
        "7d" => Ok(Duration::days(7)),
        "30d" => Ok(Duration::days(30)),
        other => Err(format!("unknown range {other:?} (15m, 1h, 24h, 7d or 30d)")),
    };
    // A range of an hour or less ends with the current minute, a longer one with the current
    // hour.
    let end_grain =
        if span.as_ref().is_ok_and(|s| *s <= Duration::hours(1)) { Grouping::Minute } else { Grouping::Hour };
    let end_default =
        Utc.timestamp_opt(end_grain.bucket_of(now.timestamp()) + end_grain.seconds(), 0).single().unwrap_or(now);
    let to = match p.to.as_deref().filter(|s| !s.is_empty()) {
        Some(t) => parse_time(t, "to")?,
        None => end_default,
    };
    let from = match p.from.as_deref().filter(|s| !s.is_empty()) {
        Some(f) => parse_time(f, "from")?,
        None => to - span?,
    };
    Ok(AnalyticsQuery { dataset, view, grouping, device, from, to })
}

use chrono::TimeZone;

/// A store error as an API error: a query the store refuses is the caller's (`400`), anything
/// else the server's (`500`).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::BadQuery(m) => ApiError::bad_request(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The record store, or `404 not_configured` on a server without the collector role.
fn store_of(state: &AppState) -> ApiResult<Arc<dyn Store>> {
    state.store.clone().ok_or_else(|| not_running("collector"))
}

pub(super) async fn analytics(
    State(state): State<Arc<AppState>>,
    _: Viewer,
    QueryParams(p): QueryParams<AnalyticsParams>,
) -> ApiResult<Response> {
    let store = store_of(&state)?;
    let query = query_of(&p, Utc::now()).map_err(ApiError::bad_request)?;
    let result = blocking(move || store.analytics(&query)).await??;
    if p.format.as_deref() == Some("csv") {
        let mut out = Vec::new();
        tollgate_store::export::analytics(&result, &mut out)?;
        Ok(csv_response(out, "analytics.csv"))
    } else {
        Ok(Json(result).into_response())
    }
}

/// A CSV download.
pub(crate) fn csv_response(body: impl Into<Body>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body.into(),
    )
        .into_response()
}

/// Sends what is written to it as chunks of a streamed body.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("client went away"))?;
        }
        Ok(())
    }
}

/// The export's `protocol` selector: `enum` or `sip` (any case); absent, empty or `all`: both.
fn protocol_of(p: Option<&str>) -> Result<Option<Protocol>, String> {
    match p.map(str::trim).filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("all")) {
        None => Ok(None),
        Some(p) if p.eq_ignore_ascii_case("enum") => Ok(Some(Protocol::Enum)),
        Some(p) if p.eq_ignore_ascii_case("sip") => Ok(Some(Protocol::Sip)),
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            Err(format!("unknown protocol {shown:?} (enum, sip or all)"))
        }
    }
}

/// Streams raw records as CSV; shared by the API and the UI.
pub(crate) async fn export_response(state: &AppState, p: ExportParams) -> ApiResult<Response> {
    let store = store_of(state)?;
    let parsed = (|| -> Result<(Dataset, DateTime<Utc>, DateTime<Utc>), String> {
        let dataset = p.dataset.as_deref().filter(|s| !s.is_empty()).unwrap_or("ENUM").parse()?;
        Ok((dataset, parse_time(&p.from, "from")?, parse_time(&p.to, "to")?))
    })();
    let (dataset, from, to) = parsed.map_err(ApiError::bad_request)?;
    let protocol = protocol_of(p.protocol.as_deref()).map_err(ApiError::bad_request)?;
    if protocol.is_some() && dataset != Dataset::Enum {
        let e = format!("protocol selects records of dataset ENUM, not {}", dataset.as_str());
        return Err(ApiError::bad_request(e));
    }
    let device = p.device.filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("all"));
    let filter = RawFilter { device, protocol };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter { tx: tx.clone(), buf: Vec::new() };
        let result = store.export_filtered(dataset, from, to, &filter, &mut w).and_then(|_| Ok(w.flush()?));
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(csv_response(Body::from_stream(stream), &format!("{}-records.csv", dataset.as_str().to_lowercase())))
}

pub(super) async fn export(
    State(state): State<Arc<AppState>>,
    _: Viewer,
    QueryParams(p): QueryParams<ExportParams>,
) -> ApiResult<Response> {
    export_response(&state, p).await
}

pub(super) async fn devices(
    State(state): State<Arc<AppState>>,
    _: Viewer,
    QueryParams(p): QueryParams<DevicesParams>,
) -> ApiResult<Json<Vec<String>>> {
    let store = store_of(&state)?;
    let dataset: Dataset = p.dataset.as_deref().unwrap_or("ENUM").parse().map_err(ApiError::bad_request)?;
    Ok(Json(blocking(move || store.devices(dataset)).await??))
}
