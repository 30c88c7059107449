//! The change log. Every write appends its event in its own transaction (on
//! PostgreSQL, often in its own statement); numbering happens later, in
//! [`sequence_events`], so that writers never queue on a per-connection
//! counter. Reading the numbered log lives here too, next to what it reads.

use orgsync_domain::directory::{ChangeEvent, ChangeOp, ConnectionId, EntityKind};
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, FromQueryResult, Statement,
    TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::INSERT_BATCH;
use super::SqlDirectoryRepository;
use crate::db::{db_err, find_replanned, plan_afresh, query_replanned};
use crate::filter_sql::Sql;

/// Appends a change event in the writer's transaction; returns its row id
/// (for [`record_changed_members`]). Its per-connection sequence number is
/// assigned later by [`sequence_events`]: numbering at write time would lock
/// the connection row until commit and serialise every write of a directory
/// behind one disk flush.
pub(super) async fn append_event(
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    entity: EntityKind,
    entity_id: Uuid,
    version: i64,
    op: ChangeOp,
    now: OffsetDateTime,
) -> Result<i64> {
    let row = txn
        .query_one(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            [
                conn.0.into(),
                entity.as_str().into(),
                entity_id.into(),
                version.into(),
                op.as_str().into(),
                now.into(),
            ],
        ))
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("an event insert returned no id")))?;
    row.try_get::<i64>("", "id").map_err(db_err)
}

/// What a group change does to one member value it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    Added,
    Removed,
}

impl Membership {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
        }
    }
}

/// Records member values a group event changed (or may have: recording one
/// that did not change only costs sync a no-op re-plan of that user), with
/// what it did to each. A value named both ways by one event (a rewrite
/// that keeps a member) is recorded as `kept`.
pub(super) async fn record_changed_members<'a>(
    txn: &DatabaseTransaction,
    event: i64,
    values: impl Iterator<Item = (&'a str, Membership)>,
) -> Result<()> {
    let values: Vec<(&str, Membership)> = values.collect();
    for chunk in values.chunks(INSERT_BATCH) {
        let mut sql = Sql::default();
        let event = sql.bind(event);
        let rows: Vec<String> = chunk
            .iter()
            .map(|(v, change)| {
                format!(
                    "({event}, {}, '{}')",
                    sql.bind((*v).to_owned()),
                    change.as_str()
                )
            })
            .collect();
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "INSERT INTO directory_event_members (event_id, member_value, change) VALUES {} \
                 ON CONFLICT (event_id, member_value) DO UPDATE SET change = CASE \
                 WHEN directory_event_members.change = excluded.change THEN excluded.change ELSE 'kept' END",
                rows.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Records every current member of `group` as removed by `event` (before a
/// rewrite or a deletion takes them away; a rewrite that keeps one records
/// it again as added, which makes it `kept`), in one statement.
pub(super) async fn record_group_members(
    txn: &DatabaseTransaction,
    event: i64,
    group: Uuid,
) -> Result<()> {
    txn.execute(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO directory_event_members (event_id, member_value, change) \
         SELECT $1, member_value, 'removed' FROM directory_group_members WHERE group_id = $2 \
         ON CONFLICT DO NOTHING",
        [event.into(), group.into()],
    ))
    .await
    .map_err(db_err)?;
    Ok(())
}

/// `update` (an `UPDATE <table> ... RETURNING *`) with its event logged in
/// the same statement, for PostgreSQL: one round trip and one commit instead
/// of a transaction around two statements. `select` is read from the updated
/// row under the table's own name, so it may hold the same correlated
/// sub-queries as a read of the table.
pub(super) fn update_with_event(
    update: &str,
    table: &str,
    select: &str,
    entity: EntityKind,
    op: ChangeOp,
    conn_param: &str,
    now_param: &str,
) -> String {
    format!(
        "WITH updated AS ({update}), \
         logged AS (INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
         SELECT {conn_param}, '{}', id, version, '{}', {now_param} FROM updated) \
         SELECT {select} FROM updated AS {table}",
        entity.as_str(),
        op.as_str()
    )
}

/// Numbers the connection's committed, unnumbered events in insertion order,
/// continuing its sequence. Only this step takes the connection's row lock,
/// once per batch; an event committed late simply gets a later number, and
/// entity versions keep per-entity order regardless.
pub async fn sequence_events(db: &DatabaseConnection, conn: ConnectionId) -> Result<()> {
    let backend = db.get_database_backend();
    let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [conn.0.into()]);
    // A caught-up reader (the common case) has nothing to number: no lock, no
    // write, and no commit to wait for. An event committed before this read
    // is seen by it; one committed after is numbered by the next call.
    let unnumbered = query_replanned(
        db,
        "SELECT 1 AS unnumbered FROM directory_events WHERE connection_id = $1 AND seq IS NULL LIMIT 1",
        vec![conn.0.into()],
    )
    .await
    .map_err(db_err)?;
    if unnumbered.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await.map_err(db_err)?;
    plan_afresh(&txn).await?;
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

impl SqlDirectoryRepository {
    /// Numbers what is committed, then reads events by `position` (a
    /// condition on `$2` and an order).
    pub(super) async fn read_events(
        &self,
        conn: ConnectionId,
        position: &str,
        bound: i64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>> {
        sequence_events(self.db.connection(), conn).await?;
        #[derive(FromQueryResult)]
        struct Row {
            seq: Option<i64>,
            entity_kind: String,
            entity_id: Uuid,
            entity_version: i64,
            op: String,
            occurred_at: OffsetDateTime,
        }
        let rows: Vec<Row> = find_replanned(
            self.db.connection(),
            &format!(
                "SELECT seq, entity_kind, entity_id, entity_version, op, occurred_at FROM directory_events \
                 WHERE connection_id = $1 AND seq IS NOT NULL AND {position} LIMIT $3"
            ),
            vec![conn.0.into(), bound.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
        )
        .await?;
        rows.into_iter()
            .map(|r| {
                let entity = match r.entity_kind.as_str() {
                    "user" => EntityKind::User,
                    "group" => EntityKind::Group,
                    other => {
                        return Err(Error::Internal(anyhow::anyhow!(
                            "unknown entity kind {other}"
                        )))
                    }
                };
                let op = match r.op.as_str() {
                    "created" => ChangeOp::Created,
                    "updated" => ChangeOp::Updated,
                    "deleted" => ChangeOp::Deleted,
                    "members_changed" => ChangeOp::MembersChanged,
                    other => {
                        return Err(Error::Internal(anyhow::anyhow!(
                            "unknown change op {other}"
                        )))
                    }
                };
                Ok(ChangeEvent {
                    connection_id: conn,
                    seq: r.seq.unwrap_or_default(),
                    entity,
                    entity_id: r.entity_id,
                    entity_version: r.entity_version,
                    op,
                    occurred_at: r.occurred_at,
                })
            })
            .collect()
    }
}
