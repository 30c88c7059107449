//! `/Groups`. A group may have 100,000 members, so a group with its members
//! is streamed: the resource first, then its members page by page, never the
//! whole list in memory.

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::{ConnectionId, GroupRecord, ResourceId};
use orgsync_domain::scim::ResourceKind;
use serde_json::Value;

use super::render::{self, etag};
use super::resources::{
    delete_resource, list_response, patch_request, query, resource_headers, resource_response,
    ListParams, ProjectionParams,
};
use super::{ScimApiError, ScimCall};
use crate::state::AppState;

type Answer = Result<HttpResponse, ScimApiError>;

/// Members read per round trip while streaming a group.
const MEMBER_PAGE: u64 = 2000;

/// Answers with one group; its members (unless excluded) are streamed after the rest.
async fn group_answer(
    call: &ScimCall,
    record: &GroupRecord,
    projection: &ProjectionParams,
    status: StatusCode,
) -> Answer {
    let (attributes, excluded) = (
        projection.attributes.as_deref(),
        projection.excluded_attributes.as_deref(),
    );
    let base = call.base_url();
    let head = render::project(render::group(record, None, &base), attributes, excluded);
    let location = format!("{base}/Groups/{}", record.id);
    let location = (status == StatusCode::CREATED).then_some(location.as_str());
    if !render::wants("members", attributes, excluded) {
        return Ok(resource_response(status, head, record.version, location));
    }
    Ok(
        resource_headers(status, record.version, location).streaming(member_stream(
            call.state.clone(),
            call.conn,
            record.id,
            head,
            base,
        )),
    )
}

/// `{...head, "members":[` built member by member with serde, so the result
/// is valid JSON whatever the resource holds (nested extension objects too).
fn reopened(head: Value) -> String {
    let mut opening = String::from("{");
    if let Value::Object(fields) = head {
        for (key, value) in fields {
            if key.eq_ignore_ascii_case("members") {
                continue;
            }
            opening.push_str(&Value::String(key).to_string());
            opening.push(':');
            opening.push_str(&value.to_string());
            opening.push(',');
        }
    }
    opening.push_str("\"members\":[");
    opening
}

/// `{...head, "members": [ ...pages... ]}` as a byte stream.
fn member_stream(
    state: web::Data<AppState>,
    conn: ConnectionId,
    group: ResourceId,
    head: Value,
    base: String,
) -> impl futures::Stream<Item = Result<Bytes, ScimApiError>> {
    let opening = reopened(head);
    enum Step {
        Open,
        Page { after: Option<String>, first: bool },
        Close,
        Done,
    }
    futures::stream::unfold(Step::Open, move |step| {
        let state = state.clone();
        let base = base.clone();
        let opening = opening.clone();
        async move {
            match step {
                Step::Open => Some((
                    Ok(Bytes::from(opening)),
                    Step::Page {
                        after: None,
                        first: true,
                    },
                )),
                Step::Page { after, first } => {
                    let page = match state
                        .scim
                        .members(conn, group, after.as_deref(), MEMBER_PAGE)
                        .await
                    {
                        Ok(page) => page,
                        Err(e) => {
                            // Headers are gone: the only honest signal left is a broken body.
                            tracing::error!(error = %e, %group, "member stream failed");
                            return Some((Err(ScimApiError(e)), Step::Done));
                        }
                    };
                    let mut chunk = String::new();
                    for (i, member) in render::members(&page, &base).iter().enumerate() {
                        if !(first && i == 0) {
                            chunk.push(',');
                        }
                        chunk.push_str(&member.to_string());
                    }
                    let next = if (page.len() as u64) < MEMBER_PAGE {
                        Step::Close
                    } else {
                        Step::Page {
                            after: page.last().map(|m| m.value.clone()),
                            first: first && page.is_empty(),
                        }
                    };
                    Some((Ok(Bytes::from(chunk)), next))
                }
                Step::Close => Some((Ok(Bytes::from_static(b"]}")), Step::Done)),
                Step::Done => None,
            }
        }
    })
}

pub async fn create_group(
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let body = call.body(payload).await?;
    let record = call.state.scim.create_group(call.conn, body).await?;
    call.directory_changed();
    group_answer(&call, &record, &p, StatusCode::CREATED).await
}

pub async fn get_group(call: ScimCall, p: web::Query<ProjectionParams>) -> Answer {
    let id = call.id(ResourceKind::Group)?;
    let record = call.state.scim.get_group(call.conn, id).await?;
    group_answer(&call, &record, &p, StatusCode::OK).await
}

pub async fn replace_group(
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (id, body) = call.write(payload, ResourceKind::Group).await?;
    let record = call
        .state
        .scim
        .replace_group(call.conn, id, body, call.if_match())
        .await?;
    call.directory_changed();
    group_answer(&call, &record, &p, StatusCode::OK).await
}

pub async fn patch_group(
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (id, body) = call.write(payload, ResourceKind::Group).await?;
    let patch = patch_request(body)?;
    let record = call
        .state
        .scim
        .patch_group(call.conn, id, &patch, call.if_match())
        .await?;
    call.directory_changed();
    // RFC 7644 §3.5.2 lets a PATCH answer 204 with no body. Entra ID and Okta
    // send one PATCH per membership change and ignore the body, so answering
    // with the whole member list would make every change cost the group's
    // size. A client that wants the resource back asks with `attributes` or
    // `excludedAttributes`.
    if p.attributes.is_none() && p.excluded_attributes.is_none() {
        return Ok(HttpResponse::NoContent()
            .insert_header((header::ETAG, etag(record.version)))
            .finish());
    }
    group_answer(&call, &record, &p, StatusCode::OK).await
}

pub async fn delete_group(call: ScimCall) -> Answer {
    delete_resource(&call, ResourceKind::Group).await
}

pub async fn list_groups(call: ScimCall, params: web::Query<ListParams>) -> Answer {
    let query = query(&params, ResourceKind::Group)?;
    let listed = call.state.scim.list_groups(call.conn, &query).await?;
    let base = call.base_url();
    // Lists never carry members (a page of large groups would be unbounded);
    // each group's `members` is one GET away. Member counts are in `meta`.
    Ok(list_response(&listed, &query, &params, |record| {
        render::group(record, None, &base)
    }))
}
