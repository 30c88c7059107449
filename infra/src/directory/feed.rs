//! What sync reads: the change feed (the log itself is read in `events`),
//! the users a plan starts from, and which ids still exist. Pages of users
//! with their groups are read in `snapshot`.

use std::collections::BTreeSet;

use orgsync_domain::directory::{ChangeEvent, ConnectionId, ResourceId};
use orgsync_domain::membership::DirectoryUser;
use orgsync_domain::ports::{ChangeFeed, SnapshotScope, UserPages};
use orgsync_domain::Result;
use sea_orm::{DbBackend, FromQueryResult};

use super::events::sequence_events;
use super::SqlDirectoryRepository;
use crate::db::{db_err, query_replanned};
use crate::filter_sql::Sql;
use snapshot::LOOKUP_CHUNK;

mod snapshot;

#[async_trait::async_trait]
impl ChangeFeed for SqlDirectoryRepository {
    async fn latest_seq(&self, conn: ConnectionId) -> Result<i64> {
        sequence_events(self.db.connection(), conn).await?;
        let sql = "SELECT event_seq FROM enterprise_connections WHERE id = $1";
        let seq: Option<i64> = self.db.value(sql, vec![conn.0.into()]).await?;
        Ok(seq.unwrap_or(0))
    }

    async fn events(&self, conn: ConnectionId, after: i64, limit: u64) -> Result<Vec<ChangeEvent>> {
        self.read_events(conn, "seq > $2 ORDER BY seq", after, limit)
            .await
    }

    async fn events_before(
        &self,
        conn: ConnectionId,
        before: i64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>> {
        self.read_events(conn, "seq < $2 ORDER BY seq DESC", before, limit)
            .await
    }

    async fn changed_members(
        &self,
        conn: ConnectionId,
        events: &[i64],
        after: Option<&(i64, String)>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let seqs: Vec<String> = events.iter().map(|seq| sql.bind(*seq)).collect();
        let (after_seq, after_value) = after.cloned().unwrap_or((i64::MIN, String::new()));
        let (after_seq, after_value) = (sql.bind(after_seq), sql.bind(after_value));
        let limit = sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = query_replanned(
            self.db.connection(),
            &format!(
                "SELECT e.seq, m.member_value FROM directory_events e \
                 JOIN directory_event_members m ON m.event_id = e.id \
                 WHERE e.connection_id = {conn_param} AND e.seq IN ({}) \
                 AND (e.seq, m.member_value) > ({after_seq}, {after_value}) \
                 ORDER BY e.seq, m.member_value LIMIT {limit}",
                seqs.join(", ")
            ),
            sql.values,
        )
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64>("", "seq").map_err(db_err)?,
                    row.try_get::<String>("", "member_value").map_err(db_err)?,
                ))
            })
            .collect()
    }

    fn snapshot(&self, conn: ConnectionId, scope: SnapshotScope) -> UserPages {
        snapshot::pages(self, conn, scope)
    }

    async fn plan_candidates(
        &self,
        conn: ConnectionId,
        org: orgsync_domain::org::OrgId,
        role_groups: &[ResourceId],
        directory_users: u64,
    ) -> Result<Option<Vec<ResourceId>>> {
        if self.backend() != DbBackend::Postgres
            || !self.selective(conn, role_groups, directory_users).await?
        {
            // The embedded engine stores ids as bytes and member values as
            // text (and works at embedded scale); and when the mapped groups
            // hold most of the directory, filtering costs more than it saves.
            return Ok(None);
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let org_param = sql.bind(org.0);
        let group_list: Vec<String> = role_groups.iter().map(|g| sql.bind(*g)).collect();
        let in_groups = if group_list.is_empty() {
            String::new()
        } else {
            format!(
                "SELECT member_value AS v FROM directory_group_members WHERE connection_id = {conn_param} \
                 AND group_id IN ({}) UNION ",
                group_list.join(", ")
            )
        };
        // Member values that are not user ids (nested groups) are no candidates.
        let ids = self
            .db
            .column(
            &format!(
                "WITH candidates AS ({in_groups}SELECT directory_user_id::text AS v FROM members \
                 WHERE org_id = {org_param} AND directory_user_id IS NOT NULL) \
                 SELECT id FROM directory_users WHERE connection_id = {conn_param} \
                 AND id IN (SELECT v::uuid FROM candidates \
                   WHERE v ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$') \
                 ORDER BY id"
            ),
            sql.values,
        )
        .await?;
        Ok(Some(ids))
    }

    async fn snapshot_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        self.users_by_id(conn, users, None, None).await
    }

    async fn existing_groups(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        self.existing("directory_groups", conn, groups).await
    }

    async fn existing_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        self.existing("directory_users", conn, users).await
    }

    async fn user_count(&self, conn: ConnectionId) -> Result<u64> {
        #[derive(FromQueryResult)]
        struct Count {
            users: i64,
        }
        let count = Count::find_by_statement(self.db.stmt(
            "SELECT COUNT(*) AS users FROM directory_users WHERE connection_id = $1",
            vec![conn.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(count.map_or(0, |c| u64::try_from(c.users).unwrap_or(0)))
    }
}

impl SqlDirectoryRepository {
    /// Whether `groups` hold well under half of the directory's `users`.
    async fn selective(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
        users: u64,
    ) -> Result<bool> {
        #[derive(FromQueryResult)]
        struct Sizes {
            in_groups: i64,
        }
        if groups.is_empty() {
            return Ok(users > 0);
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
        let sizes = Sizes::find_by_statement(self.db.stmt(
            &format!(
                "SELECT CAST(COALESCE(SUM(member_count), 0) AS BIGINT) AS in_groups \
                 FROM directory_groups WHERE connection_id = {conn_param} AND id IN ({})",
                list.join(", ")
            ),
            sql.values,
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        let in_groups = sizes.map_or(0, |s| u64::try_from(s.in_groups).unwrap_or(0));
        Ok(in_groups.saturating_mul(2) < users)
    }

    /// Which of `ids` are rows of `table` (a fixed table name) in the directory.
    async fn existing(
        &self,
        table: &'static str,
        conn: ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = chunk.iter().map(|g| sql.bind(*g)).collect();
            let found: Vec<ResourceId> = self
                .db
                .column(
                    &format!(
                        "SELECT id FROM {table} WHERE connection_id = {conn_param} AND id IN ({})",
                        list.join(", ")
                    ),
                    sql.values,
                )
                .await?;
            out.extend(found);
        }
        Ok(out)
    }
}
