//! What the IdP currently holds, as orgsync received it, and whether each
//! org is current with it: `/sync-status` and `/connections/{conn}/directory/*`.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::{
    ConnectionId, GroupRecord, ResourceId, ScimQuery, SortKey, UserRecord, UserView,
};
use orgsync_domain::ports::Listed;
use orgsync_domain::scim::Filter;
use orgsync_domain::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ConnPath, OrgCall};
use super::problem::{Answer, ApiError};
use super::routes::Routes;
use super::views::timestamp;

pub fn table() -> Routes {
    let base = "/orgs/{org}/connections/{conn}";
    Routes::new("/api/v1", "directory")
        .add(
            Method::GET,
            "/orgs/{org}/sync-status",
            "Sync status of an organization",
            org_status,
        )
        .add(
            Method::GET,
            &format!("{base}/sync-status"),
            "Sync status of every organization drawing on a connection",
            connection_status,
        )
        .add(
            Method::GET,
            &format!("{base}/directory/users"),
            "Directory users as the IdP sent them",
            users,
        )
        .add(
            Method::GET,
            &format!("{base}/directory/users/{{user}}"),
            "One directory user and its stored SCIM resource",
            user,
        )
        .add(
            Method::GET,
            &format!("{base}/directory/groups"),
            "Directory groups with member counts",
            groups,
        )
        .add(
            Method::GET,
            &format!("{base}/directory/groups/{{group}}/members"),
            "Members of a directory group",
            group_members,
        )
        .add(
            Method::GET,
            &format!("{base}/directory/events"),
            "The directory change feed, newest first",
            events,
        )
}

async fn org_status(OrgCall { state, caller, org }: OrgCall) -> Answer {
    Ok(HttpResponse::Ok().json(state.sync.status(&caller, org).await?))
}

async fn connection_status(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
) -> Answer {
    let conn = path.conn;
    let orgs = state.sync.connection_status(&caller, org, conn).await?;
    Ok(HttpResponse::Ok().json(json!({ "orgs": orgs })))
}

/// The SCIM query of a window of users or groups: at most 500 from
/// `start_index` (1-based), those matching every one of `parts`.
fn window_query(
    start_index: Option<u64>,
    count: Option<u64>,
    parts: Vec<String>,
    sort: SortKey,
) -> Result<ScimQuery, ApiError> {
    let count = count.unwrap_or(50);
    if count > 500 {
        return Err(Error::invalid("count", "must be at most 500").into());
    }
    Ok(ScimQuery {
        filter: all_of(parts)?,
        sort: Some((sort, true)),
        start_index: start_index.unwrap_or(1).max(1),
        count,
    })
}

/// `a and b and ...` of the given SCIM comparisons (values JSON-escaped).
fn all_of(parts: Vec<String>) -> Result<Option<Filter>, ApiError> {
    if parts.is_empty() {
        return Ok(None);
    }
    Filter::parse(&parts.join(" and "))
        .map(Some)
        .map_err(|e| Error::invalid("filter", e.to_string()).into())
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct UsersQuery {
    active: Option<bool>,
    email_contains: Option<String>,
    user_name: Option<String>,
    // Not a flattened struct: flattening makes the query parser see numbers as strings.
    start_index: Option<u64>,
    count: Option<u64>,
}

fn user_summary(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "user_name": user.fields.user_name,
        "external_id": user.fields.external_id,
        "display_name": user.fields.display_name,
        "email": user.fields.email,
        "active": user.fields.active,
        "version": user.version,
        "created_at": timestamp(user.created_at),
        "updated_at": timestamp(user.updated_at),
    })
}

async fn users(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    query: web::Query<UsersQuery>,
) -> Answer {
    let conn = path.conn;
    let mut parts = Vec::new();
    if let Some(active) = query.active {
        parts.push(format!("active eq {active}"));
    }
    if let Some(email) = &query.email_contains {
        parts.push(format!("emails.value co {}", quoted(email)));
    }
    if let Some(name) = &query.user_name {
        parts.push(format!("userName eq {}", quoted(name)));
    }
    let scim = window_query(query.start_index, query.count, parts, SortKey::UserName)?;
    let listed = state
        .sync
        .directory_users(&caller, org, conn, &scim)
        .await?;
    Ok(HttpResponse::Ok().json(window_json(&listed, &scim, user_summary)))
}

/// A window of users or groups as the admin API shows it.
fn window_json<T>(listed: &Listed<T>, scim: &ScimQuery, summary: impl Fn(&T) -> Value) -> Value {
    json!({
        "total": listed.total,
        "start_index": scim.start_index,
        "data": listed.items.iter().map(summary).collect::<Vec<_>>(),
    })
}

/// Where the next page starts (its predecessor's last key) when `page`
/// came back full; `None` when it is the last.
fn next_start<T, K>(page: &[T], limit: u64, key: impl FnOnce(&T) -> K) -> Option<K> {
    (page.len() as u64 == limit)
        .then(|| page.last().map(key))
        .flatten()
}

async fn user(OrgCall { state, caller, org }: OrgCall, path: web::Path<UserPath>) -> Answer {
    let UserPath { conn, user } = path.into_inner();
    let UserView { record, groups } = state.sync.directory_user(&caller, org, conn, user).await?;
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!({"id": g.id, "display_name": g.display_name}))
        .collect();
    let mut summary = user_summary(&record);
    summary["groups"] = json!(groups);
    summary["resource"] = record.fields.resource.clone();
    Ok(HttpResponse::Ok().json(summary))
}

/// `/connections/{conn}/directory/users/{user}`.
#[derive(Debug, Deserialize)]
struct UserPath {
    conn: ConnectionId,
    user: ResourceId,
}

/// `/connections/{conn}/directory/groups/{group}/members`.
#[derive(Debug, Deserialize)]
struct GroupPath {
    conn: ConnectionId,
    group: ResourceId,
}

#[derive(Debug, Deserialize)]
struct GroupsQuery {
    display_name: Option<String>,
    start_index: Option<u64>,
    count: Option<u64>,
}

async fn groups(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    query: web::Query<GroupsQuery>,
) -> Answer {
    let conn = path.conn;
    let parts = query
        .display_name
        .iter()
        .map(|name| format!("displayName eq {}", quoted(name)))
        .collect();
    let scim = window_query(query.start_index, query.count, parts, SortKey::DisplayName)?;
    let listed = state
        .sync
        .directory_groups(&caller, org, conn, &scim)
        .await?;
    Ok(HttpResponse::Ok().json(window_json(&listed, &scim, group_summary)))
}

fn group_summary(group: &GroupRecord) -> Value {
    json!({
        "id": group.id,
        "display_name": group.fields.display_name,
        "external_id": group.fields.external_id,
        "member_count": group.member_count,
        "version": group.version,
        "updated_at": timestamp(group.updated_at),
    })
}

#[derive(Debug, Deserialize)]
struct MembersQuery {
    cursor: Option<String>,
    limit: Option<u64>,
}

async fn group_members(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<GroupPath>,
    query: web::Query<MembersQuery>,
) -> Answer {
    let GroupPath { conn, group } = path.into_inner();
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let members = state
        .sync
        .directory_group_members(&caller, org, conn, group, query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_start(&members, limit, |m| m.value.clone());
    let data: Vec<Value> = members
        .iter()
        .map(|m| json!({"value": m.value, "type": m.kind, "display": m.display}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data, "next_cursor": next_cursor })))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// Events with a sequence number below this (the previous page's last).
    before: Option<i64>,
    limit: Option<u64>,
}

async fn events(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    query: web::Query<EventsQuery>,
) -> Answer {
    let conn = path.conn;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let events = state
        .sync
        .directory_events(&caller, org, conn, query.before, limit)
        .await?;
    let next = next_start(&events, limit, |e| e.seq);
    Ok(HttpResponse::Ok().json(json!({ "data": events, "next_before": next })))
}
