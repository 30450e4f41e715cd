//! [`ApiError`]: what a handler returns when it cannot answer, rendered as the one error body
//! of tollgate's APIs ([`tollgate_api::ErrorBody`]).

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_api::{Detail, ErrorBody, ErrorCode};

/// The result of a handler: `Ok(answer)` or an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answer: a stable [`ErrorCode`] (which fixes the HTTP status), a message for a
/// person, optional details (file, line, field), an optional `Retry-After`, and whether the
/// connection is closed after it (an answer sent before the request's body was read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    body: ErrorBody,
    retry_after_secs: Option<u64>,
    close: bool,
    legacy_diagnostics: bool,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            body: ErrorBody::new(code, message),
            retry_after_secs: None,
            close: false,
            legacy_diagnostics: false,
        }
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// `404 not_configured`: the feature is not set up on this server.
    pub fn not_configured(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotConfigured, message)
    }

    /// `409 conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// `413 too_large`.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::TooLarge, message)
    }

    /// `422 invalid` with every problem found.
    pub fn invalid(message: impl Into<String>, details: Vec<Detail>) -> ApiError {
        let mut e = ApiError::new(ErrorCode::Invalid, message);
        e.body = e.body.with_details(details);
        e
    }

    /// This error with `details` (where the problems are).
    pub fn with_details(mut self, details: Vec<Detail>) -> ApiError {
        self.body = self.body.with_details(details);
        self
    }

    /// `503 unavailable`.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, message)
    }

    /// `500 internal`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// This error with a `Retry-After` of `secs` seconds.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// This error, closing the connection after it: for answers sent before the request's
    /// body was read (refused or too large), so the client cannot go on streaming a body
    /// nobody reads.
    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    /// This error, also writing its details as `diagnostics`: the field CLIs of releases
    /// before [`ErrorBody`] read a rejected policy's problems from (a detail has the shape of a
    /// policy diagnostic). Readers of this release read `details`.
    pub fn with_legacy_diagnostics(mut self) -> ApiError {
        self.legacy_diagnostics = true;
        self
    }

    /// The error body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.body.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.body.code, self.body.message)
    }
}

impl std::error::Error for ApiError {}

/// Any other error is a fault of the server: `500 internal`, with its chain as the message.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::internal(format!("{e:#}"))
    }
}

/// A request axum could not read into what the handler asked for (a body that is not the
/// JSON expected, a bad query, a body past the route's limit): `400 bad_request`, or
/// `413 too_large`, with axum's explanation.
fn rejected(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(text).closing(),
        s if s.is_server_error() => ApiError::internal(text),
        _ => ApiError::bad_request(text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        rejected(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        rejected(e.status(), e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        rejected(e.status(), e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        rejected(e.status(), e.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(e: MultipartRejection) -> ApiError {
        rejected(e.status(), e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.body.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        /// The body with the details again as `diagnostics`, for older CLIs.
        #[derive(serde::Serialize)]
        struct WithDiagnostics<'a> {
            #[serde(flatten)]
            body: &'a ErrorBody,
            diagnostics: &'a [tollgate_api::Detail],
        }
        let mut response = if self.legacy_diagnostics {
            (status, Json(WithDiagnostics { body: &self.body, diagnostics: &self.body.details })).into_response()
        } else {
            (status, Json(self.body)).into_response()
        };
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_answers_with_its_codes_status_and_the_one_body() {
        let response = ApiError::conflict("a lock is held").retry_after(3).closing().into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body = ErrorBody::from_response(409, &bytes);
        assert_eq!((body.code, body.message.as_str()), (ErrorCode::Conflict, "a lock is held"));
    }

    #[tokio::test]
    async fn legacy_diagnostics_repeat_the_details_for_older_clis() {
        let detail =
            Detail { file: "p.toml".into(), line: Some(4), field: "rule[0].action".into(), message: "x".into() };
        let response = ApiError::invalid("policy is invalid", vec![detail.clone()]).with_legacy_diagnostics();
        let response = response.into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        #[derive(serde::Deserialize)]
        struct Old {
            error: String,
            diagnostics: Vec<Detail>,
        }
        let old: Old = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((old.error.as_str(), old.diagnostics), ("policy is invalid", vec![detail.clone()]));
        let body = ErrorBody::from_response(422, &bytes);
        assert_eq!((body.code, body.details), (ErrorCode::Invalid, vec![detail]));
    }
}
