//! Applying a planned change set: one transaction, multi-row statements of
//! [`BATCH`] rows, never one round trip per member. The plan was computed
//! from what was read earlier, so its versions are checked (and, on
//! PostgreSQL, the rows locked) before anything is written.

use orgsync_domain::membership::{Member, MemberId};
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::MemberWrites;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, Statement, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::record_writes;
use super::rows::{delete_by_member_id, insert_members};
use super::tombstones::keep_tombstones;
use super::{SqlMembershipRepository, BATCH};
use crate::db::db_err;
use crate::filter_sql::Sql;

pub(super) async fn apply(
    repo: &SqlMembershipRepository,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // The plan's versions first: every row it touches must still be as it
    // was read (on PostgreSQL the rows stay locked until commit).
    let expected: Vec<(MemberId, OffsetDateTime)> = writes
        .removed
        .iter()
        .map(|m| (m.id, m.updated_at))
        .chain(
            writes
                .updated
                .iter()
                .map(|(_, before)| (before.id, before.updated_at)),
        )
        .collect();
    check_versions(&txn, org, &expected).await?;
    let removed_ids: Vec<MemberId> = writes.removed.iter().map(|m| m.id).collect();
    delete_by_member_id(&txn, "members", "id", org, &removed_ids).await?;
    // An update rewrites the member's row (same id, same created_at): with
    // multi-row statements that is two set-based steps on both engines.
    let updated_ids: Vec<MemberId> = writes.updated.iter().map(|(after, _)| after.id).collect();
    let updated: Vec<&Member> = writes.updated.iter().map(|(after, _)| after).collect();
    delete_by_member_id(&txn, "members", "id", org, &updated_ids).await?;
    insert_members(&txn, &updated).await?;
    // A member for the same directory user added since the plan: re-plan.
    insert_members(&txn, &writes.added)
        .await
        .map_err(|e| match e {
            Error::Conflict { .. } => stale_plan(),
            other => other,
        })?;
    keep_tombstones(&txn, org, writes).await?;
    record_writes(&txn, org, writes).await?;
    txn.commit().await.map_err(db_err)
}

fn stale_plan() -> Error {
    Error::PreconditionFailed("the members changed since this change was planned".into())
}

/// Fails with `PreconditionFailed` unless every `(member, updated_at)` is
/// still current, locking the rows (PostgreSQL) so they stay so until commit.
async fn check_versions(
    txn: &DatabaseTransaction,
    org: OrgId,
    expected: &[(MemberId, OffsetDateTime)],
) -> Result<()> {
    #[derive(FromQueryResult)]
    struct Row {
        id: Uuid,
        updated_at: OffsetDateTime,
    }
    let lock = match txn.get_database_backend() {
        sea_orm::DbBackend::Postgres => " FOR UPDATE",
        _ => "",
    };
    for chunk in expected.chunks(BATCH) {
        let mut sql = Sql::default();
        let org_param = sql.bind(org.0);
        let list: Vec<String> = chunk.iter().map(|(id, _)| sql.bind(id.0)).collect();
        let rows = Row::find_by_statement(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "SELECT id, updated_at FROM members WHERE org_id = {org_param} AND id IN ({}){lock}",
                list.join(", ")
            ),
            sql.values,
        ))
        .all(txn)
        .await
        .map_err(db_err)?;
        let current: std::collections::HashMap<Uuid, OffsetDateTime> =
            rows.into_iter().map(|r| (r.id, r.updated_at)).collect();
        let all_current = chunk
            .iter()
            .all(|(id, at)| current.get(&id.0).is_some_and(|now| now == at));
        if !all_current {
            return Err(stale_plan());
        }
    }
    Ok(())
}
