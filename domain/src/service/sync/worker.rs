//! The worker's side of a sync job: claiming, running through the deletion
//! gate, leases, and the sweeper that keeps the queue honest.

use super::planning::report;
use super::*;
use crate::events::EventType;

impl SyncService {
    /// Takes `job_id` for `worker` (this process, as `host:pid`): `None` when
    /// another holds it, its org has a job running, or it is not due. The
    /// claimed job's `attempts` is this worker's fencing token
    /// ([`Self::renew_lease`]). Delivery is at least once: applying a plan
    /// twice changes nothing.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn claim_job(&self, job_id: JobId, worker: &str) -> Result<Option<SyncJob>> {
        let now = self.now();
        self.ports
            .runs
            .claim(job_id, worker, now, now + self.ports.jobs.lease)
            .await
    }

    /// Runs a job this worker claimed; its outcome is recorded only while
    /// the claim still holds the lease.
    ///
    /// # Errors
    /// Infrastructure failures while recording (the queue retries); a failed
    /// sync is recorded on the job and retried with backoff instead.
    pub async fn run_claimed(&self, job: SyncJob) -> Result<JobOutcome> {
        let outcome = self
            .reconcile(
                job.org_id,
                job.scope,
                Actor::Sync { job_id: job.id },
                Waiter::Background,
            )
            .await;
        let now = self.now();
        let result = match outcome {
            Ok(changes) => {
                self.ports
                    .runs
                    .complete(
                        job.id,
                        job.attempts,
                        changes.counts(),
                        Some(report(&changes)),
                        now,
                    )
                    .await?;
                self.publish(
                    job.org_id,
                    EventType::SyncRunCompleted,
                    serde_json::json!({
                        "job_id": job.id,
                        "scope": job.scope,
                        "counts": changes.counts(),
                    }),
                )
                .await?;
                if !changes.is_empty() {
                    self.orgs
                        .audit(
                            Actor::Sync { job_id: job.id },
                            job.org_id,
                            "members.synced",
                            ("sync_job", job.id.to_string()),
                            None,
                            Some(serde_json::json!({ "counts": changes.counts() })),
                        )
                        .await?;
                }
                JobOutcome::Done
            }
            Err(e) => {
                let policy = &self.ports.jobs;
                let retry_at = (job.attempts < policy.max_attempts).then(|| {
                    let random = f64::from(Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
                    now + retry_delay(
                        job.attempts,
                        policy.base_backoff,
                        policy.max_backoff,
                        random,
                    )
                });
                // Tenants see a stable sentence; the cause goes back to the
                // caller for the operator's log.
                self.ports
                    .runs
                    .fail(job.id, job.attempts, &e.public_summary(), retry_at, now)
                    .await?;
                if retry_at.is_none() {
                    self.publish(
                        job.org_id,
                        EventType::SyncRunFailed,
                        serde_json::json!({
                            "job_id": job.id,
                            "scope": job.scope,
                            "attempts": job.attempts,
                            "error": e.public_summary(),
                        }),
                    )
                    .await?;
                }
                JobOutcome::Failed {
                    org: job.org_id,
                    cause: e,
                }
            }
        };
        self.after_writing(job.org_id, true).await;
        // A slot is free: jobs that waited their tenant's turn go back in
        // the queue (with any due job the queue lost).
        let now = self.now();
        if let Ok(due) = (self.ports.runs)
            .due_for_publish(now, now - self.ports.jobs.lease)
            .await
        {
            for job in due {
                let _ = self.publish_job(job).await;
            }
        }
        Ok(result)
    }

    /// How long a silent worker keeps a job; workers renew well within it.
    pub fn lease(&self) -> std::time::Duration {
        self.ports.jobs.lease
    }

    /// Renews the lease of the attempt of `job_id` that this worker runs (the
    /// job's current attempt when it claimed it); `false` once lost.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn renew_lease(&self, job_id: JobId, attempt: u32) -> Result<bool> {
        let now = self.now();
        self.ports
            .runs
            .heartbeat(job_id, attempt, now, now + self.ports.jobs.lease)
            .await
    }

    /// Keeps the queue honest against PostgreSQL: puts back jobs whose worker
    /// died, re-publishes due jobs the queue lost (a Redis flush or restart)
    /// or that wait out a retry, and re-nudges directories with unapplied
    /// changes. Every worker runs it periodically; running it twice is harmless.
    ///
    /// # Errors
    /// Infrastructure failures.
    pub async fn sweep(&self) -> Result<()> {
        let now = self.now();
        let policy = &self.ports.jobs;
        self.ports
            .runs
            .reclaim_stale(now - policy.lease, now)
            .await?;
        for job in self
            .ports
            .runs
            .due_for_publish(now, now - policy.lease)
            .await?
        {
            self.publish_job(job).await?;
        }
        for conn in self.ports.connections.lagging().await? {
            self.notify_directory_changed(conn).await?;
        }
        self.ports
            .members
            .purge_tombstones(now - self.ports.relink.window)
            .await?;
        Ok(())
    }

    /// Whether `org` still draws on `conn`, asked once a plan drawn from
    /// `conn`'s directory has been read and before it is applied. A source
    /// change (the connection deleted, directory sync turned off, a nearer
    /// connection turned on) does not take the org's writer lease, so a
    /// catch-up or a sync job may have read the directory as the change
    /// removed it: applying that plan would remove, demote or suspend people
    /// the admin's confirmed plan keeps. Such a plan is dropped instead; the
    /// source change reconciles the org against its new source itself.
    pub(super) async fn still_drawing_on(&self, org: OrgId, conn: ConnectionId) -> Result<bool> {
        Ok(self.ports.connections.drawing_connection(org).await? == Some(conn))
    }

    /// Reconciles one org fully and applies the result through the deletion
    /// gate; `waiter` says how long its plan may wait for the plan budget.
    pub(super) async fn reconcile(
        &self,
        org: OrgId,
        scope: SyncScope,
        actor: Actor,
        waiter: Waiter,
    ) -> Result<ChangeSet> {
        let org = self.ports.orgs.find(org).await?.ok_or(Error::NotFound {
            entity: "organization",
        })?;
        let settings = self.ports.members.settings(org.id).await?;
        let mut attempt = 1;
        let (changes, position) = loop {
            let plan = self
                .plan_full(&org, org.provisioning_mode, &settings, waiter)
                .await?;
            let position = plan.position;
            let changes = restrict(plan.changes, scope);
            if let Some((conn, _)) = position {
                if !changes.is_empty() && !self.still_drawing_on(org.id, conn).await? {
                    return Ok(ChangeSet::empty(self.now()));
                }
            }
            match self
                .apply_gated(
                    org.id,
                    changes,
                    &plan.current,
                    HeldSource::Reconcile,
                    actor.clone(),
                )
                .await
            {
                // Members changed while this plan was made (an incremental
                // change, an admin): plan again from what is there now.
                Err(Error::PreconditionFailed(_)) if attempt < REPLANS => attempt += 1,
                other => break (other?, position),
            }
        };
        if let (Some((conn, seq)), SyncScope::Both) = (position, scope) {
            self.ports
                .members
                .set_cursor(org.id, conn, seq, self.now())
                .await?;
        }
        Ok(changes)
    }
}
