//! Single sign-on: a connection's SSO settings (admin API), and the sign-in
//! flow under `/sso` — `authorize` and the IdP's `callback` answer the
//! user's browser with redirects; `token` answers the product's backend.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use orgsync_domain::directory::ConnectionId;
use orgsync_domain::org::OrgId;
use orgsync_domain::service::SsoInput;
use orgsync_domain::sso::{AuthorizeRequest, CallbackParams, OidcInput, SamlInput, Target};
use orgsync_domain::Error;
use serde::Deserialize;
use serde_json::json;

use super::extract::{read_body, Admin, BodyError, ConnPath, OrgCall};
use super::problem::{Answer, ApiError};
use super::routes::Routes;
use crate::state::AppState;

pub fn table() -> Routes {
    let path = "/orgs/{org}/connections/{conn}/sso";
    Routes::new("/api/v1", "sso")
        .add(
            Method::GET,
            path,
            "A connection's SSO settings (never the client secret)",
            get_settings,
        )
        .add(
            Method::PUT,
            path,
            "Configure OIDC or SAML SSO on a connection (discovery or metadata is checked first)",
            put_settings,
        )
        .add(
            Method::DELETE,
            path,
            "Turn SSO off on a connection",
            delete_settings,
        )
}

/// The browser's side of a sign-in: no token, answers are redirects.
pub fn sign_in_table() -> Routes {
    Routes::new("", "sso")
        .public()
        .add(
            Method::GET,
            "/sso/authorize",
            "Start a sign-in: redirects to the organization's IdP",
            authorize,
        )
        .add(
            Method::GET,
            "/sso/oidc/callback",
            "The IdP's return: redirects to the product with a one-time code or an error",
            oidc_callback,
        )
        .add(
            Method::GET,
            "/sso/saml/{conn}/metadata",
            "This service's SAML SP metadata for a connection (XML)",
            saml_metadata,
        )
        .add(
            Method::POST,
            "/sso/saml/{conn}/acs",
            "The SAML IdP's POST (SAMLResponse, RelayState): redirects to the product with a one-time code or an error",
            saml_acs,
        )
}

/// The product backend's side: redeem the code with an admin or platform token.
pub fn token_table() -> Routes {
    Routes::new("", "sso").add(
        Method::POST,
        "/sso/token",
        "Redeem a sign-in's one-time code for the profile and the member",
        token,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    protocol: String,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scopes: Option<Vec<String>>,
    groups_claim: Option<String>,
    idp_metadata_xml: Option<String>,
    idp_metadata_url: Option<String>,
    idp_entity_id: Option<String>,
    idp_sso_url: Option<String>,
    idp_certificate: Option<String>,
    #[serde(default)]
    allow_idp_initiated: bool,
}

fn required(value: Option<String>, field: &str) -> Result<String, Error> {
    value.ok_or_else(|| Error::invalid(field, "required for OIDC"))
}

impl SettingsBody {
    fn into_input(self) -> Result<SsoInput, Error> {
        match self.protocol.as_str() {
            "oidc" => Ok(SsoInput::Oidc(OidcInput {
                issuer: required(self.issuer, "issuer")?,
                client_id: required(self.client_id, "client_id")?,
                client_secret: self.client_secret,
                scopes: self.scopes,
                groups_claim: self.groups_claim,
            })),
            "saml" => Ok(SsoInput::Saml(SamlInput {
                metadata_xml: self.idp_metadata_xml,
                metadata_url: self.idp_metadata_url,
                idp_entity_id: self.idp_entity_id,
                idp_sso_url: self.idp_sso_url,
                idp_certificate: self.idp_certificate,
                allow_idp_initiated: self.allow_idp_initiated,
            })),
            _ => Err(Error::invalid("protocol", "must be \"oidc\" or \"saml\"")),
        }
    }
}

async fn get_settings(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
) -> Answer {
    let config = state.sso.settings(&caller, org, path.conn).await?;
    Ok(HttpResponse::Ok().json(state.sso.view(&config)))
}

async fn put_settings(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    body: web::Json<SettingsBody>,
) -> Answer {
    let input = body.into_inner().into_input()?;
    let config = state.sso.configure(&caller, org, path.conn, input).await?;
    Ok(HttpResponse::Ok().json(state.sso.view(&config)))
}

async fn delete_settings(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
) -> Answer {
    state.sso.remove(&caller, org, path.conn).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The sign-in routes answer browsers: a bad request is a 400, whatever
/// field it names.
fn bad_request(error: Error) -> ApiError {
    match error {
        Error::Invalid { field, message } => ApiError::BadRequest(format!("{field}: {message}")),
        other => other.into(),
    }
}

fn redirect(location: &str) -> HttpResponse {
    redirect_with(StatusCode::FOUND, location)
}

fn redirect_with(status: StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        // A sign-in's URLs carry one-time values: never cached, never referred.
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    organization: Option<String>,
    connection: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

fn parse_id(raw: &str, field: &str) -> Result<uuid::Uuid, Error> {
    raw.parse()
        .map_err(|_| Error::invalid(field, "must be an id (UUID)"))
}

impl AuthorizeQuery {
    fn into_request(self) -> Result<AuthorizeRequest, Error> {
        let redirect_uri = self
            .redirect_uri
            .ok_or_else(|| Error::invalid("redirect_uri", "required"))?;
        let target = match (self.organization.as_deref(), self.connection.as_deref()) {
            (Some(org), None) => Target::Organization(OrgId(parse_id(org, "organization")?)),
            (None, Some(conn)) => Target::Connection(ConnectionId(parse_id(conn, "connection")?)),
            _ => {
                return Err(Error::invalid(
                    "organization",
                    "name exactly one of organization or connection",
                ))
            }
        };
        Ok(AuthorizeRequest {
            target,
            redirect_uri,
            state: self.state,
        })
    }
}

/// Each address gets a budget of sign-in requests (`sso.sign_ins_per_second`).
fn admit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    state
        .sso_sign_ins
        .admit(req.peer_addr().map(|addr| addr.ip()))
        .map_err(ApiError::TooManyRequests)
}

async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuthorizeQuery>,
) -> Answer {
    admit(&state, &req)?;
    let request = query.into_inner().into_request().map_err(bad_request)?;
    let location = state.sso.start(request).await.map_err(bad_request)?;
    Ok(redirect(&location))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn oidc_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Answer {
    admit(&state, &req)?;
    let q = query.into_inner();
    let outcome = state
        .sso
        .finish_oidc(CallbackParams {
            state: q.state,
            code: q.code,
            error: q.error,
            error_description: q.error_description,
        })
        .await
        .map_err(bad_request)?;
    Ok(redirect(&outcome.location()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    code: String,
}

async fn token(
    state: web::Data<AppState>,
    Admin(caller): Admin,
    body: web::Json<TokenBody>,
) -> Answer {
    match state.sso.redeem(&caller, &body.code).await {
        Ok(signed_in) => Ok(HttpResponse::Ok()
            .insert_header(CacheControl(vec![CacheDirective::NoStore]))
            .json(signed_in)),
        // OAuth 2.0's shape (RFC 6749 §5.2), as products' clients expect.
        Err(Error::Invalid { message, .. }) => Ok(HttpResponse::BadRequest().json(json!({
            "error": "invalid_grant",
            "error_description": format!("code: {message}"),
        }))),
        Err(other) => Err(other.into()),
    }
}

async fn saml_metadata(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<ConnPath>,
) -> Answer {
    admit(&state, &req)?;
    let xml = state.sso.sp_metadata(path.conn).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/samlmetadata+xml")
        .body(xml))
}

/// The largest form the ACS reads: signed responses with many attributes
/// run to tens of kilobytes; this leaves room for several times that.
const MAX_SAML_FORM: usize = 256 * 1024;

/// The ACS takes the IdP's form as bytes (a SAML response is larger than
/// actix's default form limit) and reads its two fields.
async fn saml_acs(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<ConnPath>,
    payload: web::Payload,
) -> Answer {
    admit(&state, &req)?;
    let body = read_body(payload, MAX_SAML_FORM)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::PayloadTooLarge(format!(
                "a SAML form may be at most {MAX_SAML_FORM} bytes"
            )),
            BodyError::Broken(e) => {
                ApiError::BadRequest(format!("the form could not be read: {e}"))
            }
        })?;
    let mut response = None;
    let mut relay_state = None;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "SAMLResponse" => response = Some(value.into_owned()),
            "RelayState" => relay_state = Some(value.into_owned()),
            _ => {}
        }
    }
    let response = response.ok_or_else(|| ApiError::BadRequest("SAMLResponse: missing".into()))?;
    let outcome = state
        .sso
        .finish_saml(path.conn, &response, relay_state.as_deref())
        .await
        .map_err(bad_request)?;
    // 303: the browser follows a POST's answer with a GET.
    Ok(redirect_with(StatusCode::SEE_OTHER, &outcome.location()))
}
