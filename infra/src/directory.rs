//! One connection's directory on PostgreSQL or SQLite. Writes run in one
//! transaction with the change event they produce; group members are rows,
//! changed with set-based statements, never by rewriting a list.
//!
//! This file is the [`DirectoryRepository`] port, each operation pointing to
//! where it lives:
//! - `sql`: the row types, and what users and groups share (look-up by id,
//!   SCIM list, versioned delete);
//! - `users`, `groups`: the writes of each kind;
//! - `members`: group member rows, changed as sets, and read by page or by user;
//! - `events`: the change log: appending, numbering ([`sequence_events`]), reading;
//! - `recent`: the users this process last saw, the base of the next PATCH;
//! - `feed`: what sync reads (the [`ChangeFeed`](orgsync_domain::ports::ChangeFeed)
//!   port): the log and snapshots of users with their groups.

use std::sync::Arc;

use orgsync_domain::directory::{
    ConnectionId, GroupFields, GroupRecord, MemberRef, ResourceId, ScimQuery, UserFields,
    UserRecord, UserView, WithGroups,
};
use orgsync_domain::ports::{DirectoryRepository, GroupPatch, Listed, WriteTarget};
use orgsync_domain::Result;
use sea_orm::DbBackend;
use time::OffsetDateTime;

use crate::Database;
use sql::GroupRow;

mod events;
mod feed;
mod groups;
mod members;
mod recent;
mod sql;
mod users;

pub use events::sequence_events;
pub(crate) use members::{group_names, memberships_of};

#[derive(Clone)]
pub struct SqlDirectoryRepository {
    db: Database,
    recent: Option<recent::RecentUsers>,
}

impl SqlDirectoryRepository {
    pub fn new(db: Database) -> Self {
        Self { db, recent: None }
    }

    /// Remembers up to `max_bytes` of the users this process last read or
    /// wrote, so a PATCH of one of them skips its read (see `recent`).
    #[must_use]
    pub fn remembering_users(mut self, max_bytes: u64) -> Self {
        self.recent = (max_bytes > 0).then(|| recent::RecentUsers::new(max_bytes));
        self
    }

    fn remember(&self, record: &UserRecord) {
        if let Some(recent) = &self.recent {
            recent.remember(record);
        }
    }

    fn backend(&self) -> DbBackend {
        self.db.backend()
    }
}

#[async_trait::async_trait]
impl DirectoryRepository for SqlDirectoryRepository {
    async fn create_user(
        &self,
        conn: ConnectionId,
        fields: &UserFields,
        now: OffsetDateTime,
    ) -> Result<UserRecord> {
        let record = users::create(self, conn, fields, now).await?;
        self.remember(&record);
        Ok(record)
    }

    async fn find_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        groups: WithGroups,
    ) -> Result<Option<UserView>> {
        let found = users::find(self, conn, id, groups).await?;
        if let Some(view) = &found {
            self.remember(&view.record);
        }
        Ok(found)
    }

    fn recent_user(&self, conn: ConnectionId, id: ResourceId) -> Option<Arc<UserRecord>> {
        self.recent.as_ref()?.get(conn, id)
    }

    async fn replace_user(
        &self,
        target: WriteTarget,
        fields: &UserFields,
        groups: WithGroups,
    ) -> Result<UserView> {
        let view = users::replace(self, target, fields, groups).await?;
        self.remember(&view.record);
        Ok(view)
    }

    async fn delete_user(&self, target: WriteTarget) -> Result<()> {
        if let Some(recent) = &self.recent {
            recent.forget(target.conn, target.id);
        }
        users::delete(self, target).await
    }

    async fn list_users(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
        groups: WithGroups,
    ) -> Result<Listed<UserView>> {
        let listed = users::list(self, conn, query, groups).await?;
        if listed.items.len() <= recent::REMEMBERED_PAGE {
            for view in &listed.items {
                self.remember(&view.record);
            }
        }
        Ok(listed)
    }

    async fn groups_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId, String)>> {
        members::groups_of(self, conn, users).await
    }

    async fn create_group(
        &self,
        conn: ConnectionId,
        fields: &GroupFields,
        members: &[MemberRef],
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        groups::create(self, conn, fields, members, now).await
    }

    async fn find_group(&self, conn: ConnectionId, id: ResourceId) -> Result<Option<GroupRecord>> {
        self.find::<GroupRow>(self.db.connection(), conn, id).await
    }

    async fn replace_group(
        &self,
        target: WriteTarget,
        fields: &GroupFields,
        members: Option<&[MemberRef]>,
    ) -> Result<GroupRecord> {
        groups::replace(self, target, fields, members).await
    }

    async fn settle(&self, conn: ConnectionId) -> Result<()> {
        groups::fold_deltas(self.db.connection(), conn).await
    }

    async fn patch_group(&self, patch: GroupPatch<'_>) -> Result<GroupRecord> {
        groups::patch(self, patch).await
    }

    async fn delete_group(&self, target: WriteTarget) -> Result<()> {
        groups::delete(self, target).await
    }

    async fn members(
        &self,
        conn: ConnectionId,
        group: ResourceId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<MemberRef>> {
        members::page(self, conn, group, after, limit).await
    }

    async fn list_groups(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<GroupRecord>> {
        self.list::<GroupRow>(conn, query).await
    }
}
