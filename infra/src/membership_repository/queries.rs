//! Reading members: counts, whole-org reads for sync (streamed), filtered
//! pages for the API, and look-ups by id or by directory user.

use futures::StreamExt;
use orgsync_domain::directory::ResourceId;
use orgsync_domain::membership::{Member, MemberId};
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::sync::MemberFilter;
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};

use super::rows::{rows_to_members, MemberRow, MEMBER_COLUMNS};
use super::{SqlMembershipRepository, BATCH};
use crate::db::{db_err, qualified};
use crate::filter_sql::Sql;

pub(super) async fn count(repo: &SqlMembershipRepository, org: OrgId) -> Result<u64> {
    let sql = "SELECT COUNT(*) FROM members WHERE org_id = $1";
    let members: Option<i64> = repo.db.value(sql, vec![org.0.into()]).await?;
    Ok(members.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

pub(super) async fn all(repo: &SqlMembershipRepository, org: OrgId) -> Result<Vec<Member>> {
    // Streamed: raw rows are converted one by one instead of all held first.
    let mut rows = MemberRow::find_by_statement(repo.db.stmt(
        &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 ORDER BY id"),
        vec![org.0.into()],
    ))
    .stream(repo.db.connection())
    .await
    .map_err(db_err)?;
    let mut members = Vec::new();
    while let Some(row) = rows.next().await {
        members.push(Member::try_from(row.map_err(db_err)?)?);
    }
    Ok(members)
}

/// A page of `org`'s members matching `filter`; `db` is the pool, or an
/// export's snapshot.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    org: OrgId,
    filter: &MemberFilter,
    page: PageRequest,
) -> Result<Page<Member>> {
    let mut sql = Sql::default();
    let mut conditions = vec![format!("m.org_id = {}", sql.bind(org.0))];
    if let Some(after) = page.after {
        conditions.push(format!("m.id > {}", sql.bind(after)));
    }
    if let Some(role) = &filter.role {
        conditions.push(format!("m.role = {}", sql.bind(role.as_str().to_owned())));
    }
    if let Some(tier) = &filter.seat_tier {
        conditions.push(format!(
            "m.seat_tier = {}",
            sql.bind(tier.as_str().to_owned())
        ));
    }
    if let Some(status) = filter.status {
        conditions.push(format!(
            "m.status = {}",
            sql.bind(status.as_str().to_owned())
        ));
    }
    if let Some(group) = filter.group {
        // Members whose directory user is in the group (member values are ids as text).
        let group_param = sql.bind(group);
        let members = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => "m.directory_user_id::text".to_owned(),
            _ => "lower(substr(hex(m.directory_user_id), 1, 8) || '-' || substr(hex(m.directory_user_id), 9, 4) || '-' || \
                  substr(hex(m.directory_user_id), 13, 4) || '-' || substr(hex(m.directory_user_id), 17, 4) || '-' || \
                  substr(hex(m.directory_user_id), 21))"
                .to_owned(),
        };
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM directory_group_members g WHERE g.group_id = {group_param} AND g.member_value = {members})"
        ));
    }
    let limit = sql.bind(i64::try_from(page.limit + 1).unwrap_or(i64::MAX));
    let rows = MemberRow::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!(
            "SELECT {} FROM members m WHERE {} ORDER BY m.id LIMIT {limit}",
            qualified(MEMBER_COLUMNS, "m"),
            conditions.join(" AND ")
        ),
        sql.values,
    ))
    .all(db)
    .await
    .map_err(db_err)?;
    Ok(Page::from_overfetch(
        rows_to_members(rows)?,
        page.limit,
        |m| m.id.0,
    ))
}

pub(super) async fn find(
    repo: &SqlMembershipRepository,
    org: OrgId,
    id: MemberId,
) -> Result<Option<Member>> {
    let row = repo
        .fetch_one::<MemberRow>(
            &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND id = $2"),
            vec![org.0.into(), id.0.into()],
        )
        .await?;
    row.map(Member::try_from).transpose()
}

pub(super) async fn by_directory_users(
    repo: &SqlMembershipRepository,
    org: OrgId,
    users: &[ResourceId],
) -> Result<Vec<Member>> {
    let mut out = Vec::new();
    for chunk in users.chunks(BATCH) {
        let mut sql = Sql::default();
        let org_param = sql.bind(org.0);
        let ids: Vec<String> = chunk.iter().map(|u| sql.bind(*u)).collect();
        let rows = repo
            .fetch_all::<MemberRow>(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = {org_param} AND directory_user_id IN ({})",
                    ids.join(", ")
                ),
                sql.values,
            )
            .await?;
        out.extend(rows_to_members(rows)?);
    }
    Ok(out)
}
