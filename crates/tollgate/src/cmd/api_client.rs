//! The CLI's client of a running tollgate's HTTP API: [`tollgate_api::BlockingClient`] with the
//! CLI's defaults (this server's API and CLI token), and the policy upload with its progress bar.
//!
//! Errors keep the server's [`ErrorCode`]: branch on [`ApiError::code`], never on the text.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::blocking::multipart::{Form, Part};
use serde::de::DeserializeOwned;
use tollgate_api::{
    API_VERSION, BlockingClient, ClientError, Detail, ErrorBody, ErrorCode, VERSION_HEADER, compatible,
};
use tollgate_policy::Diagnostic;

/// Lists larger than this get an upload progress bar.
const PROGRESS_BYTES: u64 = 4 << 20;

/// How long the CLI waits for an answer (a policy with large lists takes a while to compile).
const TIMEOUT: Duration = Duration::from_secs(600);

/// Talks to one tollgate API.
pub struct ApiClient {
    client: BlockingClient,
    token: Option<String>,
    actor: Option<String>,
    tls: Option<tollgate_api::TlsConfig>,
}

/// Why an API call failed.
#[derive(Debug)]
pub enum ApiError {
    /// The policy was rejected; the diagnostics say why.
    Invalid(Vec<Diagnostic>),
    /// Anything else; a [`ClientError`] inside when the server or the connection said so (see
    /// [`ApiError::code`]).
    Other(anyhow::Error),
}

impl ApiError {
    /// The error as one `anyhow` error, for commands that only report it: what happened (the
    /// status with its reason phrase, the server's message) and, when the code makes it clear,
    /// what to do about it.
    pub fn into_anyhow(self) -> anyhow::Error {
        let e = match self {
            ApiError::Invalid(d) => {
                let lines: Vec<String> = d.iter().map(|d| format!("  {d}")).collect();
                return anyhow::anyhow!("refused as invalid:\n{}", lines.join("\n"));
            }
            ApiError::Other(e) => e,
        };
        match e.downcast_ref::<ClientError>() {
            Some(ClientError::Unreachable { .. }) => anyhow::anyhow!("{e} (is tollgate running there? --api URL)"),
            Some(ClientError::Api { url, status, body }) => {
                let reason = reqwest::StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason());
                let hint = match body.code {
                    ErrorCode::Unauthenticated => {
                        " (the server does not accept this token: give one with --token or TOLLGATE_TOKEN)"
                    }
                    _ => "",
                };
                anyhow::anyhow!("{url} answered {status} {}: {body}{hint}", reason.unwrap_or_default())
            }
            _ => e,
        }
    }

    /// Whether nothing answered (connection refused, timed out, unknown host).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ApiError::Other(e)
            if matches!(e.downcast_ref::<ClientError>(), Some(ClientError::Unreachable { .. })))
    }

    /// The server's error code, when it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Invalid(_) => Some(ErrorCode::Invalid),
            ApiError::Other(e) => e.downcast_ref::<ClientError>().and_then(ClientError::code),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Other(e)
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::Other(anyhow::Error::new(e))
    }
}

impl ApiClient {
    /// A client of `base` (e.g. `http://127.0.0.1:8080`), naming `actor` in `x-actor`.
    #[cfg(test)]
    pub fn new(base: &str, token: Option<String>, actor: Option<&str>) -> anyhow::Result<Self> {
        ApiClient::with_tls(base, token, actor, None)
    }

    /// A client of `base` for a CLI run with `config`: an `https://` server is verified
    /// against `[tls] ca` (see [`crate::roles::tls::cli_tls`]).
    pub fn for_config(
        config: &crate::config::Config,
        base: &str,
        token: Option<String>,
        actor: Option<&str>,
    ) -> anyhow::Result<Self> {
        ApiClient::with_tls(base, token, actor, crate::roles::tls::cli_tls(config, base)?)
    }

    fn with_tls(
        base: &str,
        token: Option<String>,
        actor: Option<&str>,
        tls: Option<tollgate_api::TlsConfig>,
    ) -> anyhow::Result<Self> {
        let client = BlockingClient::with_tls(base, token.clone(), TIMEOUT, tls.as_ref())?.with_actor(actor);
        Ok(ApiClient { client, token, actor: actor.map(String::from), tls })
    }

    /// GETs `path` and decodes JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        Ok(self.client.get(path)?)
    }

    /// GETs `path` as text.
    pub fn get_text(&self, path: &str) -> Result<String, ApiError> {
        Ok(self.client.get_text(path)?)
    }

    /// DELETEs `path` and decodes JSON.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        Ok(self.client.delete(path)?)
    }

    /// Uploads a policy file and the lists it names to `path` (install or check). The server
    /// and the token are checked first, so a refusal comes before a large upload, not in the
    /// middle of it.
    pub fn upload<T: DeserializeOwned>(&self, path: &str, policy: &Path) -> Result<T, ApiError> {
        let form = policy_form(policy)?;
        self.client.get_text("/api/v1/auth")?;
        // The multipart body streams from the list files through a progress bar, which the
        // async client cannot do without a streaming body: this one request is sent blocking,
        // with the same credentials, version check and error body.
        let url = self.client.inner().url(path);
        let mut http = reqwest::blocking::Client::builder().timeout(TIMEOUT);
        if let Some(tls) = &self.tls {
            http = http.tls_backend_preconfigured(tollgate_tls::rustls::ClientConfig::clone(tls));
        }
        let http = http.build().context("HTTP client")?;
        let mut req = http.post(&url).multipart(form);
        if let Some(actor) = &self.actor {
            req = req.header("x-actor", actor);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: tollgate_api::client::transport_reason(&e),
        })?;
        if let Some(theirs) =
            resp.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
            && !compatible(API_VERSION, theirs)
        {
            return Err(ClientError::IncompatibleVersion { url, theirs, ours: API_VERSION }.into());
        }
        let status = resp.status().as_u16();
        let bytes = resp.bytes().map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: tollgate_api::client::transport_reason(&e),
        })?;
        if resp_ok(status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Decode { url, reason: e.to_string() }.into());
        }
        if let Some(diags) = invalid_policy(status, &bytes) {
            return Err(ApiError::Invalid(diags));
        }
        Err(ClientError::Api { url, status, body: ErrorBody::from_response(status, &bytes) }.into())
    }
}

fn resp_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The diagnostics of a policy refused as invalid: the error body's `details`, or the
/// `diagnostics` an older server sends.
fn invalid_policy(status: u16, body: &[u8]) -> Option<Vec<Diagnostic>> {
    #[derive(serde::Deserialize)]
    struct Refusal {
        #[serde(default)]
        code: Option<ErrorCode>,
        #[serde(default)]
        details: Vec<Detail>,
        #[serde(default)]
        diagnostics: Option<Vec<Diagnostic>>,
    }
    let r: Refusal = serde_json::from_slice(body).ok()?;
    if let Some(d) = r.diagnostics {
        return Some(d);
    }
    let invalid = r.code == Some(ErrorCode::Invalid) || (r.code.is_none() && status == 422);
    (invalid && !r.details.is_empty()).then(|| {
        r.details
            .into_iter()
            .map(|d| Diagnostic { file: d.file, line: d.line, field: d.field, message: d.message })
            .collect()
    })
}

/// The multipart form of a policy file and its lists (resolved next to the file).
pub(crate) fn policy_form(policy: &Path) -> anyhow::Result<Form> {
    let text = std::fs::read_to_string(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    let file_name = policy.file_name().and_then(|n| n.to_str()).unwrap_or("policy.toml").to_string();
    // Only the [lists] table is needed here (it is in the preamble, before the rules); the
    // server validates everything else.
    let lists = match toml::from_str::<toml::Table>(tollgate_policy::source::preamble(&text)) {
        Ok(t) => t.get("lists").and_then(|l| l.as_table()).cloned().unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let mut form = Form::new().part("policy", Part::text(text).file_name(file_name));
    let dir = policy.parent().unwrap_or(Path::new("."));
    for (name, value) in lists {
        let Some(declared) = value.as_str() else { bail!("{}: lists.{name} must be a file path", policy.display()) };
        let path = dir.join(declared);
        let file = File::open(&path).with_context(|| format!("cannot open list {name} ({})", path.display()))?;
        let len = file.metadata()?.len();
        let part = if len >= PROGRESS_BYTES {
            let bar = ProgressBar::new(len).with_message(format!("uploading list {name}"));
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Part::reader_with_length(bar.wrap_read(file), len)
        } else {
            Part::reader_with_length(file, len)
        };
        form = form.part(format!("list:{name}"), part.file_name(format!("{name}.txt")));
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_policies_are_read_from_the_error_body_and_from_an_older_server() {
        let new = br#"{"code":"invalid","message":"policy is invalid","details":[{"file":"p.toml","line":4,"field":"rule[0].source","message":"unknown list"}]}"#;
        let d = invalid_policy(422, new).unwrap();
        assert_eq!((d[0].file.as_str(), d[0].line, d[0].field.as_str()), ("p.toml", Some(4), "rule[0].source"));
        let old = br#"{"error":"policy is invalid; nothing was changed","diagnostics":[{"file":"p.toml","line":5,"field":"rule[0].intercept","message":"unknown intercept"}]}"#;
        assert_eq!(invalid_policy(422, old).unwrap()[0].line, Some(5));
        // Another error is not a refused policy.
        assert!(invalid_policy(401, br#"{"code":"unauthenticated","message":"no token"}"#).is_none());
        assert!(invalid_policy(500, b"oops").is_none());
    }

    #[test]
    fn a_server_that_is_not_there_says_connection_refused_and_has_no_code() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = ApiClient::new(&format!("http://127.0.0.1:{port}"), None, None).unwrap();
        let err = client.get::<serde_json::Value>("/api/v1/policy").unwrap_err();
        assert_eq!(err.code(), None);
        let text = format!("{:#}", err.into_anyhow());
        assert!(text.contains("connection refused"), "{text}");
        assert!(!text.contains("error sending request"), "{text}");
    }
}
