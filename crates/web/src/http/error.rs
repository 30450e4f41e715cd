//! [`ApiError`]: what a handler returns when it cannot answer, rendered as the one error body
//! of tollgate's APIs ([`tollgate_api::ErrorBody`]).

use axum::Json;
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
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { body: ErrorBody::new(code, message), retry_after_secs: None, close: false }
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.body.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body)).into_response();
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
}
