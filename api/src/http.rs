//! The HTTP surface: the admin API under `/api/v1` (problem+json errors) and
//! the probes. [`app`] builds the whole actix application from an
//! [`crate::state::AppState`],
//! the same for `serve` and for in-process tests.

mod audit;
mod connections;
pub mod detached;
mod directory;
mod events;
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
mod sso;
mod views;

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware, web, App};
use problem::ApiError;

/// Every admin API module's route table, under `/api/v1`: the app registers
/// exactly these and the OpenAPI document describes exactly these, so a new
/// admin module is one line here.
pub fn admin_tables() -> [routes::Routes; 10] {
    [
        orgs::table(),
        audit::table(),
        connections::table(),
        directory::table(),
        members::export::table(),
        members::table(),
        provisioning::table(),
        protection::table(),
        events::table(),
        sso::table(),
    ]
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
                .configure(|cfg| {
                    for table in admin_tables() {
                        table.register(cfg);
                    }
                }),
        )
        .configure(scim::routes)
        .configure(|cfg| {
            sso::sign_in_table().register(cfg);
            sso::token_table().register(cfg);
        })
        .configure(openapi::routes)
        .configure(health::routes)
        .default_service(web::to(|| async { ApiError::RouteNotFound }))
        .wrap(middleware::from_fn(request_id::trace_request))
}
