//! One connection's directory on PostgreSQL or SQLite. Writes run in one
//! transaction with the change event they produce; group members are rows,
//! changed with set-based statements, never by rewriting a list. This file
//! is the SCIM store; `feed` is what sync reads (the change log, snapshots).

use orgsync_domain::directory::{
    ChangeOp, ConnectionId, EntityKind, GroupFields, GroupRecord, MemberRef, ResourceId, ScimQuery,
    SortKey, UserFields, UserRecord,
};
use orgsync_domain::ports::{DirectoryRepository, Listed};
use orgsync_domain::scim::{MemberChange, ResourceKind};
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, FromQueryResult,
    Statement, TransactionTrait, Value,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{db_err, sql_err};
use crate::filter_sql::{condition, Sql};
use crate::Database;

mod feed;

/// Rows per multi-row INSERT: well under both engines' bound-parameter limits.
const INSERT_BATCH: usize = 500;

pub struct SqlDirectoryRepository {
    db: Database,
}

impl SqlDirectoryRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn backend(&self) -> DbBackend {
        self.db.backend()
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql, values)
    }
}

#[derive(FromQueryResult)]
struct UserRow {
    id: Uuid,
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
    email: Option<String>,
    resource: serde_json::Value,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const USER_COLUMNS: &str =
    "id, user_name, external_id, display_name, active, email, resource, version, created_at, updated_at";

impl UserRow {
    fn into_record(self, conn: ConnectionId) -> UserRecord {
        UserRecord {
            id: self.id,
            connection_id: conn,
            fields: UserFields {
                user_name: self.user_name,
                external_id: self.external_id,
                display_name: self.display_name,
                active: self.active,
                email: self.email,
                resource: self.resource,
            },
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(FromQueryResult)]
struct GroupRow {
    id: Uuid,
    display_name: String,
    external_id: Option<String>,
    resource: serde_json::Value,
    member_count: i64,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const GROUP_COLUMNS: &str =
    "id, display_name, external_id, resource, member_count, version, created_at, updated_at";

impl GroupRow {
    fn into_record(self, conn: ConnectionId) -> GroupRecord {
        GroupRecord {
            id: self.id,
            connection_id: conn,
            fields: GroupFields {
                display_name: self.display_name,
                external_id: self.external_id,
                resource: self.resource,
            },
            member_count: self.member_count,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn version_mismatch() -> Error {
    Error::PreconditionFailed("the resource has changed since that version".into())
}

/// Appends a change event in the writer's transaction. Its per-connection
/// sequence number is assigned later by [`sequence_events`]: numbering at
/// write time would lock the connection row until commit and serialise every
/// write of a directory behind one disk flush.
async fn append_event(
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    entity: EntityKind,
    entity_id: Uuid,
    version: i64,
    op: ChangeOp,
    now: OffsetDateTime,
) -> Result<()> {
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        EVENT_INSERT,
        event_values(conn, entity, entity_id, version, op, now),
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

const EVENT_INSERT: &str = "INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

fn event_values(
    conn: ConnectionId,
    entity: EntityKind,
    entity_id: Uuid,
    version: i64,
    op: ChangeOp,
    now: OffsetDateTime,
) -> Vec<Value> {
    vec![
        conn.0.into(),
        entity.as_str().into(),
        entity_id.into(),
        version.into(),
        op.as_str().into(),
        now.into(),
    ]
}

/// Numbers the connection's committed, unnumbered events in insertion order,
/// continuing its sequence. Only this step takes the connection's row lock,
/// once per batch; an event committed late simply gets a later number, and
/// entity versions keep per-entity order regardless.
pub async fn sequence_events(db: &DatabaseConnection, conn: ConnectionId) -> Result<()> {
    let backend = db.get_database_backend();
    let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [conn.0.into()]);
    let txn = db.begin().await.map_err(db_err)?;
    // Taking the row lock first makes concurrent sequencers of one connection queue up.
    txn.execute(stmt(
        "UPDATE enterprise_connections SET event_seq = event_seq WHERE id = $1",
    ))
    .await
    .map_err(db_err)?;
    txn.execute(stmt(
        "UPDATE directory_events SET seq = numbered.seq FROM \
         (SELECT e.id, c.event_seq + ROW_NUMBER() OVER (ORDER BY e.id) AS seq \
          FROM directory_events e JOIN enterprise_connections c ON c.id = e.connection_id \
          WHERE e.connection_id = $1 AND e.seq IS NULL) AS numbered \
         WHERE directory_events.id = numbered.id",
    ))
    .await
    .map_err(db_err)?;
    txn.execute(stmt(
        "UPDATE enterprise_connections SET event_seq = \
         COALESCE((SELECT MAX(seq) FROM directory_events WHERE connection_id = $1), event_seq) WHERE id = $1",
    ))
    .await
    .map_err(db_err)?;
    txn.commit().await.map_err(db_err)
}

/// Inserts members (ignoring ones already there); returns how many were new.
async fn insert_members(
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    group: Uuid,
    members: &[MemberRef],
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let mut added = 0;
    for chunk in members.chunks(INSERT_BATCH) {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|m| {
                format!(
                    "({}, {}, {}, {}, {})",
                    sql.bind(conn.0),
                    sql.bind(group),
                    sql.bind(m.value.clone()),
                    sql.bind(m.kind.clone()),
                    sql.bind(m.display.clone())
                )
            })
            .collect();
        let text = format!(
            "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type, member_display) VALUES {} \
             ON CONFLICT (group_id, member_value) DO NOTHING",
            rows.join(", ")
        );
        let result = txn
            .execute(Statement::from_sql_and_values(backend, text, sql.values))
            .await
            .map_err(|e| match e.sql_err() {
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                    Error::NotFound { entity: "group" }
                }
                _ => db_err(e),
            })?;
        added += i64::try_from(result.rows_affected()).unwrap_or(0);
    }
    Ok(added)
}

async fn remove_members(txn: &DatabaseTransaction, group: Uuid, values: &[String]) -> Result<i64> {
    let backend = txn.get_database_backend();
    let mut removed = 0;
    for chunk in values.chunks(INSERT_BATCH) {
        let mut sql = Sql::default();
        let group_param = sql.bind(group);
        let list: Vec<String> = chunk.iter().map(|v| sql.bind(v.clone())).collect();
        let text = format!(
            "DELETE FROM directory_group_members WHERE group_id = {group_param} AND member_value IN ({})",
            list.join(", ")
        );
        let result = txn
            .execute(Statement::from_sql_and_values(backend, text, sql.values))
            .await
            .map_err(db_err)?;
        removed += i64::try_from(result.rows_affected()).unwrap_or(0);
    }
    Ok(removed)
}

async fn clear_members(txn: &DatabaseTransaction, group: Uuid) -> Result<()> {
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "DELETE FROM directory_group_members WHERE group_id = $1",
        [group.into()],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

fn order_by(sort: Option<(SortKey, bool)>, kind: ResourceKind) -> String {
    let Some((key, ascending)) = sort else {
        return "id".into();
    };
    let column = match (key, kind) {
        (SortKey::Id, _) => "id",
        (SortKey::UserName, _) => "user_name_lower",
        (SortKey::DisplayName, ResourceKind::Group) => "display_name_lower",
        (SortKey::DisplayName, ResourceKind::User) => "lower(display_name)",
        (SortKey::ExternalId, _) => "external_id",
        (SortKey::Created, _) => "created_at",
        (SortKey::LastModified, _) => "updated_at",
    };
    let direction = if ascending { "ASC" } else { "DESC" };
    // Ties (and NULLs) broken by id, so paging order is stable.
    format!("{column} {direction}, id {direction}")
}

impl SqlDirectoryRepository {
    async fn list<R: FromQueryResult>(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
        kind: ResourceKind,
    ) -> Result<(u64, Vec<R>)> {
        let (table, columns) = match kind {
            ResourceKind::User => ("directory_users", USER_COLUMNS),
            ResourceKind::Group => ("directory_groups", GROUP_COLUMNS),
        };
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let mut filter = format!("{table}.connection_id = {conn_param}");
        if let Some(f) = &query.filter {
            let cond = condition(self.backend(), kind, f, &mut sql)?;
            filter = format!("{filter} AND ({cond})");
        }
        #[derive(FromQueryResult)]
        struct Count {
            total: i64,
        }
        let count_only = |values: Vec<Value>| {
            Count::find_by_statement(self.stmt(
                &format!("SELECT COUNT(*) AS total FROM {table} WHERE {filter}"),
                values,
            ))
            .one(self.db.connection())
        };
        if query.count == 0 {
            let total = count_only(sql.values).await.map_err(db_err)?;
            return Ok((
                total.map_or(0, |c| u64::try_from(c.total).unwrap_or(0)),
                Vec::new(),
            ));
        }
        let count_values = sql.values.clone();
        let limit = sql.bind(i64::try_from(query.count).unwrap_or(i64::MAX));
        let offset =
            sql.bind(i64::try_from(query.start_index.saturating_sub(1)).unwrap_or(i64::MAX));
        // The page and the total in one round trip.
        let rows = self
            .db
            .connection()
            .query_all(self.stmt(
                &format!(
                    "SELECT {columns}, COUNT(*) OVER () AS total_count FROM {table} WHERE {filter} \
                     ORDER BY {} LIMIT {limit} OFFSET {offset}",
                    order_by(query.sort, kind)
                ),
                sql.values,
            ))
            .await
            .map_err(db_err)?;
        let total = match rows.first() {
            Some(first) => first.try_get::<i64>("", "total_count").map_err(db_err)?,
            // An empty page past the first says nothing about the total: count it.
            None if query.start_index > 1 => count_only(count_values)
                .await
                .map_err(db_err)?
                .map_or(0, |c| c.total),
            None => 0,
        };
        let rows = rows
            .iter()
            .map(|row| R::from_query_result(row, ""))
            .collect::<Result<Vec<R>, _>>()
            .map_err(db_err)?;
        let total = u64::try_from(total).unwrap_or(0);
        Ok((total, rows))
    }

    async fn fetch_group(
        &self,
        txn: &DatabaseTransaction,
        conn: ConnectionId,
        id: Uuid,
    ) -> Result<GroupRecord> {
        GroupRow::find_by_statement(self.stmt(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM directory_groups WHERE connection_id = $1 AND id = $2"
            ),
            vec![conn.0.into(), id.into()],
        ))
        .one(txn)
        .await
        .map_err(db_err)?
        .map(|r| r.into_record(conn))
        .ok_or(Error::NotFound { entity: "group" })
    }

    /// Bumps the group's version, applies `member_delta` and new attributes
    /// under the version check, and logs the event; returns the stored group.
    #[allow(clippy::too_many_arguments)]
    async fn finish_group_update(
        &self,
        txn: &DatabaseTransaction,
        conn: ConnectionId,
        id: Uuid,
        fields: Option<&GroupFields>,
        expected_version: Option<i64>,
        member_delta: i64,
        op: ChangeOp,
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        let mut sql = Sql::default();
        let now_param = sql.bind(now);
        let mut sets = vec![
            "version = version + 1".to_owned(),
            format!("updated_at = {now_param}"),
            format!("member_count = member_count + {}", sql.bind(member_delta)),
        ];
        if let Some(f) = fields {
            sets.push(format!(
                "display_name = {}",
                sql.bind(f.display_name.clone())
            ));
            sets.push(format!(
                "display_name_lower = {}",
                sql.bind(f.display_name.to_lowercase())
            ));
            sets.push(format!("external_id = {}", sql.bind(f.external_id.clone())));
            sets.push(format!("resource = {}", sql.bind(f.resource.clone())));
        }
        let conn_param = sql.bind(conn.0);
        let mut update = format!(
            "UPDATE directory_groups SET {} WHERE connection_id = {conn_param} AND id = {}",
            sets.join(", "),
            sql.bind(id)
        );
        if let Some(v) = expected_version {
            update.push_str(&format!(" AND version = {}", sql.bind(v)));
        }
        update.push_str(&format!(" RETURNING {GROUP_COLUMNS}"));
        let postgres = self.backend() == DbBackend::Postgres;
        let text = if postgres {
            // The update and its event in one statement.
            format!(
                "WITH updated AS ({update}), \
                 logged AS (INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
                 SELECT {conn_param}, 'group', id, version, '{}', {now_param} FROM updated) \
                 SELECT {GROUP_COLUMNS} FROM updated",
                op.as_str()
            )
        } else {
            update
        };
        let Some(row) = GroupRow::find_by_statement(self.stmt(&text, sql.values))
            .one(txn)
            .await
            .map_err(db_err)?
        else {
            return Err(self
                .missing_or_stale(txn, "directory_groups", conn, id)
                .await);
        };
        let record = row.into_record(conn);
        if !postgres {
            append_event(txn, conn, EntityKind::Group, id, record.version, op, now).await?;
        }
        Ok(record)
    }

    /// Bumps a group's version (and attributes, when given) under the version
    /// check, locking its row for the rest of the transaction.
    async fn touch_group(
        &self,
        txn: &DatabaseTransaction,
        conn: ConnectionId,
        id: Uuid,
        fields: Option<&GroupFields>,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mut sql = Sql::default();
        let mut sets = vec![
            "version = version + 1".to_owned(),
            format!("updated_at = {}", sql.bind(now)),
        ];
        if let Some(f) = fields {
            sets.push(format!(
                "display_name = {}",
                sql.bind(f.display_name.clone())
            ));
            sets.push(format!(
                "display_name_lower = {}",
                sql.bind(f.display_name.to_lowercase())
            ));
            sets.push(format!("external_id = {}", sql.bind(f.external_id.clone())));
            sets.push(format!("resource = {}", sql.bind(f.resource.clone())));
        }
        let mut text = format!(
            "UPDATE directory_groups SET {} WHERE connection_id = {} AND id = {}",
            sets.join(", "),
            sql.bind(conn.0),
            sql.bind(id)
        );
        if let Some(v) = expected_version {
            text.push_str(&format!(" AND version = {}", sql.bind(v)));
        }
        let result = txn
            .execute(self.stmt(&text, sql.values))
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(self
                .missing_or_stale(txn, "directory_groups", conn, id)
                .await);
        }
        Ok(())
    }

    /// Deletes one row under the version check and returns the version it had.
    async fn delete_versioned(
        &self,
        txn: &DatabaseTransaction,
        table: &'static str,
        conn: ConnectionId,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<i64> {
        #[derive(FromQueryResult)]
        struct Version {
            version: i64,
        }
        let mut sql = Sql::default();
        let mut text = format!(
            "DELETE FROM {table} WHERE connection_id = {} AND id = {}",
            sql.bind(conn.0),
            sql.bind(id)
        );
        if let Some(v) = expected_version {
            text.push_str(&format!(" AND version = {}", sql.bind(v)));
        }
        text.push_str(" RETURNING version");
        match Version::find_by_statement(self.stmt(&text, sql.values))
            .one(txn)
            .await
            .map_err(db_err)?
        {
            Some(deleted) => Ok(deleted.version),
            None => Err(self.missing_or_stale(txn, table, conn, id).await),
        }
    }

    async fn missing_or_stale(
        &self,
        txn: &DatabaseTransaction,
        table: &str,
        conn: ConnectionId,
        id: Uuid,
    ) -> Error {
        let exists = txn
            .query_one(self.stmt(
                &format!("SELECT 1 AS one FROM {table} WHERE connection_id = $1 AND id = $2"),
                vec![conn.0.into(), id.into()],
            ))
            .await;
        match exists {
            Ok(Some(_)) => version_mismatch(),
            Ok(None) => Error::NotFound {
                entity: if table == "directory_users" {
                    "user"
                } else {
                    "group"
                },
            },
            Err(e) => db_err(e),
        }
    }

    async fn set_member_count(&self, txn: &DatabaseTransaction, id: Uuid) -> Result<()> {
        txn.execute(self.stmt(
            "UPDATE directory_groups SET member_count = \
             (SELECT COUNT(*) FROM directory_group_members WHERE group_id = $1) WHERE id = $1",
            vec![id.into()],
        ))
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

const USER_NAME_TAKEN: &str = "userName is already taken in this directory";

#[allow(clippy::too_many_arguments)]
#[async_trait::async_trait]
impl DirectoryRepository for SqlDirectoryRepository {
    async fn create_user(
        &self,
        conn: ConnectionId,
        f: &UserFields,
        now: OffsetDateTime,
    ) -> Result<UserRecord> {
        let id = Uuid::now_v7();
        let insert = "INSERT INTO directory_users (id, connection_id, user_name, user_name_lower, external_id, display_name, \
             active, email, resource, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)";
        let values = vec![
            id.into(),
            conn.0.into(),
            f.user_name.clone().into(),
            f.user_name.to_lowercase().into(),
            f.external_id.clone().into(),
            f.display_name.clone().into(),
            f.active.into(),
            f.email.clone().into(),
            f.resource.clone().into(),
            now.into(),
        ];
        if self.backend() == DbBackend::Postgres {
            // One statement, one round trip: the user and its event commit together.
            let text = format!(
                "WITH created AS ({insert} RETURNING id, connection_id) \
                 INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
                 SELECT connection_id, 'user', id, 1, 'created', $10 FROM created"
            );
            self.db
                .connection()
                .execute(self.stmt(&text, values))
                .await
                .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
        } else {
            let txn = self.db.connection().begin().await.map_err(db_err)?;
            txn.execute(self.stmt(insert, values))
                .await
                .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
            append_event(&txn, conn, EntityKind::User, id, 1, ChangeOp::Created, now).await?;
            txn.commit().await.map_err(db_err)?;
        }
        Ok(UserRecord {
            id,
            connection_id: conn,
            fields: f.clone(),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    async fn find_user(&self, conn: ConnectionId, id: ResourceId) -> Result<Option<UserRecord>> {
        let row = UserRow::find_by_statement(self.stmt(
            &format!(
                "SELECT {USER_COLUMNS} FROM directory_users WHERE connection_id = $1 AND id = $2"
            ),
            vec![conn.0.into(), id.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| r.into_record(conn)))
    }

    async fn replace_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        f: &UserFields,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<UserRecord> {
        let mut sql = Sql::default();
        let mut text = format!(
            "UPDATE directory_users SET user_name = {}, user_name_lower = {}, external_id = {}, display_name = {}, \
             active = {}, email = {}, resource = {}, version = version + 1, updated_at = {} \
             WHERE connection_id = {} AND id = {}",
            sql.bind(f.user_name.clone()),
            sql.bind(f.user_name.to_lowercase()),
            sql.bind(f.external_id.clone()),
            sql.bind(f.display_name.clone()),
            sql.bind(f.active),
            sql.bind(f.email.clone()),
            sql.bind(f.resource.clone()),
            sql.bind(now),
            sql.bind(conn.0),
            sql.bind(id),
        );
        if let Some(v) = expected_version {
            text.push_str(&format!(" AND version = {}", sql.bind(v)));
        }
        text.push_str(&format!(" RETURNING {USER_COLUMNS}"));
        if self.backend() == DbBackend::Postgres {
            // The update and its event in one statement (one round trip, one commit).
            let now_param = sql.bind(now);
            let text = format!(
                "WITH updated AS ({text}), \
                 logged AS (INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
                 SELECT {conn_param}, 'user', id, version, 'updated', {now_param} FROM updated) \
                 SELECT {USER_COLUMNS} FROM updated",
                conn_param = sql.bind(conn.0),
            );
            let row = UserRow::find_by_statement(self.stmt(&text, sql.values))
                .one(self.db.connection())
                .await
                .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
            return match row {
                Some(row) => Ok(row.into_record(conn)),
                None => {
                    let txn = self.db.connection().begin().await.map_err(db_err)?;
                    Err(self
                        .missing_or_stale(&txn, "directory_users", conn, id)
                        .await)
                }
            };
        }
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        let row = UserRow::find_by_statement(self.stmt(&text, sql.values))
            .one(&txn)
            .await
            .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
        let Some(row) = row else {
            return Err(self
                .missing_or_stale(&txn, "directory_users", conn, id)
                .await);
        };
        let record = row.into_record(conn);
        append_event(
            &txn,
            conn,
            EntityKind::User,
            id,
            record.version,
            ChangeOp::Updated,
            now,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn delete_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        // Its externalId outlives it for a while: an IdP that deletes and
        // re-creates a person gets the same member back (relink).
        txn.execute(self.stmt(
            "INSERT INTO directory_user_tombstones (connection_id, user_id, external_id, deleted_at) \
             SELECT connection_id, id, external_id, $3 FROM directory_users \
             WHERE connection_id = $1 AND id = $2 AND external_id IS NOT NULL \
             ON CONFLICT (connection_id, user_id) DO UPDATE SET external_id = excluded.external_id, \
             deleted_at = excluded.deleted_at",
            vec![conn.0.into(), id.into(), now.into()],
        ))
        .await
        .map_err(db_err)?;
        let deleted_version = self
            .delete_versioned(&txn, "directory_users", conn, id, expected_version)
            .await?;
        // The user leaves every group it was in: set-based, whatever the number of groups.
        let member = id.to_string();
        txn.execute(self.stmt(
            "UPDATE directory_groups SET member_count = member_count - 1, version = version + 1, updated_at = $3 \
             WHERE connection_id = $1 AND id IN \
             (SELECT group_id FROM directory_group_members WHERE connection_id = $1 AND member_value = $2)",
            vec![conn.0.into(), member.clone().into(), now.into()],
        ))
        .await
        .map_err(db_err)?;
        txn.execute(self.stmt(
            "DELETE FROM directory_group_members WHERE connection_id = $1 AND member_value = $2",
            vec![conn.0.into(), member.into()],
        ))
        .await
        .map_err(db_err)?;
        append_event(
            &txn,
            conn,
            EntityKind::User,
            id,
            deleted_version + 1,
            ChangeOp::Deleted,
            now,
        )
        .await?;
        txn.commit().await.map_err(db_err)
    }

    async fn list_users(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<UserRecord>> {
        let (total, rows) = self
            .list::<UserRow>(conn, query, ResourceKind::User)
            .await?;
        Ok(Listed {
            total,
            items: rows.into_iter().map(|r| r.into_record(conn)).collect(),
        })
    }

    async fn groups_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId, String)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(FromQueryResult)]
        struct Row {
            member_value: String,
            id: Uuid,
            display_name: String,
        }
        let mut out = Vec::new();
        for chunk in users.chunks(INSERT_BATCH) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = chunk.iter().map(|u| sql.bind(u.to_string())).collect();
            let rows = Row::find_by_statement(self.stmt(
                &format!(
                    "SELECT m.member_value, g.id, g.display_name FROM directory_group_members m \
                     JOIN directory_groups g ON g.id = m.group_id \
                     WHERE m.connection_id = {conn_param} AND m.member_value IN ({}) ORDER BY g.display_name_lower, g.id",
                    list.join(", ")
                ),
                sql.values,
            ))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
            out.extend(rows.into_iter().filter_map(|r| {
                Uuid::parse_str(&r.member_value)
                    .ok()
                    .map(|user| (user, r.id, r.display_name))
            }));
        }
        Ok(out)
    }

    async fn create_group(
        &self,
        conn: ConnectionId,
        f: &GroupFields,
        members: &[MemberRef],
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        let id = Uuid::now_v7();
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.stmt(
            "INSERT INTO directory_groups (id, connection_id, display_name, display_name_lower, external_id, resource, \
             member_count, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 1, $7, $7)",
            vec![
                id.into(),
                conn.0.into(),
                f.display_name.clone().into(),
                f.display_name.to_lowercase().into(),
                f.external_id.clone().into(),
                f.resource.clone().into(),
                now.into(),
            ],
        ))
        .await
        .map_err(|e| sql_err(e, "a group with this id already exists"))?;
        let added = insert_members(&txn, conn, id, members).await?;
        txn.execute(self.stmt(
            "UPDATE directory_groups SET member_count = $1 WHERE id = $2",
            vec![added.into(), id.into()],
        ))
        .await
        .map_err(db_err)?;
        append_event(&txn, conn, EntityKind::Group, id, 1, ChangeOp::Created, now).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(GroupRecord {
            id,
            connection_id: conn,
            fields: f.clone(),
            member_count: added,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    async fn find_group(&self, conn: ConnectionId, id: ResourceId) -> Result<Option<GroupRecord>> {
        let row = GroupRow::find_by_statement(self.stmt(
            &format!(
                "SELECT {GROUP_COLUMNS} FROM directory_groups WHERE connection_id = $1 AND id = $2"
            ),
            vec![conn.0.into(), id.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| r.into_record(conn)))
    }

    async fn replace_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        fields: &GroupFields,
        members: Option<&[MemberRef]>,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        self.touch_group(&txn, conn, id, Some(fields), expected_version, now)
            .await?;
        if let Some(members) = members {
            clear_members(&txn, id).await?;
            insert_members(&txn, conn, id, members).await?;
            self.set_member_count(&txn, id).await?;
        }
        let record = self.fetch_group(&txn, conn, id).await?;
        append_event(
            &txn,
            conn,
            EntityKind::Group,
            id,
            record.version,
            ChangeOp::Updated,
            now,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn patch_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        fields: Option<&GroupFields>,
        changes: &[MemberChange],
        known: &[MemberRef],
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<GroupRecord> {
        // By value in a map: a PATCH may name tens of thousands of members.
        let known: std::collections::HashMap<&str, &MemberRef> =
            known.iter().map(|m| (m.value.as_str(), m)).collect();
        let details = |value: &String| {
            known
                .get(value.as_str())
                .map(|m| (*m).clone())
                .unwrap_or_else(|| MemberRef::value(value.clone()))
        };
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        let op = if changes.is_empty() {
            ChangeOp::Updated
        } else {
            ChangeOp::MembersChanged
        };
        let rewrites_list = changes
            .iter()
            .any(|c| matches!(c, MemberChange::RemoveAll | MemberChange::ReplaceAll(_)));
        if !rewrites_list {
            // Adds and removes touch only the member rows they name, so they run
            // before the group row is locked; the lock is then held for one
            // statement and the commit. The version check still decides: on a
            // mismatch the whole transaction rolls back.
            let mut delta: i64 = 0;
            for change in changes {
                match change {
                    MemberChange::Add(values) => {
                        let refs: Vec<MemberRef> = values.iter().map(details).collect();
                        delta += insert_members(&txn, conn, id, &refs).await?;
                    }
                    MemberChange::Remove(values) => {
                        delta -= remove_members(&txn, id, values).await?;
                    }
                    MemberChange::RemoveAll | MemberChange::ReplaceAll(_) => {}
                }
            }
            let record = self
                .finish_group_update(&txn, conn, id, fields, expected_version, delta, op, now)
                .await?;
            txn.commit().await.map_err(db_err)?;
            return Ok(record);
        }
        // Rewriting the whole list: lock the group first so that the recount
        // cannot race another writer's adds.
        self.touch_group(&txn, conn, id, fields, expected_version, now)
            .await?;
        for change in changes {
            match change {
                MemberChange::Add(values) => {
                    let refs: Vec<MemberRef> = values.iter().map(details).collect();
                    insert_members(&txn, conn, id, &refs).await?;
                }
                MemberChange::Remove(values) => {
                    remove_members(&txn, id, values).await?;
                }
                MemberChange::RemoveAll => clear_members(&txn, id).await?,
                MemberChange::ReplaceAll(values) => {
                    clear_members(&txn, id).await?;
                    let refs: Vec<MemberRef> = values.iter().map(details).collect();
                    insert_members(&txn, conn, id, &refs).await?;
                }
            }
        }
        self.set_member_count(&txn, id).await?;
        let record = self.fetch_group(&txn, conn, id).await?;
        append_event(&txn, conn, EntityKind::Group, id, record.version, op, now).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(record)
    }

    async fn delete_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        expected_version: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        // Member rows go with the group (ON DELETE CASCADE): one statement, whatever the size.
        let deleted_version = self
            .delete_versioned(&txn, "directory_groups", conn, id, expected_version)
            .await?;
        append_event(
            &txn,
            conn,
            EntityKind::Group,
            id,
            deleted_version + 1,
            ChangeOp::Deleted,
            now,
        )
        .await?;
        txn.commit().await.map_err(db_err)
    }

    async fn members(
        &self,
        conn: ConnectionId,
        group: ResourceId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<MemberRef>> {
        #[derive(FromQueryResult)]
        struct Row {
            member_value: String,
            member_type: Option<String>,
            member_display: Option<String>,
        }
        let rows = Row::find_by_statement(self.stmt(
            "SELECT member_value, member_type, member_display FROM directory_group_members \
             WHERE connection_id = $1 AND group_id = $2 AND member_value > $3 ORDER BY member_value LIMIT $4",
            vec![
                conn.0.into(),
                group.into(),
                after.unwrap_or("").to_owned().into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| MemberRef {
                value: r.member_value,
                kind: r.member_type,
                display: r.member_display,
            })
            .collect())
    }

    async fn list_groups(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<GroupRecord>> {
        let (total, rows) = self
            .list::<GroupRow>(conn, query, ResourceKind::Group)
            .await?;
        Ok(Listed {
            total,
            items: rows.into_iter().map(|r| r.into_record(conn)).collect(),
        })
    }
}
