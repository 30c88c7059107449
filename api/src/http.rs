//! The HTTP surface: the admin API under `/api/v1` (problem+json errors) and
//! the probes. [`app`] builds the whole actix application from an [`AppState`],
//! the same for `serve` and for in-process tests.

mod audit;
mod connections;
mod directory;
mod export;
mod extract;
mod health;
mod members;
mod openapi;
mod orgs;
pub use openapi::{document as openapi_document, route_docs};
pub mod problem;
mod protection;
mod provisioning;
mod request_id;
pub mod routes;
pub mod scim;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App};
use orgsync_domain::ports::HealthCheck;
use orgsync_domain::service::{
    ConnectionService, MembersService, OrgService, ScimService, SyncService,
};

use crate::auth::Verifier;
use problem::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub orgs: OrgService,
    pub connections: ConnectionService,
    pub scim: ScimService,
    pub sync: SyncService,
    pub members: MembersService,
    /// The externally visible base URL (for SCIM base URLs and locations).
    pub public_url: String,
    pub scim_rate_limit: Arc<scim::rate_limit::ScimRateLimiter>,
    pub scim_failed_auth: Arc<scim::rate_limit::FailedAuthLimiter>,
    pub limits: orgsync_domain::limits::Limits,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub nudger: Arc<crate::jobs::nudge::Nudger>,
    /// For the gauges read at scrape time.
    pub db: orgsync_infra::Database,
    pub queue: Arc<dyn orgsync_domain::ports::JobQueue>,
    pub verifier: Arc<Verifier>,
    pub health: Arc<Vec<Arc<dyn HealthCheck>>>,
    pub body_limit: usize,
}

/// The complete application: routes, extractor configuration and middleware.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.body_limit;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(|err, _req| ApiError::from_json_error(&err).into()),
        )
        .app_data(
            web::PathConfig::default().error_handler(|_err, _req| ApiError::RouteNotFound.into()),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _req| ApiError::BadRequest(err.to_string()).into()),
        )
        .service(
            web::scope("/api/v1")
                .configure(openapi::api_routes)
                .configure(orgs::routes)
                .configure(audit::routes)
                .configure(connections::routes)
                .configure(directory::routes)
                .configure(export::routes)
                .configure(members::routes)
                .configure(provisioning::routes)
                .configure(protection::routes),
        )
        .configure(scim::routes)
        .configure(openapi::routes)
        .configure(health::routes)
        .default_service(web::to(|| async { ApiError::RouteNotFound }))
        .wrap(middleware::from_fn(request_id::trace_request))
}
