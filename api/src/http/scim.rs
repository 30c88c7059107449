//! The SCIM 2.0 service provider (RFC 7644) under `/scim/v2/{connection}`.
//! Each connection is its own tenant: its bearer token reaches its directory
//! and nothing else, and errors never mention other connections.

mod call;
mod discovery;
mod error;
mod groups;
mod render;
mod resources;
mod users;

use actix_web::web;

pub use call::ScimCall;
pub use error::ScimApiError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// `/Users` and `/Groups`: create, read, list, replace, patch, delete.
fn resource_routes(cfg: &mut web::ServiceConfig) {
    use groups::*;
    use resources::not_supported;
    use users::*;
    cfg.route("/Users", web::get().to(list_users))
        .route("/Users", web::post().to(create_user))
        .route("/Users/.search", web::post().to(not_supported))
        .route("/Users/{id}", web::get().to(get_user))
        .route("/Users/{id}", web::put().to(replace_user))
        .route("/Users/{id}", web::patch().to(patch_user))
        .route("/Users/{id}", web::delete().to(delete_user))
        .route("/Groups", web::get().to(list_groups))
        .route("/Groups", web::post().to(create_group))
        .route("/Groups/.search", web::post().to(not_supported))
        .route("/Groups/{id}", web::get().to(get_group))
        .route("/Groups/{id}", web::put().to(replace_group))
        .route("/Groups/{id}", web::patch().to(patch_group))
        .route("/Groups/{id}", web::delete().to(delete_group));
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2/{conn}")
            .configure(discovery::routes)
            .configure(resource_routes)
            .default_service(web::to(|| async {
                ScimApiError::not_found("no such SCIM endpoint")
            })),
    );
}
