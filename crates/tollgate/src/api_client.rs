//! A blocking client of the tollgate HTTP API, for the CLI.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tollgate_policy::Diagnostic;

/// Lists larger than this get an upload progress bar.
const PROGRESS_BYTES: u64 = 4 << 20;

/// Talks to one tollgate API.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    actor: Option<String>,
    http: Client,
}

/// Why an API call failed.
#[derive(Debug)]
pub enum ApiError {
    /// The policy was rejected; the diagnostics say why.
    Invalid(Vec<Diagnostic>),
    /// Anything else.
    Other(anyhow::Error),
}

impl ApiError {
    /// The error as one `anyhow` error (diagnostics in debug form), for commands that only
    /// report it.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ApiError::Other(e) => e,
            ApiError::Invalid(d) => anyhow!("{d:?}"),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Other(e)
    }
}

impl ApiClient {
    /// A client of the running server `target` names (its `--api`, else this configuration's
    /// API) with its `--token` (else this server's CLI token). `who` says what must be running,
    /// for the error when `--state-dir` is given instead ("SRP commands talk to a running
    /// engine").
    pub fn for_running(
        config: &crate::config::Config,
        target: &crate::cli::Target,
        who: &str,
    ) -> anyhow::Result<ApiClient> {
        if target.state_dir.is_some() {
            bail!("{who}: use --api, not --state-dir");
        }
        let base = target.api.clone().unwrap_or_else(|| config.api_url());
        ApiClient::new(&base, target.token.clone().or_else(|| config.cli_token()), target.actor.as_deref())
    }

    /// A client of `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>, actor: Option<&str>) -> anyhow::Result<Self> {
        let http = Client::builder().timeout(Duration::from_secs(600)).build()?;
        Ok(ApiClient { base: base.trim_end_matches('/').to_string(), token, actor: actor.map(String::from), http })
    }

    fn send(&self, req: RequestBuilder) -> Result<Response, ApiError> {
        let mut req = req;
        if let Some(actor) = &self.actor {
            req = req.header("x-actor", actor);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| {
            anyhow!(
                "cannot reach tollgate at {}: {e} (is `tollgate serve` running? use --state-dir to work offline)",
                self.base
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: serde_json::Value = resp.json().unwrap_or_default();
        if status.as_u16() == 422
            && let Ok(diags) = serde_json::from_value::<Vec<Diagnostic>>(body["diagnostics"].clone())
        {
            return Err(ApiError::Invalid(diags));
        }
        let message = body["error"].as_str().unwrap_or("no details").to_string();
        Err(ApiError::Other(anyhow!("tollgate answered {status}: {message}")))
    }

    /// GETs `path` and decodes JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let resp = self.send(self.http.get(format!("{}{path}", self.base)))?;
        Ok(resp.json().context("decoding the API answer")?)
    }

    /// GETs `path` as text.
    pub fn get_text(&self, path: &str) -> Result<String, ApiError> {
        let resp = self.send(self.http.get(format!("{}{path}", self.base)))?;
        Ok(resp.text().context("reading the API answer")?)
    }

    /// POSTs `body` (JSON, or nothing) to `path` and decodes JSON.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: Option<serde_json::Value>) -> Result<T, ApiError> {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.send(req)?;
        Ok(resp.json().context("decoding the API answer")?)
    }

    /// DELETEs `path` and decodes JSON.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let resp = self.send(self.http.delete(format!("{}{path}", self.base)))?;
        Ok(resp.json().context("decoding the API answer")?)
    }

    /// Uploads a policy file and the lists it names to `path` (install or check). The token is
    /// checked first, so a refusal comes before a large upload, not in the middle of it.
    pub fn upload<T: DeserializeOwned>(&self, path: &str, policy: &Path) -> Result<T, ApiError> {
        let form = policy_form(policy)?;
        self.send(self.http.get(format!("{}/api/v1/auth", self.base)))?;
        let resp = self.send(self.http.post(format!("{}{path}", self.base)).multipart(form))?;
        Ok(resp.json().context("decoding the API answer")?)
    }
}

/// The multipart form of a policy file and its lists (resolved next to the file).
pub(crate) fn policy_form(policy: &Path) -> anyhow::Result<Form> {
    let text = std::fs::read_to_string(policy).with_context(|| format!("cannot read {}", policy.display()))?;
    let file_name = policy.file_name().and_then(|n| n.to_str()).unwrap_or("policy.toml").to_string();
    let mut form = Form::new().part("policy", Part::text(text.clone()).file_name(file_name));
    // Only the [lists] table is needed here; the server validates everything else.
    let lists = match toml::from_str::<toml::Table>(&text) {
        Ok(t) => t.get("lists").and_then(|l| l.as_table()).cloned().unwrap_or_default(),
        Err(_) => Default::default(),
    };
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
