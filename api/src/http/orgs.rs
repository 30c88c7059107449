//! `/api/v1/orgs`: the organization tree.

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::org::{NewOrganization, OrgId, OrgKind, OrgName, Organization, Slug, TreeNode};
use orgsync_domain::service::OrgChanges;
use orgsync_domain::Error;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{record_org, Admin, OrgCall};
use super::problem::Answer;
use super::routes::Routes;
use super::views::{preview_view, timestamp, ListQuery, ListView, PreviewQuery};
use crate::state::AppState;

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
            "Delete an organization without children (removing its members needs confirmation)",
            delete,
        )
        .add(
            Method::GET,
            "/orgs/{org}/deletion-preview",
            "Preview deleting an organization: the members it removes",
            preview_deletion,
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
    Admin(caller): Admin,
    body: web::Json<CreateOrg>,
) -> Answer {
    let new = body.into_inner().parse()?;
    let org = state.orgs.create_root(&caller, new).await?;
    record_org(&org.id.0);
    tracing::info!(org = %org.id, slug = %org.slug, "tenant created");
    Ok(created(&org))
}

async fn create_child(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<CreateOrg>,
) -> Answer {
    let new = body.into_inner().parse()?;
    let child = state.orgs.create_child(&caller, org, new).await?;
    tracing::info!(org = %child.id, kind = child.kind.as_str(), "organization created");
    Ok(created(&child))
}

async fn get(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let org = state.orgs.get(&caller, org).await?;
    Ok(HttpResponse::Ok().json(OrgView::from(&org)))
}

async fn update(OrgCall { state, caller, org }: OrgCall, body: web::Json<UpdateOrg>) -> Answer {
    let changes = OrgChanges {
        name: body.name.as_deref().map(OrgName::parse).transpose()?,
    };
    let org = state.orgs.update(&caller, org, changes).await?;
    Ok(HttpResponse::Ok().json(OrgView::from(&org)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// The confirmation of the deletion's preview, when it removes members.
    confirm: Option<String>,
}

async fn delete(OrgCall { state, caller, org }: OrgCall, query: web::Query<DeleteQuery>) -> Answer {
    let (sync, confirm) = (state.sync.clone(), query.into_inner().confirm);
    state
        .heavy
        .to_completion(async move { sync.delete_org(&caller, org, confirm.as_deref()).await })
        .await?;
    tracing::info!("organization deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn preview_deletion(
    OrgCall { state, caller, org }: OrgCall,
    query: web::Query<PreviewQuery>,
) -> Answer {
    let (offset, limit) = query.window(state.limits.preview_page)?;
    let sync = state.sync.clone();
    let preview = state
        .heavy
        .run(async move { sync.preview_org_deletion(&caller, org).await })
        .await?;
    Ok(HttpResponse::Ok().json(preview_view(preview.page(offset, limit))))
}

async fn children(OrgCall { state, caller, org }: OrgCall, query: web::Query<ListQuery>) -> Answer {
    let page = state.orgs.children(&caller, org, query.page()?).await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |o| OrgView::from(o))))
}

async fn tree(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let nodes = state.orgs.subtree(&caller, org).await?;
    let tree = nested_json(&nodes)
        .map_err(|e| Error::Internal(e.into()))?
        .ok_or(Error::NotFound {
            entity: "organization",
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(tree))
}

/// Writes a subtree listed by depth as nested JSON (`{...org, "children":
/// [...]}`) with an explicit stack, never recursion: however deep a tree is,
/// it costs heap, not the worker's stack. `None` for an empty list.
fn nested_json(nodes: &[TreeNode]) -> Result<Option<Vec<u8>>, serde_json::Error> {
    if nodes.is_empty() {
        return Ok(None);
    }
    let mut children: HashMap<OrgId, Vec<usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        if let Some(parent) = node.org.parent_id {
            children.entry(parent).or_default().push(i);
        }
    }
    enum Step {
        Enter { node: usize, first: bool },
        Exit,
    }
    let mut out = Vec::new();
    let mut steps = vec![Step::Enter {
        node: 0,
        first: true,
    }];
    while let Some(step) = steps.pop() {
        match step {
            Step::Enter { node, first } => {
                if !first {
                    out.push(b',');
                }
                let Some(TreeNode { org, .. }) = nodes.get(node) else {
                    continue;
                };
                out.push(b'{');
                if let serde_json::Value::Object(fields) = serde_json::to_value(OrgView::from(org))?
                {
                    for (key, value) in &fields {
                        serde_json::to_writer(&mut out, key)?;
                        out.push(b':');
                        serde_json::to_writer(&mut out, value)?;
                        out.push(b',');
                    }
                }
                out.extend_from_slice(b"\"children\":[");
                steps.push(Step::Exit);
                let below = children.remove(&org.id).unwrap_or_default();
                steps.extend(
                    below
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, &child)| Step::Enter {
                            node: child,
                            first: i == 0,
                        }),
                );
            }
            Step::Exit => out.extend_from_slice(b"]}"),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(parent: Option<&Organization>, depth: u32) -> TreeNode {
        let new = NewOrganization {
            name: OrgName::parse(&format!("L{depth}")).expect("a valid name"),
            slug: Slug::parse(&format!("l{depth}")).expect("a valid slug"),
            kind: OrgKind::Standard,
        };
        let now = time::OffsetDateTime::now_utc();
        let org = match parent {
            Some(parent) => new.into_child_of(parent, now),
            None => new.into_root(now),
        };
        TreeNode { org, depth }
    }

    #[test]
    fn a_tree_of_any_depth_renders_without_recursion() {
        // Far deeper than any stack could recurse through; the API bounds
        // depth at creation, but a tree made before a limit was lowered must
        // still render.
        let mut nodes = vec![node(None, 0)];
        for depth in 1..100_000 {
            let parent = nodes.last().map(|n| n.org.clone());
            nodes.push(node(parent.as_ref(), depth));
        }
        let json = nested_json(&nodes)
            .expect("serializable")
            .expect("not empty");
        let text = String::from_utf8(json).expect("UTF-8");
        assert!(text.starts_with("{\"") && text.ends_with("]}]}"));
        assert_eq!(text.matches("\"children\":[").count(), 100_000);
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "balanced"
        );
    }

    #[test]
    fn siblings_are_separated_and_nested_under_their_parent() {
        let root = node(None, 0);
        let a = node(Some(&root.org), 1);
        let b = node(Some(&root.org), 1);
        let a1 = node(Some(&a.org), 2);
        let json = nested_json(&[root, a, b, a1])
            .expect("serializable")
            .expect("not empty");
        let tree: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        assert_eq!(tree["children"].as_array().map(Vec::len), Some(2));
        assert_eq!(tree["children"][0]["children"][0]["name"], "L2");
        assert_eq!(tree["children"][1]["children"], serde_json::json!([]));
    }
}
