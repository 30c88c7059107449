//! What users and groups share in storage: their row types and the
//! statements that differ between the two kinds only by table and columns
//! (look-up by id, SCIM list, versioned delete, "gone or changed?"). Written
//! once over [`StoredRow`] so that a fix to one kind cannot miss the other.

use orgsync_domain::directory::{
    ConnectionId, GroupFields, GroupRecord, ResourceId, ScimQuery, SortKey, UserFields, UserRecord,
};
use orgsync_domain::ports::Listed;
use orgsync_domain::scim::ResourceKind;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, QueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SqlDirectoryRepository;
use crate::db::db_err;
use crate::filter_sql::{condition, Sql};

/// Rows per multi-row INSERT: well under both engines' bound-parameter limits.
pub(super) const INSERT_BATCH: usize = 500;

/// A row of the users or groups table, read whole, and the record it becomes.
pub(super) trait StoredRow: FromQueryResult + Send {
    type Record;
    const KIND: ResourceKind;
    const TABLE: &'static str;
    /// What reads select from, under the table's name (filters refer to it):
    /// for groups, the row with its pending member deltas.
    const SOURCE: &'static str;
    const COLUMNS: &'static str;
    /// What `NotFound` names.
    const ENTITY: &'static str;

    fn into_record(self, conn: ConnectionId) -> Self::Record;
}

#[derive(FromQueryResult)]
pub(super) struct UserRow {
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

pub(super) const USER_COLUMNS: &str =
    "id, user_name, external_id, display_name, active, email, resource, version, created_at, updated_at";

impl StoredRow for UserRow {
    type Record = UserRecord;
    const KIND: ResourceKind = ResourceKind::User;
    const TABLE: &'static str = "directory_users";
    const SOURCE: &'static str = "directory_users";
    const COLUMNS: &'static str = USER_COLUMNS;
    const ENTITY: &'static str = "user";

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
pub(super) struct GroupRow {
    id: Uuid,
    display_name: String,
    external_id: Option<String>,
    resource: serde_json::Value,
    member_count: i64,
    version: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

pub(super) const GROUP_COLUMNS: &str =
    "id, display_name, external_id, resource, member_count, version, created_at, updated_at";

impl StoredRow for GroupRow {
    type Record = GroupRecord;
    const KIND: ResourceKind = ResourceKind::Group;
    const TABLE: &'static str = "directory_groups";
    const SOURCE: &'static str = "directory_groups_current AS directory_groups";
    const COLUMNS: &'static str = GROUP_COLUMNS;
    const ENTITY: &'static str = "group";

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

pub(super) fn version_mismatch() -> Error {
    Error::PreconditionFailed("the resource has changed since that version".into())
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

/// The attached expression as an extra column of a read.
pub(super) fn attached_column(attached: Option<&str>) -> String {
    attached.map_or_else(String::new, |expr| format!(", ({expr}) AS attached"))
}

pub(super) fn with_attached<R: StoredRow>(
    row: &QueryResult,
    conn: ConnectionId,
    attached: Option<&str>,
) -> Result<(R::Record, Option<String>)> {
    let record = R::from_query_result(row, "").map_err(db_err)?;
    Ok((record.into_record(conn), attached_text(row, attached)?))
}

/// The text of the `attached` column [`attached_column`] added, if it did.
pub(super) fn attached_text(row: &QueryResult, attached: Option<&str>) -> Result<Option<String>> {
    match attached {
        Some(_) => row.try_get("", "attached").map_err(db_err),
        None => Ok(None),
    }
}

impl SqlDirectoryRepository {
    /// One user or group by id, read through `db` (the pool or a transaction).
    pub(super) async fn find<R: StoredRow>(
        &self,
        db: &impl ConnectionTrait,
        conn: ConnectionId,
        id: ResourceId,
    ) -> Result<Option<R::Record>> {
        Ok(self
            .find_attached::<R>(db, conn, id, None)
            .await?
            .map(|(record, _)| record))
    }

    /// As [`Self::find`], with the text of `attached`, an expression over the
    /// row (a correlated sub-query, say), computed in the same statement.
    pub(super) async fn find_attached<R: StoredRow>(
        &self,
        db: &impl ConnectionTrait,
        conn: ConnectionId,
        id: ResourceId,
        attached: Option<&str>,
    ) -> Result<Option<(R::Record, Option<String>)>> {
        let row = db
            .query_one(self.db.stmt(
                &format!(
                    "SELECT {}{} FROM {} WHERE connection_id = $1 AND id = $2",
                    R::COLUMNS,
                    attached_column(attached),
                    R::SOURCE
                ),
                vec![conn.0.into(), id.into()],
            ))
            .await
            .map_err(db_err)?;
        row.map(|row| with_attached::<R>(&row, conn, attached))
            .transpose()
    }

    /// One page of a SCIM list (filter, sort, window) and the total number of matches.
    pub(super) async fn list<R: StoredRow>(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<R::Record>> {
        let listed = self.list_attached::<R>(conn, query, None).await?;
        Ok(Listed {
            total: listed.total,
            items: listed.items.into_iter().map(|(record, _)| record).collect(),
        })
    }

    /// As [`Self::list`], with `attached` computed for each row of the page
    /// (see [`Self::find_attached`]).
    pub(super) async fn list_attached<R: StoredRow>(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
        attached: Option<&str>,
    ) -> Result<Listed<(R::Record, Option<String>)>> {
        let (table, source, columns, kind) = (R::TABLE, R::SOURCE, R::COLUMNS, R::KIND);
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
            Count::find_by_statement(self.db.stmt(
                &format!("SELECT COUNT(*) AS total FROM {source} WHERE {filter}"),
                values,
            ))
            .one(self.db.connection())
        };
        if query.count == 0 {
            let total = count_only(sql.values).await.map_err(db_err)?;
            return Ok(Listed {
                total: total.map_or(0, |c| u64::try_from(c.total).unwrap_or(0)),
                items: Vec::new(),
            });
        }
        let count_values = sql.values.clone();
        // The window is written into the statement, not bound: with `LIMIT $n`
        // PostgreSQL cannot cost a generic plan and plans the statement again
        // on every execution, which cost five times the execution itself on
        // a filtered GET. Both are integers, so nothing can be injected.
        let limit = i64::try_from(query.count).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.start_index.saturating_sub(1)).unwrap_or(i64::MAX);
        // The page and the total in one round trip.
        let rows = self
            .db
            .connection()
            .query_all(self.db.stmt(
                &format!(
                    "SELECT {columns}{}, COUNT(*) OVER () AS total_count FROM {source} WHERE {filter} \
                     ORDER BY {} LIMIT {limit} OFFSET {offset}",
                    attached_column(attached),
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
        let items = rows
            .iter()
            .map(|row| with_attached::<R>(row, conn, attached))
            .collect::<Result<Vec<_>>>()?;
        Ok(Listed {
            total: u64::try_from(total).unwrap_or(0),
            items,
        })
    }

    /// Deletes one row under the version check and returns the version it had.
    pub(super) async fn delete_versioned<R: StoredRow>(
        &self,
        txn: &DatabaseTransaction,
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
            "DELETE FROM {} WHERE connection_id = {} AND id = {}",
            R::TABLE,
            sql.bind(conn.0),
            sql.bind(id)
        );
        if let Some(v) = expected_version {
            text.push_str(&format!(" AND version = {}", sql.bind(v)));
        }
        text.push_str(" RETURNING version");
        match Version::find_by_statement(self.db.stmt(&text, sql.values))
            .one(txn)
            .await
            .map_err(db_err)?
        {
            Some(deleted) => Ok(deleted.version),
            None => Err(self.missing_or_stale::<R>(txn, conn, id).await),
        }
    }

    /// Why a versioned write matched no row: the row is gone (`NotFound`) or
    /// its version moved on (`PreconditionFailed`).
    pub(super) async fn missing_or_stale<R: StoredRow>(
        &self,
        txn: &DatabaseTransaction,
        conn: ConnectionId,
        id: Uuid,
    ) -> Error {
        let exists = txn
            .query_one(self.db.stmt(
                &format!(
                    "SELECT 1 AS one FROM {} WHERE connection_id = $1 AND id = $2",
                    R::TABLE
                ),
                vec![conn.0.into(), id.into()],
            ))
            .await;
        match exists {
            Ok(Some(_)) => version_mismatch(),
            Ok(None) => Error::NotFound { entity: R::ENTITY },
            Err(e) => db_err(e),
        }
    }
}
