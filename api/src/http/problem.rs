//! `application/problem+json` (RFC 9457) for the admin API. Each error has one
//! stable `type` URI; the README's error catalogue lists them all.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use orgsync_domain::error::ConflictCode;
use orgsync_domain::sync::ConfirmationNeeded;
use orgsync_domain::Error;
use serde::Serialize;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://orgsync.dev/problems/";

/// What an admin handler answers.
pub type Answer = Result<HttpResponse, ApiError>;

/// Everything the admin API can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("no such route")]
    RouteNotFound,
    /// A client over its budget of requests; retry after this many seconds.
    #[error("too many requests from this address; retry in {0} s")]
    TooManyRequests(u64),
}

#[derive(Serialize)]
struct InvalidParam<'a> {
    name: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    invalid_params: Vec<InvalidParam<'a>>,
    /// For `confirmation-required`: the token and what the change would do, org by org.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    confirmation: Option<&'a ConfirmationNeeded>,
}

impl ApiError {
    /// Turns actix's JSON body errors into problems (never actix's plain text).
    pub fn from_json_error(err: &actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match err {
            J::OverflowKnownLength { .. } | J::Overflow { .. } => {
                Self::PayloadTooLarge("the request body is too large".into())
            }
            J::ContentType => Self::BadRequest("the body must be application/json".into()),
            J::Deserialize(e) if e.is_data() => Self::Domain(Error::invalid("body", e.to_string())),
            other => Self::BadRequest(format!("malformed JSON body: {other}")),
        }
    }

    /// The problem's short code (the last segment of its `type`), title and status.
    fn describe(&self) -> (&'static str, &'static str, StatusCode) {
        match self {
            Self::Domain(e) => match e {
                Error::NotFound { .. } => ("not-found", "Not found", StatusCode::NOT_FOUND),
                Error::Forbidden(_) => ("forbidden", "Forbidden", StatusCode::FORBIDDEN),
                Error::Invalid { .. } => (
                    "validation",
                    "Invalid request",
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
                Error::Conflict { code, .. } => {
                    (code.as_str(), conflict_title(*code), StatusCode::CONFLICT)
                }
                Error::ConfirmationRequired(_) => (
                    ConflictCode::ConfirmationRequired.as_str(),
                    conflict_title(ConflictCode::ConfirmationRequired),
                    StatusCode::CONFLICT,
                ),
                Error::PreconditionFailed(_) => (
                    "precondition-failed",
                    "Precondition failed",
                    StatusCode::PRECONDITION_FAILED,
                ),
                Error::Unavailable(_) => (
                    "unavailable",
                    "Service unavailable",
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                Error::Busy(_) => ("busy", "Server busy", StatusCode::SERVICE_UNAVAILABLE),
                Error::Internal(_) => (
                    "internal",
                    "Internal error",
                    StatusCode::INTERNAL_SERVER_ERROR,
                ),
            },
            Self::Unauthorized(_) => ("unauthorized", "Unauthorized", StatusCode::UNAUTHORIZED),
            Self::BadRequest(_) => ("bad-request", "Bad request", StatusCode::BAD_REQUEST),
            Self::PayloadTooLarge(_) => (
                "payload-too-large",
                "Payload too large",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            Self::RouteNotFound => ("not-found", "Not found", StatusCode::NOT_FOUND),
            Self::TooManyRequests(_) => (
                "too-many-requests",
                "Too many requests",
                StatusCode::TOO_MANY_REQUESTS,
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.describe().2
    }

    fn error_response(&self) -> HttpResponse {
        let (code, title, status) = self.describe();
        let detail = match self {
            Self::Domain(Error::Internal(cause)) => {
                tracing::error!(error = ?cause, "internal error");
                "an unexpected error occurred; it has been logged".to_owned()
            }
            Self::Domain(Error::Unavailable(cause)) => {
                tracing::warn!(error = %cause, "dependency unavailable");
                "a backing service is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let invalid_params = match self {
            Self::Domain(Error::Invalid { field, message }) => vec![InvalidParam {
                name: field,
                reason: message,
            }],
            _ => Vec::new(),
        };
        let body = Problem {
            kind: format!("{PROBLEM_BASE}{code}"),
            title,
            status: status.as_u16(),
            detail,
            invalid_params,
            confirmation: match self {
                Self::Domain(Error::ConfirmationRequired(needed)) => Some(needed),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let Self::TooManyRequests(seconds) = self {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(body)
    }
}

/// The title of each conflict's problem type (its slug is the code's own).
fn conflict_title(code: ConflictCode) -> &'static str {
    match code {
        ConflictCode::AlreadyExists => "Already exists",
        ConflictCode::HasChildren => "Organization has children",
        ConflictCode::HasMembers => "Organization has members",
        ConflictCode::DirectorySyncDisabled => "Directory sync is off",
        ConflictCode::NoDirectory => "No directory reaches this organization",
        ConflictCode::ConfirmationRequired => "Confirmation required",
        ConflictCode::GovernedByDirectory => "Governed by the directory",
        ConflictCode::SyncInProgress => "A sync is changing this organization",
        ConflictCode::LimitReached => "Limit reached",
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
