//! What the `/Users` and `/Groups` handlers share: list parameters and
//! queries, projections, the PATCH body and the answers they build.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use orgsync_domain::directory::{ScimError, ScimQuery, SortKey};
use orgsync_domain::ports::Listed;
use orgsync_domain::scim::{Filter, PatchRequest, ResourceKind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::unsupported;
use super::render::{self, etag};
use super::{ScimApiError, ScimCall, SCIM_CONTENT_TYPE};
use crate::http::extract::{read_body, BodyError};
use crate::state::AppState;

/// The most resources one list response returns (advertised as `filter.maxResults`).
pub const MAX_RESULTS: u64 = 1000;

type Answer = Result<HttpResponse, ScimApiError>;

pub(super) fn patch_request(value: Value) -> Result<PatchRequest, ScimApiError> {
    serde_json::from_value(value).map_err(|e| {
        ScimApiError(ScimError::InvalidSyntax(format!(
            "not a PatchOp request: {e}"
        )))
    })
}

/// Only an authenticated caller learns what is not supported.
pub(super) async fn not_supported(_call: ScimCall) -> Answer {
    Ok(unsupported(
        StatusCode::NOT_IMPLEMENTED,
        "POST .search is not supported; use GET with filter",
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    pub(super) filter: Option<String>,
    pub(super) start_index: Option<String>,
    pub(super) count: Option<String>,
    pub(super) sort_by: Option<String>,
    pub(super) sort_order: Option<String>,
    pub(super) attributes: Option<String>,
    pub(super) excluded_attributes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionParams {
    pub(super) attributes: Option<String>,
    pub(super) excluded_attributes: Option<String>,
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

pub(super) fn query(params: &ListParams, kind: ResourceKind) -> Result<ScimQuery, ScimApiError> {
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
pub(super) async fn body(payload: web::Payload, state: &AppState) -> Result<Value, ScimApiError> {
    let bytes = read_body(payload, state.body_limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ScimError::TooLarge(format!(
                "the request body exceeds {} bytes",
                state.body_limit
            )),
            BodyError::Broken(e) => ScimError::InvalidSyntax(e.to_string()),
        })
        .map_err(ScimApiError)?;
    let large = bytes.len() > OFFLOADED_BODY;
    let parse = move || {
        serde_json::from_slice(&bytes).map_err(|e| {
            ScimApiError(ScimError::InvalidSyntax(format!(
                "the body is not valid JSON: {e}"
            )))
        })
    };
    if large {
        // Parsing a body near the limit takes milliseconds: on the blocking
        // pool, so the other requests this HTTP worker serves (probes
        // included) do not wait behind it.
        return web::block(parse)
            .await
            .map_err(|e| ScimApiError(ScimError::Internal(e.into())))?;
    }
    parse()
}

/// Bodies larger than this are parsed off the HTTP worker thread.
const OFFLOADED_BODY: usize = 64 * 1024;

pub(super) fn resource_response(
    status: StatusCode,
    value: Value,
    version: i64,
    location: Option<&str>,
) -> HttpResponse {
    resource_headers(status, version, location).body(value.to_string())
}

/// A resource's answer before its body, which is either whole or streamed.
pub(super) fn resource_headers(
    status: StatusCode,
    version: i64,
    location: Option<&str>,
) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .content_type(SCIM_CONTENT_TYPE)
        .insert_header((header::ETAG, etag(version)));
    if let Some(location) = location {
        response.insert_header((header::LOCATION, location.to_owned()));
    }
    response
}

/// A page of users or groups, each rendered by `render` and then cut to
/// the attributes the request asks for.
pub(super) fn list_response<T>(
    listed: &Listed<T>,
    query: &ScimQuery,
    params: &ListParams,
    render: impl Fn(&T) -> Value,
) -> HttpResponse {
    let resources: Vec<Value> = listed
        .items
        .iter()
        .map(|item| {
            render::project(
                render(item),
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            )
        })
        .collect();
    HttpResponse::Ok().content_type(SCIM_CONTENT_TYPE).body(
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": listed.total,
            "startIndex": query.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        })
        .to_string(),
    )
}

/// DELETE `/Users/{id}` or `/Groups/{id}`: 204 with no body.
pub(super) async fn delete_resource(call: &ScimCall, kind: ResourceKind) -> Answer {
    let id = call.id(kind)?;
    call.state
        .scim
        .delete(kind, call.conn, id, call.if_match())
        .await?;
    call.directory_changed();
    Ok(HttpResponse::NoContent().finish())
}
