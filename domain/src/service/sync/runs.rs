//! Manual syncs: their scope (the cascade), previews, queued runs and their jobs.

use super::*;

impl SyncService {
    /// The orgs a sync requested on `org` covers: with `cascade`, every org
    /// drawing on the same directory (the parent, children and, with
    /// `include_sandboxes`, sandboxes); the requested org is always in it.
    /// The caller must be able to write to every one of them.
    pub(super) async fn sync_scope(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
    ) -> Result<Vec<Organization>> {
        let requested = self.orgs.authorize(principal, org, Action::Write).await?;
        let mut ids = vec![requested.id];
        if request.cascade {
            if let Some(conn) = self.ports.connections.drawing_connection(org).await? {
                ids.extend(
                    self.ports
                        .connections
                        .orgs_drawing_on(conn)
                        .await?
                        .into_iter()
                        .filter(|o| *o != org),
                );
            }
        }
        let mut orgs = vec![requested];
        for id in ids.into_iter().skip(1) {
            let found = match self.orgs.authorize(principal, id, Action::Write).await {
                Ok(found) => found,
                Err(Error::NotFound { .. } | Error::Forbidden(_)) => {
                    return Err(Error::Forbidden(
                        "this sync cascades to organizations outside this token's reach; \
                         ask with a token of the directory's owner, or with \"cascade\": false"
                            .into(),
                    ))
                }
                Err(other) => return Err(other),
            };
            if request.include_sandboxes || found.kind != OrgKind::Sandbox {
                orgs.push(found);
            }
        }
        Ok(orgs)
    }

    /// What a sync would change now, org by org: `orgs` (a window of the
    /// scope's orgs, in the order a sync takes them) each with its
    /// confirmation and counts and `limit` entries of each of its change
    /// lists from `offset`; and how many orgs the whole scope holds. Each
    /// org's plan is cut to its page before the next org is planned, so a
    /// cascade over many large orgs holds one plan at a time, and one answer
    /// plans at most a window of them however large the tree.
    ///
    /// # Errors
    /// As [`Self::start_sync`].
    pub async fn preview_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
        (offset, limit): (usize, usize),
        orgs: std::ops::Range<usize>,
    ) -> Result<(Vec<(Organization, PreviewPage)>, usize)> {
        let scope = self.sync_scope(principal, org, request).await?;
        let in_scope = scope.len();
        let mut out = Vec::new();
        for org in scope.into_iter().take(orgs.end).skip(orgs.start) {
            let settings = self.ports.members.settings(org.id).await?;
            let plan = self
                .plan_full(&org, org.provisioning_mode, &settings, Waiter::Request)
                .await?;
            let preview = Preview::of(restrict(plan.changes, request.scope), &request.scope);
            out.push((org, preview.page(offset, limit)));
        }
        Ok((out, in_scope))
    }

    /// Queues a sync: one job per org of its scope, fanned out through the
    /// queue. An org whose job is still queued joins it instead.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write` on every org of the scope
    /// (`Forbidden` when the cascade leaves the token's reach). A queue
    /// outage is not an error: the jobs are recorded and re-published.
    pub async fn start_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        let orgs = self.sync_scope(principal, org, request).await?;
        let now = self.now();
        let run = SyncRun {
            id: RunId::new(),
            org_id: org,
            kind: SyncKind::Manual,
            scope: request.scope,
            requested_by: principal.subject().to_owned(),
            status: RunStatus::Queued,
            counts: ChangeCounts::default(),
            report: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        let ids: Vec<OrgId> = orgs.iter().map(|o| o.id).collect();
        let new_jobs = self.ports.runs.enqueue(&run, &ids, now).await?;
        self.orgs
            .audit(
                principal,
                org,
                "sync.requested",
                ("sync_run", run.id.to_string()),
                None,
                Some(serde_json::json!({ "scope": request.scope, "orgs": ids })),
            )
            .await?;
        for job in new_jobs {
            // Best effort: the sweeper re-publishes anything the queue did not take.
            let _ = self.publish_job(job).await;
        }
        self.with_jobs(run, false).await
    }

    pub(super) async fn publish_job(&self, job: JobId) -> Result<()> {
        self.ports
            .queue
            .publish(&Task::Sync { job_id: job }.to_job())
            .await
    }

    /// A manual run's status and counts come from its jobs.
    pub(super) async fn with_jobs(
        &self,
        mut run: SyncRun,
        with_reports: bool,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        if run.kind != SyncKind::Manual {
            return Ok((run, Vec::new()));
        }
        let jobs = self.ports.runs.jobs_of(run.id, with_reports).await?;
        summarize(&mut run, &jobs);
        Ok((run, jobs))
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn runs(
        &self,
        principal: &Principal,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<SyncRun>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        let mut page = self.ports.runs.list(org, page).await?;
        // One query for the jobs of the whole page, not one per run.
        let manual: Vec<RunId> = page
            .items
            .iter()
            .filter(|r| r.kind == SyncKind::Manual)
            .map(|r| r.id)
            .collect();
        let mut jobs: HashMap<RunId, Vec<SyncJob>> = HashMap::new();
        for (run, job) in self.ports.runs.jobs_of_runs(&manual).await? {
            jobs.entry(run).or_default().push(job);
        }
        for run in &mut page.items {
            if let Some(jobs) = jobs.get(&run.id) {
                summarize(run, jobs);
            }
        }
        Ok(page)
    }

    /// # Errors
    /// `NotFound` for a run of another org, or as `OrgService::authorize` with `Read`.
    pub async fn run(
        &self,
        principal: &Principal,
        org: OrgId,
        id: RunId,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        let run = self.find_run(principal, org, id, Action::Read).await?;
        self.with_jobs(run, true).await
    }

    async fn find_run(
        &self,
        principal: &Principal,
        org: OrgId,
        id: RunId,
        action: Action,
    ) -> Result<SyncRun> {
        self.orgs.authorize(principal, org, action).await?;
        self.ports
            .runs
            .find(org, id)
            .await?
            .ok_or(Error::NotFound { entity: "sync run" })
    }

    /// Queues a run's failed jobs again.
    ///
    /// # Errors
    /// As [`Self::run`] with `Write`.
    pub async fn retry(
        &self,
        principal: &Principal,
        org: OrgId,
        id: RunId,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        let run = self.find_run(principal, org, id, Action::Write).await?;
        for job in self.ports.runs.retry_failed(run.id, self.now()).await? {
            let _ = self.publish_job(job).await;
        }
        self.with_jobs(run, false).await
    }
}

/// A manual run's status, counts and timings come from its jobs.
pub(super) fn summarize(run: &mut SyncRun, jobs: &[SyncJob]) {
    if jobs.is_empty() {
        return;
    }
    run.status = run_status(jobs);
    run.counts = jobs
        .iter()
        .fold(ChangeCounts::default(), |sum, j| ChangeCounts {
            adds: sum.adds + j.counts.adds,
            updates: sum.updates + j.counts.updates,
            removals: sum.removals + j.counts.removals,
            suspensions: sum.suspensions + j.counts.suspensions,
        });
    run.started_at = jobs.iter().filter_map(|j| j.started_at).min();
    run.finished_at = if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
        jobs.iter().filter_map(|j| j.finished_at).max()
    } else {
        None
    };
    run.error = jobs.iter().find_map(|j| j.error.clone());
}
