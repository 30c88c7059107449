//! Extractors: the authenticated admin, the organization an admin call is
//! about, the other ids of admin paths, and the span fields handlers add.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest};
use orgsync_domain::auth::Principal;
use orgsync_domain::directory::ConnectionId;
use orgsync_domain::membership::MemberId;
use orgsync_domain::org::OrgId;
use serde::Deserialize;

use super::problem::ApiError;
use crate::auth::AuthError;
use crate::state::AppState;

/// The caller of the admin API, from its `Authorization: Bearer` token.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| authenticate(req, &state)))
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Domain(anyhow::anyhow!("application state missing").into()))
}

fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Admin, ApiError> {
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
    // Counted once the token is known good: no one spends a scope's budget without its token.
    state
        .admin_rate_limit
        .admit(&principal)
        .map_err(ApiError::TooManyRequests)?;
    Ok(Admin(principal))
}

/// Records the organization a request is about on the request's span.
pub fn record_org(org: &uuid::Uuid) {
    tracing::Span::current().record("org_id", tracing::field::display(org));
}

/// An admin call about the organization the path's `{org}` names: the
/// application's state, the authenticated caller and that organization,
/// already recorded on the request's span. Whether the caller may act on it
/// is the use case's decision, because the action decides it (reading needs
/// less than deleting).
pub struct OrgCall {
    pub state: web::Data<AppState>,
    pub caller: Principal,
    pub org: OrgId,
}

impl FromRequest for OrgCall {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| {
            let Admin(caller) = authenticate(req, &state)?;
            // Before any extractor after this one reads the body: a
            // read-only token is told no, not whether its body would do.
            if !matches!(*req.method(), Method::GET | Method::HEAD) {
                caller.require_writer()?;
            }
            // An id that is not a UUID names no route, as for any other path.
            let org = req
                .match_info()
                .get("org")
                .and_then(|raw| raw.parse::<uuid::Uuid>().ok())
                .map(OrgId)
                .ok_or(ApiError::RouteNotFound)?;
            record_org(&org.0);
            Ok(Self { state, caller, org })
        }))
    }
}

/// The `{conn}` of a path under an organization.
#[derive(Debug, Deserialize)]
pub struct ConnPath {
    pub conn: ConnectionId,
}

/// The `{member}` of a path under an organization.
#[derive(Debug, Deserialize)]
pub struct MemberPath {
    pub member: MemberId,
}

/// The `{run}` of a path under an organization.
#[derive(Debug, Deserialize)]
pub struct RunPath {
    pub run: orgsync_domain::sync::RunId,
}

/// A JSON body a caller may leave out. Only an absent (or empty) body is
/// `None`: anything sent is read as `web::Json` reads it, with its content
/// type, size limit and errors. `Option<web::Json<T>>` would read a body it
/// cannot parse (a misspelt field, a wrong value, a form-encoded `curl -d`)
/// as no body at all, and the defaults of a sync are the widest it has.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = futures::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if body_is_absent(req) {
            return Box::pin(ready(Ok(Self(None))));
        }
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(Self(Some(json.await?.into_inner()))) })
    }
}

/// No body was sent: no length and no chunked transfer, or a length of zero.
fn body_is_absent(req: &HttpRequest) -> bool {
    let headers = req.headers();
    match headers.get(header::CONTENT_LENGTH) {
        Some(length) => length.to_str().is_ok_and(|l| l.trim() == "0"),
        None => !headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Why a body could not be read whole.
pub enum BodyError {
    /// It is longer than the limit (the rest is not read).
    TooLarge,
    /// The connection failed or sent a malformed body.
    Broken(actix_web::error::PayloadError),
}

/// Reads a request body of at most `limit` bytes, for handlers that take
/// their body raw and answer its errors in their own format (SCIM errors,
/// or problem documents where actix's extractors answer plain text).
pub async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, BodyError> {
    use futures::StreamExt;
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(BodyError::Broken)?;
        if bytes.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
