//! `/api/v1/orgs/{org}/connections`: enterprise connections and directory sync.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::{ConnectionId, EnterpriseConnection, ScimToken};
use orgsync_domain::org::OrgId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{record_org, Admin};
use super::orgs::{timestamp, ListQuery, ListView};
use super::problem::ApiError;
use super::routes::Routes;
use super::AppState;

pub fn table() -> Routes {
    Routes::new("/api/v1", "connections")
        .add(
            Method::POST,
            "/orgs/{org}/connections",
            "Create an enterprise connection",
            create,
        )
        .add(
            Method::GET,
            "/orgs/{org}/connections",
            "List enterprise connections",
            list,
        )
        .add(
            Method::GET,
            "/orgs/{org}/connections/{conn}",
            "Get an enterprise connection",
            get,
        )
        .add(
            Method::DELETE,
            "/orgs/{org}/connections/{conn}",
            "Delete an enterprise connection and its directory",
            delete,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/connections/{conn}/directory-sync",
            "Turn directory sync on (issuing a SCIM token) or off",
            set_directory_sync,
        )
        .add(
            Method::POST,
            "/orgs/{org}/connections/{conn}/directory-sync/token",
            "Rotate the SCIM token",
            rotate_token,
        )
        .add(
            Method::DELETE,
            "/orgs/{org}/connections/{conn}/directory-sync/token",
            "Revoke every SCIM token",
            revoke_tokens,
        )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    table().register(cfg);
}

#[derive(Debug, Serialize)]
struct ConnectionView {
    id: Uuid,
    org_id: Uuid,
    name: String,
    directory_sync: DirectorySyncView,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct DirectorySyncView {
    enabled: bool,
    scim_base_url: Option<String>,
    /// Present only in the answer that issued it: it is never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn view(c: &EnterpriseConnection, public_url: &str, token: Option<&ScimToken>) -> ConnectionView {
    ConnectionView {
        id: c.id.0,
        org_id: c.org_id.0,
        name: c.name.clone(),
        directory_sync: DirectorySyncView {
            enabled: c.directory_sync_enabled,
            scim_base_url: c
                .directory_sync_enabled
                .then(|| c.scim_base_url(public_url)),
            token: token.map(|t| t.expose().to_owned()),
        },
        created_at: timestamp(c.created_at),
        updated_at: timestamp(c.updated_at),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConnection {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectorySync {
    enabled: bool,
}

async fn create(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
    body: web::Json<CreateConnection>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let c = state
        .connections
        .create(&principal, OrgId(*org), &body.name)
        .await?;
    tracing::info!(connection = %c.id, "enterprise connection created");
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/orgs/{}/connections/{}", c.org_id, c.id),
        ))
        .json(view(&c, &state.public_url, None)))
}

async fn list(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let page = state
        .connections
        .list(&principal, OrgId(*org), query.page()?)
        .await?;
    let public_url = state.public_url.clone();
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |c| view(c, &public_url, None))))
}

async fn get(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org, conn) = path.into_inner();
    record_org(&org);
    let c = state
        .connections
        .get(&principal, OrgId(org), ConnectionId(conn))
        .await?;
    Ok(HttpResponse::Ok().json(view(&c, &state.public_url, None)))
}

async fn delete(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org, conn) = path.into_inner();
    record_org(&org);
    state
        .connections
        .delete(&principal, OrgId(org), ConnectionId(conn))
        .await?;
    tracing::info!(connection = %conn, "enterprise connection deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn set_directory_sync(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<DirectorySync>,
) -> Result<HttpResponse, ApiError> {
    let (org, conn) = path.into_inner();
    record_org(&org);
    let (c, token) = state
        .connections
        .set_directory_sync(&principal, OrgId(org), ConnectionId(conn), body.enabled)
        .await?;
    tracing::info!(connection = %conn, enabled = body.enabled, token_issued = token.is_some(), "directory sync set");
    let v = view(&c, &state.public_url, token.as_ref());
    Ok(HttpResponse::Ok().json(v.directory_sync))
}

async fn rotate_token(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org, conn) = path.into_inner();
    record_org(&org);
    let token = state
        .connections
        .rotate_token(&principal, OrgId(org), ConnectionId(conn))
        .await?;
    tracing::info!(connection = %conn, "SCIM token rotated");
    Ok(HttpResponse::Created().json(serde_json::json!({ "token": token.expose() })))
}

async fn revoke_tokens(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org, conn) = path.into_inner();
    record_org(&org);
    state
        .connections
        .revoke_tokens(&principal, OrgId(org), ConnectionId(conn))
        .await?;
    tracing::info!(connection = %conn, "SCIM tokens revoked");
    Ok(HttpResponse::NoContent().finish())
}
