//! How runs and jobs are stored. Both rows end with what was done (counts,
//! report, error, timestamps), read as one nested [`Outcome`] so that the
//! two conversions cannot drift apart on it.

use orgsync_domain::membership::ChangeCounts;
use orgsync_domain::org::OrgId;
use orgsync_domain::sync::{JobId, RunId, RunStatus, SyncJob, SyncKind, SyncRun, SyncScope};
use orgsync_domain::{Error, Result};
use sea_orm::{FromQueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) const COLUMNS: &str =
    "id, org_id, kind, scope, requested_by, status, added, updated, removed, report, error, \
    created_at, started_at, finished_at";

pub(super) const JOB_COLUMNS: &str =
    "j.id, j.org_id, j.scope, j.status, j.attempts, j.worker, j.added, j.updated, j.removed, j.error, \
    j.created_at, j.started_at, j.finished_at";

/// The columns a run and a job share, read from the same row (no prefix).
#[derive(FromQueryResult)]
struct Outcome {
    added: i64,
    updated: i64,
    removed: i64,
    report: Option<String>,
    error: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
}

impl Outcome {
    fn counts(&self, suspensions: usize) -> ChangeCounts {
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        ChangeCounts {
            adds: n(self.added),
            updates: n(self.updated),
            removals: n(self.removed),
            suspensions,
        }
    }
}

#[derive(FromQueryResult)]
pub(super) struct RunRow {
    id: Uuid,
    org_id: Uuid,
    kind: String,
    scope: String,
    requested_by: String,
    status: String,
    #[sea_orm(nested)]
    outcome: Outcome,
}

impl TryFrom<RunRow> for SyncRun {
    type Error = Error;

    fn try_from(row: RunRow) -> Result<Self> {
        let outcome = row.outcome;
        let report = outcome
            .report
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
            .map_err(|e| Error::Internal(anyhow::anyhow!("run {}: corrupt report: {e}", row.id)))?;
        let suspensions = report
            .as_ref()
            .and_then(|r| r["counts"]["suspensions"].as_u64())
            .map_or(0, |n| usize::try_from(n).unwrap_or(0));
        Ok(SyncRun {
            id: RunId(row.id),
            org_id: OrgId(row.org_id),
            kind: SyncKind::parse(&row.kind)?,
            scope: SyncScope::parse(&row.scope)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt scope")))?,
            requested_by: row.requested_by,
            status: RunStatus::parse(&row.status)?,
            counts: outcome.counts(suspensions),
            report,
            error: outcome.error,
            created_at: outcome.created_at,
            started_at: outcome.started_at,
            finished_at: outcome.finished_at,
        })
    }
}

#[derive(FromQueryResult)]
pub(super) struct JobRow {
    id: Uuid,
    org_id: Uuid,
    scope: String,
    status: String,
    attempts: i32,
    worker: Option<String>,
    #[sea_orm(nested)]
    outcome: Outcome,
}

impl TryFrom<JobRow> for SyncJob {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self> {
        let outcome = row.outcome;
        Ok(SyncJob {
            id: JobId(row.id),
            org_id: OrgId(row.org_id),
            scope: SyncScope::parse(&row.scope)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt job scope")))?,
            status: RunStatus::parse(&row.status)?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            worker: row.worker,
            counts: outcome.counts(0),
            error: outcome.error,
            report: outcome.report.and_then(|r| serde_json::from_str(&r).ok()),
            created_at: outcome.created_at,
            started_at: outcome.started_at,
            finished_at: outcome.finished_at,
        })
    }
}

/// A count as a bound value (counts are `BIGINT` columns).
pub(super) fn count(n: usize) -> Value {
    i64::try_from(n).unwrap_or(i64::MAX).into()
}
