//! `/Users` and `/Groups`: create, read, list, replace, patch, delete.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use orgsync_domain::directory::{
    ConnectionId, GroupRecord, MemberRef, ResourceId, ScimError, ScimQuery, SortKey,
};
use orgsync_domain::scim::{Filter, PatchRequest, ResourceKind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::discovery::base_url;
use super::render::{self, etag, if_match};
use super::{authenticate, ScimApiError, SCIM_CONTENT_TYPE};
use crate::http::AppState;

/// The most resources one list response returns (advertised as `filter.maxResults`).
pub const MAX_RESULTS: u64 = 1000;
/// Members fetched per round trip when a group is rendered whole.
const MEMBER_PAGE: u64 = 5000;

type Answer = Result<HttpResponse, ScimApiError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
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

async fn not_supported(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    authenticate(&req, &state).await?;
    Ok(HttpResponse::NotImplemented()
        .content_type(SCIM_CONTENT_TYPE)
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "501",
                "detail": "POST .search is not supported; use GET with filter"
            })
            .to_string(),
        ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionParams {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn id_of(req: &HttpRequest, kind: ResourceKind) -> Result<ResourceId, ScimApiError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    // Ids are ours (UUIDs); anything else simply does not exist.
    uuid::Uuid::parse_str(raw).map_err(|_| {
        let what = if kind == ResourceKind::User {
            "User"
        } else {
            "Group"
        };
        ScimApiError(ScimError::NotFound(format!("{what} {raw} not found")))
    })
}

fn integer(raw: Option<&str>, name: &str) -> Result<Option<i64>, ScimApiError> {
    raw.map(|r| {
        r.trim().parse::<i64>().map_err(|_| {
            ScimApiError(ScimError::InvalidValue(format!(
                "{name} must be an integer"
            )))
        })
    })
    .transpose()
}

fn query(params: &ListParams, kind: ResourceKind) -> Result<ScimQuery, ScimApiError> {
    let filter = match params.filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(Filter::parse(text).map_err(|e| ScimApiError(e.into()))?),
    };
    let start_index = integer(params.start_index.as_deref(), "startIndex")?
        .unwrap_or(1)
        .max(1);
    let count = integer(params.count.as_deref(), "count")?
        .unwrap_or(100)
        .max(0);
    let ascending = match params
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ascending") => true,
        Some("descending") => false,
        Some(other) => {
            return Err(ScimApiError(ScimError::InvalidValue(format!(
                "sortOrder must be ascending or descending, not {other}"
            ))))
        }
    };
    let sort = params
        .sort_by
        .as_deref()
        .map(|s| SortKey::parse(s, kind))
        .transpose()?
        .map(|k| (k, ascending));
    Ok(ScimQuery {
        filter,
        sort,
        start_index: u64::try_from(start_index).unwrap_or(1),
        count: u64::try_from(count).unwrap_or(0).min(MAX_RESULTS),
    })
}

/// Reads a JSON body with the configured size limit; any malformation is `invalidSyntax`.
async fn body(mut payload: web::Payload, state: &AppState) -> Result<Value, ScimApiError> {
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ScimApiError(ScimError::InvalidSyntax(e.to_string())))?;
        if bytes.len() + chunk.len() > state.body_limit {
            return Err(ScimApiError(ScimError::TooLarge(format!(
                "the request body exceeds {} bytes",
                state.body_limit
            ))));
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimApiError(ScimError::InvalidSyntax(format!(
            "the body is not valid JSON: {e}"
        )))
    })
}

fn resource_response(
    status: actix_web::http::StatusCode,
    value: Value,
    version: i64,
    location: Option<&str>,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .content_type(SCIM_CONTENT_TYPE)
        .insert_header((header::ETAG, etag(version)));
    if let Some(location) = location {
        response.insert_header((header::LOCATION, location.to_owned()));
    }
    response.body(value.to_string())
}

fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().content_type(SCIM_CONTENT_TYPE).body(
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        })
        .to_string(),
    )
}

// ---- Users ----

async fn render_user(
    state: &AppState,
    conn: ConnectionId,
    record: &orgsync_domain::directory::UserRecord,
    base: &str,
) -> Result<Value, ScimApiError> {
    let groups: Vec<(ResourceId, String)> = state
        .scim
        .groups_of(conn, &[record.id])
        .await?
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect();
    Ok(render::user(record, &groups, base))
}

async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let record = state
        .scim
        .create_user(conn, body(payload, &state).await?)
        .await?;
    let base = base_url(&state, &req);
    let value = render::user(&record, &[], &base);
    let location = value["meta"]["location"].as_str().map(str::to_owned);
    let value = render::project(
        value,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    );
    Ok(resource_response(
        actix_web::http::StatusCode::CREATED,
        value,
        record.version,
        location.as_deref(),
    ))
}

async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    let record = state.scim.get_user(conn, id).await?;
    let value = render_user(&state, conn, &record, &base_url(&state, &req)).await?;
    let value = render::project(
        value,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    );
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let query = query(&params, ResourceKind::User)?;
    let listed = state.scim.list_users(conn, &query).await?;
    let base = base_url(&state, &req);
    let ids: Vec<ResourceId> = listed.items.iter().map(|u| u.id).collect();
    let want_groups = render::wants(
        "groups",
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    let memberships = if want_groups && !ids.is_empty() {
        state.scim.groups_of(conn, &ids).await?
    } else {
        Vec::new()
    };
    let resources = listed
        .items
        .iter()
        .map(|user| {
            let groups: Vec<(ResourceId, String)> = memberships
                .iter()
                .filter(|(u, _, _)| *u == user.id)
                .map(|(_, g, name)| (*g, name.clone()))
                .collect();
            render::project(
                render::user(user, &groups, &base),
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(list_response(listed.total, query.start_index, resources))
}

async fn replace_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    let record = state
        .scim
        .replace_user(conn, id, body(payload, &state).await?, if_match(&req))
        .await?;
    let value = render_user(&state, conn, &record, &base_url(&state, &req)).await?;
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

fn patch_request(value: Value) -> Result<PatchRequest, ScimApiError> {
    serde_json::from_value(value).map_err(|e| {
        ScimApiError(ScimError::InvalidSyntax(format!(
            "not a PatchOp request: {e}"
        )))
    })
}

async fn patch_user(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    let patch = patch_request(body(payload, &state).await?)?;
    let record = state
        .scim
        .patch_user(conn, id, &patch, if_match(&req))
        .await?;
    let value = render_user(&state, conn, &record, &base_url(&state, &req)).await?;
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

async fn delete_user(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    state.scim.delete_user(conn, id, if_match(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Groups ----

async fn all_members(
    state: &AppState,
    conn: ConnectionId,
    group: ResourceId,
) -> Result<Vec<MemberRef>, ScimApiError> {
    let mut members = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .scim
            .members(conn, group, after.as_deref(), MEMBER_PAGE)
            .await?;
        let done = (page.len() as u64) < MEMBER_PAGE;
        after = page.last().map(|m| m.value.clone());
        members.extend(page);
        if done {
            return Ok(members);
        }
    }
}

async fn render_group(
    state: &AppState,
    conn: ConnectionId,
    record: &GroupRecord,
    req: &HttpRequest,
    attributes: Option<&str>,
    excluded: Option<&str>,
) -> Result<Value, ScimApiError> {
    let members = if render::wants("members", attributes, excluded) {
        Some(all_members(state, conn, record.id).await?)
    } else {
        None
    };
    let value = render::group(record, members.as_deref(), &base_url(state, req));
    Ok(render::project(value, attributes, excluded))
}

async fn create_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let record = state
        .scim
        .create_group(conn, body(payload, &state).await?)
        .await?;
    let value = render_group(
        &state,
        conn,
        &record,
        &req,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    )
    .await?;
    let location = format!("{}/Groups/{}", base_url(&state, &req), record.id);
    Ok(resource_response(
        actix_web::http::StatusCode::CREATED,
        value,
        record.version,
        Some(&location),
    ))
}

async fn get_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::Group)?;
    let record = state.scim.get_group(conn, id).await?;
    let value = render_group(
        &state,
        conn,
        &record,
        &req,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    )
    .await?;
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

async fn list_groups(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let query = query(&params, ResourceKind::Group)?;
    let listed = state.scim.list_groups(conn, &query).await?;
    // Lists carry members only when asked by name: a group can have 100,000 of them.
    let members_asked = params.attributes.as_deref().is_some_and(|a| {
        a.split(',')
            .any(|n| n.trim().eq_ignore_ascii_case("members"))
    });
    let excluded = if members_asked {
        params.excluded_attributes.clone()
    } else {
        Some(match params.excluded_attributes.as_deref() {
            Some(e) if !e.trim().is_empty() => format!("{e},members"),
            _ => "members".to_owned(),
        })
    };
    let mut resources = Vec::with_capacity(listed.items.len());
    for record in &listed.items {
        resources.push(
            render_group(
                &state,
                conn,
                record,
                &req,
                params.attributes.as_deref(),
                excluded.as_deref(),
            )
            .await?,
        );
    }
    Ok(list_response(listed.total, query.start_index, resources))
}

async fn replace_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::Group)?;
    let record = state
        .scim
        .replace_group(conn, id, body(payload, &state).await?, if_match(&req))
        .await?;
    let value = render_group(
        &state,
        conn,
        &record,
        &req,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    )
    .await?;
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

async fn patch_group(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::Group)?;
    let patch = patch_request(body(payload, &state).await?)?;
    let record = state
        .scim
        .patch_group(conn, id, &patch, if_match(&req))
        .await?;
    let value = render_group(
        &state,
        conn,
        &record,
        &req,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
    )
    .await?;
    Ok(resource_response(
        actix_web::http::StatusCode::OK,
        value,
        record.version,
        None,
    ))
}

async fn delete_group(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::Group)?;
    state.scim.delete_group(conn, id, if_match(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}
