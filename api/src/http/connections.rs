//! `/api/v1/orgs/{org}/connections`: enterprise connections and directory sync.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::{EnterpriseConnection, ScimToken};
use orgsync_domain::service::SourceApplied;
use orgsync_domain::sync::SourceChange;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{ConnPath, OrgCall};
use super::problem::Answer;
use super::routes::Routes;
use super::views::{timestamp, ListQuery, ListView};

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
            Method::GET,
            "/orgs/{org}/connections/{conn}/impact",
            "What deleting the connection or turning directory sync on or off would do to the orgs drawing on it",
            impact,
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
struct DirectorySyncChangedView {
    #[serde(flatten)]
    directory_sync: DirectorySyncView,
    /// The orgs that now draw on another directory, and how each was reconciled.
    moved_orgs: Vec<serde_json::Value>,
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
    /// The token of the plan a `409 confirmation-required` showed.
    confirm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    confirm: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChangeName {
    Delete,
    EnableDirectorySync,
    DisableDirectorySync,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImpactQuery {
    change: ChangeName,
}

/// How each org a source change moved was reconciled.
fn moved_view(applied: &[SourceApplied]) -> Vec<serde_json::Value> {
    applied
        .iter()
        .map(|a| match a {
            SourceApplied::Applied { org, run } => serde_json::json!({
                "org_id": org, "outcome": "applied", "run_id": run.id, "counts": run.counts,
            }),
            SourceApplied::Gated { org } => serde_json::json!({
                "org_id": org, "outcome": "deletion_gate",
            }),
            SourceApplied::Deferred { org, cause } => {
                tracing::warn!(org = %org, error = %cause, "source change reconcile deferred to the workers");
                serde_json::json!({ "org_id": org, "outcome": "deferred" })
            }
        })
        .collect()
}

async fn create(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<CreateConnection>,
) -> Answer {
    let c = state.connections.create(&caller, org, &body.name).await?;
    tracing::info!(connection = %c.id, "enterprise connection created");
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/orgs/{}/connections/{}", c.org_id, c.id),
        ))
        .json(view(&c, &state.public_url, None)))
}

async fn list(OrgCall { state, caller, org }: OrgCall, query: web::Query<ListQuery>) -> Answer {
    let page = state.connections.list(&caller, org, query.page()?).await?;
    let public_url = state.public_url.clone();
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |c| view(c, &public_url, None))))
}

async fn get(OrgCall { state, caller, org }: OrgCall, path: web::Path<ConnPath>) -> Answer {
    let conn = path.conn;
    let c = state.connections.get(&caller, org, conn).await?;
    Ok(HttpResponse::Ok().json(view(&c, &state.public_url, None)))
}

async fn delete(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    query: web::Query<DeleteQuery>,
) -> Answer {
    let conn = path.conn;
    let (connections, confirm) = (state.connections.clone(), query.into_inner().confirm);
    let applied = state
        .heavy
        .to_completion(async move {
            connections
                .delete(&caller, org, conn, confirm.as_deref())
                .await
        })
        .await?;
    let moved = moved_view(&applied);
    tracing::info!(connection = %conn, moved_orgs = moved.len(), "enterprise connection deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn impact(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    query: web::Query<ImpactQuery>,
) -> Answer {
    let conn = path.conn;
    let connection_id = conn;
    let change = match query.change {
        ChangeName::Delete => SourceChange::DeleteConnection { connection_id },
        ChangeName::EnableDirectorySync => SourceChange::EnableDirectorySync { connection_id },
        ChangeName::DisableDirectorySync => SourceChange::DisableDirectorySync { connection_id },
    };
    let connections = state.connections.clone();
    let plan = state
        .heavy
        .run(async move {
            connections
                .preview_source_change(&caller, org, change)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "confirmation": plan.confirmation,
        "requires_confirmation": plan.is_destructive(),
        "effects": plan.orgs.iter().map(|moved| &moved.effect).collect::<Vec<_>>(),
    })))
}

async fn set_directory_sync(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    body: web::Json<DirectorySync>,
) -> Answer {
    let conn = path.conn;
    let DirectorySync { enabled, confirm } = body.into_inner();
    let connections = state.connections.clone();
    let changed = state
        .heavy
        .to_completion(async move {
            connections
                .set_directory_sync(&caller, org, conn, enabled, confirm.as_deref())
                .await
        })
        .await?;
    tracing::info!(connection = %conn, enabled, token_issued = changed.token.is_some(), "directory sync set");
    let v = view(
        &changed.connection,
        &state.public_url,
        changed.token.as_ref(),
    );
    Ok(HttpResponse::Ok().json(DirectorySyncChangedView {
        directory_sync: v.directory_sync,
        moved_orgs: moved_view(&changed.applied),
    }))
}

async fn rotate_token(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
) -> Answer {
    let conn = path.conn;
    let token = state.connections.rotate_token(&caller, org, conn).await?;
    tracing::info!(connection = %conn, "SCIM token rotated");
    Ok(HttpResponse::Created().json(serde_json::json!({ "token": token.expose() })))
}

async fn revoke_tokens(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
) -> Answer {
    let conn = path.conn;
    state.connections.revoke_tokens(&caller, org, conn).await?;
    tracing::info!(connection = %conn, "SCIM tokens revoked");
    Ok(HttpResponse::NoContent().finish())
}
