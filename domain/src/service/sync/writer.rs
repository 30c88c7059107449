//! One writer per org: the lease a job, the incremental path or an admin's
//! change holds while it writes, and what a writer does when it lets go.

use super::*;

impl SyncService {
    pub(super) async fn lock_org(
        &self,
        org: OrgId,
        holder: &str,
        wait: std::time::Duration,
    ) -> Result<bool> {
        let now = self.now();
        self.ports
            .runs
            .lock_org(org, holder, now, now + self.writer_lease(), wait)
            .await
    }

    /// How long a writer's lease on an org lasts. Longer than a job's lease:
    /// these holders do not heartbeat, and give the lease up explicitly;
    /// expiry only matters after a crash.
    pub(super) fn writer_lease(&self) -> std::time::Duration {
        self.ports
            .jobs
            .lease
            .max(std::time::Duration::from_secs(60))
    }

    /// What a writer does once it has let `org` go: start the sync jobs it
    /// kept waiting and, unless it was the incremental path itself, nudge the
    /// directory so changes that arrived meanwhile are applied.
    pub(super) async fn after_writing(&self, org: OrgId, nudge: bool) {
        if let Ok(waiting) = self.ports.runs.queued_for_org(org).await {
            for job in waiting {
                let _ = self.publish_job(job).await;
            }
        }
        if nudge {
            let _ = self.nudge_if_behind(org).await;
        }
    }

    /// Nudges the directory `org` draws on when it has events the org has
    /// not applied (changes that arrived while the org was held).
    pub(super) async fn nudge_if_behind(&self, org: OrgId) -> Result<()> {
        let Some(conn) = self.ports.connections.drawing_connection(org).await? else {
            return Ok(());
        };
        if let Some(applied) = self.ports.members.cursor(org, conn).await? {
            if self.latest_seq(conn).await? > applied {
                self.notify_directory_changed(conn).await?;
            }
        }
        Ok(())
    }

    /// An admin's change to `org` as its only writer: `principal` is
    /// authorised first (no one waits on, or learns of, an org out of
    /// reach), and `work` gets the org as it is once the lease is held, not
    /// as it was before waiting for it: a change queued behind a mode switch
    /// sees the new mode, and a copy of the same change sees it done.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; as [`Self::as_writer`].
    pub(in crate::service) async fn write_as<T, Work>(
        &self,
        principal: &Principal,
        org: OrgId,
        work: impl FnOnce(Organization) -> Work,
    ) -> Result<T>
    where
        Work: std::future::Future<Output = Result<T>>,
    {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        let current = async {
            let org = self
                .orgs
                .authorize(principal, org.id, Action::Write)
                .await?;
            work(org).await
        };
        self.as_writer(org.id, current).await
    }

    /// Runs `work` (an admin's change to `org`'s members) as the org's only
    /// writer.
    ///
    /// # Errors
    /// `Conflict(SyncInProgress)` while another writer has the org; or `work`'s.
    pub(in crate::service) async fn as_writer<T>(
        &self,
        org: OrgId,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        // Armed before the lease is asked for: a request dropped while
        // its take is in flight may have taken it.
        let lease = Held::new(self, org, format!("admin:{}", Uuid::new_v4()));
        if !self.lock_org(org, lease.holder(), ADMIN_WAIT).await? {
            lease.not_taken();
            return Err(Error::conflict(
                ConflictCode::SyncInProgress,
                "a sync is changing this organization's members right now; retry in a few seconds",
            ));
        }
        let result = work.await;
        let released = lease.release().await;
        self.after_writing(org, true).await;
        let value = result?;
        released?;
        Ok(value)
    }
}

/// A writer lease taken: given up by [`Held::release`], or, when its holder
/// is dropped first (the request that held it went away), in the background
/// rather than left to expire with the org held meanwhile.
pub(super) struct Held<'a> {
    sync: &'a SyncService,
    org: OrgId,
    holder: Option<String>,
}

impl<'a> Held<'a> {
    pub(super) fn new(sync: &'a SyncService, org: OrgId, holder: String) -> Self {
        Self {
            sync,
            org,
            holder: Some(holder),
        }
    }

    pub(super) fn holder(&self) -> &str {
        self.holder.as_deref().unwrap_or_default()
    }

    /// For a lease another writer kept: nothing to give up.
    pub(super) fn not_taken(mut self) {
        self.holder = None;
    }

    pub(super) async fn release(mut self) -> Result<()> {
        let Some(holder) = self.holder.as_deref() else {
            return Ok(());
        };
        self.sync.ports.runs.unlock_org(self.org, holder).await?;
        self.holder = None;
        Ok(())
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(holder) = self.holder.take() {
            self.sync.ports.runs.unlock_org_later(self.org, holder);
        }
    }
}
