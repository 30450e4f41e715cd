//! The shipper's HTTP uplink: `POST <collector>/api/v1/ingest` with an ingest token; the
//! answer is `tollgate_api::web::Ingested`.

use std::time::Duration;

use tollgate_api::web::Ingested;
use tollgate_api::{ErrorBody, ErrorCode};
use tollgate_records::ship::Uplink;

/// Sends NDJSON batches to a collector's API.
pub struct HttpUplink {
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl HttpUplink {
    /// An uplink to the collector at `base` (e.g. `http://10.0.0.5:8080`).
    pub fn new(base: &str, token: String) -> anyhow::Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            // Below the collector's default idle timeout (api.idle_timeout_secs = 60 s),
            // so a kept connection is never reused just as the collector closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(HttpUplink { url: format!("{}/api/v1/ingest", base.trim_end_matches('/')), token, http })
    }
}

impl Uplink for HttpUplink {
    fn deliver(&self, ndjson: Vec<u8>, records: usize) -> Result<(), String> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(ndjson)
            .send()
            .map_err(|e| format!("cannot reach the collector at {}: {}", self.url, transport_reason(&e)))?;
        if resp.status().is_success() {
            // A 2xx is the acknowledgement; the answer says what became of the batch.
            match resp.json::<Ingested>() {
                Ok(i) => tracing::debug!(
                    records,
                    received = i.received,
                    inserted = i.inserted,
                    duplicates = i.duplicates,
                    quarantined = i.quarantined,
                    "batch stored"
                ),
                Err(e) => tracing::debug!(records, error = %e, "batch stored; its answer was not read"),
            }
            return Ok(());
        }
        let status = resp.status().as_u16();
        let body = ErrorBody::from_response(status, &resp.bytes().unwrap_or_default());
        Err(refusal(&self.url, status, &body))
    }
}

/// What a collector's refusal means, by its error code: a collector that answers is reachable,
/// and a wrong token is the operator's to fix, not an outage to wait out.
fn refusal(url: &str, status: u16, body: &ErrorBody) -> String {
    let what = match body.code {
        ErrorCode::Unauthenticated => {
            "the collector refused the ingest token (set [shipper] token to a token made with `tollgate token \
             create NAME --role ingest` on the collector)"
        }
        ErrorCode::Forbidden => "the collector refused the token: its role is not ingest",
        ErrorCode::Conflict | ErrorCode::IncompatibleVersion => {
            "the collector refused the batch (records of a newer release); they stay in the spool"
        }
        ErrorCode::InsufficientStorage => "the collector's quarantine is full; the batch stays in the spool",
        _ => "the collector refused the batch",
    };
    format!("{what}: {url} answered {status} {}: {}", body.code, body.message)
}

/// The innermost cause of a transport error (`connection refused`), not "error sending request".
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string();
    if text.to_lowercase().contains("connection refused") { "connection refused".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_not_an_unreachable_collector() {
        let body = ErrorBody::from_response(401, br#"{"error":"missing or unknown token"}"#);
        let text = refusal("http://10.0.0.5:8080/api/v1/ingest", 401, &body);
        assert!(text.starts_with("the collector refused the ingest token"), "{text}");
        assert!(text.contains("401 unauthenticated"), "{text}");
        assert!(!text.contains("unreachable"), "{text}");
    }

    #[test]
    fn a_collector_that_is_not_there_says_connection_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let uplink = HttpUplink::new(&format!("http://127.0.0.1:{port}"), "t".into()).unwrap();
        let err = uplink.deliver(b"{}\n".to_vec(), 1).unwrap_err();
        assert!(err.starts_with("cannot reach the collector") && err.ends_with("connection refused"), "{err}");
    }
}
