//! Sync runs: what was asked, when, and what it did.

use orgsync_domain::membership::ChangeCounts;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::SyncRunRepository;
use orgsync_domain::sync::{RunStatus, SyncKind, SyncRun, SyncScope};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value};
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
        let report = run.report.as_ref().map(serde_json::Value::to_string);
        self.db
            .connection()
            .execute(self.stmt(
                &format!("INSERT INTO sync_runs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
                vec![
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

    async fn find_any(&self, id: Uuid) -> Result<Option<SyncRun>> {
        Row::find_by_statement(self.stmt(
            &format!("SELECT {COLUMNS} FROM sync_runs WHERE id = $1"),
            vec![id.into()],
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

    async fn start(&self, id: Uuid, now: OffsetDateTime) -> Result<bool> {
        let result = self
            .db
            .connection()
            .execute(self.stmt(
                "UPDATE sync_runs SET status = 'running', started_at = $1 WHERE id = $2 AND status = 'queued'",
                vec![now.into(), id.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() == 1)
    }

    async fn finish(
        &self,
        id: Uuid,
        counts: ChangeCounts,
        report: Option<serde_json::Value>,
        error: Option<String>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let status = if error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.db
            .connection()
            .execute(self.stmt(
                "UPDATE sync_runs SET status = $1, added = $2, updated = $3, removed = $4, report = $5, error = $6, \
                 finished_at = $7 WHERE id = $8",
                vec![
                    status.as_str().into(),
                    count(counts.adds),
                    count(counts.updates),
                    count(counts.removals),
                    report.map(|r| r.to_string()).into(),
                    error.into(),
                    now.into(),
                    id.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
