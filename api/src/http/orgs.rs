//! `/api/v1/orgs`: the organization tree.

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgsync_domain::org::{NewOrganization, OrgId, OrgKind, OrgName, Organization, Slug, TreeNode};
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::service::OrgChanges;
use orgsync_domain::Error;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::extract::{record_org, Admin};
use super::problem::ApiError;
use super::routes::Routes;
use super::AppState;

pub fn table() -> Routes {
    Routes::new("/api/v1", "organizations")
        .add(
            Method::POST,
            "/orgs",
            "Create a tenant (root organization); platform only",
            create_root,
        )
        .add(Method::GET, "/orgs/{org}", "Get an organization", get)
        .add(
            Method::PATCH,
            "/orgs/{org}",
            "Rename an organization",
            update,
        )
        .add(
            Method::DELETE,
            "/orgs/{org}",
            "Delete an organization without children",
            delete,
        )
        .add(
            Method::GET,
            "/orgs/{org}/children",
            "List child organizations",
            children,
        )
        .add(
            Method::POST,
            "/orgs/{org}/children",
            "Create a child or sandbox organization",
            create_child,
        )
        .add(
            Method::GET,
            "/orgs/{org}/tree",
            "Get the organization and all its descendants",
            tree,
        )
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    table().register(cfg);
}

#[derive(Debug, Serialize)]
pub struct OrgView {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    /// The root of the tree this organization belongs to.
    pub tenant_id: Uuid,
    pub kind: OrgKind,
    pub name: String,
    pub slug: String,
    pub provisioning_mode: &'static str,
    pub created_at: String,
    pub updated_at: String,
}

pub fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl From<&Organization> for OrgView {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id.0,
            parent_id: org.parent_id.map(|p| p.0),
            tenant_id: org.root_id.0,
            kind: org.kind,
            name: org.name.as_str().to_owned(),
            slug: org.slug.as_str().to_owned(),
            provisioning_mode: org.provisioning_mode.as_str(),
            created_at: timestamp(org.created_at),
            updated_at: timestamp(org.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct TreeView {
    #[serde(flatten)]
    org: OrgView,
    children: Vec<TreeView>,
}

/// A page of a list and the opaque cursor of the next one.
#[derive(Debug, Serialize)]
pub struct ListView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> ListView<T> {
    pub fn from_page<S>(page: Page<S>, view: impl Fn(&S) -> T) -> Self {
        Self {
            data: page.items.iter().map(view).collect(),
            next_cursor: page
                .next_after
                .map(|id| URL_SAFE_NO_PAD.encode(id.as_bytes())),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<PageRequest, Error> {
        let after = match &self.cursor {
            None => None,
            Some(raw) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(raw)
                    .map_err(|_| Error::invalid("cursor", "not a cursor this API issued"))?;
                Some(
                    Uuid::from_slice(&bytes)
                        .map_err(|_| Error::invalid("cursor", "not a cursor this API issued"))?,
                )
            }
        };
        PageRequest::new(after, self.limit)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
    slug: String,
    #[serde(default)]
    kind: Option<String>,
}

impl CreateOrg {
    fn parse(self) -> Result<NewOrganization, Error> {
        Ok(NewOrganization {
            name: OrgName::parse(&self.name)?,
            slug: Slug::parse(&self.slug)?,
            kind: self
                .kind
                .as_deref()
                .map_or(Ok(OrgKind::Standard), OrgKind::parse)?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateOrg {
    name: Option<String>,
}

fn created(org: &Organization) -> HttpResponse {
    HttpResponse::Created()
        .insert_header(("location", format!("/api/v1/orgs/{}", org.id)))
        .json(OrgView::from(org))
}

async fn create_root(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    body: web::Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse()?;
    let org = state.orgs.create_root(&principal, new).await?;
    record_org(&org.id.0);
    tracing::info!(org = %org.id, slug = %org.slug, "tenant created");
    Ok(created(&org))
}

async fn create_child(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    parent: web::Path<Uuid>,
    body: web::Json<CreateOrg>,
) -> Result<HttpResponse, ApiError> {
    record_org(&parent);
    let new = body.into_inner().parse()?;
    let org = state
        .orgs
        .create_child(&principal, OrgId(*parent), new)
        .await?;
    tracing::info!(org = %org.id, kind = org.kind.as_str(), "organization created");
    Ok(created(&org))
}

async fn get(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let org = state.orgs.get(&principal, OrgId(*org)).await?;
    Ok(HttpResponse::Ok().json(OrgView::from(&org)))
}

async fn update(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
    body: web::Json<UpdateOrg>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let changes = OrgChanges {
        name: body.name.as_deref().map(OrgName::parse).transpose()?,
    };
    let org = state.orgs.update(&principal, OrgId(*org), changes).await?;
    Ok(HttpResponse::Ok().json(OrgView::from(&org)))
}

async fn delete(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    state.orgs.delete(&principal, OrgId(*org)).await?;
    tracing::info!("organization deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn children(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let page = state
        .orgs
        .children(&principal, OrgId(*org), query.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |o| OrgView::from(o))))
}

async fn tree(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    org: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    record_org(&org);
    let nodes = state.orgs.subtree(&principal, OrgId(*org)).await?;
    let tree = nest(nodes).ok_or_else(|| Error::NotFound {
        entity: "organization",
    })?;
    Ok(HttpResponse::Ok().json(tree))
}

/// Folds a subtree listed by depth into nested views; `None` for an empty list.
fn nest(nodes: Vec<TreeNode>) -> Option<TreeView> {
    let top = nodes.first()?.org.id;
    let mut by_parent: HashMap<Option<OrgId>, Vec<Organization>> = HashMap::new();
    for node in nodes {
        let parent = if node.org.id == top {
            None
        } else {
            node.org.parent_id
        };
        by_parent.entry(parent).or_default().push(node.org);
    }
    fn build(
        org: Organization,
        by_parent: &mut HashMap<Option<OrgId>, Vec<Organization>>,
    ) -> TreeView {
        let children = by_parent.remove(&Some(org.id)).unwrap_or_default();
        TreeView {
            org: OrgView::from(&org),
            children: children.into_iter().map(|c| build(c, by_parent)).collect(),
        }
    }
    let root = by_parent.remove(&None)?.into_iter().next()?;
    Some(build(root, &mut by_parent))
}
