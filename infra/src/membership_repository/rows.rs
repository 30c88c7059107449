//! How a member is stored: its row and column list, and the batched INSERT
//! and DELETE shared by `apply`, `members` and `tombstones`. A row that no
//! longer parses is an internal error naming the member, not a silent default.

use orgsync_domain::membership::{
    Member, MemberId, MemberSource, MemberStatus, Role, SeatTier, SpendLimit,
};
use orgsync_domain::org::OrgId;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult, Statement, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::BATCH;
use crate::db::{db_err, sql_err};
use crate::filter_sql::Sql;

pub(crate) const MEMBER_COLUMNS: &str = "id, org_id, directory_user_id, email, name, role, seat_tier, \
    spend_limit_minor, spend_limit_currency, public_metadata, status, source, created_at, updated_at";

#[derive(FromQueryResult)]
pub(crate) struct MemberRow {
    id: Uuid,
    org_id: Uuid,
    directory_user_id: Option<Uuid>,
    email: String,
    name: Option<String>,
    role: String,
    seat_tier: Option<String>,
    spend_limit_minor: Option<i64>,
    spend_limit_currency: Option<String>,
    public_metadata: String,
    status: String,
    source: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn corrupt(what: &str, id: Uuid) -> Error {
    Error::Internal(anyhow::anyhow!("member {id}: corrupt {what}"))
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;

    fn try_from(row: MemberRow) -> Result<Self> {
        let id = row.id;
        let spend_limit = match (row.spend_limit_minor, row.spend_limit_currency) {
            (Some(amount), Some(currency)) => {
                Some(SpendLimit::new(amount, &currency).map_err(|_| corrupt("spend limit", id))?)
            }
            _ => None,
        };
        let text = |s: String| serde_json::Value::String(s);
        Ok(Member {
            id: MemberId(id),
            org_id: OrgId(row.org_id),
            directory_user_id: row.directory_user_id,
            email: row.email,
            name: row.name,
            role: Role::parse(&row.role).map_err(|_| corrupt("role", id))?,
            seat_tier: row
                .seat_tier
                .map(|t| SeatTier::parse(&t))
                .transpose()
                .map_err(|_| corrupt("seat tier", id))?,
            spend_limit,
            public_metadata: serde_json::from_str(&row.public_metadata)
                .map_err(|_| corrupt("metadata", id))?,
            status: serde_json::from_value::<MemberStatus>(text(row.status))
                .map_err(|_| corrupt("status", id))?,
            source: serde_json::from_value::<MemberSource>(text(row.source))
                .map_err(|_| corrupt("source", id))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub(crate) fn rows_to_members(rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    rows.into_iter().map(Member::try_from).collect()
}

/// The columns a member row is written with, in [`member_values`]'s order.
pub(super) const MEMBER_INSERT_COLUMNS: &str = "id, org_id, directory_user_id, email, email_lower, name, role, seat_tier, \
    spend_limit_minor, spend_limit_currency, public_metadata, status, source, created_at, updated_at";

/// One member's values, bound into `sql`: `(p1, p2, …)` for [`MEMBER_INSERT_COLUMNS`].
pub(super) fn member_values(m: &Member, sql: &mut Sql) -> String {
    let metadata = serde_json::to_string(&m.public_metadata).unwrap_or_else(|_| "{}".into());
    let values: [Value; 15] = [
        m.id.0.into(),
        m.org_id.0.into(),
        m.directory_user_id.into(),
        m.email.clone().into(),
        m.email.to_lowercase().into(),
        m.name.clone().into(),
        m.role.as_str().to_owned().into(),
        m.seat_tier.as_ref().map(|t| t.as_str().to_owned()).into(),
        m.spend_limit.as_ref().map(SpendLimit::amount_minor).into(),
        m.spend_limit
            .as_ref()
            .map(|l| l.currency().to_owned())
            .into(),
        metadata.into(),
        m.status.as_str().to_owned().into(),
        m.source.as_str().to_owned().into(),
        m.created_at.into(),
        m.updated_at.into(),
    ];
    format!("({})", sql.bind_list(values))
}

pub(super) async fn insert_members(txn: &DatabaseTransaction, members: &[&Member]) -> Result<()> {
    write_member_rows(txn, members, |rows, _| {
        format!("INSERT INTO members ({MEMBER_INSERT_COLUMNS}) VALUES {rows}")
    })
    .await
    .map_err(|e| sql_err(e, "a member for this directory user already exists"))
}

/// Runs the statement `around` makes of each [`BATCH`] of `members`, given
/// as a `VALUES` list of rows in [`MEMBER_INSERT_COLUMNS`] order (and the
/// batch's bindings, for any more it needs).
pub(super) async fn write_member_rows(
    txn: &DatabaseTransaction,
    members: &[&Member],
    around: impl Fn(&str, &mut Sql) -> String,
) -> std::result::Result<(), DbErr> {
    for chunk in members.chunks(BATCH) {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk.iter().map(|m| member_values(m, &mut sql)).collect();
        let text = around(&rows.join(", "), &mut sql);
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            text,
            sql.values,
        ))
        .await?;
    }
    Ok(())
}

/// Deletes the org's rows of `table` (a fixed name) whose `column` holds one
/// of `ids`: members themselves, or what is kept about them.
pub(super) async fn delete_by_member_id(
    txn: &DatabaseTransaction,
    table: &'static str,
    column: &str,
    org: OrgId,
    ids: &[MemberId],
) -> Result<()> {
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::default();
        let org_param = sql.bind(org.0);
        let list: Vec<String> = chunk.iter().map(|id| sql.bind(id.0)).collect();
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "DELETE FROM {table} WHERE org_id = {org_param} AND {column} IN ({})",
                list.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}
