//! SCIM writes of groups. The group row carries the version and the member
//! count; how long it stays locked is what concurrent PATCHes of one group
//! queue on, so adds and removes run before it is touched, and only a
//! rewrite of the whole list locks it first.

use std::collections::HashMap;

use orgsync_domain::directory::{
    ChangeOp, ConnectionId, EntityKind, GroupFields, GroupRecord, MemberRef, ResourceId,
};
use orgsync_domain::scim::MemberChange;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{append_event, update_with_event};
use super::members;
use super::sql::{GroupRow, StoredRow, GROUP_COLUMNS};
use super::SqlDirectoryRepository;
use crate::db::{db_err, sql_err};
use crate::filter_sql::Sql;

pub(super) async fn create(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    f: &GroupFields,
    members: &[MemberRef],
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    let id = Uuid::now_v7();
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    txn.execute(repo.stmt(
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
    let added = members::insert(&txn, conn, id, members).await?;
    txn.execute(repo.stmt(
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

pub(super) async fn replace(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    id: ResourceId,
    fields: &GroupFields,
    members: Option<&[MemberRef]>,
    expected_version: Option<i64>,
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    touch(repo, &txn, conn, id, Some(fields), expected_version, now).await?;
    if let Some(members) = members {
        members::clear(&txn, id).await?;
        members::insert(&txn, conn, id, members).await?;
        members::recount(&txn, id).await?;
    }
    commit_logged(repo, txn, conn, id, ChangeOp::Updated, now).await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn patch(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    id: ResourceId,
    fields: Option<&GroupFields>,
    changes: &[MemberChange],
    known: &[MemberRef],
    expected_version: Option<i64>,
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    // By value in a map: a PATCH may name tens of thousands of members.
    let known: HashMap<&str, &MemberRef> = known.iter().map(|m| (m.value.as_str(), m)).collect();
    let details = |values: &[String]| -> Vec<MemberRef> {
        values
            .iter()
            .map(|value| {
                known
                    .get(value.as_str())
                    .map(|m| (*m).clone())
                    .unwrap_or_else(|| MemberRef::value(value.clone()))
            })
            .collect()
    };
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
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
                    delta += members::insert(&txn, conn, id, &details(values)).await?;
                }
                MemberChange::Remove(values) => {
                    delta -= members::remove(&txn, id, values).await?;
                }
                MemberChange::RemoveAll | MemberChange::ReplaceAll(_) => {}
            }
        }
        let record = finish_update(
            repo,
            &txn,
            conn,
            id,
            fields,
            expected_version,
            delta,
            op,
            now,
        )
        .await?;
        txn.commit().await.map_err(db_err)?;
        return Ok(record);
    }
    // Rewriting the whole list: lock the group first so that the recount
    // cannot race another writer's adds.
    touch(repo, &txn, conn, id, fields, expected_version, now).await?;
    for change in changes {
        match change {
            MemberChange::Add(values) => {
                members::insert(&txn, conn, id, &details(values)).await?;
            }
            MemberChange::Remove(values) => {
                members::remove(&txn, id, values).await?;
            }
            MemberChange::RemoveAll => members::clear(&txn, id).await?,
            MemberChange::ReplaceAll(values) => {
                members::clear(&txn, id).await?;
                members::insert(&txn, conn, id, &details(values)).await?;
            }
        }
    }
    members::recount(&txn, id).await?;
    commit_logged(repo, txn, conn, id, op, now).await
}

pub(super) async fn delete(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    id: ResourceId,
    expected_version: Option<i64>,
    now: OffsetDateTime,
) -> Result<()> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // Member rows go with the group (ON DELETE CASCADE): one statement, whatever the size.
    let deleted_version = repo
        .delete_versioned::<GroupRow>(&txn, conn, id, expected_version)
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

/// Reads the group back after a locked rewrite, logs `op` at its new
/// version and commits.
async fn commit_logged(
    repo: &SqlDirectoryRepository,
    txn: DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
    op: ChangeOp,
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    let record = repo
        .find::<GroupRow>(&txn, conn, id)
        .await?
        .ok_or(Error::NotFound { entity: "group" })?;
    append_event(&txn, conn, EntityKind::Group, id, record.version, op, now).await?;
    txn.commit().await.map_err(db_err)?;
    Ok(record)
}

/// Bumps the group's version, applies `member_delta` and new attributes
/// under the version check, and logs the event; returns the stored group.
#[allow(clippy::too_many_arguments)]
async fn finish_update(
    repo: &SqlDirectoryRepository,
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
    sets.extend(attribute_sets(&mut sql, fields));
    let conn_param = sql.bind(conn.0);
    let mut update = versioned_update(&mut sql, &sets, &conn_param, id, expected_version);
    update.push_str(&format!(" RETURNING {GROUP_COLUMNS}"));
    let postgres = repo.backend() == DbBackend::Postgres;
    let text = if postgres {
        update_with_event(
            &update,
            GROUP_COLUMNS,
            EntityKind::Group,
            op,
            &conn_param,
            &now_param,
        )
    } else {
        update
    };
    let Some(row) = GroupRow::find_by_statement(repo.stmt(&text, sql.values))
        .one(txn)
        .await
        .map_err(db_err)?
    else {
        return Err(repo.missing_or_stale::<GroupRow>(txn, conn, id).await);
    };
    let record = row.into_record(conn);
    if !postgres {
        append_event(txn, conn, EntityKind::Group, id, record.version, op, now).await?;
    }
    Ok(record)
}

/// Bumps a group's version (and attributes, when given) under the version
/// check, locking its row for the rest of the transaction.
async fn touch(
    repo: &SqlDirectoryRepository,
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
    sets.extend(attribute_sets(&mut sql, fields));
    let conn_param = sql.bind(conn.0);
    let text = versioned_update(&mut sql, &sets, &conn_param, id, expected_version);
    let result = txn
        .execute(repo.stmt(&text, sql.values))
        .await
        .map_err(db_err)?;
    if result.rows_affected() == 0 {
        return Err(repo.missing_or_stale::<GroupRow>(txn, conn, id).await);
    }
    Ok(())
}

/// SET clauses for new attributes; none when `fields` is `None`.
fn attribute_sets(sql: &mut Sql, fields: Option<&GroupFields>) -> Vec<String> {
    let Some(f) = fields else {
        return Vec::new();
    };
    vec![
        format!("display_name = {}", sql.bind(f.display_name.clone())),
        format!(
            "display_name_lower = {}",
            sql.bind(f.display_name.to_lowercase())
        ),
        format!("external_id = {}", sql.bind(f.external_id.clone())),
        format!("resource = {}", sql.bind(f.resource.clone())),
    ]
}

/// `UPDATE` of one group's row with `sets`, under the version check when a
/// version is expected.
fn versioned_update(
    sql: &mut Sql,
    sets: &[String],
    conn_param: &str,
    id: Uuid,
    expected_version: Option<i64>,
) -> String {
    let mut text = format!(
        "UPDATE directory_groups SET {} WHERE connection_id = {conn_param} AND id = {}",
        sets.join(", "),
        sql.bind(id)
    );
    if let Some(v) = expected_version {
        text.push_str(&format!(" AND version = {}", sql.bind(v)));
    }
    text
}
