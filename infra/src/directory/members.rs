//! Group members as rows. A group may hold tens of thousands of members, so
//! they are added, removed and cleared with set-based statements in batches
//! and never rewritten as a list; `member_count` is kept by delta or recount.

use futures::{StreamExt, TryStreamExt};
use orgsync_domain::directory::{ConnectionId, MemberRef, ResourceId};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use super::sql::INSERT_BATCH;
use super::SqlDirectoryRepository;
use crate::db::db_err;
use crate::filter_sql::Sql;

/// A write that names a group which does not exist (its foreign key fails).
pub(super) fn group_gone(e: sea_orm::DbErr) -> Error {
    match e.sql_err() {
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
            Error::NotFound { entity: "group" }
        }
        _ => db_err(e),
    }
}

/// Applies member changes one after the other; returns the net change in
/// members. Rewrites (`RemoveAll`, `ReplaceAll`) count as 0: their caller
/// recounts.
pub(super) async fn apply(
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    group: Uuid,
    changes: &[orgsync_domain::scim::MemberChange],
    details: &(dyn Fn(&[String]) -> Vec<MemberRef> + Sync),
) -> Result<i64> {
    use orgsync_domain::scim::MemberChange;
    let mut delta = 0;
    for change in changes {
        match change {
            MemberChange::Add(values) => {
                delta += insert(txn, conn, group, &details(values)).await?
            }
            MemberChange::Remove(values) => delta -= remove(txn, group, values).await?,
            MemberChange::RemoveAll => clear(txn, group).await?,
            MemberChange::ReplaceAll(values) => {
                clear(txn, group).await?;
                insert(txn, conn, group, &details(values)).await?;
            }
        }
    }
    Ok(delta)
}

/// Members in the order every writer inserts them: two transactions adding
/// overlapping members to one group wait on each other's uncommitted rows
/// (the unique index) and would deadlock if they took them in different orders.
pub(super) fn in_lock_order(members: &[MemberRef]) -> Vec<&MemberRef> {
    let mut ordered: Vec<&MemberRef> = members.iter().collect();
    ordered.sort_unstable_by(|a, b| a.value.cmp(&b.value));
    ordered
}

/// Inserts members (ignoring ones already there); returns how many were new.
pub(super) async fn insert(
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    group: Uuid,
    members: &[MemberRef],
) -> Result<i64> {
    let backend = txn.get_database_backend();
    let mut added = 0;
    for chunk in in_lock_order(members).chunks(INSERT_BATCH) {
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
            .map_err(group_gone)?;
        added += i64::try_from(result.rows_affected()).unwrap_or(0);
    }
    Ok(added)
}

/// Removes the members with these values; returns how many there were.
pub(super) async fn remove(
    txn: &DatabaseTransaction,
    group: Uuid,
    values: &[String],
) -> Result<i64> {
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

pub(super) async fn clear(txn: &DatabaseTransaction, group: Uuid) -> Result<()> {
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "DELETE FROM directory_group_members WHERE group_id = $1",
        [group.into()],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Sets `member_count` from the rows, after changes whose effect on the
/// count is not known (a list rewritten, adds mixed with a clear).
pub(super) async fn recount(txn: &DatabaseTransaction, group: Uuid) -> Result<()> {
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE directory_groups SET member_count = \
         (SELECT COUNT(*) FROM directory_group_members WHERE group_id = $1) WHERE id = $1",
        [group.into()],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Members of a group in value order, strictly after `after`, at most `limit`.
pub(super) async fn page(
    repo: &SqlDirectoryRepository,
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
    let rows = Row::find_by_statement(repo.db.stmt(
        "SELECT member_value, member_type, member_display FROM directory_group_members \
         WHERE connection_id = $1 AND group_id = $2 AND member_value > $3 ORDER BY member_value LIMIT $4",
        vec![
            conn.0.into(),
            group.into(),
            after.unwrap_or("").to_owned().into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    ))
    .all(repo.db.connection())
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

/// Group look-ups of one call in flight at once (each holds a pooled connection).
const LOOKUPS_AT_ONCE: usize = 4;

/// The groups each of `users` is a direct member of: `(user, group id, group
/// displayName)`, each user's groups by name. Memberships and names are read
/// apart: joined, PostgreSQL hashes every group of the directory for each
/// lookup (10,000 groups: 85% of a lookup's time), where reading the names
/// of the groups found is a few index probes.
pub(super) async fn groups_of(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    users: &[ResourceId],
) -> Result<Vec<(ResourceId, ResourceId, String)>> {
    let db = repo.db.connection();
    let memberships = memberships_of(db, conn, users).await?;
    let mut groups: Vec<ResourceId> = memberships.iter().map(|(_, group)| *group).collect();
    groups.sort_unstable();
    groups.dedup();
    let names: std::collections::HashMap<ResourceId, String> =
        group_names(db, conn, &groups).await?.into_iter().collect();
    let mut named: Vec<(ResourceId, ResourceId, String)> = memberships
        .into_iter()
        .filter_map(|(user, group)| names.get(&group).map(|name| (user, group, name.clone())))
        .collect();
    named.sort_by_cached_key(|(user, group, name)| (*user, name.to_lowercase(), *group));
    Ok(named)
}

/// The `(user, group)` pairs of `users`' direct memberships, in no order.
/// Served by the `(connection, member value)` index alone.
/// `db` is the pool, or an export's snapshot.
pub(crate) async fn memberships_of(
    db: &impl ConnectionTrait,
    conn: ConnectionId,
    users: &[ResourceId],
) -> Result<Vec<(ResourceId, ResourceId)>> {
    if db.get_database_backend() == DbBackend::Postgres {
        return memberships_of_all_at_once(db, conn, users).await;
    }
    // Collected first: a lazy map held across the awaits is not `Send`.
    let lookups: Vec<_> = users
        .chunks(INSERT_BATCH)
        .map(|chunk| memberships_of_chunk(db, conn, chunk))
        .collect();
    Ok(side_by_side(lookups)
        .await?
        .into_iter()
        .flatten()
        .filter_map(MembershipRow::of_user)
        .collect())
}

/// [`memberships_of`] in one statement, the ids passed as one text: no
/// bind-parameter limit to chunk for, and one round trip where a snapshot
/// (an export's page of 5,000 users) serves one statement at a time.
async fn memberships_of_all_at_once(
    db: &impl ConnectionTrait,
    conn: ConnectionId,
    users: &[ResourceId],
) -> Result<Vec<(ResourceId, ResourceId)>> {
    let ids = users
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rows = MembershipRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT member_value, group_id FROM directory_group_members \
         WHERE connection_id = $1 AND member_value = ANY (string_to_array($2, ','))",
        [conn.0.into(), ids.into()],
    ))
    .all(db)
    .await
    .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .filter_map(MembershipRow::of_user)
        .collect())
}

/// A `(member value, group)` row of `directory_group_members`.
#[derive(FromQueryResult)]
pub(super) struct MembershipRow {
    member_value: String,
    group_id: Uuid,
}

impl MembershipRow {
    /// `(user, group)`, or `None` for a member value that is not a user id
    /// (a nested group, or an IdP's reference to no one it sent).
    pub(super) fn of_user(self) -> Option<(Uuid, ResourceId)> {
        Uuid::parse_str(&self.member_value)
            .ok()
            .map(|user| (user, self.group_id))
    }
}

async fn memberships_of_chunk(
    db: &impl ConnectionTrait,
    conn: ConnectionId,
    users: &[ResourceId],
) -> Result<Vec<MembershipRow>> {
    let backend = db.get_database_backend();
    MembershipRow::find_by_statement(memberships_of_users(backend, conn, users, None))
        .all(db)
        .await
        .map_err(db_err)
}

/// The query for the [`MembershipRow`]s of `users` (by member value), only
/// those in `groups` when given.
pub(super) fn memberships_of_users(
    backend: DbBackend,
    conn: ConnectionId,
    users: &[ResourceId],
    groups: Option<&[ResourceId]>,
) -> Statement {
    let mut sql = Sql::default();
    let conn_param = sql.bind(conn.0);
    let list: Vec<String> = users.iter().map(|u| sql.bind(u.to_string())).collect();
    let in_groups = match groups {
        Some(groups) => {
            let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
            format!(" AND group_id IN ({})", list.join(", "))
        }
        None => String::new(),
    };
    Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT member_value, group_id FROM directory_group_members \
             WHERE connection_id = {conn_param} AND member_value IN ({}){in_groups}",
            list.join(", ")
        ),
        sql.values,
    )
}

/// The displayName of each of `groups` that is a group of the directory;
/// `db` is the pool, or an export's snapshot.
pub(crate) async fn group_names(
    db: &impl ConnectionTrait,
    conn: ConnectionId,
    groups: &[ResourceId],
) -> Result<Vec<(ResourceId, String)>> {
    let lookups: Vec<_> = groups
        .chunks(INSERT_BATCH)
        .map(|chunk| group_names_chunk(db, conn, chunk))
        .collect();
    Ok(side_by_side(lookups)
        .await?
        .into_iter()
        .flatten()
        .map(|r| (r.id, r.display_name))
        .collect())
}

#[derive(FromQueryResult)]
struct GroupNameRow {
    id: Uuid,
    display_name: String,
}

async fn group_names_chunk(
    db: &impl ConnectionTrait,
    conn: ConnectionId,
    groups: &[ResourceId],
) -> Result<Vec<GroupNameRow>> {
    let mut sql = Sql::default();
    let conn_param = sql.bind(conn.0);
    let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
    GroupNameRow::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "SELECT id, display_name FROM directory_groups \
             WHERE connection_id = {conn_param} AND id IN ({})",
            list.join(", ")
        ),
        sql.values,
    ))
    .all(db)
    .await
    .map_err(db_err)
}

/// Runs `lookups` (one per chunk of a call's ids) [`LOOKUPS_AT_ONCE`] at a
/// time: at a million users each is a wait on the database, and an export
/// asks for thousands of users per page.
async fn side_by_side<T>(
    lookups: Vec<impl std::future::Future<Output = Result<T>>>,
) -> Result<Vec<T>> {
    futures::stream::iter(lookups)
        .buffered(LOOKUPS_AT_ONCE)
        .try_collect()
        .await
}
