//! RFC 9457 problem details. Every error leaves the server in this one shape, with a
//! stable snake_case `code` for programs and the request id for support.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stormcom_app::AppError;
use stormcom_domain::FieldError;
use utoipa::ToSchema;

use crate::request_id;

#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`.
    pub code: &'static str,
    pub request_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", "no such resource")
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Unprocessable content", detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "the server failed to handle the request; quote the request id when reporting it",
        )
    }

    /// Tells the client when to try again (`Retry-After`, seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    #[must_use]
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound => Self::not_found(),
            AppError::Validation(errors) => {
                let mut e = Self::unprocessable("validation_failed", "the request has invalid fields; see errors");
                e.errors = errors.0;
                e
            }
            AppError::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, "Conflict", message),
            AppError::BadRequest { code, message } => Self::bad_request(code, message),
            AppError::Unprocessable { code, message } => Self::unprocessable(code, message),
            AppError::InsufficientStock { available } => Self::new(
                StatusCode::CONFLICT,
                "insufficient_stock",
                "Insufficient stock",
                format!("the change would leave less than zero available; {available} available"),
            ),
            AppError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                "a valid bearer token is required",
            ),
            AppError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "the email or password is wrong",
            ),
            AppError::Forbidden(permission) => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                format!("this action needs the {permission} permission"),
            ),
            AppError::Refused(reason) => Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", reason),
            AppError::StepUpRequired => Self::new(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "Step-up required",
                "this action needs a second-factor step-up in the last few minutes (POST /v1/auth/step-up)",
            ),
            AppError::MfaRequired => Self::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "Second factor required",
                "this account has TOTP enabled: send totp_code or recovery_code",
            ),
            AppError::InvalidMfaCode => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "Invalid second factor",
                "the code is wrong, expired or was already used",
            ),
            AppError::ImportFile(e) => Self::unprocessable("invalid_import_file", e.to_string()),
            AppError::TooManyAttempts { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    "Too many attempts",
                    "too many failed attempts; retry after the time in Retry-After",
                );
                e.retry_after = Some(retry_after_secs);
                e
            }
            e @ AppError::QuotaExceeded { .. } => {
                Self::new(StatusCode::FORBIDDEN, "quota_exceeded", "Quota exceeded", e.to_string())
            }
            AppError::Unavailable => {
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Service unavailable",
                    "the server is busy; retry shortly",
                );
                e.retry_after = Some(1);
                e
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
            request_id: request_id::current().unwrap_or_default(),
            errors: self.errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
