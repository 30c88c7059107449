use time::OffsetDateTime;

use crate::org::{OrgId, Organization, TreeNode};
use crate::page::{Page, PageRequest};
use crate::Result;

/// Stores organizations and their ancestry.
#[async_trait::async_trait]
pub trait OrgRepository: Send + Sync {
    /// Stores a new organization and its ancestry in one transaction. A
    /// child goes in only while its parent has fewer than `children_at_most`
    /// children, counted under a lock of the parent, so that concurrent
    /// inserts cannot overshoot the bound.
    ///
    /// # Errors
    /// MUST return `Conflict(AlreadyExists)` when the slug is taken among the
    /// roots (for a root) or within the tenant (for a child), and
    /// `Conflict(LimitReached)` when the parent has its share of children;
    /// nothing is stored then.
    async fn insert(&self, org: &Organization, children_at_most: u64) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures; an unknown id is `Ok(None)`.
    async fn find(&self, id: OrgId) -> Result<Option<Organization>>;

    /// Whether `ancestor` is `descendant` itself or one of its ancestors.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn is_within(&self, ancestor: OrgId, descendant: OrgId) -> Result<bool>;

    /// How many levels `id` lies below its root (a root is at 0).
    ///
    /// # Errors
    /// Only infrastructure failures; an unknown id is 0.
    async fn depth(&self, id: OrgId) -> Result<u32>;

    /// How many direct children `parent` has.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn count_children(&self, parent: OrgId) -> Result<u64>;

    /// The direct children of `parent`, oldest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn children(&self, parent: OrgId, page: PageRequest) -> Result<Page<Organization>>;

    /// `top` and all its descendants, ordered by depth then age.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn subtree(&self, top: OrgId) -> Result<Vec<TreeNode>>;

    /// Saves the mutable fields (name, provisioning mode, `updated_at`).
    ///
    /// # Errors
    /// MUST return `NotFound` when the organization no longer exists.
    async fn update(&self, org: &Organization) -> Result<()>;

    /// Deletes an organization that has neither children nor members. Its
    /// events stay in the tenant's log, numbered, and its ancestors still
    /// read them as their subtree's.
    ///
    /// # Errors
    /// MUST return `Conflict(HasChildren)` when it has children and
    /// `Conflict(HasMembers)` when it has members (both checked in the same
    /// transaction as the delete, with new members kept out until it ends),
    /// and `NotFound` when it does not exist.
    async fn delete_leaf(&self, id: OrgId, now: OffsetDateTime) -> Result<()>;
}
