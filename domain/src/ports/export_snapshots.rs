use crate::directory::{ConnectionId, ResourceId};
use crate::membership::Member;
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::sync::MemberFilter;
use crate::Result;

/// Opens views of the store fixed at one moment, for exports: an export of a
/// million members reads for seconds while SCIM and sync keep writing, and
/// read page by page on its own it could list a member twice (removed and
/// re-added under a new id between two pages) or miss one.
#[async_trait::async_trait]
pub trait ExportSnapshots: Send + Sync {
    /// A view of the store as it is now: every read through it sees that
    /// moment, whatever is written meanwhile. It holds a connection until
    /// dropped, and the store may end it when it sits idle (a client that
    /// stopped reading), after which its reads fail.
    ///
    /// An engine that cannot hold a view without holding up every writer
    /// (embedded SQLite, one connection) answers one that reads the store
    /// as it is at each call.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn open(&self) -> Result<Box<dyn ExportSnapshot>>;
}

/// The reads an export makes, all at the moment its snapshot was opened.
#[async_trait::async_trait]
pub trait ExportSnapshot: Send + Sync {
    /// As [`MembershipRepository::list_members`](super::MembershipRepository::list_members).
    ///
    /// # Errors
    /// Only infrastructure failures (an ended snapshot included).
    async fn members(
        &self,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>>;

    /// The `(user, group)` memberships of `users` in `conn`'s directory.
    ///
    /// # Errors
    /// Only infrastructure failures (an ended snapshot included).
    async fn memberships_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId)>>;

    /// The display names of `groups` in `conn`'s directory; a group gone
    /// since is left out.
    ///
    /// # Errors
    /// Only infrastructure failures (an ended snapshot included).
    async fn group_names(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<(ResourceId, String)>>;
}
