//! Sync runs: what was asked, when, and what it did; the jobs that carry a
//! run out, one per org, and the per-org writer leases that keep two
//! writers off one org's members.
//!
//! This file is the [`SyncRunRepository`] port, each operation pointing to
//! where it lives:
//! - `rows`: how runs and jobs are stored, and the outcome they share;
//! - `runs`: recording, finding and listing runs, and enqueueing their jobs;
//! - `jobs`: reading jobs, and (re)queueing them for publication;
//! - `leases`: one attempt at a job, from claim to success or failure;
//! - `writers`: per-org writer leases.

use orgsync_domain::membership::ChangeCounts;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::SyncRunRepository;
use orgsync_domain::sync::{JobId, RunId, SyncJob, SyncRun};
use orgsync_domain::Result;
use sea_orm::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;

mod jobs;
mod leases;
mod rows;
mod runs;
mod writers;

#[derive(Clone)]
pub struct SqlSyncRunRepository {
    db: Database,
    /// Where heartbeats renew leases (by default `db`).
    leases: Database,
}

impl SqlSyncRunRepository {
    pub fn new(db: Database) -> Self {
        Self {
            leases: db.clone(),
            db,
        }
    }

    /// Renews running jobs' leases through `leases`, a pool of their own.
    /// A heartbeat says the worker lives; on the shared pool it waits
    /// behind the very work it vouches for, and a worker busy enough to
    /// hold every connection (a cascade with an IdP burst) would lose its
    /// running jobs to the sweeper, which runs them again elsewhere and
    /// drops this attempt's outcome.
    #[must_use]
    pub fn renewing_leases_through(mut self, leases: Database) -> Self {
        self.leases = leases;
        self
    }

    /// Runs one statement on the pool; returns how many rows it changed.
    async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64> {
        self.db.execute(sql, values).await
    }
}

#[async_trait::async_trait]
impl SyncRunRepository for SqlSyncRunRepository {
    async fn insert(&self, run: &SyncRun) -> Result<()> {
        runs::insert(self, run).await
    }

    async fn find(&self, org: OrgId, id: RunId) -> Result<Option<SyncRun>> {
        runs::find(self, org, id.0).await
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<SyncRun>> {
        runs::list(self, org, page).await
    }

    async fn enqueue(
        &self,
        run: &SyncRun,
        orgs: &[OrgId],
        now: OffsetDateTime,
    ) -> Result<Vec<JobId>> {
        Ok(jobs_ids(runs::enqueue(self, run, orgs, now).await?))
    }

    async fn jobs_of(&self, run: RunId, with_reports: bool) -> Result<Vec<SyncJob>> {
        jobs::jobs_of(self, run.0, with_reports).await
    }

    async fn jobs_of_runs(&self, runs: &[RunId]) -> Result<Vec<(RunId, SyncJob)>> {
        let runs: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
        let jobs = jobs::jobs_of_runs(self, &runs).await?;
        Ok(jobs
            .into_iter()
            .map(|(run, job)| (RunId(run), job))
            .collect())
    }

    async fn claim(
        &self,
        job: JobId,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<SyncJob>> {
        leases::claim(self, job.0, worker, now, lease_until).await
    }

    async fn lock_org(
        &self,
        org: OrgId,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        wait: std::time::Duration,
    ) -> Result<bool> {
        writers::lock_org(self, org, holder, now, until, wait).await
    }

    async fn unlock_org(&self, org: OrgId, holder: &str) -> Result<()> {
        writers::unlock_org(self, org, holder).await
    }

    fn unlock_org_later(&self, org: OrgId, holder: String) {
        // A drop outside any runtime is the process ending: the lease expires.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let repo = self.clone();
        runtime.spawn(async move {
            if let Err(e) = writers::unlock_org(&repo, org, &holder).await {
                tracing::warn!(%org, holder, error = %e, "an abandoned writer lease was left to expire");
            }
        });
    }

    async fn heartbeat(
        &self,
        job: JobId,
        attempt: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        leases::heartbeat(self, job.0, attempt, now, lease_until).await
    }

    async fn complete(
        &self,
        job: JobId,
        attempt: u32,
        counts: ChangeCounts,
        report: Option<serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<()> {
        leases::complete(self, job.0, attempt, counts, report, now).await
    }

    async fn fail(
        &self,
        job: JobId,
        attempt: u32,
        error: &str,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<()> {
        leases::fail(self, job.0, attempt, error, retry_at, now).await
    }

    async fn queued_for_org(&self, org: OrgId) -> Result<Vec<JobId>> {
        Ok(jobs_ids(jobs::queued_for_org(self, org).await?))
    }

    async fn reclaim_stale(
        &self,
        heartbeat_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64> {
        leases::reclaim_stale(self, heartbeat_before, now).await
    }

    async fn due_for_publish(
        &self,
        now: OffsetDateTime,
        published_before: OffsetDateTime,
    ) -> Result<Vec<JobId>> {
        Ok(jobs_ids(
            jobs::due_for_publish(self, now, published_before).await?,
        ))
    }

    async fn retry_failed(&self, run: RunId, now: OffsetDateTime) -> Result<Vec<JobId>> {
        Ok(jobs_ids(runs::retry_failed(self, run.0, now).await?))
    }
}

/// Job ids as the tables hold them, typed again on their way out.
fn jobs_ids(ids: Vec<Uuid>) -> Vec<JobId> {
    ids.into_iter().map(JobId).collect()
}
