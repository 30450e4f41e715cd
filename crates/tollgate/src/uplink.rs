//! The shipper's HTTP uplink: `POST <collector>/api/v1/ingest` with an ingest token.

use std::time::Duration;

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
    fn deliver(&self, ndjson: Vec<u8>, _records: usize) -> Result<(), String> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(ndjson)
            .send()
            .map_err(|e| format!("{}: {e}", self.url))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            Err(format!("{}: {status} {}", self.url, resp.text().unwrap_or_default().trim()))
        }
    }
}
