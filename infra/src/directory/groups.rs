//! SCIM writes of groups. A group's version and member count are its row
//! plus its pending deltas (`directory_groups_current`): a member PATCH adds
//! rows and one delta and leaves the group's row alone, so concurrent PATCHes
//! of one big group never queue on its lock. Writers that must see the group
//! exactly (`If-Match`, PUT, a rewrite of the whole list, DELETE) lock the row,
//! which waits for in-flight deltas, and fold the deltas into it first. The
//! directory-changed job folds the rest in the background (`settle`).

use std::collections::HashMap;

use orgsync_domain::directory::{
    ChangeOp, ConnectionId, EntityKind, GroupFields, GroupRecord, MemberRef,
};
use orgsync_domain::ports::{GroupGuard, GroupPatch, WriteTarget};
use orgsync_domain::scim::MemberChange;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{append_event, record_changed_members, record_group_members, Membership};
use super::members;
use super::sql::{version_mismatch, GroupRow, StoredRow, INSERT_BATCH};
use super::SqlDirectoryRepository;
use crate::db::{db_err, sql_err};
use crate::filter_sql::Sql;

mod deltas;

pub(super) use deltas::{fold_deltas, lock_and_fold};
use deltas::{record_delta, share_lock};

pub(super) async fn create(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    f: &GroupFields,
    members: &[MemberRef],
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    let id = Uuid::now_v7();
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    txn.execute(repo.db.stmt(
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
    txn.execute(repo.db.stmt(
        "UPDATE directory_groups SET member_count = $1 WHERE id = $2",
        vec![added.into(), id.into()],
    ))
    .await
    .map_err(db_err)?;
    let event = append_event(&txn, conn, EntityKind::Group, id, 1, ChangeOp::Created, now).await?;
    record_changed_members(&txn, event, added_values(members)).await?;
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
    target: WriteTarget,
    fields: &GroupFields,
    members: Option<&[MemberRef]>,
) -> Result<GroupRecord> {
    let WriteTarget { conn, id, now, .. } = target;
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    let current = lock_and_fold(repo, &txn, conn, id).await?;
    if target
        .expected_version
        .is_some_and(|expected| expected != current.version)
    {
        return Err(version_mismatch());
    }
    touch(repo, &txn, conn, id, Some(fields), None, now).await?;
    let event = log_locked(&txn, &current, ChangeOp::Updated, now).await?;
    if let Some(members) = members {
        // Old and new members alike: sync re-plans each (a no-op for those who stay).
        record_group_members(&txn, event, id).await?;
        members::clear(&txn, id).await?;
        members::insert(&txn, conn, id, members).await?;
        record_changed_members(&txn, event, added_values(members)).await?;
        members::recount(&txn, id).await?;
    }
    commit_read(repo, txn, conn, id).await
}

pub(super) async fn patch(
    repo: &SqlDirectoryRepository,
    patch: GroupPatch<'_>,
) -> Result<GroupRecord> {
    let GroupPatch {
        conn,
        id,
        fields,
        changes,
        known,
        guard,
        now,
    } = patch;
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
    let op = if changes.is_empty() {
        ChangeOp::Updated
    } else {
        ChangeOp::MembersChanged
    };
    let rewrites_list = changes
        .iter()
        .any(|c| matches!(c, MemberChange::RemoveAll | MemberChange::ReplaceAll(_)));
    if rewrites_list || matches!(guard, GroupGuard::Version(_)) {
        return locked_patch(repo, patch, &details, op).await;
    }
    if let (DbBackend::Postgres, None, [change]) = (repo.backend(), fields, changes) {
        if let Some(record) = one_statement_change(repo, conn, id, change, &details, now).await? {
            return Ok(record);
        }
    }
    // Member changes become rows and one delta; the group's row is not
    // written unless attributes change, so concurrent PATCHes of one group do
    // not wait for each other's commits.
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    share_lock(repo, &txn, conn, id).await?;
    let delta = members::apply(&txn, conn, id, changes, &details).await?;
    if let (Some(fields), GroupGuard::Attributes(read)) = (fields, guard) {
        write_attributes_if_unchanged(repo, &txn, conn, id, fields, read).await?;
    }
    record_delta(repo, &txn, conn, id, delta, now).await?;
    commit_logged(repo, txn, conn, id, op, changes, now).await
}

/// A PATCH that waits for no one and is waited for by no one but writers
/// that lock the group: one member change, its delta and its event in one
/// statement (one round trip, no explicit transaction). `None` when the
/// change is too large for one statement.
async fn one_statement_change(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    id: Uuid,
    change: &MemberChange,
    details: &(dyn Fn(&[String]) -> Vec<MemberRef> + Sync),
    now: OffsetDateTime,
) -> Result<Option<GroupRecord>> {
    let mut sql = Sql::default();
    let (conn_param, group_param, now_param) = (sql.bind(conn.0), sql.bind(id), sql.bind(now));
    let changed = match change {
        MemberChange::Add(values) if values.len() <= INSERT_BATCH => {
            let members = details(values);
            let rows: Vec<String> = members::in_lock_order(&members)
                .into_iter()
                .map(|m| {
                    format!(
                        "({conn_param}, {group_param}, {}, {}, {})",
                        sql.bind(m.value.clone()),
                        sql.bind(m.kind.clone()),
                        sql.bind(m.display.clone())
                    )
                })
                .collect();
            format!(
                "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type, member_display) \
                 SELECT * FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM owned) \
                 ON CONFLICT (group_id, member_value) DO NOTHING RETURNING member_value",
                rows.join(", ")
            )
        }
        MemberChange::Remove(values) if values.len() <= INSERT_BATCH => {
            let list: Vec<String> = values.iter().map(|v| sql.bind(v.clone())).collect();
            format!(
                "DELETE FROM directory_group_members WHERE EXISTS (SELECT 1 FROM owned) \
                 AND group_id = {group_param} AND connection_id = {conn_param} \
                 AND member_value IN ({}) RETURNING member_value",
                list.join(", ")
            )
        }
        _ => return Ok(None),
    };
    let (sign, membership) = if matches!(change, MemberChange::Add(_)) {
        ("", Membership::Added.as_str())
    } else {
        ("-", Membership::Removed.as_str())
    };
    // Nothing is written unless the group is this connection's: the caller
    // did not read it first, and this statement commits on its own.
    // `owned` takes the group's key-share lock before any member row is
    // touched (both changes test it first, a one-time filter): a writer
    // holding the group locked (a PUT, a member replace) is waited for
    // before, not while, this one holds member rows it would need.
    // A data-modifying CTE's rows are invisible to the rest of the statement,
    // so the answer adds this change's step and delta to what it reads.
    let text = format!(
        "WITH owned AS (SELECT id FROM directory_groups WHERE id = {group_param} AND connection_id = {conn_param} FOR KEY SHARE), \
         changed AS ({changed}), \
         delta AS (INSERT INTO directory_group_deltas (group_id, connection_id, member_delta, changed_at) \
           SELECT id, {conn_param}, (SELECT {sign}COUNT(*) FROM changed), {now_param} FROM owned \
           RETURNING member_delta), \
         current AS (SELECT g.id, g.display_name, g.external_id, g.resource, g.created_at, \
           g.member_count + CAST(COALESCE(d.members, 0) AS BIGINT) AS member_count, g.version + d.steps AS version \
           FROM directory_groups g, LATERAL (SELECT COUNT(*) AS steps, SUM(member_delta) AS members \
             FROM directory_group_deltas WHERE group_id = g.id) d \
           WHERE g.connection_id = {conn_param} AND g.id = {group_param}), \
         logged AS (INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
           SELECT {conn_param}, 'group', id, version + 1, '{}', {now_param} FROM current RETURNING id), \
         touched AS (INSERT INTO directory_event_members (event_id, member_value, change) \
           SELECT logged.id, changed.member_value, '{membership}' FROM logged, changed) \
         SELECT id, display_name, external_id, resource, \
           member_count + (SELECT member_delta FROM delta) AS member_count, version + 1 AS version, \
           created_at, {now_param} AS updated_at FROM current",
        ChangeOp::MembersChanged.as_str()
    );
    let row = GroupRow::find_by_statement(repo.db.stmt(&text, sql.values))
        .one(repo.db.connection())
        .await
        .map_err(members::group_gone)?;
    match row {
        Some(row) => Ok(Some(row.into_record(conn))),
        None => Err(Error::NotFound { entity: "group" }),
    }
}

/// A PATCH that must see the group as it is: under `If-Match`, or rewriting
/// the whole member list (whose recount must not race other writers). The
/// row lock makes in-flight member changes finish first and holds new ones
/// back (their deltas take a key-share lock on the row); pending deltas are
/// folded so the version compared is exact.
async fn locked_patch(
    repo: &SqlDirectoryRepository,
    patch: GroupPatch<'_>,
    details: &(dyn Fn(&[String]) -> Vec<MemberRef> + Sync),
    op: ChangeOp,
) -> Result<GroupRecord> {
    let (conn, id, changes, now) = (patch.conn, patch.id, patch.changes, patch.now);
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    let current = lock_and_fold(repo, &txn, conn, id).await?;
    match patch.guard {
        GroupGuard::Version(expected) if expected != current.version => {
            return Err(version_mismatch());
        }
        GroupGuard::Attributes(read)
            if patch.fields.is_some() && read.resource != current.fields.resource =>
        {
            return Err(version_mismatch());
        }
        _ => {}
    }
    touch(repo, &txn, conn, id, patch.fields, None, now).await?;
    let event = log_locked(&txn, &current, op, now).await?;
    let rewrites_list = changes
        .iter()
        .any(|c| matches!(c, MemberChange::RemoveAll | MemberChange::ReplaceAll(_)));
    if rewrites_list {
        record_group_members(&txn, event, id).await?;
    }
    let delta = members::apply(&txn, conn, id, changes, details).await?;
    record_changed_members(&txn, event, changed_values(changes)).await?;
    if rewrites_list {
        members::recount(&txn, id).await?;
    } else if delta != 0 {
        txn.execute(repo.db.stmt(
            "UPDATE directory_groups SET member_count = member_count + $1 WHERE id = $2",
            vec![delta.into(), id.into()],
        ))
        .await
        .map_err(db_err)?;
    }
    commit_read(repo, txn, conn, id).await
}

/// New attributes, provided the stored ones are still those `read`; the
/// version step comes from the PATCH's delta.
async fn write_attributes_if_unchanged(
    repo: &SqlDirectoryRepository,
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
    fields: &GroupFields,
    read: &GroupFields,
) -> Result<()> {
    let mut sql = Sql::default();
    let sets = attribute_sets(&mut sql, Some(fields));
    let text = format!(
        "UPDATE directory_groups SET {} WHERE connection_id = {} AND id = {} AND resource = {}",
        sets.join(", "),
        sql.bind(conn.0),
        sql.bind(id),
        sql.bind(read.resource.clone())
    );
    update_guarded(repo, txn, conn, id, &text, sql).await
}

pub(super) async fn delete(repo: &SqlDirectoryRepository, target: WriteTarget) -> Result<()> {
    let WriteTarget { conn, id, now, .. } = target;
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // Folded first, so the version checked and logged counts every member change.
    let current = lock_and_fold(repo, &txn, conn, id).await?;
    // Its members are not copied into the event: a group of 100,000 goes
    // in one cascading statement, and sync reconciles an org in full for
    // the rare deletion of a group its mappings name.
    log_locked(&txn, &current, ChangeOp::Deleted, now).await?;
    // Member rows go with the group (ON DELETE CASCADE): one statement, whatever the size.
    repo.delete_versioned::<GroupRow>(&txn, conn, id, target.expected_version)
        .await?;
    txn.commit().await.map_err(db_err)
}

/// Reads the group back after member changes, logs `op` at its new version
/// with the members `changes` name, and commits.
async fn commit_logged(
    repo: &SqlDirectoryRepository,
    txn: DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
    op: ChangeOp,
    changes: &[MemberChange],
    now: OffsetDateTime,
) -> Result<GroupRecord> {
    let record = repo
        .find::<GroupRow>(&txn, conn, id)
        .await?
        .ok_or(Error::NotFound { entity: "group" })?;
    let event = append_event(&txn, conn, EntityKind::Group, id, record.version, op, now).await?;
    record_changed_members(&txn, event, changed_values(changes)).await?;
    txn.commit().await.map_err(db_err)?;
    Ok(record)
}

/// Reads the group back after a locked write (its event already logged) and commits.
async fn commit_read(
    repo: &SqlDirectoryRepository,
    txn: DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
) -> Result<GroupRecord> {
    let record = repo
        .find::<GroupRow>(&txn, conn, id)
        .await?
        .ok_or(Error::NotFound { entity: "group" })?;
    txn.commit().await.map_err(db_err)?;
    Ok(record)
}

/// The member values `changes` name (a clear names none: its caller records
/// the members it takes away).
/// The values `changes` name, with what each does to the member.
fn changed_values(changes: &[MemberChange]) -> impl Iterator<Item = (&str, Membership)> {
    changes.iter().flat_map(|change| {
        let membership = match change {
            MemberChange::Remove(_) | MemberChange::RemoveAll => Membership::Removed,
            _ => Membership::Added,
        };
        change
            .values()
            .iter()
            .map(move |v| (v.as_str(), membership))
    })
}

fn added_values(members: &[MemberRef]) -> impl Iterator<Item = (&str, Membership)> {
    members
        .iter()
        .map(|m| (m.value.as_str(), Membership::Added))
}

/// Logs `op` on a group whose row this transaction locked, folded and
/// touched once: its new version is exactly the next one. Returns the event.
async fn log_locked(
    txn: &DatabaseTransaction,
    current: &GroupRecord,
    op: ChangeOp,
    now: OffsetDateTime,
) -> Result<i64> {
    let (conn, id, version) = (current.connection_id, current.id, current.version + 1);
    append_event(txn, conn, EntityKind::Group, id, version, op, now).await
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
    update_guarded(repo, txn, conn, id, &text, sql).await
}

/// Runs an UPDATE of group `id` that carries its own guard (a version or
/// the attributes read): no row updated means the group is gone or the
/// guard failed, and the error says which.
async fn update_guarded(
    repo: &SqlDirectoryRepository,
    txn: &DatabaseTransaction,
    conn: ConnectionId,
    id: Uuid,
    text: &str,
    sql: Sql,
) -> Result<()> {
    let result = txn
        .execute(repo.db.stmt(text, sql.values))
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
