use std::sync::Arc;

use time::OffsetDateTime;

use crate::directory::{
    ConnectionId, GroupFields, GroupRecord, MemberRef, ResourceId, ScimQuery, UserFields,
    UserRecord, UserView, WithGroups,
};
use crate::scim::MemberChange;
use crate::Result;

/// What a group PATCH must find for it to go ahead.
#[derive(Debug, Clone, Copy)]
pub enum GroupGuard<'a> {
    /// Nothing: member changes alone are row operations that lose nothing.
    None,
    /// The client's `If-Match`: the group's whole version, member changes included.
    Version(i64),
    /// A read-modify-write of the attributes without `If-Match`: they are
    /// still the ones read. Member changes made meanwhile do not count, so a
    /// stream of membership PATCHes never makes an attribute change fail.
    Attributes(&'a GroupFields),
}

/// The stored resource a replace or delete addresses: which one, the version
/// the caller last read (its `If-Match`; `None` writes over any version),
/// and the write's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTarget {
    pub conn: ConnectionId,
    pub id: ResourceId,
    pub expected_version: Option<i64>,
    pub now: OffsetDateTime,
}

/// One PATCH of a group as the store applies it: its parts stay apart so an
/// adapter can apply each with its own statement.
#[derive(Debug, Clone, Copy)]
pub struct GroupPatch<'a> {
    pub conn: ConnectionId,
    pub id: ResourceId,
    /// The group's new attributes, when the PATCH changed any.
    pub fields: Option<&'a GroupFields>,
    pub changes: &'a [MemberChange],
    /// The type and display the request gave for member values.
    pub known: &'a [MemberRef],
    pub guard: GroupGuard<'a>,
    pub now: OffsetDateTime,
}

/// One window of a list and the total number of matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub total: u64,
    pub items: Vec<T>,
}

/// Stores one connection's directory. Every method takes the connection
/// first and never reaches another connection's data. Every change bumps the
/// entity's version and appends a [`ChangeEvent`](crate::directory::ChangeEvent) in the same transaction.
///
/// Writes addressed by a [`WriteTarget`] MUST return `PreconditionFailed` when
/// the stored version differs (and change nothing); `None` means "any".
#[async_trait::async_trait]
pub trait DirectoryRepository: Send + Sync {
    /// # Errors
    /// MUST return `Conflict(AlreadyExists)` when the userName (case-insensitive) is taken.
    async fn create_user(
        &self,
        conn: ConnectionId,
        fields: &UserFields,
        now: OffsetDateTime,
    ) -> Result<UserRecord>;

    /// The user and, with [`WithGroups::Yes`], its groups, read together
    /// (one round trip where the store can).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn find_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        groups: WithGroups,
    ) -> Result<Option<UserView>>;

    /// The user as this process last read or wrote it, if it still
    /// remembers: the base of a read-modify-write that saves the read. It
    /// may be stale (another process may have written since), so only a
    /// write that expects its version may rely on it, and it is never an answer.
    fn recent_user(&self, _conn: ConnectionId, _id: ResourceId) -> Option<Arc<UserRecord>> {
        None
    }

    /// Writes the user and, with [`WithGroups::Yes`], reads its groups in the
    /// same round trip where the store can.
    ///
    /// # Errors
    /// `NotFound`, `PreconditionFailed`, or `Conflict(AlreadyExists)` for a taken userName.
    async fn replace_user(
        &self,
        target: WriteTarget,
        fields: &UserFields,
        groups: WithGroups,
    ) -> Result<UserView>;

    /// Deletes the user and its group memberships.
    ///
    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    async fn delete_user(&self, target: WriteTarget) -> Result<()>;

    /// One page of users and, with [`WithGroups::Yes`], each one's groups.
    ///
    /// # Errors
    /// `Invalid` when the filter uses something the store cannot evaluate.
    async fn list_users(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
        groups: WithGroups,
    ) -> Result<Listed<UserView>>;

    /// The groups each of `users` belongs to: `(user, group id, group displayName)`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn groups_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId, String)>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn create_group(
        &self,
        conn: ConnectionId,
        fields: &GroupFields,
        members: &[MemberRef],
        now: OffsetDateTime,
    ) -> Result<GroupRecord>;

    /// # Errors
    /// Only infrastructure failures.
    async fn find_group(&self, conn: ConnectionId, id: ResourceId) -> Result<Option<GroupRecord>>;

    /// Replaces the group's attributes, and its members when `members` is given.
    ///
    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    async fn replace_group(
        &self,
        target: WriteTarget,
        fields: &GroupFields,
        members: Option<&[MemberRef]>,
    ) -> Result<GroupRecord>;

    /// Brings the directory's bookkeeping up to date after changes: folds
    /// pending group member deltas into their groups. Called off the request
    /// path (the directory-changed job), so reads stay cheap whatever the
    /// write rate, whether or not any org is in SCIM mode.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn settle(&self, conn: ConnectionId) -> Result<()>;

    /// Applies member changes row by row (never rewriting the member list) and,
    /// when given, new attributes. Concurrent calls lose no member, and under
    /// [`GroupGuard::None`] or [`GroupGuard::Attributes`] they do not wait for
    /// each other either.
    ///
    /// # Errors
    /// `NotFound`, or `PreconditionFailed` when the patch's guard does not hold.
    async fn patch_group(&self, patch: GroupPatch<'_>) -> Result<GroupRecord>;

    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    async fn delete_group(&self, target: WriteTarget) -> Result<()>;

    /// Members of a group in value order, strictly after `after`, at most `limit`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn members(
        &self,
        conn: ConnectionId,
        group: ResourceId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<MemberRef>>;

    /// # Errors
    /// `Invalid` when the filter uses something the store cannot evaluate.
    async fn list_groups(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<GroupRecord>>;
}
