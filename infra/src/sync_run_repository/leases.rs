//! One attempt at a job, from claim to finish. A claim takes the job and
//! its org's writer lease in one transaction; every later write names the
//! attempt, so a worker that lost its lease (reclaimed after missed
//! heartbeats) changes nothing when it comes back.

use orgsync_domain::membership::ChangeCounts;
use orgsync_domain::ports::job_writer;
use orgsync_domain::sync::{JobId, SyncJob};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{count, JobRow, JOB_COLUMNS};
use super::writers::{release_writer, take_lease};
use super::SqlSyncRunRepository;
use crate::db::db_err;

/// Whether the job's tenant (its org's root) already runs a sync while
/// another tenant with a due job runs none. Such a job waits its turn, so a
/// tenant's cascade over thousands of orgs cannot keep every worker slot
/// from another tenant's one sync; with no one else waiting, a tenant uses
/// every slot. (`$2` is now.)
const TENANT_OVER_SHARE: &str =
    "EXISTS (SELECT 1 FROM sync_jobs r JOIN organizations ro ON ro.id = r.org_id \
       WHERE r.status = 'running' \
         AND ro.root_id = (SELECT root_id FROM organizations WHERE id = sync_jobs.org_id)) \
     AND EXISTS (SELECT 1 FROM sync_jobs w JOIN organizations wo ON wo.id = w.org_id \
       WHERE w.status = 'queued' AND w.not_before <= $2 \
         AND wo.root_id <> (SELECT root_id FROM organizations WHERE id = sync_jobs.org_id) \
         AND NOT EXISTS (SELECT 1 FROM sync_jobs wr JOIN organizations wro ON wro.id = wr.org_id \
           WHERE wr.status = 'running' AND wro.root_id = wo.root_id))";

pub(super) async fn claim(
    repo: &SqlSyncRunRepository,
    job: Uuid,
    worker: &str,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
) -> Result<Option<SyncJob>> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // One statement decides, so two workers never both take a job, and an
    // org never has two jobs running.
    let row = JobRow::find_by_statement(repo.db.stmt(
        &format!(
            "UPDATE sync_jobs SET status = 'running', attempts = attempts + 1, worker = $3, started_at = $2, \
             heartbeat_at = $2, finished_at = NULL WHERE id = $1 AND status = 'queued' AND not_before <= $2 \
             AND NOT EXISTS (SELECT 1 FROM sync_jobs other WHERE other.org_id = sync_jobs.org_id \
               AND other.status = 'running' AND other.id <> sync_jobs.id) \
             AND NOT ({TENANT_OVER_SHARE}) \
             RETURNING {}, NULL AS report",
            JOB_COLUMNS.replace("j.", "")
        ),
        vec![job.into(), now.into(), worker.into()],
    ))
    .one(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        // A concurrent enqueue's queued job for the same org: try again later.
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::Unavailable("job contended".into()),
        _ => db_err(e),
    })?;
    let Some(row) = row else {
        // Not its tenant's turn: out of the queue until one of the tenant's
        // running jobs ends (or the sweeper comes by), rather than put back
        // at once and read again and again while the other tenant's job
        // waits on something else (an admin holding its org).
        txn.execute(repo.db.stmt(
            &format!(
                "UPDATE sync_jobs SET published_at = NULL \
                 WHERE id = $1 AND status = 'queued' AND not_before <= $2 AND {TENANT_OVER_SHARE}"
            ),
            vec![job.into(), now.into()],
        ))
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        return Ok(None);
    };
    let claimed = SyncJob::try_from(row)?;
    let holder = job_writer(claimed.id, claimed.attempts);
    // Another writer (an incremental catch-up, an admin change) has the
    // org: the job stays queued, and that writer publishes it when done.
    if !take_lease(&txn, claimed.org_id, &holder, now, lease_until).await? {
        txn.rollback().await.map_err(db_err)?;
        return Ok(None);
    }
    txn.commit().await.map_err(db_err)?;
    Ok(Some(claimed))
}

pub(super) async fn heartbeat(
    repo: &SqlSyncRunRepository,
    job: Uuid,
    attempt: u32,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
) -> Result<bool> {
    let renewed = repo.leases.execute(
        "UPDATE sync_jobs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running' AND attempts = $3",
        vec![now.into(), job.into(), i64::from(attempt).into()],
    )
    .await?;
    if renewed == 0 {
        return Ok(false);
    }
    repo.leases
        .execute(
            "UPDATE org_writers SET expires_at = $1 WHERE holder = $2",
            vec![lease_until.into(), job_writer(JobId(job), attempt).into()],
        )
        .await?;
    Ok(true)
}

pub(super) async fn complete(
    repo: &SqlSyncRunRepository,
    job: Uuid,
    attempt: u32,
    counts: ChangeCounts,
    report: Option<serde_json::Value>,
    now: OffsetDateTime,
) -> Result<()> {
    repo.execute(
        "UPDATE sync_jobs SET status = 'succeeded', added = $1, updated = $2, removed = $3, report = $4, \
         error = NULL, finished_at = $5 WHERE id = $6 AND status = 'running' AND attempts = $7",
        vec![
            count(counts.adds),
            count(counts.updates),
            count(counts.removals),
            report.map(|r| r.to_string()).into(),
            now.into(),
            job.into(),
            i64::from(attempt).into(),
        ],
    )
    .await?;
    release_writer(repo, job, attempt).await
}

pub(super) async fn fail(
    repo: &SqlSyncRunRepository,
    job: Uuid,
    attempt: u32,
    error: &str,
    retry_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<()> {
    let (status, not_before, finished) = match retry_at {
        Some(at) => ("queued", at, None),
        None => ("failed", now, Some(now)),
    };
    // A retry may find a newer request already queued for the org; it then joins that one.
    let result = repo
        .db
        .connection()
        .execute(repo.db.stmt(
            "UPDATE sync_jobs SET status = $1, not_before = $2, error = $3, finished_at = $4, published_at = NULL \
             WHERE id = $5 AND status = 'running' AND attempts = $6",
            vec![status.into(), not_before.into(), error.to_owned().into(), finished.into(), job.into(), i64::from(attempt).into()],
        ))
        .await;
    let recorded = match result {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            repo.execute(
                "UPDATE sync_jobs SET status = 'failed', error = $1, finished_at = $2 \
                 WHERE id = $3 AND status = 'running' AND attempts = $4",
                vec![
                    format!("{error} (superseded by a newer queued sync)").into(),
                    now.into(),
                    job.into(),
                    i64::from(attempt).into(),
                ],
            )
            .await?;
            Ok(())
        }
        Err(e) => Err(db_err(e)),
    };
    recorded?;
    release_writer(repo, job, attempt).await
}

pub(super) async fn reclaim_stale(
    repo: &SqlSyncRunRepository,
    heartbeat_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<u64> {
    let stale: Vec<Uuid> = repo
        .db
        .column(
            "SELECT id FROM sync_jobs WHERE status = 'running' AND heartbeat_at < $1 ORDER BY org_id",
            vec![heartbeat_before.into()],
        )
        .await?;
    let mut reclaimed = 0;
    for job in stale {
        // One job at a time: a new sync of its org queued meanwhile makes
        // the re-queue fail on the one-queued-job index, and this job then
        // yields to that one, as it does to one queued before.
        let requeued = repo
            .db
            .connection()
            .execute(repo.db.stmt(
                "UPDATE sync_jobs SET status = 'queued', not_before = $3, published_at = NULL \
                 WHERE id = $1 AND status = 'running' AND heartbeat_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM sync_jobs q WHERE q.org_id = sync_jobs.org_id AND q.status = 'queued')",
                vec![job.into(), heartbeat_before.into(), now.into()],
            ))
            .await;
        match requeued {
            Ok(done) if done.rows_affected() == 1 => {
                reclaimed += 1;
                continue;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) => {}
            Err(e) => return Err(db_err(e)),
        }
        repo.execute(
            "UPDATE sync_jobs SET status = 'failed', error = 'worker lost; superseded by a queued sync', finished_at = $3 \
             WHERE id = $1 AND status = 'running' AND heartbeat_at < $2",
            vec![job.into(), heartbeat_before.into(), now.into()],
        )
        .await?;
    }
    Ok(reclaimed)
}
