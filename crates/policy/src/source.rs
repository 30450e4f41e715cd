//! Policy file text, where its lists live, and its raw (unvalidated) TOML shape.
//!
//! The file format, `schema = 2` (schema 1 is the same without `velocity` and `concurrent`):
//!
//! ```toml
//! schema = 2
//! name = "demo"
//! timezone = "UTC"                  # default zone of time windows
//!
//! [[internal]]                      # internal number ranges -> call direction
//! name = "hq"
//! prefix = "+1212555"               # or: from = "+12125550000", to = "+12125550999"
//!
//! [lists]
//! robocallers = "lists/robocallers.txt"   # one number per line, relative to this file
//!
//! [[rule]]
//! name = "block-robocallers"
//! source = "list:robocallers"       # any | +1212* | a number | list:NAME | an array of these
//! destination = "any"
//! direction = "inbound"             # inbound | outbound | internal | transit | any | an array
//! time = { days = ["mon-fri"], hours = "09:00-17:00", zone = "America/New_York" }
//! velocity = { calls = 5, window = "60s" }   # schema 2: more than 5 calls from this caller in 60 s
//! concurrent = 10                   # schema 2: this caller already has 10 calls in progress
//! action = "terminate"              # allow | terminate | redirect
//! cause = 603                       # terminate: a SIP reject cause, or intercept = "NAME"
//! # target = "+12125550199"         # redirect: a number or a sip: URI
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Where the number lists named in a policy are read from.
#[derive(Debug, Clone)]
pub enum ListFiles {
    /// Paths in the policy are relative to this directory (the policy file's own directory).
    RelativeTo(PathBuf),
    /// Each list name maps to a file, whatever path the policy declares (stored versions,
    /// uploads).
    Named(BTreeMap<String, PathBuf>),
}

impl ListFiles {
    /// The file holding list `name`, declared in the policy as `declared`.
    pub fn resolve(&self, name: &str, declared: &str) -> Result<PathBuf, String> {
        match self {
            ListFiles::RelativeTo(dir) => Ok(dir.join(declared)),
            ListFiles::Named(map) => map
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no file was supplied for list {name:?} (declared as {declared:?})")),
        }
    }
}

/// A policy as submitted: its text, a label for messages, and its lists.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Name of the file in diagnostics (e.g. `policy.toml`).
    pub file: String,
    /// The TOML text.
    pub text: String,
    /// Where the lists are.
    pub lists: ListFiles,
}

impl PolicySource {
    /// Reads a policy file; its lists resolve relative to its directory.
    pub fn from_path(path: &Path) -> io::Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(PolicySource {
            file: path.display().to_string(),
            text,
            lists: ListFiles::RelativeTo(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }),
        })
    }

    /// A policy from text with no lists available from the file system except those named.
    pub fn from_text(file: impl Into<String>, text: impl Into<String>, lists: BTreeMap<String, PathBuf>) -> Self {
        PolicySource { file: file.into(), text: text.into(), lists: ListFiles::Named(lists) }
    }
}

/// The part of a policy file before its first `[[rule]]` section, where its `schema`, `name`,
/// `[lists]` and `[[internal]]` ranges are, when the file has the usual layout (a preamble
/// followed by rule sections only); otherwise the whole text. Reading `[lists]` from this
/// instead of the whole file spares parsing every rule (a client uploading a policy of
/// 100,000 rules needs only its list files).
pub fn preamble(text: &str) -> &str {
    match crate::sections::split(text, usize::MAX) {
        Some(split) => &text[..split.preamble_end],
        None => text,
    }
}

/// The top level of a policy file, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub(crate) schema: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) internal: Vec<Spanned<RawInternal>>,
    #[serde(default)]
    pub(crate) lists: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default, rename = "rule")]
    pub(crate) rules: Vec<Spanned<RawRule>>,
}

/// One `[[internal]]` range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInternal {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) from: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) to: Option<Spanned<String>>,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)] // documentation for operators; kept in the stored file
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    #[serde(default)]
    pub(crate) source: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(crate) destination: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(crate) direction: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(crate) time: Option<Spanned<toml::Value>>,
    /// Schema 2: `{ calls = N, window = "60s" }`.
    #[serde(default)]
    pub(crate) velocity: Option<Spanned<toml::Value>>,
    /// Schema 2: more than this many calls from the caller in progress.
    #[serde(default)]
    pub(crate) concurrent: Option<Spanned<i64>>,
    pub(crate) action: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) intercept: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) cause: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) target: Option<Spanned<String>>,
}

/// A batch of `[[rule]]` sections parsed on its own (see [`crate::sections`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuleBatch {
    #[serde(default, rename = "rule")]
    pub(crate) rules: Vec<Spanned<RawRule>>,
}

/// `spanned` with its span moved `by` bytes further into the file.
fn shift<T>(spanned: Spanned<T>, by: usize) -> Spanned<T> {
    let span = spanned.span();
    Spanned::new(span.start + by..span.end + by, spanned.into_inner())
}

impl RawRule {
    /// The rule of a batch that starts `by` bytes into the file, with its spans made relative
    /// to the start of the file (every spanned field, so every diagnostic names the right line).
    pub(crate) fn shifted(spanned: Spanned<RawRule>, by: usize) -> Spanned<RawRule> {
        let opt = |s: Option<Spanned<String>>| s.map(|s| shift(s, by));
        let val = |s: Option<Spanned<toml::Value>>| s.map(|s| shift(s, by));
        let spanned = shift(spanned, by);
        let span = spanned.span();
        let r = spanned.into_inner();
        let rule = RawRule {
            name: opt(r.name),
            description: r.description,
            enabled: r.enabled,
            source: val(r.source),
            destination: val(r.destination),
            direction: val(r.direction),
            time: val(r.time),
            velocity: val(r.velocity),
            concurrent: r.concurrent.map(|s| shift(s, by)),
            action: opt(r.action),
            intercept: opt(r.intercept),
            cause: r.cause.map(|s| shift(s, by)),
            target: opt(r.target),
        };
        Spanned::new(span, rule)
    }
}
