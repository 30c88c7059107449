//! `/api/v1/orgs/{org}/events`: an org's changes, oldest first, read by
//! cursor; and `/webhooks`: the endpoints they are pushed to, with their
//! deliveries.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::events::{EventCursor, EventQuery, EventType};
use orgsync_domain::service::{EndpointChanges, NewEndpoint};
use orgsync_domain::webhooks::{DeliveryId, WebhookId};
use serde::Deserialize;
use serde_json::json;

use super::extract::OrgCall;
use super::problem::Answer;
use super::routes::Routes;
use super::views::{nullable, ListQuery, ListView};

pub fn table() -> Routes {
    Routes::new("/api/v1", "events")
        .add(
            Method::GET,
            "/orgs/{org}/events",
            "Read the organization's events, oldest first, from a cursor",
            events,
        )
        .add(
            Method::POST,
            "/orgs/{org}/webhooks",
            "Create a webhook endpoint (its signing secret is answered once)",
            create,
        )
        .add(
            Method::GET,
            "/orgs/{org}/webhooks",
            "List webhook endpoints",
            list,
        )
        .add(
            Method::GET,
            "/orgs/{org}/webhooks/{webhook}",
            "Get a webhook endpoint",
            get,
        )
        .add(
            Method::PATCH,
            "/orgs/{org}/webhooks/{webhook}",
            "Change a webhook endpoint's URL, event types, description, or enable it again",
            update,
        )
        .add(
            Method::DELETE,
            "/orgs/{org}/webhooks/{webhook}",
            "Delete a webhook endpoint",
            delete,
        )
        .add(
            Method::POST,
            "/orgs/{org}/webhooks/{webhook}/secret",
            "Rotate the signing secret (the old one signs alongside for the grace period)",
            rotate_secret,
        )
        .add(
            Method::GET,
            "/orgs/{org}/webhooks/{webhook}/deliveries",
            "List the endpoint's deliveries, newest first",
            deliveries,
        )
        .add(
            Method::POST,
            "/orgs/{org}/webhooks/{webhook}/deliveries/{delivery}/retry",
            "Send a delivery again",
            retry,
        )
        .add(
            Method::POST,
            "/orgs/{org}/webhooks/{webhook}/test",
            "Send a signed webhook.test event now and report the receiver's answer",
            test,
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// The `next_cursor` of the previous page; absent: from the oldest kept.
    after: Option<String>,
    /// Comma-separated event types; absent: every type.
    types: Option<String>,
    limit: Option<u64>,
    /// The org's descendants' events too (sandboxes included).
    #[serde(default)]
    include_descendants: bool,
}

async fn events(OrgCall { state, caller, org }: OrgCall, query: web::Query<EventsQuery>) -> Answer {
    let query = query.into_inner();
    let after = match query.after.as_deref() {
        None | Some("") => EventCursor::default(),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 0)
            .map(EventCursor)
            .ok_or_else(|| {
                orgsync_domain::Error::invalid("after", "not a cursor this API issued")
            })?,
    };
    let types = match query.types.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => EventType::parse_list(list.split(',').map(str::trim), "types")?,
    };
    let limit = query.limit.unwrap_or(100);
    let page = state
        .events
        .events(
            &caller,
            org,
            EventQuery {
                after,
                types,
                limit,
                include_descendants: query.include_descendants,
            },
        )
        .await?;
    // The cursor moves to the last event returned; an empty page keeps it
    // where it was, so a reader polls with the same cursor until more come.
    let next = page.last().and_then(|e| e.seq).unwrap_or(after.0);
    let has_more = u64::try_from(page.len()).unwrap_or(u64::MAX) == limit;
    Ok(HttpResponse::Ok().json(json!({
        "data": page,
        "next_cursor": next.to_string(),
        "has_more": has_more,
    })))
}

#[derive(Debug, Deserialize)]
struct WebhookPath {
    webhook: WebhookId,
}

#[derive(Debug, Deserialize)]
struct DeliveryPath {
    webhook: WebhookId,
    delivery: DeliveryId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEndpoint {
    url: String,
    /// Event types to send; absent or empty: every type.
    #[serde(default)]
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEndpoint {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

async fn create(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<CreateEndpoint>,
) -> Answer {
    let body = body.into_inner();
    let (endpoint, secret) = state
        .events
        .create_endpoint(
            &caller,
            org,
            NewEndpoint {
                url: body.url,
                events: body.events,
                description: body.description,
            },
        )
        .await?;
    let mut view = serde_json::to_value(&endpoint).unwrap_or_default();
    view["secret"] = secret.into();
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/orgs/{org}/webhooks/{}", endpoint.id),
        ))
        .json(view))
}

async fn list(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let endpoints = state.events.endpoints(&caller, org).await?;
    Ok(HttpResponse::Ok().json(json!({ "data": endpoints })))
}

async fn get(OrgCall { state, caller, org }: OrgCall, path: web::Path<WebhookPath>) -> Answer {
    let endpoint = state.events.endpoint(&caller, org, path.webhook).await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

async fn update(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<WebhookPath>,
    body: web::Json<UpdateEndpoint>,
) -> Answer {
    let body = body.into_inner();
    let endpoint = state
        .events
        .update_endpoint(
            &caller,
            org,
            path.webhook,
            EndpointChanges {
                url: body.url,
                events: body.events,
                description: body.description,
                enabled: body.enabled,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(endpoint))
}

async fn delete(OrgCall { state, caller, org }: OrgCall, path: web::Path<WebhookPath>) -> Answer {
    state
        .events
        .delete_endpoint(&caller, org, path.webhook)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate_secret(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<WebhookPath>,
) -> Answer {
    let secret = state
        .events
        .rotate_secret(&caller, org, path.webhook)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "secret": secret })))
}

async fn deliveries(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<WebhookPath>,
    query: web::Query<ListQuery>,
) -> Answer {
    let page = state
        .events
        .deliveries(&caller, org, path.webhook, query.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(page, Clone::clone)))
}

async fn retry(OrgCall { state, caller, org }: OrgCall, path: web::Path<DeliveryPath>) -> Answer {
    let delivery = state
        .events
        .retry_delivery(&caller, org, path.webhook, path.delivery)
        .await?;
    Ok(HttpResponse::Accepted().json(delivery))
}

async fn test(OrgCall { state, caller, org }: OrgCall, path: web::Path<WebhookPath>) -> Answer {
    let attempt = state.events.send_test(&caller, org, path.webhook).await?;
    Ok(HttpResponse::Ok().json(json!({
        "succeeded": attempt.succeeded(),
        "status_code": attempt.status,
        "latency_ms": attempt.latency.as_millis(),
        "error": attempt.error,
    })))
}
