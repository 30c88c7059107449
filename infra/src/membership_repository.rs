//! Members and the settings that decide them, on PostgreSQL or SQLite.
//! A planned change set is applied in one transaction with multi-row
//! statements (500 rows each): never one round trip per member.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use orgsync_domain::audit::AuditEntry;
use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::error::ConflictCode;
use orgsync_domain::membership::{
    AttributeDefinition, Member, MemberId, MemberSource, MemberStatus, Role, SeatTier, SpendLimit,
};
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{MemberWrites, MembershipRepository};
use orgsync_domain::sync::{CustomRole, MemberFilter, MembershipSettings, RelinkRule};
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, FromQueryResult, Statement, TransactionTrait, Value,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit_log::insert_entries;
use crate::db::{db_err, sql_err};
use crate::filter_sql::Sql;
use crate::Database;

const BATCH: usize = 500;

const MEMBER_COLUMNS: &str = "id, org_id, directory_user_id, email, name, role, seat_tier, \
    spend_limit_minor, spend_limit_currency, public_metadata, status, source, created_at, updated_at";

pub struct SqlMembershipRepository {
    db: Database,
}

impl SqlMembershipRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.backend(), sql, values)
    }
}

#[derive(FromQueryResult)]
struct MemberRow {
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

fn member_values(m: &Member, sql: &mut Sql) -> String {
    let metadata = serde_json::to_string(&m.public_metadata).unwrap_or_else(|_| "{}".into());
    format!(
        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        sql.bind(m.id.0),
        sql.bind(m.org_id.0),
        sql.bind(m.directory_user_id),
        sql.bind(m.email.clone()),
        sql.bind(m.email.to_lowercase()),
        sql.bind(m.name.clone()),
        sql.bind(m.role.as_str().to_owned()),
        sql.bind(m.seat_tier.as_ref().map(|t| t.as_str().to_owned())),
        sql.bind(m.spend_limit.as_ref().map(SpendLimit::amount_minor)),
        sql.bind(m.spend_limit.as_ref().map(|l| l.currency().to_owned())),
        sql.bind(metadata),
        sql.bind(m.status.as_str().to_owned()),
        sql.bind(m.source.as_str().to_owned()),
        sql.bind(m.created_at),
        sql.bind(m.updated_at),
    )
}

async fn insert_members(txn: &DatabaseTransaction, members: &[&Member]) -> Result<()> {
    for chunk in members.chunks(BATCH) {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk.iter().map(|m| member_values(m, &mut sql)).collect();
        let text = format!(
            "INSERT INTO members (id, org_id, directory_user_id, email, email_lower, name, role, seat_tier, \
             spend_limit_minor, spend_limit_currency, public_metadata, status, source, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            text,
            sql.values,
        ))
        .await
        .map_err(|e| sql_err(e, "a member for this directory user already exists"))?;
    }
    Ok(())
}

async fn delete_members(txn: &DatabaseTransaction, org: OrgId, ids: &[MemberId]) -> Result<()> {
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::default();
        let org_param = sql.bind(org.0);
        let list: Vec<String> = chunk.iter().map(|id| sql.bind(id.0)).collect();
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "DELETE FROM members WHERE org_id = {org_param} AND id IN ({})",
                list.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// A removed directory member's last state is kept (for relinking), and a
/// relinked one's is used up.
async fn keep_tombstones(
    txn: &DatabaseTransaction,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    for chunk in writes.relinked.chunks(BATCH) {
        let mut sql = Sql::default();
        let org_param = sql.bind(org.0);
        let list: Vec<String> = chunk.iter().map(|id| sql.bind(id.0)).collect();
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "DELETE FROM member_tombstones WHERE org_id = {org_param} AND member_id IN ({})",
                list.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
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

/// One audit entry per member written, in the writes' own transaction,
/// built a batch at a time so memory stays bounded however many there are.
async fn record_writes(
    txn: &DatabaseTransaction,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    let view = |m: &Member| serde_json::to_value(m).ok();
    let entry = |action: &str,
                 id: MemberId,
                 before: Option<serde_json::Value>,
                 after: Option<serde_json::Value>| {
        AuditEntry::new(
            org,
            writes.actor.clone(),
            action,
            ("member", id.0.to_string()),
            before,
            after,
            writes.at,
        )
    };
    let relinked: std::collections::HashSet<MemberId> = writes.relinked.iter().copied().collect();
    for chunk in writes.added.chunks(BATCH) {
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|m| {
                let action = if relinked.contains(&m.id) {
                    "member.relinked"
                } else {
                    "member.created"
                };
                entry(action, m.id, None, view(m))
            })
            .collect();
        insert_entries(txn, &entries).await?;
    }
    for chunk in writes.updated.chunks(BATCH) {
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|(after, before)| {
                let action = match (before.status, after.status) {
                    (MemberStatus::Active, MemberStatus::Suspended) => "member.suspended",
                    (MemberStatus::Suspended, MemberStatus::Active) => "member.reactivated",
                    _ => "member.updated",
                };
                let (before, after_view) = changed_fields(before, after);
                entry(action, after.id, Some(before), Some(after_view))
            })
            .collect();
        insert_entries(txn, &entries).await?;
    }
    for chunk in writes.removed.chunks(BATCH) {
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|m| entry("member.removed", m.id, view(m), None))
            .collect();
        insert_entries(txn, &entries).await?;
    }
    Ok(())
}

/// The fields an update changed, before and after (not the whole member:
/// a resync may update 100,000 members, and their audit stays small).
fn changed_fields(before: &Member, after: &Member) -> (serde_json::Value, serde_json::Value) {
    use serde_json::{Map, Value as Json};
    let (Ok(Json::Object(before)), Ok(Json::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return (Json::Null, Json::Null);
    };
    let mut was = Map::new();
    let mut now = Map::new();
    for (key, value) in after {
        let old = before.get(&key).cloned().unwrap_or(Json::Null);
        if key != "updated_at" && old != value {
            was.insert(key.clone(), old);
            now.insert(key, value);
        }
    }
    (Json::Object(was), Json::Object(now))
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

fn rows_to_members(rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    rows.into_iter().map(Member::try_from).collect()
}

#[async_trait::async_trait]
impl MembershipRepository for SqlMembershipRepository {
    async fn count_members(&self, org: OrgId) -> Result<u64> {
        #[derive(FromQueryResult)]
        struct Row {
            members: i64,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT COUNT(*) AS members FROM members WHERE org_id = $1",
            vec![org.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map_or(0, |r| u64::try_from(r.members).unwrap_or(0)))
    }

    async fn all_members(&self, org: OrgId) -> Result<Vec<Member>> {
        // Streamed: raw rows are converted one by one instead of all held first.
        let mut rows = MemberRow::find_by_statement(self.stmt(
            &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 ORDER BY id"),
            vec![org.0.into()],
        ))
        .stream(self.db.connection())
        .await
        .map_err(db_err)?;
        let mut members = Vec::new();
        while let Some(row) = rows.next().await {
            members.push(Member::try_from(row.map_err(db_err)?)?);
        }
        Ok(members)
    }

    async fn list_members(
        &self,
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
            let members = match self.db.backend() {
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
        let rows = MemberRow::find_by_statement(self.stmt(
            &format!(
                "SELECT {} FROM members m WHERE {} ORDER BY m.id LIMIT {limit}",
                MEMBER_COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", "),
                conditions.join(" AND ")
            ),
            sql.values,
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows_to_members(rows)?,
            page.limit,
            |m| m.id.0,
        ))
    }

    async fn find_member(&self, org: OrgId, id: MemberId) -> Result<Option<Member>> {
        let row = MemberRow::find_by_statement(self.stmt(
            &format!("SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND id = $2"),
            vec![org.0.into(), id.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        row.map(Member::try_from).transpose()
    }

    async fn find_by_directory_users(
        &self,
        org: OrgId,
        users: &[ResourceId],
    ) -> Result<Vec<Member>> {
        let mut out = Vec::new();
        for chunk in users.chunks(BATCH) {
            let mut sql = Sql::default();
            let org_param = sql.bind(org.0);
            let ids: Vec<String> = chunk.iter().map(|u| sql.bind(*u)).collect();
            let rows = MemberRow::find_by_statement(self.stmt(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = {org_param} AND directory_user_id IN ({})",
                    ids.join(", ")
                ),
                sql.values,
            ))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
            out.extend(rows_to_members(rows)?);
        }
        Ok(out)
    }

    async fn insert_member(&self, member: &Member) -> Result<()> {
        let taken = self
            .db
            .connection()
            .query_one(self.stmt(
                "SELECT 1 AS one FROM members WHERE org_id = $1 AND email_lower = $2",
                vec![member.org_id.0.into(), member.email.to_lowercase().into()],
            ))
            .await
            .map_err(db_err)?;
        if taken.is_some() {
            return Err(Error::conflict(
                ConflictCode::AlreadyExists,
                "a member with this email already exists",
            ));
        }
        // The check above answers the common case; a unique index settles a
        // race between two adds of the same email.
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        insert_members(&txn, &[member]).await.map_err(|e| match e {
            Error::Conflict { .. } => Error::conflict(
                ConflictCode::AlreadyExists,
                "a member with this email already exists",
            ),
            other => other,
        })?;
        txn.commit().await.map_err(db_err)
    }

    async fn update_member(&self, m: &Member) -> Result<()> {
        let metadata = serde_json::to_string(&m.public_metadata).unwrap_or_else(|_| "{}".into());
        let result = self
            .db
            .connection()
            .execute(self.stmt(
                "UPDATE members SET name = $1, role = $2, seat_tier = $3, spend_limit_minor = $4, spend_limit_currency = $5, \
                 public_metadata = $6, status = $7, updated_at = $8 WHERE org_id = $9 AND id = $10",
                vec![
                    m.name.clone().into(),
                    m.role.as_str().to_owned().into(),
                    m.seat_tier.as_ref().map(|t| t.as_str().to_owned()).into(),
                    m.spend_limit.as_ref().map(SpendLimit::amount_minor).into(),
                    m.spend_limit.as_ref().map(|l| l.currency().to_owned()).into(),
                    metadata.into(),
                    m.status.as_str().to_owned().into(),
                    m.updated_at.into(),
                    m.org_id.0.into(),
                    m.id.0.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound { entity: "member" });
        }
        Ok(())
    }

    async fn delete_member(&self, org: OrgId, id: MemberId) -> Result<()> {
        let result = self
            .db
            .connection()
            .execute(self.stmt(
                "DELETE FROM members WHERE org_id = $1 AND id = $2",
                vec![org.0.into(), id.0.into()],
            ))
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound { entity: "member" });
        }
        Ok(())
    }

    async fn apply(&self, org: OrgId, writes: &MemberWrites<'_>) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
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
        delete_members(&txn, org, &removed_ids).await?;
        // An update rewrites the member's row (same id, same created_at): with
        // multi-row statements that is two set-based steps on both engines.
        let updated_ids: Vec<MemberId> = writes.updated.iter().map(|(after, _)| after.id).collect();
        let updated: Vec<&Member> = writes.updated.iter().map(|(after, _)| after).collect();
        delete_members(&txn, org, &updated_ids).await?;
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

    async fn relinkable(
        &self,
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
        let any = Any::find_by_statement(self.stmt(
            "SELECT 1 AS one FROM member_tombstones WHERE org_id = $1 AND removed_at > $2 LIMIT 1",
            vec![org.0.into(), rule.since.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        if any.is_none_or(|row| row.one != 1) {
            return Ok(Vec::new());
        }
        // By externalId: the old user was deleted from this directory and
        // carried the same externalId. By email: the old user is gone from
        // this directory (or was another directory's) and the member had
        // this email. The newest removal wins when several match.
        let by_external_id =
            "JOIN directory_user_tombstones t ON t.connection_id = u.connection_id \
             AND t.external_id = u.external_id AND t.user_id <> u.id AND t.deleted_at > {since} \
             JOIN member_tombstones m ON m.org_id = {org} AND m.directory_user_id = t.user_id \
             AND m.removed_at > {since}";
        let by_email = "JOIN member_tombstones m ON m.org_id = {org} AND m.email = lower(u.email) \
             AND m.directory_user_id <> u.id AND m.removed_at > {since} \
             AND NOT EXISTS (SELECT 1 FROM directory_users still \
               WHERE still.connection_id = u.connection_id AND still.id = m.directory_user_id)";
        let mut joins = vec![by_external_id];
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
                let rows = Row::find_by_statement(self.stmt(
                    &format!(
                        "SELECT u.id AS user_id, m.member FROM directory_users u {join} \
                         WHERE u.connection_id = {conn_param} AND u.id IN ({}) ORDER BY m.removed_at",
                        list.join(", ")
                    ),
                    sql.values,
                ))
                .all(self.db.connection())
                .await
                .map_err(db_err)?;
                let mut newest: HashMap<ResourceId, String> = HashMap::new();
                for row in rows {
                    newest.insert(row.user_id, row.member);
                }
                for (user, member) in newest {
                    // externalId matches come first and win.
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

    async fn purge_tombstones(&self, before: OffsetDateTime) -> Result<()> {
        for table in [
            "DELETE FROM member_tombstones WHERE removed_at < $1",
            "DELETE FROM directory_user_tombstones WHERE deleted_at < $1",
        ] {
            self.db
                .connection()
                .execute(self.stmt(table, vec![before.into()]))
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn settings(&self, org: OrgId) -> Result<MembershipSettings> {
        #[derive(FromQueryResult)]
        struct Row {
            group_mappings: String,
            deprovision: String,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT group_mappings, deprovision FROM org_membership_settings WHERE org_id = $1",
            vec![org.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(MembershipSettings::default());
        };
        Ok(MembershipSettings {
            mappings: serde_json::from_str(&row.group_mappings).map_err(|e| {
                Error::Internal(anyhow::anyhow!("org {org}: corrupt group mappings: {e}"))
            })?,
            deprovision: serde_json::from_value(serde_json::Value::String(row.deprovision))
                .map_err(|e| {
                    Error::Internal(anyhow::anyhow!("org {org}: corrupt deprovision: {e}"))
                })?,
        })
    }

    async fn save_settings(
        &self,
        org: OrgId,
        settings: &MembershipSettings,
        now: OffsetDateTime,
    ) -> Result<()> {
        let mappings =
            serde_json::to_string(&settings.mappings).map_err(|e| Error::Internal(e.into()))?;
        let deprovision = serde_json::to_value(settings.deprovision)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "remove".into());
        self.db
            .connection()
            .execute(self.stmt(
                "INSERT INTO org_membership_settings (org_id, group_mappings, deprovision, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id) DO UPDATE SET group_mappings = excluded.group_mappings, \
                 deprovision = excluded.deprovision, updated_at = excluded.updated_at",
                vec![org.0.into(), mappings.into(), deprovision.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn roles(&self, org: OrgId) -> Result<Vec<CustomRole>> {
        #[derive(FromQueryResult)]
        struct Row {
            name: String,
            capabilities: String,
        }
        let rows = Row::find_by_statement(self.stmt(
            "SELECT name, capabilities FROM org_roles WHERE org_id = $1 ORDER BY name",
            vec![org.0.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(CustomRole {
                    name: Role::parse(&r.name)
                        .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt role {}", r.name)))?,
                    capabilities: serde_json::from_str(&r.capabilities).map_err(|e| {
                        Error::Internal(anyhow::anyhow!("corrupt capabilities: {e}"))
                    })?,
                })
            })
            .collect()
    }

    async fn save_roles(&self, org: OrgId, roles: &[CustomRole]) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.stmt(
            "DELETE FROM org_roles WHERE org_id = $1",
            vec![org.0.into()],
        ))
        .await
        .map_err(db_err)?;
        for role in roles {
            let capabilities =
                serde_json::to_string(&role.capabilities).map_err(|e| Error::Internal(e.into()))?;
            txn.execute(self.stmt(
                "INSERT INTO org_roles (org_id, name, capabilities) VALUES ($1, $2, $3)",
                vec![
                    org.0.into(),
                    role.name.as_str().to_owned().into(),
                    capabilities.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)
    }

    async fn seat_tiers(&self, org: OrgId) -> Result<Vec<SeatTier>> {
        #[derive(FromQueryResult)]
        struct Row {
            name: String,
        }
        let rows = Row::find_by_statement(self.stmt(
            "SELECT name FROM org_seat_tiers WHERE org_id = $1 ORDER BY position",
            vec![org.0.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                SeatTier::parse(&r.name)
                    .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt seat tier {}", r.name)))
            })
            .collect()
    }

    async fn save_seat_tiers(&self, org: OrgId, tiers: &[SeatTier]) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.stmt(
            "DELETE FROM org_seat_tiers WHERE org_id = $1",
            vec![org.0.into()],
        ))
        .await
        .map_err(db_err)?;
        for (position, tier) in tiers.iter().enumerate() {
            txn.execute(self.stmt(
                "INSERT INTO org_seat_tiers (org_id, name, position) VALUES ($1, $2, $3)",
                vec![
                    org.0.into(),
                    tier.as_str().to_owned().into(),
                    i32::try_from(position).unwrap_or(i32::MAX).into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)
    }

    async fn attributes(&self, conn: ConnectionId) -> Result<Vec<AttributeDefinition>> {
        #[derive(FromQueryResult)]
        struct Row {
            definitions: String,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT definitions FROM connection_attributes WHERE connection_id = $1",
            vec![conn.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        match row {
            None => Ok(Vec::new()),
            Some(row) => serde_json::from_str(&row.definitions).map_err(|e| {
                Error::Internal(anyhow::anyhow!(
                    "connection {conn}: corrupt attribute definitions: {e}"
                ))
            }),
        }
    }

    async fn save_attributes(
        &self,
        conn: ConnectionId,
        definitions: &[AttributeDefinition],
        now: OffsetDateTime,
    ) -> Result<()> {
        let text = serde_json::to_string(definitions).map_err(|e| Error::Internal(e.into()))?;
        self.db
            .connection()
            .execute(self.stmt(
                "INSERT INTO connection_attributes (connection_id, definitions, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (connection_id) DO UPDATE SET definitions = excluded.definitions, updated_at = excluded.updated_at",
                vec![conn.0.into(), text.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn cursor(&self, org: OrgId, conn: ConnectionId) -> Result<Option<i64>> {
        #[derive(FromQueryResult)]
        struct Row {
            applied_seq: i64,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT applied_seq FROM org_directory_cursors WHERE org_id = $1 AND connection_id = $2",
            vec![org.0.into(), conn.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| r.applied_seq))
    }

    async fn set_cursor(
        &self,
        org: OrgId,
        conn: ConnectionId,
        applied_seq: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        // Never moves backwards: a slow worker finishing late cannot undo a faster one's progress.
        self.db
            .connection()
            .execute(self.stmt(
                "INSERT INTO org_directory_cursors (org_id, connection_id, applied_seq, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id) DO UPDATE SET \
                 applied_seq = CASE WHEN org_directory_cursors.connection_id = excluded.connection_id \
                   AND org_directory_cursors.applied_seq > excluded.applied_seq \
                   THEN org_directory_cursors.applied_seq ELSE excluded.applied_seq END, \
                 connection_id = excluded.connection_id, updated_at = excluded.updated_at",
                vec![org.0.into(), conn.0.into(), applied_seq.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
