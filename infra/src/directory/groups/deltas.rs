//! A group's pending deltas: recorded by member PATCHes instead of writing
//! the group's row, folded into the row by writers that need it exact
//! ([`lock_and_fold`]) and in the background ([`fold_deltas`]).

use orgsync_domain::directory::{ConnectionId, GroupRecord};
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::db_err;
use crate::directory::members;
use crate::directory::sql::GroupRow;
use crate::directory::SqlDirectoryRepository;
use crate::filter_sql::Sql;

/// Locks the group's row (`FOR UPDATE` on PostgreSQL; SQLite has one writer
/// at a time anyway) and folds its pending deltas into it; returns the group.
pub(in crate::directory) async fn lock_and_fold(
    repo: &SqlDirectoryRepository,
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
) -> Result<GroupRecord> {
    let lock = match repo.backend() {
        DbBackend::Postgres => " FOR UPDATE",
        _ => "",
    };
    let locked = txn
        .query_one(repo.db.stmt(
            &format!("SELECT id FROM directory_groups WHERE connection_id = $1 AND id = $2{lock}"),
            vec![conn.0.into(), id.into()],
        ))
        .await
        .map_err(db_err)?;
    if locked.is_none() {
        return Err(Error::NotFound { entity: "group" });
    }
    // No delta of this group can be added while the row is locked, so two
    // statements see the same deltas.
    txn.execute(repo.db.stmt(
        "UPDATE directory_groups SET \
           member_count = member_count + COALESCE((SELECT SUM(member_delta) FROM directory_group_deltas WHERE group_id = $1), 0), \
           version = version + (SELECT COUNT(*) FROM directory_group_deltas WHERE group_id = $1), \
           updated_at = COALESCE((SELECT MAX(changed_at) FROM directory_group_deltas \
             WHERE group_id = $1 AND changed_at > directory_groups.updated_at), updated_at) \
         WHERE id = $1",
        vec![id.into()],
    ))
    .await
    .map_err(db_err)?;
    txn.execute(repo.db.stmt(
        "DELETE FROM directory_group_deltas WHERE group_id = $1",
        vec![id.into()],
    ))
    .await
    .map_err(db_err)?;
    repo.find::<GroupRow>(txn, conn, id)
        .await?
        .ok_or(Error::NotFound { entity: "group" })
}

/// Takes the group's key-share lock (PostgreSQL; SQLite has one writer),
/// as the delta's foreign key would, but before the member rows: a writer
/// holding the row locked is waited for before this transaction holds
/// anything that writer needs, so the two queue instead of deadlocking.
/// `NotFound` when the group is not the connection's.
pub(super) async fn share_lock(
    repo: &SqlDirectoryRepository,
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
) -> Result<()> {
    if repo.backend() != DbBackend::Postgres {
        return Ok(());
    }
    let locked = txn
        .query_one(repo.db.stmt(
            "SELECT id FROM directory_groups WHERE connection_id = $1 AND id = $2 FOR KEY SHARE",
            vec![conn.0.into(), id.into()],
        ))
        .await
        .map_err(db_err)?;
    locked
        .map(|_| ())
        .ok_or(Error::NotFound { entity: "group" })
}

/// One version step and a net member change of a group, without writing its row.
pub(super) async fn record_delta(
    repo: &SqlDirectoryRepository,
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
    member_delta: i64,
    now: OffsetDateTime,
) -> Result<()> {
    txn.execute(repo.db.stmt(
        "INSERT INTO directory_group_deltas (group_id, connection_id, member_delta, changed_at) \
         VALUES ($1, $2, $3, $4)",
        vec![id.into(), conn.0.into(), member_delta.into(), now.into()],
    ))
    .await
    .map_err(members::group_gone)?;
    Ok(())
}

/// Folds a connection's pending deltas into their groups' rows, keeping the
/// deltas a reader sums few. Rows are locked before their deltas, in id
/// order, as [`lock_and_fold`] does, so the two never deadlock; the
/// no-key-update lock does not block member PATCHes (they take key-share).
pub(in crate::directory) async fn fold_deltas(
    db: &DatabaseConnection,
    conn: ConnectionId,
) -> Result<()> {
    /// Groups folded per call; the directory-changed job calls again after the next change.
    const FOLD_BATCH: usize = 1000;
    let backend = db.get_database_backend();
    // Most calls (one per directory change, per connection) find nothing to
    // fold: one indexed read, and no transaction to open and commit.
    let pending = db
        .query_one(Statement::from_sql_and_values(
            backend,
            "SELECT 1 AS pending FROM directory_group_deltas WHERE connection_id = $1 LIMIT 1",
            [conn.0.into()],
        ))
        .await
        .map_err(db_err)?;
    if pending.is_none() {
        return Ok(());
    }
    let txn = db.begin().await.map_err(db_err)?;
    let lock = match backend {
        DbBackend::Postgres => " FOR NO KEY UPDATE",
        _ => "",
    };
    let pending = txn
        .query_all(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id FROM directory_groups WHERE connection_id = $1 AND id IN \
                 (SELECT group_id FROM directory_group_deltas WHERE connection_id = $1) \
                 ORDER BY id LIMIT {FOLD_BATCH}{lock}"
            ),
            [conn.0.into()],
        ))
        .await
        .map_err(db_err)?;
    if pending.is_empty() {
        return txn.commit().await.map_err(db_err);
    }
    let mut sql = Sql::default();
    let ids = pending
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id").map(|id| sql.bind(id)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?
        .join(", ");
    let statements = match backend {
        // One statement, one snapshot: the deltas deleted are the deltas added,
        // while new ones keep arriving beside them.
        DbBackend::Postgres => vec![format!(
            "WITH folded AS (DELETE FROM directory_group_deltas WHERE group_id IN ({ids}) \
               RETURNING group_id, member_delta, changed_at), \
             sums AS (SELECT group_id, COUNT(*) AS steps, SUM(member_delta) AS members, \
               MAX(changed_at) AS last_at FROM folded GROUP BY group_id) \
             UPDATE directory_groups g SET version = g.version + s.steps, \
               member_count = g.member_count + s.members, \
               updated_at = GREATEST(g.updated_at, s.last_at) \
             FROM sums s WHERE g.id = s.group_id"
        )],
        // SQLite has one writer at a time: nothing can slip in between.
        _ => vec![
            format!(
                "UPDATE directory_groups SET \
                   member_count = member_count + COALESCE((SELECT SUM(member_delta) FROM directory_group_deltas d WHERE d.group_id = directory_groups.id), 0), \
                   version = version + (SELECT COUNT(*) FROM directory_group_deltas d WHERE d.group_id = directory_groups.id), \
                   updated_at = COALESCE((SELECT MAX(changed_at) FROM directory_group_deltas d \
                     WHERE d.group_id = directory_groups.id AND d.changed_at > directory_groups.updated_at), updated_at) \
                 WHERE id IN ({ids})"
            ),
            format!("DELETE FROM directory_group_deltas WHERE group_id IN ({ids})"),
        ],
    };
    for text in statements {
        txn.execute(Statement::from_sql_and_values(
            backend,
            text,
            sql.values.clone(),
        ))
        .await
        .map_err(db_err)?;
    }
    txn.commit().await.map_err(db_err)
}
