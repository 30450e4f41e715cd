//! Policy uploads: a `policy` part (the TOML file) and its number lists, either as
//! `list:NAME` parts (the API) or as `lists` file parts named `NAME.txt` (the web form). List
//! parts are streamed to temporary files, so lists of millions of numbers do not sit in
//! memory. Other text parts (form buttons) are returned by name.
//!
//! Limits, checked while the body streams in (an oversized part is refused as soon as it
//! passes its limit, before the rest is read): the whole body [`crate::limits::MAX_UPLOAD`] (the
//! route's body limit), the policy text [`MAX_POLICY`], every other text part [`MAX_FIELD`], at most
//! [`MAX_LISTS`] lists and [`MAX_FIELDS`] other parts. A web form's CSRF token must come
//! before anything is read or stored.

use std::collections::BTreeMap;
use std::io::Write;

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use tempfile::TempDir;
use tollgate_policy::PolicySource;

use crate::security::tokens_match;
use crate::session::CSRF_FIELD;

/// Largest policy text: rules are short; numbers belong in lists.
pub(crate) const MAX_POLICY: usize = 16 << 20;
/// Largest other text part (a button value, a CSRF token).
pub(crate) const MAX_FIELD: usize = 64 << 10;
/// Most lists in one upload.
pub(crate) const MAX_LISTS: usize = 1000;
/// Most other text parts in one upload.
pub(crate) const MAX_FIELDS: usize = 32;

/// A received policy with its lists on disk (deleted when dropped).
pub(crate) struct Upload {
    pub(crate) source: PolicySource,
    /// Other text fields of the form (e.g. which button was pressed).
    pub(crate) fields: BTreeMap<String, String>,
    _dir: TempDir,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// A part passed its size limit.
    #[error("part `{part}` is larger than {} MiB{hint}", limit >> 20, hint = if part == "policy" { " (the limit of a policy file; numbers belong in lists, which are not limited this way)" } else { "" })]
    TooLarge {
        /// The part's name.
        part: String,
        /// Its limit in bytes.
        limit: usize,
    },
    /// More parts than allowed.
    #[error("too many {what} in one upload (at most {limit})")]
    TooMany {
        /// Which parts.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A web form without its session's CSRF token first.
    #[error("the form's security token is missing or belongs to another session (reload the page)")]
    Csrf,
    /// The body is not a readable multipart body (or passed the body limit).
    #[error("{text}")]
    Multipart {
        /// The status axum gives the error (413 past the body limit).
        status: StatusCode,
        /// What went wrong.
        text: String,
    },
    /// Anything else wrong with the upload.
    #[error("{0}")]
    Bad(String),
}

impl UploadError {
    /// The HTTP status of this refusal.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Csrf => StatusCode::FORBIDDEN,
            UploadError::Multipart { status, .. } => *status,
            UploadError::TooMany { .. } | UploadError::Bad(_) => StatusCode::BAD_REQUEST,
        }
    }
}

fn multipart_error(context: &str, e: MultipartError) -> UploadError {
    UploadError::Multipart { status: e.status(), text: format!("{context}: {}", e.body_text()) }
}

fn valid_list_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

async fn store_list(mut field: Field<'_>, dir: &TempDir, list: &str) -> Result<std::path::PathBuf, UploadError> {
    let path = dir.path().join(format!("{list}.txt"));
    let storing = |e: std::io::Error| UploadError::Bad(format!("storing list {list}: {e}"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(storing)?);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&format!("reading list {list}"), e))? {
        file.write_all(&chunk).map_err(storing)?;
    }
    file.flush().map_err(storing)?;
    Ok(path)
}

/// Reads a part into memory, refusing it as soon as it passes `limit` bytes.
async fn read_limited(field: &mut Field<'_>, part: &str, limit: usize) -> Result<Vec<u8>, UploadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&format!("reading part `{part}`"), e))? {
        if bytes.len() + chunk.len() > limit {
            return Err(UploadError::TooLarge { part: part.to_string(), limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn read_text(field: &mut Field<'_>, part: &str, limit: usize) -> Result<String, UploadError> {
    String::from_utf8(read_limited(field, part, limit).await?)
        .map_err(|_| UploadError::Bad(format!("part `{part}` is not UTF-8 text")))
}

/// Reads an upload; the error says what is missing or wrong. `csrf`: the token a web form
/// must carry in a `csrf` part before any other part (`None` for API callers with a token).
pub(crate) async fn read_upload(mut multipart: Multipart, csrf: Option<&str>) -> Result<Upload, UploadError> {
    let dir = tempfile::tempdir().map_err(|e| UploadError::Bad(format!("cannot create a temporary directory: {e}")))?;
    let mut csrf_checked = csrf.is_none();
    let mut policy: Option<(String, String)> = None;
    let mut lists = BTreeMap::new();
    let mut fields = BTreeMap::new();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| multipart_error("bad multipart body", e))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == CSRF_FIELD {
            let sent = read_text(&mut field, CSRF_FIELD, MAX_FIELD).await?;
            match csrf {
                Some(expected) if !tokens_match(&sent, expected) => return Err(UploadError::Csrf),
                _ => csrf_checked = true,
            }
            continue;
        }
        if !csrf_checked {
            return Err(UploadError::Csrf);
        }
        if name == "policy" {
            let file = field.file_name().filter(|f| !f.is_empty()).unwrap_or("policy.toml").to_string();
            let bytes = read_limited(&mut field, "policy", MAX_POLICY).await?;
            if bytes.is_empty() {
                continue;
            }
            let text = String::from_utf8(bytes)
                .map_err(|_| UploadError::Bad(format!("{file}: the policy is not UTF-8 text")))?;
            policy = Some((file, text));
        } else if let Some(list) = name.strip_prefix("list:") {
            if !valid_list_name(list) {
                return Err(UploadError::Bad(format!(
                    "bad list part name {name:?}: use list:NAME with up to 64 letters, digits, '_' or '-'"
                )));
            }
            if lists.len() >= MAX_LISTS {
                return Err(UploadError::TooMany { what: "lists", limit: MAX_LISTS });
            }
            let list = list.to_string();
            let path = store_list(field, &dir, &list).await?;
            lists.insert(list, path);
        } else if name == "lists" {
            let Some(file) = field.file_name().filter(|f| !f.is_empty()).map(String::from) else { continue };
            let list = file.rsplit_once('.').map_or(file.as_str(), |(stem, _)| stem).to_string();
            if !valid_list_name(&list) {
                return Err(UploadError::Bad(format!(
                    "list file {file:?}: name list files NAME.txt after the list they hold"
                )));
            }
            if lists.len() >= MAX_LISTS {
                return Err(UploadError::TooMany { what: "lists", limit: MAX_LISTS });
            }
            let path = store_list(field, &dir, &list).await?;
            lists.insert(list, path);
        } else {
            if fields.len() >= MAX_FIELDS {
                return Err(UploadError::TooMany { what: "form fields", limit: MAX_FIELDS });
            }
            let value = read_text(&mut field, &name, MAX_FIELD).await?;
            fields.insert(name, value);
        }
    }
    if !csrf_checked {
        return Err(UploadError::Csrf);
    }
    let (file, text) = policy.ok_or_else(|| UploadError::Bad("the upload has no `policy` file".into()))?;
    Ok(Upload { source: PolicySource::from_text(file, text, lists), fields, _dir: dir })
}
