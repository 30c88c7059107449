//! SCIM errors (RFC 7644 §3.12): `status` as a string, `scimType`, and
//! `application/scim+json`, for every failure on SCIM routes.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use orgsync_domain::directory::ScimError;
use serde_json::json;

use super::SCIM_CONTENT_TYPE;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ScimApiError(#[from] pub ScimError);

impl ScimApiError {
    pub fn not_found(detail: &str) -> Self {
        Self(ScimError::NotFound(detail.into()))
    }
}

impl From<orgsync_domain::Error> for ScimApiError {
    fn from(err: orgsync_domain::Error) -> Self {
        Self(err.into())
    }
}

/// The HTTP status and RFC 7644 `scimType` of each failure.
fn status_and_type(err: &ScimError) -> (StatusCode, Option<&'static str>) {
    match err {
        ScimError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
        ScimError::NotFound(_) => (StatusCode::NOT_FOUND, None),
        ScimError::Uniqueness(_) => (StatusCode::CONFLICT, Some("uniqueness")),
        ScimError::InvalidValue(_) => (StatusCode::BAD_REQUEST, Some("invalidValue")),
        ScimError::InvalidSyntax(_) => (StatusCode::BAD_REQUEST, Some("invalidSyntax")),
        ScimError::InvalidFilter(_) => (StatusCode::BAD_REQUEST, Some("invalidFilter")),
        ScimError::InvalidPath(_) => (StatusCode::BAD_REQUEST, Some("invalidPath")),
        ScimError::NoTarget(_) => (StatusCode::BAD_REQUEST, Some("noTarget")),
        ScimError::Mutability(_) => (StatusCode::BAD_REQUEST, Some("mutability")),
        ScimError::TooMany(_) => (StatusCode::BAD_REQUEST, Some("tooMany")),
        ScimError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
        ScimError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
        ScimError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, None),
        ScimError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        ScimError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

impl ResponseError for ScimApiError {
    fn status_code(&self) -> StatusCode {
        status_and_type(&self.0).0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, scim_type) = status_and_type(&self.0);
        let detail = match &self.0 {
            ScimError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error on a SCIM route");
                "an unexpected error occurred; it has been logged".to_owned()
            }
            ScimError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable on a SCIM route");
                "the service is temporarily unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        match &self.0 {
            ScimError::RateLimited {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            // As the admin API answers: IdPs that honour it retry after a
            // pause rather than at once, while a dependency recovers.
            ScimError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.content_type(SCIM_CONTENT_TYPE);
        response.body(error_body(status, scim_type, &detail))
    }
}

/// An RFC 7644 §3.12 error document.
fn error_body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> String {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_str(),
        "detail": detail,
    });
    if let Some(scim_type) = scim_type {
        body["scimType"] = json!(scim_type);
    }
    body.to_string()
}

/// A SCIM error answer for a failure that is the route's, not a
/// [`ScimError`]'s (a method or feature this service does not offer).
pub(super) fn unsupported(status: StatusCode, detail: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(SCIM_CONTENT_TYPE)
        .body(error_body(status, None, detail))
}

impl actix_web::Responder for ScimApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
