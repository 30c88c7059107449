use std::collections::BTreeSet;

use crate::directory::{ChangeEvent, ConnectionId, ResourceId};
use crate::membership::{DirectoryUser, ResourceKeys};
use crate::Result;

/// What sync reads of a directory: its change log (numbered, in commit
/// order) and snapshots of its users with the groups that decide anything.
/// Read-only; the SCIM store ([`DirectoryRepository`](super::DirectoryRepository))
/// writes it.
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The sequence number of the connection's latest change event (0: none),
    /// after numbering everything committed so far.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn latest_seq(&self, conn: ConnectionId) -> Result<i64>;

    /// Change events with `seq < before`, newest first (the admin's feed).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn events_before(
        &self,
        conn: ConnectionId,
        before: i64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>>;

    /// Change events with `seq > after`, oldest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn events(&self, conn: ConnectionId, after: i64, limit: u64) -> Result<Vec<ChangeEvent>>;

    /// The member values the group events numbered `events` added or
    /// removed (for a rewrite, every member before and after; a deletion
    /// records none),
    /// as `(event seq, value)` in that order, after `after`, at most `limit`.
    /// Values need not be user ids.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn changed_members(
        &self,
        conn: ConnectionId,
        events: &[i64],
        after: Option<&(i64, String)>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>>;

    /// A page of the directory's users in id order: those after `after`, at
    /// most `limit`, each with the groups among `deciding` it belongs to (the
    /// groups a plan's mappings name; other memberships decide nothing and
    /// are not read), each resource trimmed to `keys` as it is read. A full
    /// plan reads the directory page by page and drops each page once
    /// planned, so its memory does not grow with the directory.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn users_page(
        &self,
        conn: ConnectionId,
        after: Option<ResourceId>,
        limit: u64,
        deciding: &[ResourceId],
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>>;

    /// The same for the users `ids` (in id order); ids with no user are left out.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn users_by_id(
        &self,
        conn: ConnectionId,
        ids: &[ResourceId],
        deciding: &[ResourceId],
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>>;

    /// What a plan of `org` with group mappings on can touch, when that is
    /// well under the whole directory: the ids of the users in any of
    /// `role_groups` plus those linked to a member of `org`, in id order.
    /// `None` when the plan should read every user (a store that cannot
    /// filter MAY always say so; mapped groups that hold most of the
    /// directory make filtering cost more than it saves).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn plan_candidates(
        &self,
        conn: ConnectionId,
        org: crate::org::OrgId,
        role_groups: &[ResourceId],
    ) -> Result<Option<Vec<ResourceId>>>;

    /// Some users, each with all its groups and its whole resource; ids with
    /// no user are left out.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn snapshot_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>>;

    /// Which of `groups` exist in the directory.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn existing_groups(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<ResourceId>>;

    /// Which of `users` exist in the directory.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn existing_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<ResourceId>>;
}
