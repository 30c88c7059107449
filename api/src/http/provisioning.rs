//! `/api/v1/orgs/{org}/provisioning`, `/group-mappings` and `/syncs`: the
//! changes that decide membership, each with a preview, and sync runs.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::membership::{
    Deprovision, GroupMappings, RoleMapping, SpendMapping, TierMapping,
};
use orgsync_domain::org::ProvisioningMode;
use orgsync_domain::service::SyncRequest;
use orgsync_domain::sync::{MembershipSettings, RunStatus, SyncJob, SyncRun, SyncScope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::extract::{OptionalJson, OrgCall, RunPath};
use super::problem::Answer;
use super::routes::Routes;
use super::views::{
    org_cursor, preview_cursor, preview_view, timestamp, ListQuery, ListView, OrgWindowQuery,
    PreviewQuery,
};

pub fn table() -> Routes {
    Routes::new("/api/v1", "sync")
        .add(
            Method::GET,
            "/orgs/{org}/provisioning",
            "Get the provisioning mode",
            get_mode,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/provisioning",
            "Set the provisioning mode (reconciles; removals need confirmation)",
            set_mode,
        )
        .add(
            Method::GET,
            "/orgs/{org}/provisioning/jit",
            "The role members created on first sign-in get",
            get_jit,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/provisioning/jit",
            "Set the role members created on first sign-in get (null: user; never owner)",
            set_jit,
        )
        .add(
            Method::POST,
            "/orgs/{org}/provisioning/preview",
            "Preview a provisioning mode change",
            preview_mode,
        )
        .add(
            Method::GET,
            "/orgs/{org}/group-mappings",
            "Get group mappings and deprovisioning",
            get_mappings,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/group-mappings",
            "Save group mappings (applies; removals need confirmation)",
            save_mappings,
        )
        .add(
            Method::POST,
            "/orgs/{org}/group-mappings/preview",
            "Preview group mappings",
            preview_mappings,
        )
        .add(
            Method::POST,
            "/orgs/{org}/syncs",
            "Start a (cascading) sync",
            start_sync,
        )
        .add(
            Method::GET,
            "/orgs/{org}/syncs",
            "List sync runs",
            list_syncs,
        )
        .add(
            Method::POST,
            "/orgs/{org}/syncs/preview",
            "Preview a sync, org by org",
            preview_sync,
        )
        .add(
            Method::GET,
            "/orgs/{org}/syncs/{run}",
            "Get a sync run with its jobs and reports",
            get_sync,
        )
        .add(
            Method::POST,
            "/orgs/{org}/syncs/{run}/retry",
            "Retry the failed jobs of a sync run",
            retry_sync,
        )
}

#[derive(Debug, Serialize)]
pub struct RunView {
    id: Uuid,
    org_id: Uuid,
    kind: orgsync_domain::sync::SyncKind,
    scope: SyncScope,
    requested_by: String,
    status: RunStatus,
    counts: orgsync_domain::membership::ChangeCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<serde_json::Value>,
    error: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// Per-org jobs of a manual (possibly cascading) sync.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    jobs: Vec<SyncJob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
}

#[derive(Debug, Serialize)]
struct Progress {
    processed: usize,
    total: usize,
}

impl RunView {
    pub fn with_jobs(run: &SyncRun, jobs: Vec<SyncJob>, with_report: bool) -> Self {
        let mut view = Self::of(run, with_report);
        if !jobs.is_empty() {
            view.progress = Some(Progress {
                processed: jobs
                    .iter()
                    .filter(|j| matches!(j.status, RunStatus::Succeeded | RunStatus::Failed))
                    .count(),
                total: jobs.len(),
            });
        }
        view.jobs = jobs;
        view
    }

    pub fn of(run: &SyncRun, with_report: bool) -> Self {
        Self {
            id: run.id.0,
            org_id: run.org_id.0,
            kind: run.kind,
            scope: run.scope,
            requested_by: run.requested_by.clone(),
            status: run.status,
            counts: run.counts,
            report: if with_report {
                run.report.clone()
            } else {
                None
            },
            error: run.error.clone(),
            created_at: timestamp(run.created_at),
            started_at: run.started_at.map(timestamp),
            finished_at: run.finished_at.map(timestamp),
            jobs: Vec::new(),
            progress: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: ProvisioningMode,
    confirm: Option<String>,
}

fn jit_view(role: Option<&orgsync_domain::membership::Role>) -> serde_json::Value {
    json!({
        "default_role": role,
        "effective_role": role.map_or("user", |r| r.as_str()),
    })
}

async fn get_jit(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let role = state.members.jit_default_role(&caller, org).await?;
    Ok(HttpResponse::Ok().json(jit_view(role.as_ref())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JitBody {
    default_role: Option<orgsync_domain::membership::Role>,
}

async fn set_jit(OrgCall { state, caller, org }: OrgCall, body: web::Json<JitBody>) -> Answer {
    let role = state
        .members
        .set_jit_default_role(&caller, org, body.into_inner().default_role)
        .await?;
    Ok(HttpResponse::Ok().json(jit_view(role.as_ref())))
}

async fn get_mode(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let current = state.orgs.get(&caller, org).await?;
    Ok(HttpResponse::Ok().json(json!({ "mode": current.provisioning_mode })))
}

async fn preview_mode(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<ModeRequest>,
    query: web::Query<PreviewQuery>,
) -> Answer {
    let (offset, limit) = query.window(state.limits.preview_page)?;
    let (sync, mode) = (state.sync.clone(), body.mode);
    let preview = state
        .heavy
        .run(async move { sync.preview_mode(&caller, org, mode).await })
        .await?;
    Ok(HttpResponse::Ok().json(preview_view(preview.page(offset, limit))))
}

async fn set_mode(OrgCall { state, caller, org }: OrgCall, body: web::Json<ModeRequest>) -> Answer {
    let ModeRequest { mode, confirm } = body.into_inner();
    let sync = state.sync.clone();
    let (updated, applied) = state
        .heavy
        .to_completion(async move { sync.set_mode(&caller, org, mode, confirm.as_deref()).await })
        .await?;
    tracing::info!(
        mode = updated.provisioning_mode.as_str(),
        "provisioning mode set"
    );
    Ok(HttpResponse::Ok().json(json!({
        "mode": updated.provisioning_mode,
        "sync_run": applied.run.as_ref().map(|r| RunView::of(r, false)),
    })))
}

/// The body of `PUT /group-mappings` and its preview: the mappings' own
/// fields spelt out, not flattened from [`GroupMappings`], because serde
/// cannot refuse unknown fields beside a flattened struct, and a misspelt
/// `seat_tier` would then save an org without its tier mappings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingsRequest {
    enabled: bool,
    #[serde(default)]
    roles: Vec<RoleMapping>,
    #[serde(default)]
    seat_tiers: Vec<TierMapping>,
    #[serde(default)]
    spend_limits: Vec<SpendMapping>,
    #[serde(default)]
    deprovision: Deprovision,
    confirm: Option<String>,
}

impl MappingsRequest {
    fn settings(&self) -> MembershipSettings {
        MembershipSettings {
            mappings: GroupMappings {
                enabled: self.enabled,
                roles: self.roles.clone(),
                seat_tiers: self.seat_tiers.clone(),
                spend_limits: self.spend_limits.clone(),
            },
            deprovision: self.deprovision,
        }
    }
}

fn settings_view(settings: &MembershipSettings) -> serde_json::Value {
    let mut view = serde_json::to_value(&settings.mappings).unwrap_or_default();
    view["deprovision"] = json!(settings.deprovision);
    view
}

async fn get_mappings(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let settings = state.sync.settings(&caller, org).await?;
    Ok(HttpResponse::Ok().json(settings_view(&settings)))
}

async fn preview_mappings(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<MappingsRequest>,
    query: web::Query<PreviewQuery>,
) -> Answer {
    let (offset, limit) = query.window(state.limits.preview_page)?;
    let (sync, settings) = (state.sync.clone(), body.settings());
    let preview = state
        .heavy
        .run(async move { sync.preview_settings(&caller, org, &settings).await })
        .await?;
    Ok(HttpResponse::Ok().json(preview_view(preview.page(offset, limit))))
}

async fn save_mappings(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<MappingsRequest>,
) -> Answer {
    let settings = body.settings();
    let (sync, saved, confirm) = (state.sync.clone(), settings.clone(), body.confirm.clone());
    let applied = state
        .heavy
        .to_completion(async move {
            sync.save_settings(&caller, org, &saved, confirm.as_deref())
                .await
        })
        .await?;
    let mut view = settings_view(&settings);
    view["sync_run"] = json!(applied.run.as_ref().map(|r| RunView::of(r, false)));
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    #[serde(default)]
    scope: SyncScope,
    #[serde(default = "yes")]
    cascade: bool,
    #[serde(default = "yes")]
    include_sandboxes: bool,
}

fn yes() -> bool {
    true
}

fn sync_request(OptionalJson(body): OptionalJson<SyncBody>) -> SyncRequest {
    body.map_or_else(SyncRequest::default, |b| SyncRequest {
        scope: b.scope,
        cascade: b.cascade,
        include_sandboxes: b.include_sandboxes,
    })
}

async fn start_sync(
    OrgCall { state, caller, org }: OrgCall,
    body: OptionalJson<SyncBody>,
) -> Answer {
    let (run, jobs) = state
        .sync
        .start_sync(&caller, org, sync_request(body))
        .await?;
    tracing::info!(run = %run.id, orgs = jobs.len(), "sync queued");
    Ok(HttpResponse::Accepted()
        .insert_header((
            "location",
            format!("/api/v1/orgs/{}/syncs/{}", run.org_id, run.id),
        ))
        .json(RunView::with_jobs(&run, jobs, false)))
}

async fn preview_sync(
    OrgCall { state, caller, org }: OrgCall,
    body: OptionalJson<SyncBody>,
    query: web::Query<PreviewQuery>,
    org_query: web::Query<OrgWindowQuery>,
) -> Answer {
    let (offset, limit) = query.window(state.limits.preview_page)?;
    let orgs = org_query.window()?;
    let end = orgs.end;
    let (sync, request) = (state.sync.clone(), sync_request(body));
    let (previews, in_scope) = state
        .heavy
        .run(async move {
            sync.preview_sync(&caller, org, request, (offset, limit), orgs)
                .await
        })
        .await?;
    let orgs: Vec<serde_json::Value> = previews
        .into_iter()
        .map(|(org, page)| {
            json!({
                "org_id": org.id,
                "name": org.name.as_str(),
                "kind": org.kind,
                "provisioning_mode": org.provisioning_mode,
                "counts": page.counts,
                "changes": page.changes,
                "next_cursor": preview_cursor(page.next_offset),
            })
        })
        .collect();
    let next_org_cursor = org_cursor((end < in_scope).then_some(end));
    Ok(HttpResponse::Ok().json(json!({
        "orgs": orgs,
        "orgs_in_scope": in_scope,
        "next_org_cursor": next_org_cursor,
    })))
}

async fn retry_sync(OrgCall { state, caller, org }: OrgCall, path: web::Path<RunPath>) -> Answer {
    let run = path.run;
    let (run, jobs) = state.sync.retry(&caller, org, run).await?;
    Ok(HttpResponse::Accepted().json(RunView::with_jobs(&run, jobs, false)))
}

async fn list_syncs(
    OrgCall { state, caller, org }: OrgCall,
    query: web::Query<ListQuery>,
) -> Answer {
    let page = state.sync.runs(&caller, org, query.page()?).await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |r| RunView::of(r, false))))
}

async fn get_sync(OrgCall { state, caller, org }: OrgCall, path: web::Path<RunPath>) -> Answer {
    let run = path.run;
    let (run, jobs) = state.sync.run(&caller, org, run).await?;
    Ok(HttpResponse::Ok().json(RunView::with_jobs(&run, jobs, true)))
}
