use time::OffsetDateTime;
use uuid::Uuid;

use crate::membership::ChangeCounts;
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::sync::SyncRun;
use crate::Result;

/// Records sync runs: the source of truth for what was asked and what happened.
#[async_trait::async_trait]
pub trait SyncRunRepository: Send + Sync {
    /// # Errors
    /// Only infrastructure failures.
    async fn insert(&self, run: &SyncRun) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures; a run of another org is `Ok(None)`.
    async fn find(&self, org: OrgId, id: Uuid) -> Result<Option<SyncRun>>;

    /// Finds a run by id alone (the worker has no org context).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn find_any(&self, id: Uuid) -> Result<Option<SyncRun>>;

    /// Newest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<SyncRun>>;

    /// Marks a queued run running; `false` when it was not queued (another
    /// worker has it, or it is finished), so a redelivered job does nothing.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn start(&self, id: Uuid, now: OffsetDateTime) -> Result<bool>;

    /// # Errors
    /// Only infrastructure failures.
    async fn finish(
        &self,
        id: Uuid,
        counts: ChangeCounts,
        report: Option<serde_json::Value>,
        error: Option<String>,
        now: OffsetDateTime,
    ) -> Result<()>;
}
