//! `GET /api/v1/orgs/{org}/audit-log`: who changed what, newest first.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::audit::AuditFilter;
use serde::Deserialize;

use super::extract::OrgCall;
use super::problem::Answer;
use super::routes::Routes;
use super::views::{ListQuery, ListView};

pub fn table() -> Routes {
    Routes::new("/api/v1", "audit").add(
        Method::GET,
        "/orgs/{org}/audit-log",
        "Read the audit log",
        list,
    )
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<u64>,
    cursor: Option<String>,
    /// An action or its prefix (`member.` for every member change).
    action: Option<String>,
    target: Option<String>,
    actor: Option<String>,
}

async fn list(OrgCall { state, caller, org }: OrgCall, query: web::Query<AuditQuery>) -> Answer {
    let query = query.into_inner();
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        action_prefix: query.action,
        target_id: query.target,
        actor: query.actor,
    };
    let entries = state.orgs.audit_log(&caller, org, &filter, page).await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(entries, Clone::clone)))
}
