//! The SCIM 2.0 service provider (RFC 7644) under `/scim/v2/{connection}`.
//! Each connection is its own tenant: its bearer token reaches its directory
//! and nothing else, and errors never mention other connections.

mod call;
mod discovery;
mod error;
mod groups;
pub mod rate_limit;
mod render;
mod resources;
mod users;

use actix_web::web;

pub use call::ScimCall;
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
