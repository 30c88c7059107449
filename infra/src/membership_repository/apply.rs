//! Applying a planned change set: multi-row statements of [`BATCH`] rows,
//! never one round trip per member, in transactions of at most
//! [`MEMBERS_PER_TRANSACTION`] members. The plan was computed from what was
//! read earlier, so each transaction first checks (and, on PostgreSQL, locks)
//! the versions of the rows it touches.

use std::collections::HashSet;

use futures::TryStreamExt;

use orgsync_domain::membership::{Member, MemberId};
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::MemberWrites;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, Statement, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::record_writes;
use super::rows::{delete_by_member_id, insert_members, write_member_rows, MEMBER_INSERT_COLUMNS};
use super::tombstones::keep_tombstones;
use super::{SqlMembershipRepository, BATCH};
use crate::db::{analyze_after_bulk_write, db_err};
use crate::filter_sql::Sql;

/// Members written per transaction. A switch that adds a million members is
/// two hundred transactions, not one: a single one would hold its row locks
/// and its million uncommitted member, audit and event rows for a minute,
/// and every reader of those tables' indexes (the event sequencer polls
/// them) steps over each uncommitted row, again and again. Committed as they
/// go, the events are numbered and delivered while the rest is written.
const MEMBERS_PER_TRANSACTION: usize = 5_000;

/// Share transactions of one phase written at once (as far as the process's
/// bulk budget allows, [`SqlMembershipRepository::bulk_transactions`]). The
/// work is a chain of round trips (orgsync builds a statement, PostgreSQL
/// runs it); with several in flight both the service and the database stay
/// busy, where one left a core idle. Shares of a phase touch distinct
/// members, so they take no lock another waits for but the tenant's event
/// numbering at the end.
const SHARES_IN_FLIGHT: usize = 3;

/// Removals first, then updates, then adds, each in transactions of
/// [`MEMBERS_PER_TRANSACTION`]: a member linked twice is removed before
/// anything else claims its directory user. A `PreconditionFailed` stops
/// the phase at the transaction that found the change (the one in flight
/// beside it is dropped: rolled back, unless its commit was already on its
/// way); those committed are applied whole (with their audit and events),
/// and a re-plan finds them done.
pub(super) async fn apply(
    repo: &SqlMembershipRepository,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    let total = writes.added.len() + writes.updated.len() + writes.removed.len();
    if total <= MEMBERS_PER_TRANSACTION {
        apply_in_one_transaction(repo, org, writes).await?;
        return refresh_statistics(repo, total).await;
    }
    let removals = writes.removed.chunks(MEMBERS_PER_TRANSACTION);
    apply_shares(
        repo,
        org,
        removals.map(|removed| part(writes, &[], &[], removed)),
    )
    .await?;
    let updates = writes.updated.chunks(MEMBERS_PER_TRANSACTION);
    apply_shares(
        repo,
        org,
        updates.map(|updated| part(writes, &[], updated, &[])),
    )
    .await?;
    let adds = writes.added.chunks(MEMBERS_PER_TRANSACTION);
    apply_shares(repo, org, adds.map(|added| part(writes, added, &[], &[]))).await?;
    refresh_statistics(repo, total).await
}

/// Each share in its own transaction, [`SHARES_IN_FLIGHT`] at a time; the
/// first failure stops the rest.
async fn apply_shares<'w>(
    repo: &SqlMembershipRepository,
    org: OrgId,
    shares: impl Iterator<Item = MemberWrites<'w>>,
) -> Result<()> {
    futures::stream::iter(shares.map(Ok))
        .try_for_each_concurrent(SHARES_IN_FLIGHT, |share| async move {
            let _permit = repo
                .bulk_transactions
                .acquire()
                .await
                .map_err(|e| Error::Internal(e.into()))?;
            apply_in_one_transaction(repo, org, &share).await
        })
        .await
}

/// One transaction's share of `writes`.
fn part<'w>(
    writes: &MemberWrites<'w>,
    added: &[&'w Member],
    updated: &[(Member, &'w Member)],
    removed: &[&'w Member],
) -> MemberWrites<'w> {
    let ids: HashSet<MemberId> = added.iter().map(|m| m.id).collect();
    MemberWrites {
        added: added.to_vec(),
        updated: updated
            .iter()
            .map(|(after, before)| (after.clone(), *before))
            .collect(),
        removed: removed.to_vec(),
        relinked: writes
            .relinked
            .iter()
            .copied()
            .filter(|id| ids.contains(id))
            .collect(),
        actor: writes.actor.clone(),
        at: writes.at,
    }
}

/// After a bulk write, the tables it grew get fresh planner statistics, so
/// the next lookups by directory user and the export's pages keep their
/// index plans (see [`analyze_after_bulk_write`]).
async fn refresh_statistics(repo: &SqlMembershipRepository, written: usize) -> Result<()> {
    for table in ["members", "events", "audit_events"] {
        analyze_after_bulk_write(repo.db.connection(), table, written).await?;
    }
    Ok(())
}

async fn apply_in_one_transaction(
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
    // Most updates keep the keys (directory user, email): role, seat, name,
    // attributes, status. Those are updated in place: no indexed column
    // changes, so PostgreSQL adds no index entry where the page has room (a
    // HOT update), where delete + insert added one to every index. One that
    // moves a key is rewritten (deleted, then
    // inserted with the others): two members trading a directory user or an
    // email in one statement would collide row by row.
    let (mut in_place, mut moving): (Vec<&Member>, Vec<&Member>) = (Vec::new(), Vec::new());
    for (after, before) in &writes.updated {
        if keeps_its_keys(before, after) {
            in_place.push(after);
        } else {
            moving.push(after);
        }
    }
    update_in_place(&txn, org, &in_place).await?;
    let moving_ids: Vec<MemberId> = moving.iter().map(|m| m.id).collect();
    delete_by_member_id(&txn, "members", "id", org, &moving_ids).await?;
    insert_members(&txn, &moving).await?;
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

fn keeps_its_keys(before: &Member, after: &Member) -> bool {
    before.directory_user_id == after.directory_user_id && before.email == after.email
}

/// Rewrites every column but the keys of `members` (ids, org, directory
/// user, email) from the values given.
async fn update_in_place(txn: &DatabaseTransaction, org: OrgId, members: &[&Member]) -> Result<()> {
    // A CTE with named columns reads the same on PostgreSQL and SQLite
    // (which cannot name a VALUES list's columns in FROM).
    write_member_rows(txn, members, |rows, sql| {
        format!(
            "WITH v ({MEMBER_INSERT_COLUMNS}) AS (VALUES {rows}) \
             UPDATE members SET name = v.name, role = v.role, seat_tier = v.seat_tier, \
             spend_limit_minor = v.spend_limit_minor, spend_limit_currency = v.spend_limit_currency, \
             public_metadata = v.public_metadata, status = v.status, source = v.source, \
             updated_at = v.updated_at \
             FROM v WHERE members.org_id = {} AND members.id = v.id",
            sql.bind(org.0)
        )
    })
    .await
    .map_err(db_err)
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
