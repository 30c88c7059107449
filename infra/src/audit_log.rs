//! The audit log on PostgreSQL or SQLite: insert and read, never update.

use orgsync_domain::audit::{Actor, AuditEntry, AuditFilter};
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::AuditLog;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::db_err;
use crate::filter_sql::Sql;
use crate::Database;

pub struct SqlAuditLog {
    db: Database,
}

impl SqlAuditLog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn actor_columns(actor: &Actor) -> (&'static str, String) {
    match actor {
        Actor::Admin { subject, .. } => ("admin", subject.clone()),
        Actor::Scim { connection_id } => ("scim", connection_id.to_string()),
        Actor::Sync { job_id } => ("sync", job_id.to_string()),
        Actor::System => ("system", "orgsync".to_owned()),
        Actor::SignIn { subject, .. } => ("sign_in", subject.clone()),
    }
}

/// Rows of audit entries per statement (11 parameters each).
const ENTRIES_PER_STATEMENT: usize = 500;

/// The columns an audit row is written with, in [`entry_row`]'s order.
pub(crate) const AUDIT_COLUMNS: &str = "id, org_id, actor_kind, actor, actor_detail, action, \
    target_kind, target_id, before_state, after_state, at";

/// One entry's values, bound into `sql`: `p1, p2, …` for [`AUDIT_COLUMNS`].
///
/// # Errors
/// When the actor cannot be encoded (never, for the actors there are).
pub(crate) fn entry_row(entry: &AuditEntry, sql: &mut Sql) -> Result<String> {
    entry_row_with_states(&EntryStates::of(entry), sql)
}

/// An entry with its states as JSON text. A bulk write of members has each
/// member's view as text already (its event's payload) and passes it on
/// rather than have a tree of values built and printed again per member.
pub(crate) struct EntryStates<'a> {
    pub entry: &'a AuditEntry,
    pub before: Option<std::borrow::Cow<'a, str>>,
    pub after: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> EntryStates<'a> {
    /// The entry's own states, printed.
    pub(crate) fn of(entry: &'a AuditEntry) -> Self {
        let text = |state: &Option<serde_json::Value>| state.as_ref().map(|v| v.to_string().into());
        Self {
            entry,
            before: text(&entry.before),
            after: text(&entry.after),
        }
    }
}

fn entry_row_with_states(row: &EntryStates<'_>, sql: &mut Sql) -> Result<String> {
    let entry = row.entry;
    let (kind, actor) = actor_columns(&entry.actor);
    let detail = serde_json::to_string(&entry.actor).map_err(|e| Error::Internal(e.into()))?;
    Ok(sql.bind_list([
        entry.id.into(),
        entry.org_id.0.into(),
        kind.into(),
        actor.into(),
        detail.into(),
        entry.action.clone().into(),
        entry.target_kind.clone().into(),
        entry.target_id.clone().into(),
        row.before.as_deref().map(str::to_owned).into(),
        row.after.as_deref().map(str::to_owned).into(),
        entry.at.into(),
    ]))
}

/// Appends `entries` through `conn`: a connection, or the transaction of the
/// change they record, so the change and its record commit together.
pub(crate) async fn insert_entries(
    conn: &impl ConnectionTrait,
    entries: &[AuditEntry],
) -> Result<()> {
    let rows: Vec<EntryStates<'_>> = entries.iter().map(EntryStates::of).collect();
    insert_entries_with_states(conn, &rows).await
}

/// [`insert_entries`] for entries whose states are given as text.
pub(crate) async fn insert_entries_with_states(
    conn: &impl ConnectionTrait,
    entries: &[EntryStates<'_>],
) -> Result<()> {
    for chunk in entries.chunks(ENTRIES_PER_STATEMENT) {
        let mut sql = Sql::default();
        let mut rows = Vec::with_capacity(chunk.len());
        for entry in chunk {
            rows.push(format!("({})", entry_row_with_states(entry, &mut sql)?));
        }
        conn.execute(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES {}",
                rows.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    org_id: Uuid,
    actor_detail: String,
    action: String,
    target_kind: String,
    target_id: String,
    before_state: Option<String>,
    after_state: Option<String>,
    at: OffsetDateTime,
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

#[async_trait::async_trait]
impl AuditLog for SqlAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<()> {
        insert_entries(self.db.connection(), std::slice::from_ref(entry)).await
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut sql = Sql::default();
        let mut conditions = vec![format!("org_id = {}", sql.bind(org.0))];
        // Newest first: ids are time-ordered, so the cursor moves downwards.
        conditions.push(format!(
            "id < {}",
            sql.bind(page.after.unwrap_or(Uuid::max()))
        ));
        if let Some(prefix) = &filter.action_prefix {
            conditions.push(format!(
                "action LIKE {} ESCAPE '\\'",
                sql.bind(format!(
                    "{}%",
                    prefix
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                ))
            ));
        }
        if let Some(target) = &filter.target_id {
            conditions.push(format!("target_id = {}", sql.bind(target.clone())));
        }
        if let Some(actor) = &filter.actor {
            conditions.push(format!("actor = {}", sql.bind(actor.clone())));
        }
        let limit = sql.bind(i64::try_from(page.limit + 1).unwrap_or(i64::MAX));
        let rows = Row::find_by_statement(self.db.stmt(&format!(
                "SELECT id, org_id, actor_detail, action, target_kind, target_id, before_state, after_state, at \
                 FROM audit_events WHERE {} ORDER BY id DESC LIMIT {limit}",
                conditions.join(" AND ")
            ), sql.values))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        let entries = rows
            .into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.id,
                    org_id: OrgId(r.org_id),
                    actor: serde_json::from_str(&r.actor_detail).map_err(|e| {
                        Error::Internal(anyhow::anyhow!("audit {}: corrupt actor: {e}", r.id))
                    })?,
                    action: r.action,
                    target_kind: r.target_kind,
                    target_id: r.target_id,
                    before: json(r.before_state),
                    after: json(r.after_state),
                    at: r.at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(entries, page.limit, |e| e.id))
    }
}
