//! The shipper's HTTP uplink: `POST <collector>/api/v1/ingest` with an ingest token; the
//! answer is `tollgate_api::web::Ingested`.

use std::time::Duration;

use tollgate_api::web::Ingested;
use tollgate_api::{BlockingClient, Client, ClientError, ErrorBody, ErrorCode};
use tollgate_records::ship::Uplink;

/// The collector's ingest route.
const INGEST: &str = "/api/v1/ingest";

/// Sends NDJSON batches to a collector's API, with tollgate's one client.
pub struct HttpUplink {
    client: BlockingClient,
}

impl HttpUplink {
    /// An uplink to the collector at `base` (e.g. `https://10.0.0.5:8080`), speaking TLS with
    /// `tls` (which checks that the server's certificate names the collector role), the name
    /// `resolve.0` connecting to `resolve.1` when given.
    pub fn new(
        base: &str,
        token: String,
        tls: Option<&tollgate_api::TlsConfig>,
        resolve: Option<(String, std::net::SocketAddr)>,
    ) -> anyhow::Result<Self> {
        let mut builder = tollgate_api::http_builder(tls);
        if let Some((name, addr)) = resolve {
            builder = builder.resolve(&name, addr);
        }
        let http = builder
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(3))
            // Below the collector's default idle timeout (api.idle_timeout = 60 s), so a kept
            // connection is never reused just as the collector closes it.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(HttpUplink { client: BlockingClient::from_client(Client::with_http(base, Some(token), http))? })
    }
}

impl Uplink for HttpUplink {
    fn deliver(&self, ndjson: Vec<u8>, records: usize) -> Result<(), String> {
        let c = self.client.inner();
        let request = c
            .request(reqwest::Method::POST, INGEST)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(ndjson);
        let answer = self.client.block_on(async {
            let resp = c.send(request).await?;
            // A 2xx is the acknowledgement; the answer says what became of the batch.
            Ok::<_, ClientError>(Client::json::<Ingested>(resp).await)
        });
        match answer {
            Ok(Ok(i)) => {
                tracing::debug!(
                    records,
                    received = i.received,
                    inserted = i.inserted,
                    duplicates = i.duplicates,
                    quarantined = i.quarantined,
                    "batch stored"
                );
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(records, error = %e, "batch stored; its answer was not read");
                Ok(())
            }
            Err(ClientError::Unreachable { url, reason }) => {
                Err(format!("cannot reach the collector at {url}: {reason}"))
            }
            Err(ClientError::Api { url, status, body }) => Err(refusal(&url, status, &body)),
            Err(e) => Err(format!("the collector refused the batch: {e}")),
        }
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
        let uplink = HttpUplink::new(&format!("http://127.0.0.1:{port}"), "t".into(), None, None).unwrap();
        let err = uplink.deliver(b"{}\n".to_vec(), 1).unwrap_err();
        assert!(err.starts_with("cannot reach the collector") && err.ends_with("connection refused"), "{err}");
    }
}
