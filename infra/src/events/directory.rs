//! Publishing a directory's change log as `directory.*` events. SCIM writes
//! already record each change in their own transaction (the change log is
//! the directory's outbox); this turns numbered log entries into events of
//! the connection's org, a page at a time, moving the connection's
//! `published_seq` in the same transaction as the events it wrote, so each
//! entry is published exactly once. The SCIM hot paths pay nothing for it.
//!
//! An event carries the resource as it is when published (moments after
//! the change). Member changes are published as the change log recorded
//! them (added, removed; a member a rewrite kept is not published); an
//! entry from before that was recorded is judged by the membership then.

use std::collections::{HashMap, HashSet};

use orgsync_domain::directory::ConnectionId;
use orgsync_domain::events::{Event, EventType};
use orgsync_domain::org::OrgId;
use orgsync_domain::Result;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, FromQueryResult, Statement, TransactionTrait, Value,
};
use serde_json::{json, Value as Json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::insert_numbered_events;
use crate::db::{db_err, find_replanned};
use crate::directory::sequence_events;
use crate::filter_sql::Sql;

/// Change log entries published per connection per step.
const PAGE: i64 = 1000;
/// Values per `IN (...)` list.
const CHUNK: usize = 1000;

/// Entries sync has not numbered after this long are numbered here (a
/// directory no org draws on has no reader to number them).
const NUMBER_AFTER: time::Duration = time::Duration::seconds(2);

/// Publishes a page of every connection whose numbered change log is ahead
/// of what it published.
///
/// # Errors
/// Only infrastructure failures.
pub async fn publish_directories(db: &DatabaseConnection) -> Result<()> {
    #[derive(FromQueryResult)]
    struct Unnumbered {
        connection_id: Uuid,
    }
    // Numbering is sync's: the catch-up each SCIM write nudges numbers the
    // log as it reads it, and a second sequencer would only queue on the
    // same row lock. Only entries it left behind are numbered here. The
    // partial index on unnumbered entries keeps this cheap.
    let unnumbered: Vec<Unnumbered> = find_replanned(
        db,
        "SELECT DISTINCT connection_id FROM directory_events WHERE seq IS NULL AND occurred_at < $1 LIMIT 100",
        vec![(OffsetDateTime::now_utc() - NUMBER_AFTER).into()],
    )
    .await?;
    for row in unnumbered {
        sequence_events(db, ConnectionId(row.connection_id)).await?;
    }
    #[derive(FromQueryResult)]
    struct Behind {
        id: Uuid,
        org_id: Uuid,
        published_seq: i64,
    }
    let behind = Behind::find_by_statement(Statement::from_string(
        db.get_database_backend(),
        "SELECT id, org_id, published_seq FROM enterprise_connections \
         WHERE event_seq > published_seq LIMIT 100",
    ))
    .all(db)
    .await
    .map_err(db_err)?;
    for conn in behind {
        publish_page(db, conn.id, OrgId(conn.org_id), conn.published_seq).await?;
    }
    Ok(())
}

#[derive(FromQueryResult)]
struct Entry {
    id: i64,
    seq: i64,
    entity_kind: String,
    entity_id: Uuid,
    op: String,
}

async fn publish_page(db: &DatabaseConnection, conn: Uuid, org: OrgId, from: i64) -> Result<()> {
    let entries: Vec<Entry> = find_replanned(
        db,
        "SELECT id, seq, entity_kind, entity_id, op FROM directory_events \
         WHERE connection_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        vec![conn.into(), from.into(), PAGE.into()],
    )
    .await?;
    let Some(to) = entries.last().map(|e| e.seq) else {
        return Ok(());
    };
    let group_entries: Vec<i64> = entries
        .iter()
        .filter(|e| e.entity_kind == "group")
        .map(|e| e.id)
        .collect();
    let changed = changed_members(db, &group_entries).await?;
    let values: Vec<String> = changed
        .values()
        .flatten()
        .map(|(value, _)| value.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut users: Vec<Uuid> = ids_of(&entries, "user");
    users.extend(values.iter().filter_map(|v| v.parse::<Uuid>().ok()));
    users.sort_unstable();
    users.dedup();
    let groups: Vec<Uuid> = ids_of(&entries, "group");
    let user_views = views(
        db,
        "SELECT id, connection_id, user_name, external_id, display_name, email, active, version, \
         created_at, updated_at FROM directory_users WHERE id IN",
        &users,
    )
    .await?;
    let group_views = views(
        db,
        "SELECT id, connection_id, display_name, external_id, member_count, version, created_at, \
         updated_at FROM directory_groups_current WHERE id IN",
        &groups,
    )
    .await?;
    let unrecorded: Vec<String> = changed
        .values()
        .flatten()
        .filter(|(_, change)| change.is_none())
        .map(|(value, _)| value.clone())
        .collect();
    let current = memberships(db, &groups, &unrecorded).await?;

    let now = OffsetDateTime::now_utc();
    let gone = |id: Uuid| json!({ "id": id, "connection_id": conn });
    let mut events = Vec::new();
    for entry in &entries {
        let id = entry.entity_id;
        let (kind, view) = match entry.entity_kind.as_str() {
            "user" => (
                (
                    EventType::DirectoryUserCreated,
                    EventType::DirectoryUserUpdated,
                    EventType::DirectoryUserDeleted,
                ),
                user_views.get(&id),
            ),
            _ => (
                (
                    EventType::DirectoryGroupCreated,
                    EventType::DirectoryGroupUpdated,
                    EventType::DirectoryGroupDeleted,
                ),
                group_views.get(&id),
            ),
        };
        let data = || view.cloned().unwrap_or_else(|| gone(id));
        match entry.op.as_str() {
            "created" => events.push(Event::new(org, kind.0, data(), now)),
            "updated" => events.push(Event::new(org, kind.1, data(), now)),
            "deleted" => events.push(Event::new(org, kind.2, gone(id), now)),
            _ => {}
        }
        let group = json!({
            "id": id,
            "display_name": view.and_then(|v| v.get("display_name")).cloned().unwrap_or(Json::Null),
        });
        for (value, change) in changed.get(&entry.id).into_iter().flatten() {
            let added = match change.as_deref() {
                Some("added") => true,
                Some("removed") => false,
                Some(_) => continue,
                None => current.contains(&(id, value.clone())),
            };
            let event_type = if added {
                EventType::DirectoryGroupUserAdded
            } else {
                EventType::DirectoryGroupUserRemoved
            };
            let user = value
                .parse::<Uuid>()
                .ok()
                .and_then(|u| user_views.get(&u).cloned());
            events.push(Event::new(
                org,
                event_type,
                json!({
                    "connection_id": conn,
                    "group": group,
                    "user": user.unwrap_or_else(|| json!({ "id": value })),
                }),
                now,
            ));
        }
    }
    let txn = db.begin().await.map_err(db_err)?;
    let moved = txn
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE enterprise_connections SET published_seq = $1 WHERE id = $2 AND published_seq = $3",
            [to.into(), conn.into(), from.into()],
        ))
        .await
        .map_err(db_err)?;
    if moved.rows_affected() == 0 {
        // Another dispatcher published this page first.
        return Ok(());
    }
    // Numbered as written: numbering them afterwards would rewrite every
    // row (a new version in each of the table's indexes) once per event.
    insert_numbered_events(&txn, org, &events).await?;
    txn.commit().await.map_err(db_err)
}

fn ids_of(entries: &[Entry], kind: &str) -> Vec<Uuid> {
    entries
        .iter()
        .filter(|e| e.entity_kind == kind)
        .map(|e| e.entity_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect()
}

/// Rows of `select` (ending in `WHERE id IN`) for `ids`, as JSON by id.
async fn views(db: &DatabaseConnection, select: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Json>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut sql = Sql::default();
        let list: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
        let rows = db
            .query_all(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!("{select} ({})", list.join(", ")),
                sql.values,
            ))
            .await
            .map_err(db_err)?;
        for row in rows {
            let id: Uuid = row.try_get("", "id").map_err(db_err)?;
            let mut view = serde_json::Map::new();
            for column in row.column_names() {
                let value = match column.as_str() {
                    "id" | "connection_id" => row
                        .try_get::<Uuid>("", &column)
                        .map(|u| json!(u))
                        .map_err(db_err)?,
                    "active" => json!(row.try_get::<bool>("", &column).map_err(db_err)?),
                    "version" | "member_count" => {
                        json!(row.try_get::<i64>("", &column).map_err(db_err)?)
                    }
                    "created_at" | "updated_at" => {
                        let at: OffsetDateTime = row.try_get("", &column).map_err(db_err)?;
                        json!(at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default())
                    }
                    _ => json!(row.try_get::<Option<String>>("", &column).map_err(db_err)?),
                };
                view.insert(column, value);
            }
            out.insert(id, Json::Object(view));
        }
    }
    Ok(out)
}

/// The member values each group entry recorded as changed, with what the
/// change did to each (`None` when it was not recorded).
async fn changed_members(
    db: &DatabaseConnection,
    entries: &[i64],
) -> Result<HashMap<i64, Vec<(String, Option<String>)>>> {
    #[derive(FromQueryResult)]
    struct Row {
        event_id: i64,
        member_value: String,
        change: Option<String>,
    }
    let mut out: HashMap<i64, Vec<(String, Option<String>)>> = HashMap::new();
    for chunk in entries.chunks(CHUNK) {
        let mut sql = Sql::default();
        let list: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
        let rows: Vec<Row> = find_replanned(
            db,
            &format!(
                "SELECT event_id, member_value, change FROM directory_event_members WHERE event_id IN ({}) \
                 ORDER BY event_id, member_value",
                list.join(", ")
            ),
            sql.values,
        )
        .await?;
        for row in rows {
            out.entry(row.event_id)
                .or_default()
                .push((row.member_value, row.change));
        }
    }
    Ok(out)
}

/// Which of `values` are members of which of `groups` now.
async fn memberships(
    db: &DatabaseConnection,
    groups: &[Uuid],
    values: &[String],
) -> Result<HashSet<(Uuid, String)>> {
    #[derive(FromQueryResult)]
    struct Row {
        group_id: Uuid,
        member_value: String,
    }
    let mut out = HashSet::new();
    if groups.is_empty() || values.is_empty() {
        return Ok(out);
    }
    for groups in groups.chunks(CHUNK) {
        for values in values.chunks(CHUNK) {
            let mut sql = Sql::default();
            let group_list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
            let value_list: Vec<String> = values
                .iter()
                .map(|v| sql.bind(Value::from(v.clone())))
                .collect();
            let rows = Row::find_by_statement(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "SELECT group_id, member_value FROM directory_group_members \
                     WHERE group_id IN ({}) AND member_value IN ({})",
                    group_list.join(", "),
                    value_list.join(", ")
                ),
                sql.values,
            ))
            .all(db)
            .await
            .map_err(db_err)?;
            out.extend(rows.into_iter().map(|r| (r.group_id, r.member_value)));
        }
    }
    Ok(out)
}
