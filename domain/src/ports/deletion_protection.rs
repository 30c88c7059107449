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
}
