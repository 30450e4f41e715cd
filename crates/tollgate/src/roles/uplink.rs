//! The shipper's HTTP uplink: `POST <collector>/api/v1/ingest` with an ingest token; the
//! answer is `tollgate_api::web::Ingested`.
//!
//! Batches are compressed with zstd (`Content-Encoding: zstd`, see [`tollgate_records::wire`])
//! only to a collector that said `Accept-Encoding: zstd` in its last answer: the first batch,
//! and the first after any failure (a reconnect, perhaps to a collector of another release),
//! go uncompressed. A compressed batch refused with `415` (the collector does not read zstd
//! any more) or `409` (a collector of a release before compression reading the guard line) is
//! sent again at once, uncompressed.
//!
//! A `409` to an uncompressed batch is the collector's refusal of records of a newer format
//! than it reads (SIP redirect decisions, format 3, sent to a collector of the release before
//! them): [`DeliveryError::RefusedNewer`], so only that batch's lane waits in the spool for the
//! upgrade and the collector is not taken for unreachable. (A compressed batch answered `409`
//! is sent again uncompressed first, so a collector before compression reading the guard line
//! is not mistaken for it, and a batch of newer records is refused again, uncompressed.) Every
//! other failure is [`DeliveryError::Failed`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::sync::Arc;
use tollgate_api::web::Ingested;
use tollgate_api::{BlockingClient, Client, ClientError, ErrorBody, ErrorCode};

use tollgate_config::{Compression, ShipperConfig};
use tollgate_records::ship::{DeliveryError, ShipperOptions, Uplink};
use tollgate_records::spread::{Spread, SpreadOptions};
use tollgate_records::wire;

/// The collector's ingest route.
const INGEST: &str = "/api/v1/ingest";

/// Sends NDJSON batches to a collector's API, with tollgate's one client.
pub struct HttpUplink {
    client: BlockingClient,
    /// Compress batches for collectors that read zstd (`[shipper] compression`).
    compress: bool,
    /// The collector's last answer said `Accept-Encoding: zstd`, and nothing failed since.
    zstd_heard: AtomicBool,
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
        Ok(HttpUplink {
            client: BlockingClient::from_client(Client::with_http(base, Some(token), http))?,
            compress: true,
            zstd_heard: AtomicBool::new(false),
        })
    }

    /// This uplink, compressing batches for collectors that read zstd (`on`, the default) or
    /// never.
    pub fn compressing(mut self, on: bool) -> Self {
        self.compress = on;
        self
    }

    /// The collector's base URL.
    pub fn base(&self) -> &str {
        self.client.inner().base()
    }

    /// Posts one body; notes whether the answer says the collector reads zstd.
    fn post(&self, body: Vec<u8>, zstd: bool) -> Result<Result<Ingested, ClientError>, ClientError> {
        let c = self.client.inner();
        let mut request = c
            .request(reqwest::Method::POST, INGEST)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if zstd {
            request = request.header(reqwest::header::CONTENT_ENCODING, wire::ZSTD);
        }
        let answer = self.client.block_on(async {
            let resp = c.send(request).await?;
            let reads_zstd = resp
                .headers()
                .get_all(reqwest::header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(wire::ZSTD)));
            self.zstd_heard.store(reads_zstd, Ordering::Relaxed);
            // A 2xx is the acknowledgement; the answer says what became of the batch.
            Ok::<_, ClientError>(Client::json::<Ingested>(resp).await)
        });
        if answer.is_err() {
            // Whatever answers next (after a reconnect) must say again that it reads zstd.
            self.zstd_heard.store(false, Ordering::Relaxed);
        }
        answer
    }
}

impl Uplink for HttpUplink {
    fn deliver(&self, ndjson: &[u8], records: usize) -> Result<(), DeliveryError> {
        let compressed = match self.compress && self.zstd_heard.load(Ordering::Relaxed) {
            true => wire::compress(ndjson, wire::LEVEL)
                .map_err(|e| tracing::warn!(error = %e, "cannot compress a batch; it goes uncompressed"))
                .ok(),
            false => None,
        };
        let answer = match compressed {
            Some(body) => match self.post(body, true) {
                Err(ClientError::Api { status: status @ (409 | 415), .. }) => {
                    tracing::info!(status, collector = %self.base(), "the collector refused a zstd batch; sending it uncompressed");
                    self.post(ndjson.to_vec(), false)
                }
                other => other,
            },
            None => self.post(ndjson.to_vec(), false),
        };
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
                Err(DeliveryError::Failed(format!("cannot reach the collector at {url}: {reason}")))
            }
            // Only an uncompressed body gets here with a 409 (a compressed one was sent again).
            Err(ClientError::Api { url, status: 409, body }) if body.code == ErrorCode::Conflict => {
                Err(DeliveryError::RefusedNewer(refusal(&url, 409, &body)))
            }
            Err(ClientError::Api { url, status, body }) => Err(DeliveryError::Failed(refusal(&url, status, &body))),
            Err(e) => Err(DeliveryError::Failed(format!("the collector refused the batch: {e}"))),
        }
    }
}

/// The uplink to `urls` (one collector, or several spread over by [`Spread`]) and the
/// shipper's options, from `[shipper]`: `in_flight` batches per collector.
pub fn uplinks(
    urls: &[String],
    token: String,
    tls: Option<&tollgate_api::TlsConfig>,
    resolve: Option<(String, std::net::SocketAddr)>,
    config: &ShipperConfig,
) -> anyhow::Result<(Arc<dyn Uplink>, ShipperOptions)> {
    let mut members = Vec::with_capacity(urls.len());
    for url in urls {
        let uplink = HttpUplink::new(url, token.clone(), tls, resolve.clone())?
            .compressing(config.compression == Compression::Zstd);
        members.push((url.clone(), Arc::new(uplink) as Arc<dyn Uplink>));
    }
    let options = ShipperOptions {
        batch_records: config.batch_records.max(1),
        in_flight: config.in_flight.max(1) * members.len().max(1),
        ..Default::default()
    };
    let uplink = match members.len() {
        1 => members.remove(0).1,
        _ => Arc::new(Spread::new(members, SpreadOptions::default())),
    };
    Ok((uplink, options))
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
        let err = uplink.deliver(b"{}\n", 1).unwrap_err();
        assert!(matches!(err, DeliveryError::Failed(_)), "{err:?}");
        let err = err.to_string();
        assert!(err.starts_with("cannot reach the collector") && err.ends_with("connection refused"), "{err}");
    }

    /// Batches a fake collector received: `Content-Encoding` and the decoded body.
    type Seen = Arc<std::sync::Mutex<Vec<(Option<String>, Vec<u8>)>>>;

    /// A collector stand-in on a real socket: it records each batch's `Content-Encoding` and
    /// decoded body, advertises zstd or not, and can refuse zstd bodies with 415.
    struct FakeCollector {
        url: String,
        seen: Seen,
        advertise: Arc<AtomicBool>,
        refuse_zstd: Arc<AtomicBool>,
        /// Of the release before compression and SIP decisions: reads a zstd body as NDJSON
        /// (its guard line is a record of format 65535) and refuses records above format 2,
        /// with 409 as that collector does.
        old_release: Arc<AtomicBool>,
        _runtime: tokio::runtime::Runtime,
    }

    impl FakeCollector {
        fn start() -> FakeCollector {
            use axum::http::{HeaderMap, StatusCode};
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let seen: Seen = Arc::default();
            let advertise = Arc::new(AtomicBool::new(true));
            let refuse_zstd = Arc::new(AtomicBool::new(false));
            let old_release = Arc::new(AtomicBool::new(false));
            let (s, a, r, o) = (seen.clone(), advertise.clone(), refuse_zstd.clone(), old_release.clone());
            let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
                let (seen, advertise, refuse, old) = (s.clone(), a.clone(), r.clone(), o.clone());
                async move {
                    let encoding = headers.get("content-encoding").map(|v| v.to_str().unwrap().to_string());
                    let accept = if advertise.load(Ordering::Relaxed) { "zstd" } else { "identity" };
                    let newer = encoding.is_some() || body.windows(5).any(|w| w == br#""v":3"#);
                    if old.load(Ordering::Relaxed) && newer {
                        seen.lock().unwrap().push((encoding, Vec::new()));
                        let body = r#"{"code":"conflict","message":"records of format version 3 come from a newer release; this collector reads versions 1 to 2"}"#;
                        return (StatusCode::CONFLICT, [("accept-encoding", accept)], body.to_string());
                    }
                    if encoding.is_some() && refuse.load(Ordering::Relaxed) {
                        seen.lock().unwrap().push((encoding, Vec::new()));
                        let body = r#"{"code":"unsupported_media_type","message":"no zstd here"}"#;
                        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, [("accept-encoding", accept)], body.to_string());
                    }
                    let plain = match encoding.as_deref() {
                        Some("zstd") => wire::decompress(&body, 1 << 20).unwrap(),
                        _ => body.to_vec(),
                    };
                    let lines = plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
                    seen.lock().unwrap().push((encoding, plain));
                    let answer = format!(r#"{{"received":{lines},"inserted":{lines},"duplicates":0,"quarantined":0}}"#);
                    (StatusCode::OK, [("accept-encoding", accept)], answer)
                }
            };
            let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = axum::Router::new().route(INGEST, axum::routing::post(handler));
            runtime.spawn(async move { axum::serve(listener, app).await });
            FakeCollector { url, seen, advertise, refuse_zstd, old_release, _runtime: runtime }
        }

        fn encodings(&self) -> Vec<Option<String>> {
            self.seen.lock().unwrap().iter().map(|(e, _)| e.clone()).collect()
        }
    }

    #[test]
    fn batches_are_compressed_only_after_the_collector_said_it_reads_zstd() {
        let c = FakeCollector::start();
        let uplink = HttpUplink::new(&c.url, "t".into(), None, None).unwrap();
        let batch = b"{\"a\":1}\n{\"a\":2}\n";
        for _ in 0..3 {
            uplink.deliver(batch, 2).unwrap();
        }
        let zstd = Some("zstd".to_string());
        assert_eq!(c.encodings(), vec![None, zstd.clone(), zstd.clone()], "the first batch is plain, then zstd");
        assert!(c.seen.lock().unwrap().iter().all(|(_, body)| body == batch), "every batch arrives as sent");

        // A collector that stops reading zstd (415): the batch is sent again at once, plain, and
        // so is the next one until it says it reads zstd again.
        c.refuse_zstd.store(true, Ordering::Relaxed);
        c.advertise.store(false, Ordering::Relaxed);
        uplink.deliver(batch, 2).unwrap();
        uplink.deliver(batch, 2).unwrap();
        assert_eq!(c.encodings()[3..], [zstd.clone(), None, None]);

        // An older collector never says it: never compressed.
        let old = FakeCollector::start();
        old.advertise.store(false, Ordering::Relaxed);
        let uplink = HttpUplink::new(&old.url, "t".into(), None, None).unwrap();
        for _ in 0..3 {
            uplink.deliver(batch, 2).unwrap();
        }
        assert_eq!(old.encodings(), vec![None, None, None]);

        // `compression = "none"`: never compressed either.
        let c = FakeCollector::start();
        let uplink = HttpUplink::new(&c.url, "t".into(), None, None).unwrap().compressing(false);
        uplink.deliver(batch, 2).unwrap();
        uplink.deliver(batch, 2).unwrap();
        assert_eq!(c.encodings(), vec![None, None]);
    }

    #[test]
    fn after_a_failed_delivery_the_next_batch_goes_uncompressed() {
        let c = FakeCollector::start();
        let uplink = HttpUplink::new(&c.url, "t".into(), None, None).unwrap();
        uplink.deliver(b"{}\n", 1).unwrap();
        assert!(uplink.zstd_heard.load(Ordering::Relaxed));
        // The same uplink pointed at nothing: the failure forgets what the collector said.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dead = HttpUplink::new(&format!("http://127.0.0.1:{port}"), "t".into(), None, None).unwrap();
        dead.zstd_heard.store(true, Ordering::Relaxed);
        assert!(dead.deliver(b"{}\n", 1).is_err());
        assert!(!dead.zstd_heard.load(Ordering::Relaxed), "a reconnect must hear Accept-Encoding: zstd again");
    }

    #[test]
    fn an_old_collector_refusing_newer_records_is_a_refusal_not_an_outage() {
        let c = FakeCollector::start();
        let uplink = HttpUplink::new(&c.url, "t".into(), None, None).unwrap();
        uplink.deliver(b"{\"v\":2}\n", 1).unwrap();
        assert!(uplink.zstd_heard.load(Ordering::Relaxed));
        // The collector is replaced by one of the release before compression and SIP decisions
        // (still advertising zstd, so the guard line's 409 is what sends the batch plain).
        c.old_release.store(true, Ordering::Relaxed);
        uplink.deliver(b"{\"v\":2}\n", 1).unwrap();
        let zstd = Some("zstd".to_string());
        assert_eq!(c.encodings()[1..], [zstd.clone(), None], "the guard line's 409: sent again plain, stored");
        // Records of format 3: refused uncompressed too, and said so.
        uplink.zstd_heard.store(true, Ordering::Relaxed);
        let err = uplink.deliver(b"{\"v\":2}\n{\"v\":3}\n", 2).unwrap_err();
        assert_eq!(c.encodings()[3..], [zstd, None]);
        let DeliveryError::RefusedNewer(text) = err else { panic!("{err:?}") };
        assert!(text.contains("records of a newer release") && text.contains("409 conflict"), "{text}");
        assert!(
            c.seen.lock().unwrap().iter().all(|(_, body)| body != b"{\"v\":2}\n{\"v\":3}\n"),
            "nothing of it stored"
        );
        // Upgraded: stored.
        c.old_release.store(false, Ordering::Relaxed);
        uplink.deliver(b"{\"v\":2}\n{\"v\":3}\n", 2).unwrap();
    }
}
