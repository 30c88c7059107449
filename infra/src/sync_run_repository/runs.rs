//! Runs: what was asked, by whom, over which orgs. A run is recorded with
//! its jobs in one transaction, so that a run never exists without the jobs
//! that carry it out, and a request for an org that already has a queued job
//! joins that job instead of queueing a second one, even when both arrive at once.

use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::sync::{SyncRun, SyncScope};
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, Statement, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{count, RunRow, COLUMNS};
use super::SqlSyncRunRepository;
use crate::db::db_err;

pub(super) async fn insert(repo: &SqlSyncRunRepository, run: &SyncRun) -> Result<()> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    insert_run(&txn, run).await?;
    txn.commit().await.map_err(db_err)
}

pub(super) async fn find(
    repo: &SqlSyncRunRepository,
    org: OrgId,
    id: Uuid,
) -> Result<Option<SyncRun>> {
    RunRow::find_by_statement(repo.db.stmt(
        &format!("SELECT {COLUMNS} FROM sync_runs WHERE org_id = $1 AND id = $2"),
        vec![org.0.into(), id.into()],
    ))
    .one(repo.db.connection())
    .await
    .map_err(db_err)?
    .map(SyncRun::try_from)
    .transpose()
}

pub(super) async fn list(
    repo: &SqlSyncRunRepository,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<SyncRun>> {
    // Newest first: ids are time-ordered, so the cursor moves downwards.
    let before = page.after.unwrap_or(Uuid::max());
    let rows = RunRow::find_by_statement(repo.db.stmt(
        &format!("SELECT {COLUMNS} FROM sync_runs WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
        vec![org.0.into(), before.into(), i64::try_from(page.limit + 1).unwrap_or(i64::MAX).into()],
    ))
    .all(repo.db.connection())
    .await
    .map_err(db_err)?;
    let runs = rows
        .into_iter()
        .map(SyncRun::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(runs, page.limit, |r| r.id.0))
}

pub(super) async fn enqueue(
    repo: &SqlSyncRunRepository,
    run: &SyncRun,
    orgs: &[OrgId],
    now: OffsetDateTime,
) -> Result<Vec<Uuid>> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    insert_run(&txn, run).await?;
    let mut created = Vec::new();
    // One order for every transaction that locks several orgs' queued jobs
    // (this and `retry_failed`), so two of them never wait on each other.
    let mut orgs = orgs.to_vec();
    orgs.sort_by_key(|org| org.0);
    for org in &orgs {
        let (job, queued_now) = join_or_queue(repo, &txn, *org, run.scope, now).await?;
        if queued_now {
            created.push(job);
        }
        txn.execute(repo.db.stmt(
            "INSERT INTO sync_run_jobs (run_id, job_id) VALUES ($1, $2)",
            vec![run.id.0.into(), job.into()],
        ))
        .await
        .map_err(db_err)?;
    }
    txn.commit().await.map_err(db_err)?;
    Ok(created)
}

/// Queues the run's failed jobs again; returns the jobs queued anew. A
/// failed job is replaced by the one `join_or_queue` gives its org: a new
/// job, or the one another request queued meanwhile, which the run then
/// follows (re-queueing the failed job in place would break the one queued
/// job per org when a new sync of the org is requested at the same moment).
pub(super) async fn retry_failed(
    repo: &SqlSyncRunRepository,
    run: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>> {
    #[derive(FromQueryResult)]
    struct Failed {
        id: Uuid,
        org_id: Uuid,
        scope: String,
    }
    let lock = match repo.db.backend() {
        DbBackend::Postgres => " FOR UPDATE OF j",
        _ => "",
    };
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // Locked, so a second retry of the run waits and then finds nothing failed.
    let failed = Failed::find_by_statement(repo.db.stmt(
        &format!(
            "SELECT j.id, j.org_id, j.scope FROM sync_jobs j JOIN sync_run_jobs r ON r.job_id = j.id \
             WHERE r.run_id = $1 AND j.status = 'failed' ORDER BY j.org_id{lock}"
        ),
        vec![run.into()],
    ))
    .all(&txn)
    .await
    .map_err(db_err)?;
    let mut created = Vec::new();
    for job in failed {
        let scope = SyncScope::parse(&job.scope).unwrap_or_default();
        let (next, queued_now) = join_or_queue(repo, &txn, OrgId(job.org_id), scope, now).await?;
        if queued_now {
            created.push(next);
        }
        txn.execute(repo.db.stmt(
            "UPDATE sync_run_jobs SET job_id = $3 WHERE run_id = $1 AND job_id = $2",
            vec![run.into(), job.id.into(), next.into()],
        ))
        .await
        .map_err(db_err)?;
        // Kept while another run still shows it as its outcome.
        txn.execute(repo.db.stmt(
            "DELETE FROM sync_jobs WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM sync_run_jobs WHERE job_id = $1)",
            vec![job.id.into()],
        ))
        .await
        .map_err(db_err)?;
    }
    txn.commit().await.map_err(db_err)?;
    Ok(created)
}

/// The org's queued job, widened to `scope`, or a new one: its id, and
/// whether it is new. Two requests racing for an org with none queued both
/// try the insert; the unique index lets one through, and the other joins it.
async fn join_or_queue(
    repo: &SqlSyncRunRepository,
    txn: &DatabaseTransaction,
    org: OrgId,
    scope: SyncScope,
    now: OffsetDateTime,
) -> Result<(Uuid, bool)> {
    #[derive(FromQueryResult)]
    struct Queued {
        id: Uuid,
        scope: String,
    }
    let lock = match repo.db.backend() {
        DbBackend::Postgres => " FOR UPDATE",
        _ => "",
    };
    // A worker can claim the joined job between the insert's conflict and
    // the read; each turn of the loop needs such a claim, so a few suffice.
    for _ in 0..3 {
        let queued = Queued::find_by_statement(repo.db.stmt(
            &format!(
                "SELECT id, scope FROM sync_jobs WHERE org_id = $1 AND status = 'queued'{lock}"
            ),
            vec![org.0.into()],
        ))
        .one(txn)
        .await
        .map_err(db_err)?;
        if let Some(queued) = queued {
            let widened = SyncScope::parse(&queued.scope)
                .unwrap_or_default()
                .union(scope);
            txn.execute(repo.db.stmt(
                "UPDATE sync_jobs SET scope = $1 WHERE id = $2",
                vec![widened.as_str().into(), queued.id.into()],
            ))
            .await
            .map_err(db_err)?;
            return Ok((queued.id, false));
        }
        let id = Uuid::now_v7();
        let inserted = txn
            .execute(repo.db.stmt(
                "INSERT INTO sync_jobs (id, org_id, scope, status, attempts, not_before, published_at, created_at) \
                 VALUES ($1, $2, $3, 'queued', 0, $4, $4, $4) \
                 ON CONFLICT (org_id) WHERE status = 'queued' DO NOTHING",
                vec![id.into(), org.0.into(), scope.as_str().into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        if inserted.rows_affected() == 1 {
            return Ok((id, true));
        }
    }
    Err(Error::Busy(
        "the org's sync queue changed under this request three times; retry it".into(),
    ))
}

async fn insert_run(txn: &DatabaseTransaction, run: &SyncRun) -> Result<()> {
    let report = run.report.as_ref().map(serde_json::Value::to_string);
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        format!("INSERT INTO sync_runs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
        [
            run.id.0.into(),
            run.org_id.0.into(),
            run.kind.as_str().into(),
            run.scope.as_str().into(),
            run.requested_by.clone().into(),
            run.status.as_str().into(),
            count(run.counts.adds),
            count(run.counts.updates),
            count(run.counts.removals),
            report.into(),
            run.error.clone().into(),
            run.created_at.into(),
            run.started_at.into(),
            run.finished_at.into(),
        ],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}
