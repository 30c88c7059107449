//! Deletion protection: an org's threshold, and the removals a background
//! sync held above it, to confirm or reject.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::sync::DeletionThreshold;
use serde::Deserialize;
use serde_json::json;

use super::extract::OrgCall;
use super::problem::Answer;
use super::routes::Routes;
use super::views::{preview_cursor, PreviewQuery};

pub fn table() -> Routes {
    Routes::new("/api/v1", "sync")
        .add(
            Method::GET,
            "/orgs/{org}/deletion-protection",
            "Get the deletion threshold",
            get_threshold,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/deletion-protection",
            "Set the deletion threshold (0 turns protection off)",
            set_threshold,
        )
        .add(
            Method::GET,
            "/orgs/{org}/held-removals",
            "Removals and suspensions held by deletion protection",
            get_held,
        )
        .add(
            Method::POST,
            "/orgs/{org}/held-removals/confirm",
            "Apply the held plan the confirmation names",
            confirm_held,
        )
        .add(
            Method::POST,
            "/orgs/{org}/held-removals/reject",
            "Drop the held plan; its members stay",
            reject_held,
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdBody {
    /// Removals or suspensions above which (and above 5% of the org) a background sync holds them.
    max_removals: u32,
}

fn threshold_view(threshold: DeletionThreshold) -> serde_json::Value {
    json!({
        "max_removals": threshold.max_removals,
        "min_share_percent": orgsync_domain::sync::HELD_SHARE_PERCENT,
        "enabled": threshold.max_removals > 0,
    })
}

async fn get_threshold(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let threshold = state.sync.deletion_threshold(&caller, org).await?;
    Ok(HttpResponse::Ok().json(threshold_view(threshold)))
}

async fn set_threshold(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<ThresholdBody>,
) -> Answer {
    let threshold = state
        .sync
        .set_deletion_threshold(
            &caller,
            org,
            DeletionThreshold {
                max_removals: body.max_removals,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(threshold_view(threshold)))
}

/// A window of the held plan, as a preview is read: a mass removal held in
/// a large org lists its people a page at a time; `counts` and
/// `confirmation` cover the whole plan.
async fn get_held(
    OrgCall { state, caller, org }: OrgCall,
    query: web::Query<PreviewQuery>,
) -> Answer {
    let (offset, limit) = query.window(state.limits.preview_page)?;
    let held = state.sync.held_removals(&caller, org).await?;
    let end = offset.saturating_add(limit);
    fn window<T>(items: &[T], offset: usize, end: usize) -> &[T] {
        &items[offset.min(items.len())..end.min(items.len())]
    }
    let longest = held.removals.len().max(held.suspensions.len());
    Ok(HttpResponse::Ok().json(json!({
        "confirmation": held.confirmation,
        "source": held.source,
        "held_at": super::views::timestamp(held.held_at),
        "counts": {"removals": held.removals.len(), "suspensions": held.suspensions.len()},
        "removals": window(&held.removals, offset, end),
        "suspensions": window(&held.suspensions, offset, end),
        "next_cursor": preview_cursor((end < longest).then_some(end)),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    confirmation: String,
}

async fn confirm_held(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<ConfirmBody>,
) -> Answer {
    let (sync, confirmation) = (state.sync.clone(), body.into_inner().confirmation);
    let applied = state
        .heavy
        .to_completion(async move {
            sync.confirm_held_removals(&caller, org, &confirmation)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "applied": applied })))
}

async fn reject_held(OrgCall { state, caller, org }: OrgCall) -> Answer {
    state.sync.reject_held_removals(&caller, org).await?;
    Ok(HttpResponse::NoContent().finish())
}
