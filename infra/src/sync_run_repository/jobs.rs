//! Reading jobs, and choosing which to put (back) on the queue. What is
//! queued is decided here, in the database: a job the queue lost, or one
//! waiting out a retry, is picked up again by `due_for_publish`.

use orgsync_domain::org::OrgId;
use orgsync_domain::sync::SyncJob;
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, FromQueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{JobRow, JOB_COLUMNS};
use super::SqlSyncRunRepository;
use crate::db::db_err;
use crate::filter_sql::Sql;

pub(super) async fn jobs_of(
    repo: &SqlSyncRunRepository,
    run: Uuid,
    with_reports: bool,
) -> Result<Vec<SyncJob>> {
    let report = if with_reports {
        "j.report"
    } else {
        "NULL AS report"
    };
    let rows = JobRow::find_by_statement(repo.db.stmt(
        &format!(
            "SELECT {JOB_COLUMNS}, {report} FROM sync_jobs j JOIN sync_run_jobs r ON r.job_id = j.id \
             WHERE r.run_id = $1 ORDER BY j.id"
        ),
        vec![run.into()],
    ))
    .all(repo.db.connection())
    .await
    .map_err(db_err)?;
    rows.into_iter().map(SyncJob::try_from).collect()
}

pub(super) async fn jobs_of_runs(
    repo: &SqlSyncRunRepository,
    runs: &[Uuid],
) -> Result<Vec<(Uuid, SyncJob)>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::default();
    let list: Vec<String> = runs.iter().map(|r| sql.bind(*r)).collect();
    let rows = repo
        .db
        .connection()
        .query_all(repo.db.stmt(
            &format!(
                "SELECT r.run_id, {JOB_COLUMNS}, NULL AS report FROM sync_jobs j \
                 JOIN sync_run_jobs r ON r.job_id = j.id WHERE r.run_id IN ({}) ORDER BY j.id",
                list.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|row| {
            let run: Uuid = row.try_get("", "run_id").map_err(db_err)?;
            let job = JobRow::from_query_result(row, "").map_err(db_err)?;
            Ok((run, SyncJob::try_from(job)?))
        })
        .collect()
}

pub(super) async fn queued_for_org(repo: &SqlSyncRunRepository, org: OrgId) -> Result<Vec<Uuid>> {
    job_ids(
        repo,
        "SELECT id FROM sync_jobs WHERE org_id = $1 AND status = 'queued'",
        vec![org.0.into()],
    )
    .await
}

pub(super) async fn due_for_publish(
    repo: &SqlSyncRunRepository,
    now: OffsetDateTime,
    published_before: OffsetDateTime,
) -> Result<Vec<Uuid>> {
    job_ids(
        repo,
        "UPDATE sync_jobs SET published_at = $1 WHERE status = 'queued' AND not_before <= $1 \
         AND (published_at IS NULL OR published_at < $2) RETURNING id",
        vec![now.into(), published_before.into()],
    )
    .await
}

/// The job ids a statement returns (a query, or an UPDATE ... RETURNING id).
async fn job_ids(repo: &SqlSyncRunRepository, sql: &str, values: Vec<Value>) -> Result<Vec<Uuid>> {
    repo.db.column(sql, values).await
}
