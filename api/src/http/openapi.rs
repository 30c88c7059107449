//! The admin API's OpenAPI 3.1 document, generated from the route table, at
//! `/api/v1/openapi.json`, with interactive docs at `/docs`.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathItem, PathsBuilder, Required, ResponseBuilder, ResponsesBuilder, Type,
};

use super::health;
use super::routes::RouteDoc;

/// Every documented route: exactly the routes the app registers from the same tables.
pub fn route_docs() -> Vec<RouteDoc> {
    super::admin_tables()
        .iter()
        .chain(&[
            health::table(),
            super::sso::sign_in_table(),
            super::sso::token_table(),
        ])
        .flat_map(super::routes::Routes::docs)
        .collect()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn json_object() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Object)
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in route_docs() {
        let mut operation = OperationBuilder::new()
            .summary(Some(route.summary))
            .tag(route.tag)
            .operation_id(Some(format!(
                "{}_{}",
                route.method.as_str().to_lowercase(),
                route
                    .path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '-', '.'], "_")
            )));
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(
                            Some(utoipa::openapi::SchemaFormat::Custom("uuid".into())),
                        ))),
                );
            }
        }
        if matches!(route.method, Method::POST | Method::PUT | Method::PATCH) {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(json_object())).build(),
                    )
                    .build(),
            ));
        }
        let success = match route.method {
            Method::DELETE => ("204", "Done"),
            Method::POST if route.path.ends_with("/reject") => ("204", "Done"),
            Method::POST if route.path.ends_with("/syncs") || route.path.ends_with("/retry") => {
                ("202", "Accepted")
            }
            Method::POST
                if !route.path.ends_with("preview") && !route.path.ends_with("/confirm") =>
            {
                ("201", "Created")
            }
            _ => ("200", "OK"),
        };
        // What the success answer carries: nothing for 204, the export as
        // CSV, the metrics as Prometheus text, JSON otherwise.
        let body = if success.0 == "204" {
            None
        } else if route.path.ends_with(".csv") {
            Some((
                "text/csv",
                ObjectBuilder::new().schema_type(Type::String).build(),
            ))
        } else if route.path.ends_with("/metrics") {
            Some((
                "text/plain",
                ObjectBuilder::new().schema_type(Type::String).build(),
            ))
        } else {
            Some(("application/json", json_object().build()))
        };
        let mut success_response = ResponseBuilder::new().description(success.1);
        if let Some((media_type, schema)) = body {
            success_response = success_response.content(
                media_type,
                ContentBuilder::new().schema(Some(schema)).build(),
            );
        }
        let mut responses = ResponsesBuilder::new().response(success.0, success_response.build());
        if route.authenticated {
            responses = responses.response(
                "default",
                ResponseBuilder::new()
                    .description(
                        "An error, as application/problem+json (see the README's catalogue)",
                    )
                    .content(
                        "application/problem+json",
                        ContentBuilder::new().schema(Some(json_object())).build(),
                    )
                    .build(),
            );
            operation =
                operation.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        let operation = operation.responses(responses.build()).build();
        paths = paths.path(
            route.path.clone(),
            PathItem::new(http_method(&route.method), operation),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("orgsync admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Organizations, enterprise connections, directory-derived membership and syncs. \
                     Errors are application/problem+json. SCIM 2.0 lives under /scim/v2/{connection} \
                     and describes itself through /ServiceProviderConfig, /ResourceTypes and /Schemas.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
                )
                .build(),
        ))
        .build()
}

/// `/openapi.json`, mounted inside the `/api/v1` scope.
pub fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/docs", web::get().to(docs));
}

async fn openapi_json() -> HttpResponse {
    match document().to_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(e) => actix_web::ResponseError::error_response(&super::problem::ApiError::Domain(
            orgsync_domain::Error::Internal(e.into()),
        )),
    }
}

/// Interactive docs (Redoc, loaded by the reader's browser). The script is
/// a pinned release checked with Subresource Integrity (the hash of the npm
/// package's `bundles/redoc.standalone.js`, which jsDelivr serves unchanged),
/// so a compromised or changed CDN file is refused by the browser instead of
/// running next to an admin's token.
async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            r#"<!doctype html>
<html><head><title>orgsync admin API</title><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2.5.0/bundles/redoc.standalone.js"
 integrity="sha384-4vOjrBu7SuDWXcAw1qFznVLA/sKL+0l4nn+J1HY8w7cpa6twQEYuh4b0Cwuo7CyX"
 crossorigin="anonymous" referrerpolicy="no-referrer"></script>
</body></html>"#,
        )
}
