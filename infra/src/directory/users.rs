//! SCIM writes of users. On PostgreSQL a create or replace carries its event
//! in the same statement (one round trip, one commit). A delete keeps the
//! user's externalId as a tombstone, for relinking, and takes the user out of
//! every group, in one transaction.

use std::collections::HashMap;

use orgsync_domain::directory::{
    ChangeOp, ConnectionId, EntityKind, GroupRef, ResourceId, ScimQuery, UserFields, UserRecord,
    UserView, WithGroups,
};
use orgsync_domain::ports::{Listed, WriteTarget};
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{append_event, update_with_event};
use super::sql::{attached_column, attached_text, StoredRow, UserRow, USER_COLUMNS};
use super::SqlDirectoryRepository;
use crate::db::{db_err, sql_err};
use crate::filter_sql::Sql;

const USER_NAME_TAKEN: &str = "userName is already taken in this directory";

/// The user's groups as `[[id, displayName], ...]`, built in the statement
/// that reads the user (PostgreSQL), from the index on member values.
const GROUPS_JSON: &str = "SELECT CAST(json_agg(json_build_array(g.id, g.display_name)) AS TEXT) \
     FROM directory_group_members m JOIN directory_groups g ON g.id = m.group_id \
     WHERE m.connection_id = directory_users.connection_id \
     AND m.member_value = CAST(directory_users.id AS TEXT)";

/// One user, with its groups when asked: in one statement on PostgreSQL; on
/// SQLite (which stores ids as bytes, not as the text member values hold)
/// with a second look-up.
pub(super) async fn find(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    id: ResourceId,
    groups: WithGroups,
) -> Result<Option<UserView>> {
    Ok(list_or_find(repo, conn, Read::One(id), groups)
        .await?
        .items
        .pop())
}

/// One page of users, each with its groups when asked (as [`find`]).
pub(super) async fn list(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    query: &ScimQuery,
    groups: WithGroups,
) -> Result<Listed<UserView>> {
    list_or_find(repo, conn, Read::Page(query), groups).await
}

enum Read<'a> {
    One(ResourceId),
    Page(&'a ScimQuery),
}

async fn list_or_find(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    read: Read<'_>,
    groups: WithGroups,
) -> Result<Listed<UserView>> {
    let in_one_statement = groups == WithGroups::Yes && repo.backend() == DbBackend::Postgres;
    let attached = in_one_statement.then_some(GROUPS_JSON);
    let listed = match read {
        Read::One(id) => {
            let found = repo
                .find_attached::<UserRow>(repo.db.connection(), conn, id, attached)
                .await?;
            Listed {
                total: u64::from(found.is_some()),
                items: found.into_iter().collect(),
            }
        }
        Read::Page(query) => repo.list_attached::<UserRow>(conn, query, attached).await?,
    };
    let mut views: Vec<UserView> = listed
        .items
        .into_iter()
        .map(|(record, json)| {
            let groups = json.map_or_else(|| Ok(Vec::new()), |json| groups_from_json(&json))?;
            Ok(UserView { record, groups })
        })
        .collect::<Result<_>>()?;
    if groups == WithGroups::Yes && !in_one_statement && !views.is_empty() {
        let ids: Vec<ResourceId> = views.iter().map(|v| v.record.id).collect();
        let mut by_user = groups_by_user(repo, conn, &ids).await?;
        for view in &mut views {
            view.groups = by_user.remove(&view.record.id).unwrap_or_default();
        }
    }
    for view in &mut views {
        sort_groups(&mut view.groups);
    }
    Ok(Listed {
        total: listed.total,
        items: views,
    })
}

/// The groups of `users` by a second look-up, where the read could not bring them.
async fn groups_by_user(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    users: &[ResourceId],
) -> Result<HashMap<ResourceId, Vec<GroupRef>>> {
    let mut by_user: HashMap<ResourceId, Vec<GroupRef>> = HashMap::new();
    for (user, id, display_name) in super::members::groups_of(repo, conn, users).await? {
        by_user
            .entry(user)
            .or_default()
            .push(GroupRef { id, display_name });
    }
    for groups in by_user.values_mut() {
        sort_groups(groups);
    }
    Ok(by_user)
}

fn groups_from_json(json: &str) -> Result<Vec<GroupRef>> {
    let pairs: Vec<(Uuid, String)> = serde_json::from_str(json)
        .map_err(|e| anyhow::anyhow!("a user's groups could not be read: {e}"))?;
    Ok(pairs
        .into_iter()
        .map(|(id, display_name)| GroupRef { id, display_name })
        .collect())
}

/// As SCIM answers have always listed them: by displayName, case-insensitive, then id.
fn sort_groups(groups: &mut [GroupRef]) {
    groups.sort_by_cached_key(|g| (g.display_name.to_lowercase(), g.id));
}

pub(super) async fn create(
    repo: &SqlDirectoryRepository,
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
    if repo.backend() == DbBackend::Postgres {
        // One statement, one round trip: the user and its event commit together.
        let text = format!(
            "WITH created AS ({insert} RETURNING id, connection_id) \
             INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
             SELECT connection_id, 'user', id, 1, 'created', $10 FROM created"
        );
        repo.db
            .connection()
            .execute(repo.db.stmt(&text, values))
            .await
            .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
    } else {
        let txn = repo.db.connection().begin().await.map_err(db_err)?;
        txn.execute(repo.db.stmt(insert, values))
            .await
            .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
        append_event(&txn, conn, EntityKind::User, id, 1, ChangeOp::Created, now).await?;
        txn.commit().await.map_err(db_err)?;
    }
    Ok(UserRecord::created(id, conn, f.clone(), now))
}

pub(super) async fn replace(
    repo: &SqlDirectoryRepository,
    target: WriteTarget,
    f: &UserFields,
    groups: WithGroups,
) -> Result<UserView> {
    let WriteTarget { conn, id, now, .. } = target;
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
    if let Some(v) = target.expected_version {
        text.push_str(&format!(" AND version = {}", sql.bind(v)));
    }
    if repo.backend() == DbBackend::Postgres {
        // The write, its event and the user's groups for the answer: one
        // round trip. The stored fields are the ones just written, so only
        // what the database decides (version, timestamps as stored) comes
        // back, not the resource it was sent.
        text.push_str(" RETURNING id, connection_id, version, created_at, updated_at");
        let attached = (groups == WithGroups::Yes).then_some(GROUPS_JSON);
        let now_param = sql.bind(now);
        let conn_param = sql.bind(conn.0);
        let text = update_with_event(
            &text,
            UserRow::TABLE,
            &format!(
                "version, created_at, updated_at{}",
                attached_column(attached)
            ),
            EntityKind::User,
            ChangeOp::Updated,
            &conn_param,
            &now_param,
        );
        let row = repo
            .db
            .connection()
            .query_one(repo.db.stmt(&text, sql.values))
            .await
            .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
        return match row {
            Some(row) => {
                let record = UserRecord {
                    id,
                    connection_id: conn,
                    fields: f.clone(),
                    version: row.try_get("", "version").map_err(db_err)?,
                    created_at: row.try_get("", "created_at").map_err(db_err)?,
                    updated_at: row.try_get("", "updated_at").map_err(db_err)?,
                };
                let json = attached_text(&row, attached)?;
                let mut groups =
                    json.map_or_else(|| Ok(Vec::new()), |json| groups_from_json(&json))?;
                sort_groups(&mut groups);
                Ok(UserView { record, groups })
            }
            None => {
                let txn = repo.db.connection().begin().await.map_err(db_err)?;
                Err(repo.missing_or_stale::<UserRow>(&txn, conn, id).await)
            }
        };
    }
    text.push_str(&format!(" RETURNING connection_id, {USER_COLUMNS}"));
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    let row = UserRow::find_by_statement(repo.db.stmt(&text, sql.values))
        .one(&txn)
        .await
        .map_err(|e| sql_err(e, USER_NAME_TAKEN))?;
    let Some(row) = row else {
        return Err(repo.missing_or_stale::<UserRow>(&txn, conn, id).await);
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
    let groups = match groups {
        WithGroups::Yes => groups_by_user(repo, conn, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default(),
        WithGroups::No => Vec::new(),
    };
    Ok(UserView { record, groups })
}

pub(super) async fn delete(repo: &SqlDirectoryRepository, target: WriteTarget) -> Result<()> {
    let WriteTarget { conn, id, now, .. } = target;
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // Its externalId outlives it for a while: an IdP that deletes and
    // re-creates a person gets the same member back (relink).
    txn.execute(repo.db.stmt(
        "INSERT INTO directory_user_tombstones (connection_id, user_id, external_id, deleted_at) \
         SELECT connection_id, id, external_id, $3 FROM directory_users \
         WHERE connection_id = $1 AND id = $2 AND external_id IS NOT NULL \
         ON CONFLICT (connection_id, user_id) DO UPDATE SET external_id = excluded.external_id, \
         deleted_at = excluded.deleted_at",
        vec![conn.0.into(), id.into(), now.into()],
    ))
    .await
    .map_err(db_err)?;
    let deleted_version = repo
        .delete_versioned::<UserRow>(&txn, conn, id, target.expected_version)
        .await?;
    // The user leaves every group it was in: set-based, whatever the number of groups.
    let member = id.to_string();
    // As deltas, like any member change: the groups' rows stay unlocked.
    txn.execute(repo.db.stmt(
        "INSERT INTO directory_group_deltas (group_id, connection_id, member_delta, changed_at) \
         SELECT group_id, connection_id, -1, $3 FROM directory_group_members \
         WHERE connection_id = $1 AND member_value = $2",
        vec![conn.0.into(), member.clone().into(), now.into()],
    ))
    .await
    .map_err(db_err)?;
    txn.execute(repo.db.stmt(
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
