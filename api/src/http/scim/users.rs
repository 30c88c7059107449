//! `/Users`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use orgsync_domain::directory::{UserView, WithGroups};
use orgsync_domain::scim::ResourceKind;

use super::render;
use super::resources::{
    delete_resource, list_response, patch_request, query, resource_response, ListParams,
    ProjectionParams,
};
use super::{ScimApiError, ScimCall};

type Answer = Result<HttpResponse, ScimApiError>;

/// Renders one user (with its groups) as the answer to a request.
fn user_answer(
    call: &ScimCall,
    view: &UserView,
    projection: &ProjectionParams,
    status: StatusCode,
) -> Answer {
    let value = render::user(view, &call.base_url());
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
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let body = call.body(payload).await?;
    let view = call.state.scim.create_user(call.conn, body).await?;
    call.directory_changed();
    user_answer(&call, &view, &p, StatusCode::CREATED)
}

pub async fn get_user(call: ScimCall, p: web::Query<ProjectionParams>) -> Answer {
    let id = call.id(ResourceKind::User)?;
    let view = call.state.scim.get_user(call.conn, id, p.groups()).await?;
    user_answer(&call, &view, &p, StatusCode::OK)
}

pub async fn replace_user(
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (id, body) = call.write(payload, ResourceKind::User).await?;
    let view = call
        .state
        .scim
        .replace_user(call.conn, id, body, call.if_match(), p.groups())
        .await?;
    call.directory_changed();
    user_answer(&call, &view, &p, StatusCode::OK)
}

pub async fn patch_user(
    call: ScimCall,
    payload: web::Payload,
    p: web::Query<ProjectionParams>,
) -> Answer {
    let (id, body) = call.write(payload, ResourceKind::User).await?;
    let patch = patch_request(body)?;
    let view = call
        .state
        .scim
        .patch_user(call.conn, id, &patch, call.if_match(), p.groups())
        .await?;
    call.directory_changed();
    user_answer(&call, &view, &p, StatusCode::OK)
}

pub async fn delete_user(call: ScimCall) -> Answer {
    delete_resource(&call, ResourceKind::User).await
}

pub async fn list_users(call: ScimCall, params: web::Query<ListParams>) -> Answer {
    let query = query(&params, ResourceKind::User)?;
    let groups = with_groups(
        params.attributes.as_deref(),
        params.excluded_attributes.as_deref(),
    );
    // The page's groups come with it: one statement, not one per user.
    let listed = call
        .state
        .scim
        .list_users(call.conn, &query, groups)
        .await?;
    let base = call.base_url();
    Ok(list_response(&listed, &query, &params, |user| {
        render::user(user, &base)
    }))
}
