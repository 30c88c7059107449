use time::OffsetDateTime;

use crate::membership::ChangeCounts;
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::sync::{JobId, RunId, SyncJob, SyncRun};
use crate::Result;

/// The writer-lease holder name of a job's attempt.
pub fn job_writer(job: JobId, attempt: u32) -> String {
    format!("job:{job}:{attempt}")
}

/// Records sync runs: the source of truth for what was asked and what happened.
#[async_trait::async_trait]
pub trait SyncRunRepository: Send + Sync {
    /// # Errors
    /// Only infrastructure failures.
    async fn insert(&self, run: &SyncRun) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures; a run of another org is `Ok(None)`.
    async fn find(&self, org: OrgId, id: RunId) -> Result<Option<SyncRun>>;

    /// Newest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<SyncRun>>;

    /// Records a run over `orgs` and its jobs, in one transaction: an org
    /// with a queued job joins it (its scope widened to cover both), others
    /// get a new queued job. Returns the ids of the new jobs (to publish).
    ///
    /// # Errors
    /// Only infrastructure failures; nothing is recorded then.
    async fn enqueue(
        &self,
        run: &SyncRun,
        orgs: &[OrgId],
        now: OffsetDateTime,
    ) -> Result<Vec<JobId>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn jobs_of(&self, run: RunId, with_reports: bool) -> Result<Vec<SyncJob>>;

    /// The jobs of several runs at once, without reports, as `(run, job)`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn jobs_of_runs(&self, runs: &[RunId]) -> Result<Vec<(RunId, SyncJob)>>;

    /// Takes a queued, due job for running, with its org's writer lease
    /// (held by [`job_writer`] of the new attempt until `lease_until`),
    /// unless its org already has a job running or another writer, or its
    /// tenant already runs one while another tenant with a due job runs
    /// none (it then waits its turn out of the queue, unpublished, until
    /// a job ends or the sweeper comes by). `None`: nothing to do now. The job records
    /// `worker` as the one running it.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn claim(
        &self,
        job: JobId,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<SyncJob>>;

    /// Takes (or, for the same `holder`, extends) `org`'s writer lease until
    /// `until`, waiting up to `wait` for another holder to let go: `false`
    /// when another holder's lease is still live then. (`now` and `until`
    /// move on with the time waited.)
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn lock_org(
        &self,
        org: OrgId,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        wait: std::time::Duration,
    ) -> Result<bool>;

    /// Gives `org`'s writer lease up, if `holder` has it.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn unlock_org(&self, org: OrgId, holder: &str) -> Result<()>;

    /// Gives `org`'s writer lease up in the background, if `holder` has it:
    /// for a writer stopped before it could let go (its request was dropped
    /// by a client that went away), which would otherwise hold the org, and
    /// every sync of it, until the lease expires.
    fn unlock_org_later(&self, org: OrgId, holder: String);

    /// Renews the lease of `attempt` of a running job, and its org's writer
    /// lease until `lease_until`; `false` when that attempt no longer holds
    /// it (the job was reclaimed, finished or claimed again), so its worker
    /// must stop writing.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn heartbeat(
        &self,
        job: JobId,
        attempt: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool>;

    /// Records `attempt`'s success; a no-op when that attempt lost its lease
    /// (the writes of a stale holder change nothing).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn complete(
        &self,
        job: JobId,
        attempt: u32,
        counts: ChangeCounts,
        report: Option<serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Records a failed attempt: queued again at `retry_at`, or failed for
    /// good when `None`; fenced by `attempt` like [`Self::complete`].
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn fail(
        &self,
        job: JobId,
        attempt: u32,
        error: &str,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Queued jobs of an org (a follow-up waiting for a running job).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn queued_for_org(&self, org: OrgId) -> Result<Vec<JobId>>;

    /// Puts back in the queue jobs whose worker stopped reporting before
    /// `heartbeat_before` (a killed worker); returns how many.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn reclaim_stale(
        &self,
        heartbeat_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64>;

    /// Due queued jobs not published since `published_before` (never
    /// published, lost by the queue, or waiting out a retry); marks them
    /// published at `now` and returns them.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn due_for_publish(
        &self,
        now: OffsetDateTime,
        published_before: OffsetDateTime,
    ) -> Result<Vec<JobId>>;

    /// Queues the failed jobs of a run again; returns them.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn retry_failed(&self, run: RunId, now: OffsetDateTime) -> Result<Vec<JobId>>;
}
