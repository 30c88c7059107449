//! A removed directory member's last state, kept for a while so that the
//! same person coming back (the same directory user back in a mapped group
//! or reactivated, or a re-created IdP user, by externalId or email) gets
//! the old member back instead of a new one. Written by `apply`, read
//! when a sync plans its changes, purged once older than the relink window.

use std::collections::{HashMap, HashSet};

use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::membership::Member;
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::MemberWrites;
use orgsync_domain::sync::RelinkRule;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::delete_by_member_id;
use super::{SqlMembershipRepository, BATCH};
use crate::db::db_err;
use crate::filter_sql::Sql;

/// A removed directory member's last state is kept (for relinking), and a
/// relinked one's is used up.
pub(super) async fn keep_tombstones(
    txn: &DatabaseTransaction,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    delete_by_member_id(txn, "member_tombstones", "member_id", org, &writes.relinked).await?;
    let removed: Vec<&&Member> = writes
        .removed
        .iter()
        .filter(|m| m.directory_user_id.is_some())
        .collect();
    for chunk in removed.chunks(BATCH) {
        let mut sql = Sql::default();
        let mut rows = Vec::with_capacity(chunk.len());
        for member in chunk {
            let json = serde_json::to_string(**member).map_err(|e| Error::Internal(e.into()))?;
            rows.push(format!(
                "({}, {}, {}, {}, {}, {})",
                sql.bind(org.0),
                sql.bind(member.id.0),
                sql.bind(member.directory_user_id),
                sql.bind(json),
                sql.bind(member.email.to_lowercase()),
                sql.bind(writes.at)
            ));
        }
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "INSERT INTO member_tombstones (org_id, member_id, directory_user_id, member, email, removed_at) VALUES {} \
                 ON CONFLICT (org_id, member_id) DO UPDATE SET directory_user_id = excluded.directory_user_id, \
                 member = excluded.member, email = excluded.email, removed_at = excluded.removed_at",
                rows.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

pub(super) async fn relinkable(
    repo: &SqlMembershipRepository,
    org: OrgId,
    conn: ConnectionId,
    users: &[ResourceId],
    rule: RelinkRule,
) -> Result<Vec<(ResourceId, Member)>> {
    #[derive(FromQueryResult)]
    struct Row {
        user_id: Uuid,
        member: String,
    }
    // Most syncs follow no removal at all: one cheap look first.
    #[derive(FromQueryResult)]
    struct Any {
        one: i32,
    }
    let any = Any::find_by_statement(repo.db.stmt(
        "SELECT 1 AS one FROM member_tombstones WHERE org_id = $1 AND removed_at > $2 LIMIT 1",
        vec![org.0.into(), rule.since.into()],
    ))
    .one(repo.db.connection())
    .await
    .map_err(db_err)?;
    if any.is_none_or(|row| row.one != 1) {
        return Ok(Vec::new());
    }
    // The same directory user: removed when it left its mapped groups or
    // was deactivated, and back. By externalId: the old user was deleted
    // from this directory and carried the same externalId. By email: the
    // old user is gone from this directory (or was another directory's) and
    // the member had this email. The newest removal wins when several match.
    let same_user = "JOIN member_tombstones m ON m.org_id = {org} AND m.directory_user_id = u.id \
         AND m.removed_at > {since}";
    let by_external_id = "JOIN directory_user_tombstones t ON t.connection_id = u.connection_id \
         AND t.external_id = u.external_id AND t.user_id <> u.id AND t.deleted_at > {since} \
         JOIN member_tombstones m ON m.org_id = {org} AND m.directory_user_id = t.user_id \
         AND m.removed_at > {since}";
    let by_email = "JOIN member_tombstones m ON m.org_id = {org} AND m.email = lower(u.email) \
         AND m.directory_user_id <> u.id AND m.removed_at > {since} \
         AND NOT EXISTS (SELECT 1 FROM directory_users still \
           WHERE still.connection_id = u.connection_id AND still.id = m.directory_user_id)";
    let mut joins = vec![same_user, by_external_id];
    if rule.by_email {
        joins.push(by_email);
    }
    let mut found: Vec<(ResourceId, Member)> = Vec::new();
    let mut matched: HashSet<ResourceId> = HashSet::new();
    for join in joins {
        for chunk in users.chunks(BATCH) {
            let mut sql = Sql::default();
            let (org_param, conn_param, since_param) =
                (sql.bind(org.0), sql.bind(conn.0), sql.bind(rule.since));
            let list: Vec<String> = chunk.iter().map(|id| sql.bind(*id)).collect();
            let join = join
                .replace("{org}", &org_param)
                .replace("{since}", &since_param);
            let rows = Row::find_by_statement(repo.db.stmt(
                &format!(
                    "SELECT u.id AS user_id, m.member FROM directory_users u {join} \
                     WHERE u.connection_id = {conn_param} AND u.id IN ({}) ORDER BY m.removed_at",
                    list.join(", ")
                ),
                sql.values,
            ))
            .all(repo.db.connection())
            .await
            .map_err(db_err)?;
            let mut newest: HashMap<ResourceId, String> = HashMap::new();
            for row in rows {
                newest.insert(row.user_id, row.member);
            }
            for (user, member) in newest {
                // The same user first, then externalId: the first match wins.
                if !matched.insert(user) {
                    continue;
                }
                let member: Member = serde_json::from_str(&member).map_err(|e| {
                    Error::Internal(anyhow::anyhow!("org {org}: corrupt member tombstone: {e}"))
                })?;
                found.push((user, member));
            }
        }
    }
    Ok(found)
}

pub(super) async fn purge(repo: &SqlMembershipRepository, before: OffsetDateTime) -> Result<()> {
    for table in [
        "DELETE FROM member_tombstones WHERE removed_at < $1",
        "DELETE FROM directory_user_tombstones WHERE deleted_at < $1",
    ] {
        repo.db
            .connection()
            .execute(repo.db.stmt(table, vec![before.into()]))
            .await
            .map_err(db_err)?;
    }
    Ok(())
}
