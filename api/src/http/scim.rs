//! The SCIM 2.0 service provider (RFC 7644) under `/scim/v2/{connection}`.
//! Each connection is its own tenant: its bearer token reaches its directory
//! and nothing else, and errors never mention other connections.

mod discovery;
mod error;
mod groups;
pub mod rate_limit;
mod render;
mod resources;
mod users;

use actix_web::web;

pub use error::ScimApiError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2/{conn}")
            .configure(discovery::routes)
            .configure(resources::routes)
            .default_service(web::to(|| async {
                ScimApiError::not_found("no such SCIM endpoint")
            })),
    );
}

/// Resolves the connection of a SCIM request from its path and bearer token.
/// A malformed connection id answers 401 like a wrong token: nothing about
/// which connections exist is revealed.
pub(crate) async fn authenticate(
    req: &actix_web::HttpRequest,
    state: &crate::state::AppState,
) -> Result<orgsync_domain::directory::ConnectionId, ScimApiError> {
    use orgsync_domain::directory::{ConnectionId, ScimError};
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
            state.scim_failed_auth.failed(peer);
            unauthorized()
        })?;
    state.scim_failed_auth.admit(peer, conn)?;
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if let Err(e) = state.scim.authenticate(conn, bearer).await {
        if matches!(e, ScimError::Unauthorized(_)) {
            state.scim_failed_auth.failed(peer);
        }
        return Err(e.into());
    }
    state.scim_failed_auth.succeeded(conn);
    // Only authenticated calls count, so nobody can exhaust a connection's budget without its token.
    state.scim_rate_limit.check(conn)?;
    tracing::Span::current().record("connection_id", tracing::field::display(conn));
    Ok(conn)
}

/// Tells the workers a directory changed, after the change committed
/// (coalesced per connection; see [`nudge`]).
pub(crate) async fn directory_changed(
    state: &crate::state::AppState,
    conn: orgsync_domain::directory::ConnectionId,
) {
    state.nudger.nudge(conn);
}
