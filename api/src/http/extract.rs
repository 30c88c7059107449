//! Extractors: the authenticated admin, and the span fields handlers add.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use orgsync_domain::auth::Principal;

use super::problem::ApiError;
use crate::auth::AuthError;
use crate::state::AppState;

/// The caller of the admin API, from its `Authorization: Bearer` token.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Admin, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Domain(anyhow::anyhow!("application state missing").into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(AuthError::Missing)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let principal = state
        .verifier
        .verify(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    Ok(Admin(principal))
}

/// Records the organization a request is about on the request's span.
pub fn record_org(org: &uuid::Uuid) {
    tracing::Span::current().record("org_id", tracing::field::display(org));
}
