//! A SCIM request whose connection has been authenticated: every SCIM
//! handler takes one, so none can forget the bearer token, the failed-auth
//! throttle or the connection's rate limit.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use orgsync_domain::directory::{ConnectionId, ResourceId, ScimError};
use orgsync_domain::scim::ResourceKind;
use serde_json::Value;

use super::resources::body;
use super::ScimApiError;
use crate::state::AppState;

pub struct ScimCall {
    pub req: HttpRequest,
    pub state: web::Data<AppState>,
    /// The connection the bearer token belongs to.
    pub conn: ConnectionId,
}

impl FromRequest for ScimCall {
    type Error = ScimApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| {
                    ScimApiError(ScimError::Internal(anyhow::anyhow!(
                        "the SCIM routes are mounted without the application state"
                    )))
                })?;
            let conn = authenticate(&req, &state).await?;
            Ok(Self { req, state, conn })
        })
    }
}

impl ScimCall {
    /// The `{id}` of `/Users/{id}` or `/Groups/{id}`. Ids are ours (UUIDs);
    /// anything else simply does not exist.
    pub fn id(&self, kind: ResourceKind) -> Result<ResourceId, ScimApiError> {
        let raw = self.req.match_info().get("id").unwrap_or_default();
        uuid::Uuid::parse_str(raw).map_err(|_| {
            let what = kind.core_schema().name;
            ScimApiError(ScimError::NotFound(format!("{what} {raw} not found")))
        })
    }

    /// The JSON body, read within the configured size limit.
    pub async fn body(&self, payload: web::Payload) -> Result<Value, ScimApiError> {
        body(payload, &self.state).await
    }

    /// What a PUT or PATCH of `/Users/{id}` or `/Groups/{id}` starts from,
    /// in the order its errors are answered: the resource, then the body.
    pub async fn write(
        &self,
        payload: web::Payload,
        kind: ResourceKind,
    ) -> Result<(ResourceId, Value), ScimApiError> {
        let id = self.id(kind)?;
        Ok((id, self.body(payload).await?))
    }

    /// The version an `If-Match` header requires, if any.
    pub fn if_match(&self) -> Option<i64> {
        super::render::if_match(&self.req)
    }

    /// This connection's SCIM base URL, as the IdP reaches it.
    pub fn base_url(&self) -> String {
        let conn = self.req.match_info().get("conn").unwrap_or_default();
        format!("{}/scim/v2/{conn}", self.state.public_url)
    }

    /// Tells the workers the directory changed, once the change committed
    /// (coalesced per connection; see `jobs::nudge`).
    pub fn directory_changed(&self) {
        self.state.nudger.nudge(self.conn);
    }
}

/// Resolves the connection of a SCIM request from its path and bearer token.
/// A malformed connection id answers 401 like a wrong token: nothing about
/// which connections exist is revealed.
async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<ConnectionId, ScimApiError> {
    let unauthorized = || {
        ScimApiError(ScimError::Unauthorized(
            "a valid bearer token is required".into(),
        ))
    };
    let peer = req.peer_addr().map(|addr| addr.ip());
    let conn = req
        .match_info()
        .get("conn")
        .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
        .map(ConnectionId)
        .ok_or_else(|| {
            state.scim_failed_auth.failed(peer, None);
            unauthorized()
        })?;
    state
        .scim_failed_auth
        .admit(peer, conn)
        .map_err(|e| counted(state, e))?;
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let tenant = match state.scim.authenticate(conn, bearer).await {
        Ok(tenant) => tenant,
        Err(e) => {
            if matches!(e, ScimError::Unauthorized(_)) {
                state.scim_failed_auth.failed(peer, Some(conn));
            }
            return Err(e.into());
        }
    };
    state.scim_failed_auth.succeeded(conn);
    // Only authenticated calls count, so nobody can exhaust a budget without a token.
    state
        .scim_rate_limit
        .check(conn, tenant)
        .map_err(|e| counted(state, e))?;
    tracing::Span::current().record("connection_id", tracing::field::display(conn));
    Ok(conn)
}

/// A refusal, counted by the budget it names (operators see which budget
/// their tenants run into without a log line per refused request).
fn counted(state: &AppState, refusal: ScimError) -> ScimApiError {
    if let ScimError::RateLimited { budget, .. } = &refusal {
        state.metrics.scim_rate_limited(*budget);
    }
    ScimApiError(refusal)
}
