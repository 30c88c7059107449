//! `/Users`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use orgsync_domain::directory::{UserView, WithGroups};
use orgsync_domain::scim::ResourceKind;

use super::discovery::base_url;
use super::render::{self, if_match};
use super::resources::{
    body, delete_resource, id_of, list_response, patch_request, query, resource_response,
    write_request, ListParams, ProjectionParams,
};
use super::{authenticate, directory_changed, ScimApiError};
use crate::state::AppState;

type Answer = Result<HttpResponse, ScimApiError>;

/// Renders one user (with its groups) as the answer to a request.
fn user_answer(
    state: &AppState,
    req: &HttpRequest,
    view: &UserView,
    projection: &ProjectionParams,
    status: StatusCode,
) -> Answer {
    let base = base_url(state, req);
    let value = render::user(view, &base);
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
        view.record.version,
        location.as_deref(),
    ))
}

/// Whether the answer shows groups, so the read need not fetch them when not.
fn with_groups(attributes: Option<&str>, excluded: Option<&str>) -> WithGroups {
    if render::wants("groups", attributes, excluded) {
        WithGroups::Yes
    } else {
        WithGroups::No
    }
}

impl ProjectionParams {
    fn groups(&self) -> WithGroups {
        with_groups(
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
        )
    }
}

pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let view = state
        .scim
        .create_user(conn, body(payload, &state).await?)
        .await?;
    directory_changed(&state, conn).await;
    user_answer(&state, &req, &view, &p, StatusCode::CREATED)
}

pub async fn get_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let view = state
        .scim
        .get_user(conn, id_of(&req, ResourceKind::User)?, p.groups())
        .await?;
    user_answer(&state, &req, &view, &p, StatusCode::OK)
}

pub async fn replace_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (conn, id, body) = write_request(&req, &state, payload, ResourceKind::User).await?;
    let view = state
        .scim
        .replace_user(conn, id, body, if_match(&req), p.groups())
        .await?;
    directory_changed(&state, conn).await;
    user_answer(&state, &req, &view, &p, StatusCode::OK)
}

pub async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (conn, id, body) = write_request(&req, &state, payload, ResourceKind::User).await?;
    let patch = patch_request(body)?;
    let view = state
        .scim
        .patch_user(conn, id, &patch, if_match(&req), p.groups())
        .await?;
    directory_changed(&state, conn).await;
    user_answer(&state, &req, &view, &p, StatusCode::OK)
}

pub async fn delete_user(req: HttpRequest, state: web::Data<AppState>) -> Answer {
    delete_resource(&req, &state, ResourceKind::User).await
}

pub async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Answer {
    let conn = authenticate(&req, &state).await?;
    let query = query(&params, ResourceKind::User)?;
    let groups = with_groups(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    // The page's groups come with it: one statement, not one per user.
    let listed = state.scim.list_users(conn, &query, groups).await?;
    let base = base_url(&state, &req);
    Ok(list_response(&listed, &query, &params, |user| {
        render::user(user, &base)
    }))
}
