//! What sync reads: the change feed (the log itself is read in `events`) and
//! snapshots of users with the groups that decide anything, streamed row by
//! row.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use orgsync_domain::directory::{ChangeEvent, ConnectionId, ResourceId};
use orgsync_domain::membership::{DirectoryUser, ResourceKeys};
use orgsync_domain::ports::ChangeFeed;
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use super::events::sequence_events;
use super::sql::INSERT_BATCH;
use super::SqlDirectoryRepository;
use crate::db::db_err;
use crate::filter_sql::Sql;

#[async_trait::async_trait]
impl ChangeFeed for SqlDirectoryRepository {
    async fn latest_seq(&self, conn: ConnectionId) -> Result<i64> {
        sequence_events(self.db.connection(), conn).await?;
        #[derive(FromQueryResult)]
        struct Row {
            event_seq: i64,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT event_seq FROM enterprise_connections WHERE id = $1",
            vec![conn.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map_or(0, |r| r.event_seq))
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
        let rows = self
            .db
            .connection()
            .query_all(self.stmt(
                &format!(
                    "SELECT e.seq, m.member_value FROM directory_events e \
                     JOIN directory_event_members m ON m.event_id = e.id \
                     WHERE e.connection_id = {conn_param} AND e.seq IN ({}) \
                     AND (e.seq, m.member_value) > ({after_seq}, {after_value}) \
                     ORDER BY e.seq, m.member_value LIMIT {limit}",
                    seqs.join(", ")
                ),
                sql.values,
            ))
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

    async fn snapshot(
        &self,
        conn: ConnectionId,
        deciding: &[ResourceId],
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        // Both reads stream row by row: at 100k users, collecting raw rows
        // first would hold the whole result set twice.
        let mut groups: HashMap<Uuid, BTreeSet<ResourceId>> = HashMap::new();
        if !deciding.is_empty() {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = deciding.iter().map(|g| sql.bind(*g)).collect();
            groups = self
                .groups_by_user(self.stmt(
                    &format!(
                        "SELECT member_value, group_id FROM directory_group_members \
                         WHERE connection_id = {conn_param} AND group_id IN ({})",
                        list.join(", ")
                    ),
                    sql.values,
                ))
                .await?;
        }
        self.pair_with_groups(
            self.stmt(
                &format!("SELECT {SNAPSHOT_COLUMNS} FROM directory_users WHERE connection_id = $1 ORDER BY id"),
                vec![conn.0.into()],
            ),
            groups,
            keys,
        )
        .await
    }

    async fn snapshot_for_org(
        &self,
        conn: ConnectionId,
        org: orgsync_domain::org::OrgId,
        role_groups: &[ResourceId],
        deciding: &[ResourceId],
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        if self.backend() != DbBackend::Postgres || !self.selective(conn, role_groups).await? {
            // The embedded engine stores ids as bytes and member values as
            // text (and works at embedded scale); and when the mapped groups
            // hold most of the directory, filtering costs more than it saves.
            return self.snapshot(conn, deciding, keys).await;
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let org_param = sql.bind(org.0);
        let group_list: Vec<String> = role_groups.iter().map(|g| sql.bind(*g)).collect();
        // Bound after the shared ones, for the memberships query only.
        let mut with_deciding = Sql {
            text: String::new(),
            values: sql.values.clone(),
        };
        let deciding_list: Vec<String> = deciding.iter().map(|g| with_deciding.bind(*g)).collect();
        let in_groups = if group_list.is_empty() {
            String::new()
        } else {
            format!(
                "SELECT member_value AS v FROM directory_group_members WHERE connection_id = {conn_param} \
                 AND group_id IN ({}) UNION ",
                group_list.join(", ")
            )
        };
        let candidates = format!(
            "WITH candidates AS ({in_groups}SELECT directory_user_id::text AS v FROM members \
             WHERE org_id = {org_param} AND directory_user_id IS NOT NULL)"
        );
        let mut groups_of: HashMap<Uuid, BTreeSet<ResourceId>> = HashMap::new();
        if !deciding_list.is_empty() {
            groups_of = self
                .groups_by_user(self.stmt(
                    &format!(
                        "{candidates} SELECT m.member_value, m.group_id FROM directory_group_members m \
                         WHERE m.connection_id = {conn_param} AND m.group_id IN ({}) \
                         AND m.member_value IN (SELECT v FROM candidates)",
                        deciding_list.join(", ")
                    ),
                    with_deciding.values,
                ))
                .await?;
        }
        self.pair_with_groups(
            self.stmt(
                &format!(
                    "{candidates} SELECT {SNAPSHOT_COLUMNS} FROM directory_users WHERE connection_id = {conn_param} \
                     AND id IN (SELECT v::uuid FROM candidates \
                       WHERE v ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$') \
                     ORDER BY id"
                ),
                sql.values,
            ),
            groups_of,
            keys,
        )
        .await
    }

    async fn snapshot_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        let mut rows = Vec::new();
        let mut memberships = Vec::new();
        for chunk in users.chunks(INSERT_BATCH) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let ids: Vec<String> = chunk.iter().map(|u| sql.bind(*u)).collect();
            rows.extend(
                SnapshotRow::find_by_statement(self.stmt(
                    &format!(
                        "SELECT {SNAPSHOT_COLUMNS} FROM directory_users WHERE connection_id = {conn_param} AND id IN ({}) ORDER BY id",
                        ids.join(", ")
                    ),
                    sql.values,
                ))
                .all(self.db.connection())
                .await
                .map_err(db_err)?,
            );
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let values: Vec<String> = chunk.iter().map(|u| sql.bind(u.to_string())).collect();
            memberships.extend(
                MembershipRow::find_by_statement(self.stmt(
                    &format!(
                        "SELECT member_value, group_id FROM directory_group_members \
                         WHERE connection_id = {conn_param} AND member_value IN ({})",
                        values.join(", ")
                    ),
                    sql.values,
                ))
                .all(self.db.connection())
                .await
                .map_err(db_err)?,
            );
        }
        Ok(join_groups(rows, memberships))
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
}

impl SqlDirectoryRepository {
    /// Whether `groups` hold well under half the directory's users.
    async fn selective(&self, conn: ConnectionId, groups: &[ResourceId]) -> Result<bool> {
        #[derive(FromQueryResult)]
        struct Sizes {
            in_groups: i64,
            users: i64,
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
        let in_groups = if list.is_empty() {
            "0".to_owned()
        } else {
            format!(
                "(SELECT COALESCE(SUM(member_count), 0) FROM directory_groups WHERE connection_id = {conn_param} AND id IN ({}))",
                list.join(", ")
            )
        };
        let sizes = Sizes::find_by_statement(self.stmt(
            &format!(
                "SELECT CAST({in_groups} AS BIGINT) AS in_groups, \
                 (SELECT COUNT(*) FROM directory_users WHERE connection_id = {conn_param}) AS users"
            ),
            sql.values,
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(sizes.is_some_and(|s| s.in_groups * 2 < s.users))
    }

    /// Streams a `(member_value, group_id)` query into each user's groups;
    /// member values that are not user ids (nested groups) are left out.
    async fn groups_by_user(
        &self,
        statement: Statement,
    ) -> Result<HashMap<Uuid, BTreeSet<ResourceId>>> {
        let mut groups: HashMap<Uuid, BTreeSet<ResourceId>> = HashMap::new();
        let mut memberships = MembershipRow::find_by_statement(statement)
            .stream(self.db.connection())
            .await
            .map_err(db_err)?;
        while let Some(row) = memberships.next().await {
            let row = row.map_err(db_err)?;
            if let Ok(user) = Uuid::parse_str(&row.member_value) {
                groups.entry(user).or_default().insert(row.group_id);
            }
        }
        Ok(groups)
    }

    /// Streams a snapshot query's users, pairing each with its groups from
    /// `groups`, each resource trimmed to `keys` before the next row is read.
    async fn pair_with_groups(
        &self,
        statement: Statement,
        mut groups: HashMap<Uuid, BTreeSet<ResourceId>>,
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        let mut users = SnapshotRow::find_by_statement(statement)
            .stream(self.db.connection())
            .await
            .map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(row) = users.next().await {
            let row = row.map_err(db_err)?;
            let user_groups = groups.remove(&row.id).unwrap_or_default();
            let mut user = row.into_user();
            keys.trim(&mut user.resource);
            out.push((user, user_groups));
        }
        Ok(out)
    }

    /// Which of `ids` are rows of `table` (a fixed table name) in the directory.
    async fn existing(
        &self,
        table: &'static str,
        conn: ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(INSERT_BATCH) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = chunk.iter().map(|g| sql.bind(*g)).collect();
            let rows = Row::find_by_statement(self.stmt(
                &format!(
                    "SELECT id FROM {table} WHERE connection_id = {conn_param} AND id IN ({})",
                    list.join(", ")
                ),
                sql.values,
            ))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
            out.extend(rows.into_iter().map(|r| r.id));
        }
        Ok(out)
    }
}

const SNAPSHOT_COLUMNS: &str = "id, user_name, email, display_name, active, resource";

#[derive(FromQueryResult)]
struct SnapshotRow {
    id: Uuid,
    user_name: String,
    email: Option<String>,
    display_name: Option<String>,
    active: bool,
    resource: serde_json::Value,
}

#[derive(FromQueryResult)]
struct MembershipRow {
    member_value: String,
    group_id: Uuid,
}

impl SnapshotRow {
    fn into_user(self) -> DirectoryUser {
        DirectoryUser {
            id: self.id,
            user_name: self.user_name,
            email: self.email,
            display_name: self.display_name,
            active: self.active,
            resource: self.resource,
        }
    }
}

/// Pairs each user with the groups it is a direct member of (member values
/// that are not user ids, such as nested groups, are left out).
fn join_groups(
    users: Vec<SnapshotRow>,
    memberships: Vec<MembershipRow>,
) -> Vec<(DirectoryUser, BTreeSet<ResourceId>)> {
    let mut groups: HashMap<Uuid, BTreeSet<ResourceId>> = HashMap::new();
    for m in memberships {
        if let Ok(user) = Uuid::parse_str(&m.member_value) {
            groups.entry(user).or_default().insert(m.group_id);
        }
    }
    users
        .into_iter()
        .map(|u| {
            let user_groups = groups.remove(&u.id).unwrap_or_default();
            (u.into_user(), user_groups)
        })
        .collect()
}
