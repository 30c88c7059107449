//! Sync runs: what was asked, when, and what it did.

use orgsync_domain::membership::ChangeCounts;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{job_writer, SyncRunRepository};
use orgsync_domain::sync::{RunStatus, SyncJob, SyncKind, SyncRun, SyncScope};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::db_err;
use crate::Database;

const COLUMNS: &str =
    "id, org_id, kind, scope, requested_by, status, added, updated, removed, report, error, \
    created_at, started_at, finished_at";

pub struct SqlSyncRunRepository {
    db: Database,
}

impl SqlSyncRunRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.backend(), sql, values)
    }
}

#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    org_id: Uuid,
    kind: String,
    scope: String,
    requested_by: String,
    status: String,
    added: i64,
    updated: i64,
    removed: i64,
    report: Option<String>,
    error: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
}

impl TryFrom<Row> for SyncRun {
    type Error = Error;

    fn try_from(row: Row) -> Result<Self> {
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        let report = row
            .report
            .map(|r| serde_json::from_str::<serde_json::Value>(&r))
            .transpose()
            .map_err(|e| Error::Internal(anyhow::anyhow!("run {}: corrupt report: {e}", row.id)))?;
        let suspensions = report
            .as_ref()
            .and_then(|r| r["counts"]["suspensions"].as_u64())
            .map_or(0, |n| usize::try_from(n).unwrap_or(0));
        Ok(SyncRun {
            id: row.id,
            org_id: OrgId(row.org_id),
            kind: SyncKind::parse(&row.kind)?,
            scope: SyncScope::parse(&row.scope)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt scope")))?,
            requested_by: row.requested_by,
            status: RunStatus::parse(&row.status)?,
            counts: ChangeCounts {
                adds: count(row.added),
                updates: count(row.updated),
                removals: count(row.removed),
                suspensions,
            },
            report,
            error: row.error,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

fn count(n: usize) -> Value {
    i64::try_from(n).unwrap_or(i64::MAX).into()
}

#[async_trait::async_trait]
impl SyncRunRepository for SqlSyncRunRepository {
    async fn insert(&self, run: &SyncRun) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        insert_run(&txn, run).await?;
        txn.commit().await.map_err(db_err)
    }

    async fn find(&self, org: OrgId, id: Uuid) -> Result<Option<SyncRun>> {
        Row::find_by_statement(self.stmt(
            &format!("SELECT {COLUMNS} FROM sync_runs WHERE org_id = $1 AND id = $2"),
            vec![org.0.into(), id.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?
        .map(SyncRun::try_from)
        .transpose()
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<SyncRun>> {
        // Newest first: ids are time-ordered, so the cursor moves downwards.
        let before = page.after.unwrap_or(Uuid::max());
        let rows = Row::find_by_statement(self.stmt(
            &format!("SELECT {COLUMNS} FROM sync_runs WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
            vec![org.0.into(), before.into(), i64::try_from(page.limit + 1).unwrap_or(i64::MAX).into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        let runs = rows
            .into_iter()
            .map(SyncRun::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(runs, page.limit, |r| r.id))
    }

    async fn enqueue(
        &self,
        run: &SyncRun,
        orgs: &[OrgId],
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        insert_run(&txn, run).await?;
        let mut created = Vec::new();
        for org in orgs {
            #[derive(FromQueryResult)]
            struct Queued {
                id: Uuid,
                scope: String,
            }
            let queued = Queued::find_by_statement(self.stmt(
                "SELECT id, scope FROM sync_jobs WHERE org_id = $1 AND status = 'queued'",
                vec![org.0.into()],
            ))
            .one(&txn)
            .await
            .map_err(db_err)?;
            let job = match queued {
                Some(queued) => {
                    // Join the waiting job, widening it to cover this request too.
                    let scope = SyncScope::parse(&queued.scope)
                        .unwrap_or_default()
                        .union(run.scope);
                    txn.execute(self.stmt(
                        "UPDATE sync_jobs SET scope = $1 WHERE id = $2",
                        vec![scope.as_str().into(), queued.id.into()],
                    ))
                    .await
                    .map_err(db_err)?;
                    queued.id
                }
                None => {
                    let id = Uuid::now_v7();
                    txn.execute(self.stmt(
                        "INSERT INTO sync_jobs (id, org_id, scope, status, attempts, not_before, published_at, created_at) \
                         VALUES ($1, $2, $3, 'queued', 0, $4, $4, $4)",
                        vec![id.into(), org.0.into(), run.scope.as_str().into(), now.into()],
                    ))
                    .await
                    .map_err(db_err)?;
                    created.push(id);
                    id
                }
            };
            txn.execute(self.stmt(
                "INSERT INTO sync_run_jobs (run_id, job_id) VALUES ($1, $2)",
                vec![run.id.into(), job.into()],
            ))
            .await
            .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn jobs_of(&self, run: Uuid, with_reports: bool) -> Result<Vec<SyncJob>> {
        let report = if with_reports {
            "j.report"
        } else {
            "NULL AS report"
        };
        let rows = JobRow::find_by_statement(self.stmt(
            &format!(
                "SELECT {JOB_COLUMNS}, {report} FROM sync_jobs j JOIN sync_run_jobs r ON r.job_id = j.id \
                 WHERE r.run_id = $1 ORDER BY j.id"
            ),
            vec![run.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        rows.into_iter().map(SyncJob::try_from).collect()
    }

    async fn jobs_of_runs(&self, runs: &[Uuid]) -> Result<Vec<(Uuid, SyncJob)>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = crate::filter_sql::Sql::default();
        let list: Vec<String> = runs.iter().map(|r| sql.bind(*r)).collect();
        let rows = self
            .db
            .connection()
            .query_all(self.stmt(
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

    async fn claim(
        &self,
        job: Uuid,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<SyncJob>> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        // One statement decides, so two workers never both take a job, and an
        // org never has two jobs running.
        let row = JobRow::find_by_statement(self.stmt(
            &format!(
                "UPDATE sync_jobs SET status = 'running', attempts = attempts + 1, started_at = $2, heartbeat_at = $2, \
                 finished_at = NULL WHERE id = $1 AND status = 'queued' AND not_before <= $2 \
                 AND NOT EXISTS (SELECT 1 FROM sync_jobs other WHERE other.org_id = sync_jobs.org_id \
                   AND other.status = 'running' AND other.id <> sync_jobs.id) \
                 RETURNING {}, NULL AS report",
                JOB_COLUMNS.replace("j.", "")
            ),
            vec![job.into(), now.into()],
        ))
        .one(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            // A concurrent enqueue's queued job for the same org: try again later.
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::Unavailable("job contended".into()),
            _ => db_err(e),
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claimed = SyncJob::try_from(row)?;
        let holder = job_writer(claimed.id, claimed.attempts);
        // Another writer (an incremental catch-up, an admin change) has the
        // org: the job stays queued, and that writer publishes it when done.
        if !lock_org(&txn, claimed.org_id, &holder, now, lease_until).await? {
            txn.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        txn.commit().await.map_err(db_err)?;
        Ok(Some(claimed))
    }

    async fn lock_org(
        &self,
        org: OrgId,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        wait: std::time::Duration,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        loop {
            let waited = started.elapsed();
            if lock_org(
                self.db.connection(),
                org,
                holder,
                now + waited,
                until + waited,
            )
            .await?
            {
                return Ok(true);
            }
            if waited >= wait {
                return Ok(false);
            }
            // Writers hold an org for milliseconds to seconds; a short poll
            // keeps an admin's request from waiting much longer than needed.
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    async fn unlock_org(&self, org: OrgId, holder: &str) -> Result<()> {
        self.db
            .connection()
            .execute(self.stmt(
                "DELETE FROM org_writers WHERE org_id = $1 AND holder = $2",
                vec![org.0.into(), holder.to_owned().into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn heartbeat(
        &self,
        job: Uuid,
        attempt: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        let result = self
            .db
            .connection()
            .execute(self.stmt(
                "UPDATE sync_jobs SET heartbeat_at = $1 WHERE id = $2 AND status = 'running' AND attempts = $3",
                vec![now.into(), job.into(), i64::from(attempt).into()],
            ))
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        self.db
            .connection()
            .execute(self.stmt(
                "UPDATE org_writers SET expires_at = $1 WHERE holder = $2",
                vec![lease_until.into(), job_writer(job, attempt).into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    async fn complete(
        &self,
        job: Uuid,
        attempt: u32,
        counts: ChangeCounts,
        report: Option<serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.db
            .connection()
            .execute(self.stmt(
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
            ))
            .await
            .map_err(db_err)?;
        self.release_writer(job, attempt).await
    }

    async fn fail(
        &self,
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
        let result = self
            .db
            .connection()
            .execute(self.stmt(
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
                self.db
                    .connection()
                    .execute(self.stmt(
                        "UPDATE sync_jobs SET status = 'failed', error = $1, finished_at = $2 \
                         WHERE id = $3 AND status = 'running' AND attempts = $4",
                        vec![
                            format!("{error} (superseded by a newer queued sync)").into(),
                            now.into(),
                            job.into(),
                            i64::from(attempt).into(),
                        ],
                    ))
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
            Err(e) => Err(db_err(e)),
        };
        recorded?;
        self.release_writer(job, attempt).await
    }

    async fn queued_for_org(&self, org: OrgId) -> Result<Vec<Uuid>> {
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let rows = Row::find_by_statement(self.stmt(
            "SELECT id FROM sync_jobs WHERE org_id = $1 AND status = 'queued'",
            vec![org.0.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn reclaim_stale(
        &self,
        heartbeat_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64> {
        // A reclaimed job whose org already has a queued one joins it by failing over to it.
        let result = self
            .db
            .connection()
            .execute(self.stmt(
                "UPDATE sync_jobs SET status = 'queued', not_before = $2, published_at = NULL \
                 WHERE status = 'running' AND heartbeat_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM sync_jobs q WHERE q.org_id = sync_jobs.org_id AND q.status = 'queued')",
                vec![heartbeat_before.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        self.db
            .connection()
            .execute(self.stmt(
                "UPDATE sync_jobs SET status = 'failed', error = 'worker lost; superseded by a queued sync', finished_at = $2 \
                 WHERE status = 'running' AND heartbeat_at < $1",
                vec![heartbeat_before.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected())
    }

    async fn due_for_publish(
        &self,
        now: OffsetDateTime,
        published_before: OffsetDateTime,
    ) -> Result<Vec<Uuid>> {
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let rows = Row::find_by_statement(self.stmt(
            "UPDATE sync_jobs SET published_at = $1 WHERE status = 'queued' AND not_before <= $1 \
             AND (published_at IS NULL OR published_at < $2) RETURNING id",
            vec![now.into(), published_before.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn retry_failed(&self, run: Uuid, now: OffsetDateTime) -> Result<Vec<Uuid>> {
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let rows = Row::find_by_statement(self.stmt(
            "UPDATE sync_jobs SET status = 'queued', attempts = 0, not_before = $2, error = NULL, finished_at = NULL, \
             published_at = $2 WHERE status = 'failed' AND id IN (SELECT job_id FROM sync_run_jobs WHERE run_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM sync_jobs q WHERE q.org_id = sync_jobs.org_id AND q.status = 'queued') \
             RETURNING id",
            vec![run.into(), now.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }
}

async fn insert_run(txn: &sea_orm::DatabaseTransaction, run: &SyncRun) -> Result<()> {
    let report = run.report.as_ref().map(serde_json::Value::to_string);
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        format!("INSERT INTO sync_runs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
        [
            run.id.into(),
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

const JOB_COLUMNS: &str =
    "j.id, j.org_id, j.scope, j.status, j.attempts, j.added, j.updated, j.removed, j.error, \
    j.created_at, j.started_at, j.finished_at";

#[derive(FromQueryResult)]
struct JobRow {
    id: Uuid,
    org_id: Uuid,
    scope: String,
    status: String,
    attempts: i32,
    added: i64,
    updated: i64,
    removed: i64,
    error: Option<String>,
    report: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
}

impl TryFrom<JobRow> for SyncJob {
    type Error = Error;

    fn try_from(row: JobRow) -> Result<Self> {
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(SyncJob {
            id: row.id,
            org_id: OrgId(row.org_id),
            scope: SyncScope::parse(&row.scope)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt job scope")))?,
            status: RunStatus::parse(&row.status)?,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            counts: ChangeCounts {
                adds: n(row.added),
                updates: n(row.updated),
                removals: n(row.removed),
                suspensions: 0,
            },
            error: row.error,
            report: row.report.and_then(|r| serde_json::from_str(&r).ok()),
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

impl SqlSyncRunRepository {
    async fn release_writer(&self, job: Uuid, attempt: u32) -> Result<()> {
        self.db
            .connection()
            .execute(self.stmt(
                "DELETE FROM org_writers WHERE holder = $1",
                vec![job_writer(job, attempt).into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Takes or extends `org`'s writer lease for `holder`; concurrent takers
/// serialise on the org's row, so exactly one wins.
async fn lock_org(
    db: &impl ConnectionTrait,
    org: OrgId,
    holder: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool> {
    let result = db
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO org_writers (org_id, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (org_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE org_writers.holder = excluded.holder OR org_writers.expires_at <= $3",
            vec![
                org.0.into(),
                holder.to_owned().into(),
                now.into(),
                until.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
    Ok(result.rows_affected() == 1)
}
