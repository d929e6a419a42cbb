//! The one error type of every windsock HTTP API, and its one JSON shape.
//!
//! Handlers return `Result<Json<T>, ApiError>`. Services keep their own domain errors (no HTTP
//! types in service logic); each API module maps them into an [`ApiError`] with the status
//! that fits. Every error answer, from a handler, an extractor or the [`super::harden`]
//! safety net, has the body [`ErrorBody`].

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error answer: what is wrong, in words, and optionally its particulars
/// (the parameter, the value, the limit, what was expected).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, in one sentence for people.
    pub error: String,
    /// Particulars a program can use: `parameter`, `value`, `limit`, `expected`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

/// An error answer: a status and an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                detail: None,
            },
        }
    }

    /// 400: the request is wrong; the message says what and where.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// 401: a changing request without the right token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token: send `Authorization: Bearer <token>`",
        )
    }

    /// 404: the thing named does not exist.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }

    /// 503: the service cannot answer now (a dependency is down, the disk is full).
    pub fn unavailable(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }

    /// 500: something failed inside. The cause is logged here, never sent: it may name
    /// paths, internals or, through a library's message, a secret.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error answering a request");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }

    /// Adds particulars a program can use (`{"parameter": "limit", "limit": 1000}`).
    pub fn with_detail(mut self, detail: impl Serialize) -> Self {
        self.body.detail = serde_json::to_value(detail).ok();
        self
    }

    pub fn message(&self) -> &str {
        &self.body.error
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.body.error)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!("invalid JSON body: {}", rejection.body_text()),
        )
    }
}
