use std::collections::BTreeSet;

use futures::stream::BoxStream;

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

    /// The users `scope` covers, in id order, in pages that the store reads
    /// ahead while the caller plans the last one (holding a few pages at
    /// most), each user with the groups among `scope.deciding` it belongs to
    /// and its resource trimmed to `scope.keys`. A full plan drops each page
    /// once planned, so its memory does not grow with the directory.
    ///
    /// Each page is read when its turn comes: a user changed meanwhile is
    /// read as it is then (the change's event, after the plan's position,
    /// is applied after the plan too, to the same end).
    fn snapshot(&self, conn: ConnectionId, scope: SnapshotScope) -> UserPages;

    /// What a plan of `org` with group mappings on can touch, when that is
    /// well under the whole directory of `directory_users` users (as
    /// [`Self::user_count`] said just before): the ids of the users in any
    /// of `role_groups` plus those linked to a member of `org`, in id order.
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
        directory_users: u64,
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

    /// How many users the directory holds (what a full plan of an org
    /// drawing on it may have to add or remove at most).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn user_count(&self, conn: ConnectionId) -> Result<u64>;

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

/// What a full plan reads of a directory.
#[derive(Debug, Clone)]
pub struct SnapshotScope {
    /// The groups a plan's mappings name; other memberships decide nothing
    /// and are not read.
    pub deciding: Vec<ResourceId>,
    /// What of each user's resource the plan reads.
    pub keys: ResourceKeys,
    /// Only these users (in id order, from
    /// [`ChangeFeed::plan_candidates`]); `None`: every user.
    pub users: Option<Vec<ResourceId>>,
}

/// A snapshot's pages of users with their deciding groups, in id order.
pub type UserPages = BoxStream<'static, Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>>>;
