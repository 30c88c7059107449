//! `/Users`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use orgsync_domain::directory::{ConnectionId, ResourceId, UserRecord};
use orgsync_domain::scim::ResourceKind;

use super::discovery::base_url;
use super::render::{self, if_match};
use super::resources::{
    body, id_of, list_response, patch_request, query, resource_response, ListParams,
    ProjectionParams,
};
use super::{authenticate, directory_changed, ScimApiError};
use crate::state::AppState;

type Answer = Result<HttpResponse, ScimApiError>;

/// Renders one user (with its groups) as the answer to a request.
async fn user_answer(
    state: &AppState,
    req: &HttpRequest,
    conn: ConnectionId,
    record: &UserRecord,
    projection: &ProjectionParams,
    status: StatusCode,
) -> Answer {
    let base = base_url(state, req);
    // A user just created belongs to no group yet: no need to ask.
    let groups: Vec<(ResourceId, String)> = if status == StatusCode::CREATED {
        Vec::new()
    } else {
        state
            .scim
            .groups_of(conn, &[record.id])
            .await?
            .into_iter()
            .map(|(_, id, name)| (id, name))
            .collect()
    };
    let value = render::user(record, &groups, &base);
    let location = (status == StatusCode::CREATED)
        .then(|| value["meta"]["location"].as_str().map(str::to_owned))
        .flatten();
    let value = render::project(
        value,
        projection.attributes.as_deref(),
        projection.excluded_attributes.as_deref(),
    );
    Ok(resource_response(
        status,
        value,
        record.version,
        location.as_deref(),
    ))
}

pub async fn create_user(
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
    directory_changed(&state, conn).await;
    user_answer(&state, &req, conn, &record, &p, StatusCode::CREATED).await
}

pub async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let record = state
        .scim
        .get_user(conn, id_of(&req, ResourceKind::User)?)
        .await?;
    user_answer(&state, &req, conn, &record, &p, StatusCode::OK).await
}

pub async fn replace_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    let body = body(payload, &state).await?;
    let record = state
        .scim
        .replace_user(conn, id, body, if_match(&req))
        .await?;
    directory_changed(&state, conn).await;
    user_answer(&state, &req, conn, &record, &p, StatusCode::OK).await
}

pub async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    let patch = patch_request(body(payload, &state).await?)?;
    let record = state
        .scim
        .patch_user(conn, id, &patch, if_match(&req))
        .await?;
    directory_changed(&state, conn).await;
    user_answer(&state, &req, conn, &record, &p, StatusCode::OK).await
}

pub async fn delete_user(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let id = id_of(&req, ResourceKind::User)?;
    state.scim.delete_user(conn, id, if_match(&req)).await?;
    directory_changed(&state, conn).await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let query = query(&params, ResourceKind::User)?;
    let listed = state.scim.list_users(conn, &query).await?;
    let base = base_url(&state, &req);
    let (attributes, excluded) = (
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    // One query for the whole page's memberships, not one per user.
    let memberships = if render::wants("groups", attributes, excluded) && !listed.items.is_empty() {
        let ids: Vec<ResourceId> = listed.items.iter().map(|u| u.id).collect();
        state.scim.groups_of(conn, &ids).await?
    } else {
        Vec::new()
    };
    // Grouped once by user: a page of 1,000 users may hold 100,000 memberships.
    let mut groups_by_user: std::collections::HashMap<ResourceId, Vec<(ResourceId, String)>> =
        std::collections::HashMap::new();
    for (user, group, name) in memberships {
        groups_by_user.entry(user).or_default().push((group, name));
    }
    let resources = listed
        .items
        .iter()
        .map(|user| {
            let groups = groups_by_user.remove(&user.id).unwrap_or_default();
            render::project(render::user(user, &groups, &base), attributes, excluded)
        })
        .collect();
    Ok(list_response(listed.total, query.start_index, resources))
}
