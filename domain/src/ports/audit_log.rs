use crate::audit::{AuditEntry, AuditFilter};
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::Result;

/// The append-only audit log.
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// # Errors
    /// Only infrastructure failures.
    async fn append(&self, entry: &AuditEntry) -> Result<()>;

    /// Entries of `org`, newest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn list(
        &self,
        org: OrgId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>>;
}
