//! Discovery (RFC 7644 §4): what this service provider supports, truthfully.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::ScimError;
use orgsync_domain::scim::{schema_json, ResourceKind, SchemaDef};
use serde_json::{json, Value};

use super::error::unsupported;
use super::{ScimApiError, ScimCall, SCIM_CONTENT_TYPE};

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, handler) in [
        (
            "/ServiceProviderConfig",
            web::get().to(service_provider_config),
        ),
        ("/ResourceTypes", web::get().to(resource_types)),
        ("/ResourceTypes/{id}", web::get().to(resource_type)),
        ("/Schemas", web::get().to(schemas)),
        ("/Schemas/{id}", web::get().to(schema)),
    ] {
        cfg.service(
            web::resource(path)
                .route(handler)
                .default_service(web::to(method_not_allowed)),
        );
    }
    for path in ["/Bulk", "/Me", "/.search"] {
        cfg.route(path, web::route().to(not_implemented));
    }
}

async fn method_not_allowed() -> HttpResponse {
    unsupported(
        StatusCode::METHOD_NOT_ALLOWED,
        "discovery endpoints are read-only",
    )
}

/// Only an authenticated caller learns what is not supported.
async fn not_implemented(_call: ScimCall) -> Result<HttpResponse, ScimApiError> {
    Ok(unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "not supported by this service provider (see /ServiceProviderConfig)",
    ))
}

fn scim(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

async fn service_provider_config(call: ScimCall) -> Result<HttpResponse, ScimApiError> {
    let base = call.base_url();
    Ok(scim(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://orgsync.dev/docs/scim",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": super::resources::MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The connection's SCIM bearer token, issued when directory sync is enabled",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })))
}

fn resource_type_json(kind: ResourceKind, base: &str) -> Value {
    let (id, endpoint, description) = match kind {
        ResourceKind::User => ("User", "/Users", "User Account"),
        ResourceKind::Group => ("Group", "/Groups", "Group"),
    };
    let extensions: Vec<Value> = kind
        .extensions()
        .iter()
        .map(|s| json!({"schema": s.id, "required": false}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": id,
        "name": id,
        "endpoint": endpoint,
        "description": description,
        "schema": kind.core_schema().id,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")}
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources
    })
}

async fn resource_types(call: ScimCall) -> Result<HttpResponse, ScimApiError> {
    Ok(listing(
        &call,
        [ResourceKind::User, ResourceKind::Group],
        resource_type_json,
    ))
}

async fn resource_type(
    call: ScimCall,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ScimApiError> {
    let kind = match path.1.as_str() {
        "User" => Some(ResourceKind::User),
        "Group" => Some(ResourceKind::Group),
        _ => None,
    };
    one(&call, kind, resource_type_json, || {
        format!("no resource type {}", path.1)
    })
}

/// A discovery list: each of `items` rendered against this connection's base URL.
fn listing<T>(
    call: &ScimCall,
    items: impl IntoIterator<Item = T>,
    render: impl Fn(T, &str) -> Value,
) -> HttpResponse {
    let base = call.base_url();
    scim(list(
        items.into_iter().map(|item| render(item, &base)).collect(),
    ))
}

/// One discovery resource, `found` rendered against this connection's base
/// URL; `NotFound` when there is none, but only to an authenticated caller.
fn one<T>(
    call: &ScimCall,
    found: Option<T>,
    render: impl FnOnce(T, &str) -> Value,
    missing: impl FnOnce() -> String,
) -> Result<HttpResponse, ScimApiError> {
    let base = call.base_url();
    let found = found.ok_or_else(|| ScimError::NotFound(missing()))?;
    Ok(scim(render(found, &base)))
}

fn all_schemas() -> Vec<&'static SchemaDef> {
    let mut all = vec![ResourceKind::User.core_schema()];
    all.extend(ResourceKind::User.extensions().iter().copied());
    all.push(ResourceKind::Group.core_schema());
    all
}

async fn schemas(call: ScimCall) -> Result<HttpResponse, ScimApiError> {
    Ok(listing(&call, all_schemas(), schema_json))
}

async fn schema(
    call: ScimCall,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ScimApiError> {
    let found = all_schemas().into_iter().find(|s| s.id == path.1);
    one(&call, found, schema_json, || {
        format!("no schema {}", path.1)
    })
}
