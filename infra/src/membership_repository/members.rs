//! Members written one at a time, at an admin's request, each with its
//! audit entry and its event in the same transaction (one commit). Sync never comes here: its changes go
//! through `apply`, in sets.

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::error::ConflictCode;
use orgsync_domain::events::Event;
use orgsync_domain::membership::{Member, SpendLimit};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, TransactionTrait};

use super::rows::{insert_members, member_values, MEMBER_INSERT_COLUMNS};
use super::SqlMembershipRepository;
use crate::audit_log::{entry_row, insert_entries, AUDIT_COLUMNS};
use crate::db::{db_err, sql_err};
use crate::events::{event_row, insert_events, EVENT_COLUMNS};
use crate::filter_sql::Sql;

fn email_taken() -> Error {
    Error::conflict(
        ConflictCode::AlreadyExists,
        "a member with this email already exists",
    )
}

pub(super) async fn insert(
    repo: &SqlMembershipRepository,
    member: &Member,
    audit: &AuditEntry,
) -> Result<()> {
    let event = Event::member_created(member, member.created_at);
    if repo.db.backend() == DbBackend::Postgres {
        return insert_in_one_statement(repo, member, &event, audit).await;
    }
    let taken = repo
        .db
        .connection()
        .query_one(repo.db.stmt(
            "SELECT 1 AS one FROM members WHERE org_id = $1 AND email_lower = $2",
            vec![member.org_id.0.into(), member.email.to_lowercase().into()],
        ))
        .await
        .map_err(db_err)?;
    if taken.is_some() {
        return Err(email_taken());
    }
    // The check above answers the common case; a unique index settles a
    // race between two adds of the same email.
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    insert_members(&txn, &[member]).await.map_err(|e| match e {
        Error::Conflict { .. } => email_taken(),
        other => other,
    })?;
    insert_events(&txn, &[event]).await?;
    insert_entries(&txn, std::slice::from_ref(audit)).await?;
    txn.commit().await.map_err(db_err)
}

/// PostgreSQL: the email check, the member, its event and its audit entry
/// in one statement (one round trip, one implicit transaction). The event
/// and the entry are written only when the member is.
async fn insert_in_one_statement(
    repo: &SqlMembershipRepository,
    member: &Member,
    event: &Event,
    audit: &AuditEntry,
) -> Result<()> {
    #[derive(FromQueryResult)]
    struct Inserted {
        inserted: i64,
    }
    let mut sql = Sql::default();
    let values = member_values(member, &mut sql);
    let values = values.trim_start_matches('(').trim_end_matches(')');
    let org = sql.bind(member.org_id.0);
    let email = sql.bind(member.email.to_lowercase());
    let event = event_row(event, &mut sql);
    let entry = entry_row(audit, &mut sql)?;
    let text = format!(
        "WITH m AS (INSERT INTO members ({MEMBER_INSERT_COLUMNS}) SELECT {values} \
           WHERE NOT EXISTS (SELECT 1 FROM members WHERE org_id = {org} AND email_lower = {email}) \
           RETURNING id), \
         e AS (INSERT INTO events ({EVENT_COLUMNS}) SELECT {event} FROM m), \
         a AS (INSERT INTO audit_events ({AUDIT_COLUMNS}) SELECT {entry} FROM m) \
         SELECT COUNT(*) AS inserted FROM m"
    );
    let row = Inserted::find_by_statement(repo.db.stmt(&text, sql.values))
        .one(repo.db.connection())
        .await
        // A unique index settles a race between two adds of the same email
        // (or of the same directory user).
        .map_err(|e| sql_err(e, "a member with this email already exists"))?;
    match row {
        Some(Inserted { inserted: 1 }) => Ok(()),
        _ => Err(email_taken()),
    }
}

pub(super) async fn update(
    repo: &SqlMembershipRepository,
    before: &Member,
    m: &Member,
    audit: &AuditEntry,
) -> Result<()> {
    let metadata = serde_json::to_string(&m.public_metadata).unwrap_or_else(|_| "{}".into());
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    let result = txn
        .execute(repo.db.stmt(
            "UPDATE members SET name = $1, role = $2, seat_tier = $3, spend_limit_minor = $4, spend_limit_currency = $5, \
             public_metadata = $6, status = $7, updated_at = $8, email = $9, email_lower = $10 WHERE org_id = $11 AND id = $12",
            vec![
                m.name.clone().into(),
                m.role.as_str().to_owned().into(),
                m.seat_tier.as_ref().map(|t| t.as_str().to_owned()).into(),
                m.spend_limit.as_ref().map(SpendLimit::amount_minor).into(),
                m.spend_limit.as_ref().map(|l| l.currency().to_owned()).into(),
                metadata.into(),
                m.status.as_str().to_owned().into(),
                m.updated_at.into(),
                m.email.clone().into(),
                m.email.to_lowercase().into(),
                m.org_id.0.into(),
                m.id.0.into(),
            ],
        ))
        .await
        .map_err(|e| sql_err(e, "a member with this email already exists"))?;
    if result.rows_affected() == 0 {
        return Err(Error::NotFound { entity: "member" });
    }
    if let Some(event) = Event::member_changed(before, m, m.updated_at) {
        insert_events(&txn, &[event]).await?;
    }
    insert_entries(&txn, std::slice::from_ref(audit)).await?;
    txn.commit().await.map_err(db_err)
}

pub(super) async fn delete(
    repo: &SqlMembershipRepository,
    member: &Member,
    audit: &AuditEntry,
) -> Result<()> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    let result = txn
        .execute(repo.db.stmt(
            "DELETE FROM members WHERE org_id = $1 AND id = $2",
            vec![member.org_id.0.into(), member.id.0.into()],
        ))
        .await
        .map_err(db_err)?;
    if result.rows_affected() == 0 {
        return Err(Error::NotFound { entity: "member" });
    }
    insert_events(&txn, &[Event::member_removed(member, audit.at)]).await?;
    insert_entries(&txn, std::slice::from_ref(audit)).await?;
    txn.commit().await.map_err(db_err)
}
