use time::OffsetDateTime;

use crate::org::OrgId;
use crate::sync::{DeletionThreshold, HeldRemovals};
use crate::Result;

/// Each org's deletion threshold and the removals held for it.
#[async_trait::async_trait]
pub trait DeletionProtection: Send + Sync {
    /// The org's threshold; [`DeletionThreshold::default`] when never set.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn threshold(&self, org: OrgId) -> Result<DeletionThreshold>;

    /// # Errors
    /// Only infrastructure failures.
    async fn set_threshold(
        &self,
        org: OrgId,
        threshold: DeletionThreshold,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// The removals held for `org`, if any.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn held(&self, org: OrgId) -> Result<Option<HeldRemovals>>;

    /// Stores `held` as the org's held plan, replacing any earlier one.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn hold(&self, held: &HeldRemovals) -> Result<()>;

    /// Drops the org's held plan; `true` when there was one.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn release(&self, org: OrgId) -> Result<bool>;

    /// How many members background syncs removed or suspended in `org` at
    /// or after `since` (the deletion gate's window), since the counts were
    /// last reset.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn removed_since(&self, org: OrgId, since: OffsetDateTime) -> Result<u64>;

    /// Counts `removed` members removed or suspended in `org` by a
    /// background sync at `at`; counts older than a
    /// [`PROTECTION_WINDOW`](crate::sync::PROTECTION_WINDOW) before `at` may
    /// be dropped. A store may round `at` down (to the hour, say): the
    /// window then reaches back that much further, which only holds more.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn count_removed(&self, org: OrgId, removed: u64, at: OffsetDateTime) -> Result<()>;

    /// Forgets `org`'s counts: an admin has just reviewed what was removed.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn reset_removed(&self, org: OrgId) -> Result<()>;
}
