//! The one error body of tollgate's APIs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable machine-readable label. Clients branch on this, never on
/// [`ErrorBody::message`]. Serialised in `snake_case` (`"not_found"`); a code this build does
/// not know (from a newer peer) decodes as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No or an unknown credential (HTTP 401).
    Unauthenticated,
    /// The credential is valid but its role may not do this (HTTP 403).
    Forbidden,
    /// The request is malformed: a missing or bad parameter, undecodable JSON (HTTP 400).
    BadRequest,
    /// The thing named does not exist (HTTP 404).
    NotFound,
    /// The feature is not configured on this server (e.g. SRP without `[srp]`) (HTTP 404).
    NotConfigured,
    /// The state does not allow it now: a refused Director action, a busy lock (HTTP 409).
    Conflict,
    /// The body is larger than the route accepts (HTTP 413).
    TooLarge,
    /// The content is well-formed but invalid; `details` says where (HTTP 422).
    Invalid,
    /// The body's `Content-Encoding` is not one the route reads (HTTP 415; the answer's
    /// `Accept-Encoding` says which it reads).
    UnsupportedMediaType,
    /// Too many attempts; try again later (HTTP 429).
    TooManyRequests,
    /// A destructive request without the explicit confirmation it needs (HTTP 428), such as a
    /// policy uninstall without `confirm: "every call is allowed"`.
    ConfirmationRequired,
    /// The peer speaks an API version too far from ours (HTTP 409).
    IncompatibleVersion,
    /// No room left to keep it (HTTP 507).
    InsufficientStorage,
    /// This server is not in the role that answers this (e.g. a standby manager) (HTTP 503).
    Unavailable,
    /// A server this one asked on the caller's behalf (an agent, the mate) failed or did not
    /// answer (HTTP 502).
    Upstream,
    /// A fault of the server (HTTP 500).
    Internal,
    /// A code this build does not know (sent by a newer release).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The HTTP status a server answers with for this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::BadRequest => 400,
            ErrorCode::NotFound | ErrorCode::NotConfigured => 404,
            ErrorCode::Conflict | ErrorCode::IncompatibleVersion => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Invalid => 422,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::ConfirmationRequired => 428,
            ErrorCode::InsufficientStorage => 507,
            ErrorCode::Unavailable => 503,
            ErrorCode::Upstream => 502,
            ErrorCode::Internal | ErrorCode::Other => 500,
        }
    }

    /// The code a client assumes for an error answer without a body it can read (a proxy's
    /// page, an older release's plain-text answer), from the HTTP status alone.
    pub fn from_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::TooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::Invalid,
            428 => ErrorCode::ConfirmationRequired,
            429 => ErrorCode::TooManyRequests,
            502 => ErrorCode::Upstream,
            503 => ErrorCode::Unavailable,
            507 => ErrorCode::InsufficientStorage,
            _ => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde label, so logs and bodies say the same word.
        let label = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(String::from));
        f.write_str(label.as_deref().unwrap_or("other"))
    }
}

/// Where a problem is: a file (as the operator named it), a 1-based line when known, and the
/// dotted path of the field at fault (`rule[2].source`, `spool.segment_mb`). The same shape as
/// a policy diagnostic, so configuration and policy errors read alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// File the problem is in, or empty.
    #[serde(default)]
    pub file: String,
    /// 1-based line, when known.
    #[serde(default)]
    pub line: Option<usize>,
    /// Dotted path of the field at fault, or empty.
    #[serde(default)]
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

/// The body of every error answer of tollgate's APIs:
/// `{"code": "not_found", "message": "...", "details": [...]}`.
///
/// `error` repeats `message` for clients of releases that read `{"error": "..."}` (the body
/// before this contract); it is written, never needed when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable label clients branch on.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
    /// Where, when the problem is in submitted content (every problem, not only the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
    /// `message` again, for older clients.
    #[serde(default, skip_deserializing)]
    error: String,
}

impl ErrorBody {
    /// An error body without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        let message = message.into();
        ErrorBody { code, error: message.clone(), message, details: Vec::new() }
    }

    /// This body with `details`.
    pub fn with_details(mut self, details: Vec<Detail>) -> ErrorBody {
        self.details = details;
        self
    }

    /// Decodes an error answer's body; a body that is not an [`ErrorBody`] (an older release's
    /// `{"error": "..."}`, plain text, nothing) still gives a code (from `status`) and the text.
    pub fn from_response(status: u16, body: &[u8]) -> ErrorBody {
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            return ErrorBody::new(parsed.code, parsed.message).with_details(parsed.details);
        }
        #[derive(Deserialize)]
        struct Legacy {
            error: String,
        }
        let message = match serde_json::from_slice::<Legacy>(body) {
            Ok(legacy) => legacy.error,
            Err(_) => String::from_utf8_lossy(body).trim().chars().take(500).collect(),
        };
        let message = if message.is_empty() { format!("HTTP {status} without details") } else { message };
        ErrorBody::new(ErrorCode::from_status(status), message)
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for d in &self.details {
            write!(f, "\n  ")?;
            if !d.file.is_empty() {
                match d.line {
                    Some(line) => write!(f, "{}:{line}: ", d.file)?,
                    None => write!(f, "{}: ", d.file)?,
                }
            }
            if !d.field.is_empty() {
                write!(f, "{}: ", d.field)?;
            }
            write!(f, "{}", d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorBody {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_round_trips_and_carries_the_legacy_error_field() {
        let body = ErrorBody::new(ErrorCode::NotConfigured, "SRP is not configured").with_details(vec![Detail {
            file: "tollgate.toml".into(),
            line: Some(3),
            field: "srp".into(),
            message: "missing".into(),
        }]);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["code"], "not_configured");
        assert_eq!(json["error"], "SRP is not configured", "older clients read `error`");
        let back: ErrorBody = serde_json::from_value(json).unwrap();
        assert_eq!(ErrorBody::from_response(404, &serde_json::to_vec(&body).unwrap()), body);
        assert_eq!(back.code, ErrorCode::NotConfigured);
        assert_eq!(back.details, body.details);
    }

    #[test]
    fn an_unknown_code_from_a_newer_release_decodes_as_other() {
        let b = ErrorBody::from_response(418, br#"{"code":"teapot","message":"short and stout"}"#);
        assert_eq!(b.code, ErrorCode::Other);
        assert_eq!(b.message, "short and stout");
    }

    #[test]
    fn an_older_releases_error_body_and_plain_text_still_give_a_code() {
        let b = ErrorBody::from_response(404, br#"{"error":"no such version"}"#);
        assert_eq!((b.code, b.message.as_str()), (ErrorCode::NotFound, "no such version"));
        let b = ErrorBody::from_response(503, b"upstream down\n");
        assert_eq!((b.code, b.message.as_str()), (ErrorCode::Unavailable, "upstream down"));
        let b = ErrorBody::from_response(500, b"");
        assert_eq!(b.message, "HTTP 500 without details");
    }

    #[test]
    fn every_code_maps_to_a_status_that_maps_back_to_a_code_of_the_same_class() {
        use ErrorCode::*;
        for code in [
            Unauthenticated,
            Forbidden,
            BadRequest,
            NotFound,
            NotConfigured,
            Conflict,
            TooLarge,
            Invalid,
            TooManyRequests,
            ConfirmationRequired,
            IncompatibleVersion,
            InsufficientStorage,
            Unavailable,
            Upstream,
            Internal,
            Other,
        ] {
            let status = code.status();
            assert_eq!(ErrorCode::from_status(status).status(), status, "{code}");
            let label = code.to_string();
            assert_eq!(serde_json::from_value::<ErrorCode>(label.clone().into()).unwrap(), code, "{label}");
        }
    }
}
