//! The one HTTP client of tollgate's own APIs (feature `client`).
//!
//! [`Client`] is async (the manager polls many agents at once); [`BlockingClient`] runs the
//! same client on a private current-thread runtime for the CLI and the lab. Both send the
//! bearer token and the optional `x-actor`, check the answering server's API version, decode
//! typed answers, and turn every failure into a [`ClientError`] that says what happened in an
//! operator's words ("connection refused", "the server answered 401: ...").
//!
//! TLS: [`Client::with_tls`] (and [`http_builder`] for callers with their own timeouts) hand
//! reqwest a rustls configuration made by `tollgate_tls::client_config`, which verifies the
//! server against the deployment's CA and its role and presents this process's certificate;
//! `https://` base URLs then work. Without one, reqwest's own rustls (the same aws-lc-rs
//! provider) verifies public servers against the system's roots; tollgate's servers, whose
//! certificates come from the built-in CA, need the configuration.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{API_VERSION, ErrorBody, ErrorCode, VERSION_HEADER, compatible};

/// Why a call to a tollgate API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered: connection refused, no route, DNS, timeout, TLS.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong, in words ("connection refused", "timed out").
        reason: String,
    },
    /// The server answered with an error body.
    #[error("{url} answered {status}: {body}")]
    Api {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The decoded error body (branch on `body.code`).
        body: ErrorBody,
    },
    /// The server answered with a version this build cannot work with.
    #[error("{url} speaks API version {theirs}; this build speaks {ours} (releases one apart work together)")]
    IncompatibleVersion {
        /// The URL called.
        url: String,
        /// Its version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The answer was not what the contract says.
    #[error("cannot decode the answer of {url}: {reason}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The request could not be built (a body that does not serialise, a bad URL).
    #[error("cannot build the request to {url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl ClientError {
    /// The error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.code),
            ClientError::IncompatibleVersion { .. } => Some(ErrorCode::IncompatibleVersion),
            _ => None,
        }
    }

    /// The error body, when the server answered with one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// The reason of a transport failure in an operator's words: the innermost cause
/// (`Connection refused (os error 111)` becomes `connection refused`), not reqwest's
/// "error sending request".
pub fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        innermost = s.to_string();
        source = s.source();
    }
    let lower = innermost.to_lowercase();
    for (needle, words) in [
        ("connection refused", "connection refused"),
        ("connection reset", "connection reset"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
        ("failed to lookup address", "unknown host"),
        ("dns error", "unknown host"),
    ] {
        if lower.contains(needle) {
            return words.into();
        }
    }
    innermost
}

/// A client of one tollgate server's API (`base` like `http://127.0.0.1:8080`).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    actor: Option<String>,
    http: reqwest::Client,
}

/// The rustls configuration a client speaks TLS with (`tollgate_tls::client_config`).
pub type TlsConfig = Arc<tollgate_tls::rustls::ClientConfig>;

/// A reqwest client builder speaking TLS with `tls` when given (reqwest's preconfigured-TLS
/// hook: the configuration decides the CA, the server roles accepted and the certificate
/// presented; reqwest adds nothing to it).
pub fn http_builder(tls: Option<&TlsConfig>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match tls {
        Some(config) => builder.tls_backend_preconfigured(tollgate_tls::rustls::ClientConfig::clone(config)),
        None => builder,
    }
}

impl Client {
    /// A client of `base` with a bearer `token`, waiting at most `timeout` for each answer.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Client, ClientError> {
        Client::with_tls(base, token, timeout, None)
    }

    /// A client of `base` (`https://` with `tls`) with a bearer `token`, waiting at most
    /// `timeout` for each answer, speaking TLS with `tls` (see [`http_builder`]).
    pub fn with_tls(
        base: &str,
        token: Option<String>,
        timeout: Duration,
        tls: Option<&TlsConfig>,
    ) -> Result<Client, ClientError> {
        let http = http_builder(tls)
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Request { url: base.to_string(), reason: e.to_string() })?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), token, actor: None, http })
    }

    /// A client of `base` over an HTTP client built by the caller (its own timeouts and pool
    /// settings: the manager keeps idle connections to agents shorter than their idle timeout).
    pub fn with_http(base: &str, token: Option<String>, http: reqwest::Client) -> Client {
        Client { base: base.trim_end_matches('/').to_string(), token, actor: None, http }
    }

    /// This client, naming `actor` (the person behind a CLI call) in `x-actor` for the audit log.
    pub fn with_actor(mut self, actor: Option<&str>) -> Client {
        self.actor = actor.map(String::from);
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path` with the credentials; for bodies the typed helpers do not cover
    /// (multipart, streamed uploads, NDJSON). Send it with [`Client::send`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, self.url(path));
        if let Some(actor) = &self.actor {
            req = req.header("x-actor", actor);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends `req` (built with [`Client::request`]); a success answer is returned as is, an
    /// error answer becomes [`ClientError::Api`] with its decoded body.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, ClientError> {
        let url = req
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| r.url().to_string())
            .unwrap_or_else(|| self.base.clone());
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { url: url.clone(), reason: transport_reason(&e) })?;
        if let Some(theirs) =
            resp.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
            && !compatible(API_VERSION, theirs)
        {
            return Err(ClientError::IncompatibleVersion { url, theirs, ours: API_VERSION });
        }
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(ClientError::Api { url, status: status.as_u16(), body: ErrorBody::from_response(status.as_u16(), &bytes) })
    }

    async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
        let url = resp.url().to_string();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable { url: url.clone(), reason: transport_reason(&e) })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, reason: e.to_string() })
    }

    /// GET `path`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(self.send(self.request(Method::GET, path)).await?).await
    }

    /// GET `path`, decoding the JSON answer, giving up after `timeout` (for reads that may take
    /// longer than this client's own timeout, such as Analytics over a large store).
    pub async fn get_within<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> Result<T, ClientError> {
        Self::decode(self.send(self.request(Method::GET, path).timeout(timeout)).await?).await
    }

    /// GET `path` as text.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self.send(self.request(Method::GET, path)).await?;
        let url = resp.url().to_string();
        resp.text().await.map_err(|e| ClientError::Unreachable { url, reason: transport_reason(&e) })
    }

    /// POST `body` as JSON to `path`, decoding the JSON answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        Self::decode(self.send(self.request(Method::POST, path).json(body)).await?).await
    }

    /// POST to `path` without a body, decoding the JSON answer.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(self.send(self.request(Method::POST, path)).await?).await
    }

    /// DELETE `path`, decoding the JSON answer.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(self.send(self.request(Method::DELETE, path)).await?).await
    }

    /// Decodes a success answer got through [`Client::send`].
    pub async fn json<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
        Self::decode(resp).await
    }
}

/// [`Client`] for synchronous callers (the CLI, the lab): each call runs on a private
/// current-thread runtime. Do not use it from inside an async runtime.
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl BlockingClient {
    /// A blocking client of `base` (see [`Client::new`]).
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<BlockingClient, ClientError> {
        BlockingClient::from_client(Client::new(base, token, timeout)?)
    }

    /// A blocking client of `base` speaking TLS with `tls` (see [`Client::with_tls`]).
    pub fn with_tls(
        base: &str,
        token: Option<String>,
        timeout: Duration,
        tls: Option<&TlsConfig>,
    ) -> Result<BlockingClient, ClientError> {
        BlockingClient::from_client(Client::with_tls(base, token, timeout, tls)?)
    }

    /// `client` (e.g. built with [`Client::with_http`] for its own timeouts) for synchronous
    /// callers.
    pub fn from_client(client: Client) -> Result<BlockingClient, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
            ClientError::Request { url: client.base.clone(), reason: format!("cannot start the client runtime: {e}") }
        })?;
        Ok(BlockingClient { client, runtime })
    }

    /// This client, naming `actor` in `x-actor`.
    pub fn with_actor(mut self, actor: Option<&str>) -> BlockingClient {
        self.client = self.client.with_actor(actor);
        self
    }

    /// The async client inside, to build requests [`Client::request`] does not cover.
    pub fn inner(&self) -> &Client {
        &self.client
    }

    /// Runs any future (a call of [`BlockingClient::inner`]) to completion.
    pub fn block_on<F: Future>(&self, call: F) -> F::Output {
        self.runtime.block_on(call)
    }

    /// GET `path`, decoding the JSON answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.runtime.block_on(self.client.get(path))
    }

    /// GET `path` as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        self.runtime.block_on(self.client.get_text(path))
    }

    /// POST `body` as JSON to `path`, decoding the JSON answer.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.runtime.block_on(self.client.post(path, body))
    }

    /// POST to `path` without a body, decoding the JSON answer.
    pub fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.runtime.block_on(self.client.post_empty(path))
    }

    /// DELETE `path`, decoding the JSON answer.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.runtime.block_on(self.client.delete(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_says_connection_refused() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = BlockingClient::new(&format!("http://127.0.0.1:{port}"), None, Duration::from_secs(5)).unwrap();
        let err = client.get::<serde_json::Value>("/healthz").unwrap_err();
        assert!(matches!(&err, ClientError::Unreachable { reason, .. } if reason == "connection refused"), "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
    }
}
