//! The events outbox on PostgreSQL or SQLite. A change writes its events
//! in its own transaction, unnumbered (`insert_events`); numbering per
//! tenant happens afterwards, in commit order, under the lock of the
//! tenant's row of `event_sequences` ([`sequence_tenant`]), so a reader
//! paging by `seq` sees a committed prefix: an event committed late is
//! numbered late, never behind a reader's cursor. A bulk write numbers its
//! own instead, as the last step of its transaction and under the same lock
//! (`insert_numbered_events`).
//! One sequence per tenant orders an org's events and a subtree's alike;
//! tenants never wait on each other.

use orgsync_domain::events::{Event, EventQuery, EventType, Payload};
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::EventLog;
use orgsync_domain::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, FromQueryResult, Statement,
    TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

pub mod directory;

use crate::db::{db_err, find_replanned, plan_afresh, query_replanned};
use crate::filter_sql::Sql;
use crate::Database;

/// Rows per insert statement (7 parameters each).
const EVENTS_PER_STATEMENT: usize = 1000;

/// The columns an event row is written with, in [`event_row`]'s order.
pub(crate) const EVENT_COLUMNS: &str = "id, org_id, event_type, occurred_at, data, previous";

/// One event's values, bound into `sql`: `p1, p2, …` for [`EVENT_COLUMNS`].
pub(crate) fn event_row(event: &Event, sql: &mut Sql) -> String {
    sql.bind_list([
        event.id.into(),
        event.org_id.0.into(),
        event.event_type.as_str().into(),
        event.occurred_at.into(),
        event.data.as_str().into(),
        event
            .previous
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .into(),
    ])
}

/// Appends `events` through `conn`: the transaction of the change they
/// describe, so that both commit or neither does.
pub(crate) async fn insert_events(conn: &impl ConnectionTrait, events: &[Event]) -> Result<()> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let rows: Vec<String> = chunk
            .iter()
            .map(|event| format!("({})", event_row(event, &mut sql)))
            .collect();
        conn.execute(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "INSERT INTO events ({EVENT_COLUMNS}) VALUES {}",
                rows.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Numbers the committed, unnumbered events of `org`'s tenant in insertion
/// order (ids are time-ordered), continuing the tenant's sequence. Returns
/// the tenant's last number: every event up to it is numbered and visible.
pub async fn sequence_tenant(db: &DatabaseConnection, org: OrgId) -> Result<i64> {
    match root_of(db, org).await? {
        Some(root) => sequence_root(db, root).await,
        None => Ok(0),
    }
}

/// [`sequence_tenant`] for the tenant whose root org is `root`.
pub async fn sequence_root(db: &DatabaseConnection, root: Uuid) -> Result<i64> {
    // A caught-up reader (the common case) takes no lock and writes nothing.
    let unnumbered = query_replanned(
        db,
        "SELECT 1 AS unnumbered FROM events e JOIN organizations o ON o.id = e.org_id \
         WHERE e.seq IS NULL AND o.root_id = $1 LIMIT 1",
        vec![root.into()],
    )
    .await
    .map_err(db_err)?;
    if unnumbered.is_empty() {
        return last_seq(db, root).await;
    }
    let txn = db.begin().await.map_err(db_err)?;
    number_waiting(&txn, root).await?;
    let last = last_seq(&txn, root).await?;
    txn.commit().await.map_err(db_err)?;
    Ok(last)
}

/// Numbers the tenant's committed, unnumbered events, leaving its sequence
/// locked until `txn` ends: concurrent sequencers of one tenant (and bulk
/// writers numbering their own, [`insert_numbered_events`]) queue up.
pub(crate) async fn number_waiting(txn: &DatabaseTransaction, root: Uuid) -> Result<()> {
    plan_afresh(txn).await?;
    let backend = txn.get_database_backend();
    let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [root.into()]);
    // Creates the tenant's sequence on its first events; locks it always.
    txn.execute(stmt(
        "INSERT INTO event_sequences (root_id, last_seq) VALUES ($1, 0) \
         ON CONFLICT (root_id) DO UPDATE SET last_seq = event_sequences.last_seq",
    ))
    .await
    .map_err(db_err)?;
    let numbered = txn
        .execute(stmt(
            "UPDATE events SET root_id = $1, seq = numbered.seq FROM \
             (SELECT e.id, r.last_seq + ROW_NUMBER() OVER (ORDER BY e.id) AS seq \
              FROM events e JOIN organizations o ON o.id = e.org_id JOIN event_sequences r ON r.root_id = o.root_id \
              WHERE o.root_id = $1 AND e.seq IS NULL) AS numbered \
             WHERE events.id = numbered.id",
        ))
        .await
        .map_err(db_err)?
        .rows_affected();
    if numbered > 0 {
        txn.execute(Statement::from_sql_and_values(
            backend,
            "UPDATE event_sequences SET last_seq = last_seq + $1 WHERE root_id = $2",
            [
                i64::try_from(numbered).unwrap_or(i64::MAX).into(),
                root.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// Appends `org`'s `events` already numbered, in the caller's transaction:
/// a bulk write's events (a million for a switch) are then written once,
/// where numbering them afterwards rewrites every row, with a new entry in
/// each of the table's indexes. The tenant's sequence stays locked until
/// the caller commits, so no later number becomes visible before these;
/// events committed earlier and still waiting are numbered first, so the
/// sequence keeps commit order. Call it last before committing: the lock holds up
/// the tenant's other numbering until then.
pub(crate) async fn insert_numbered_events(
    txn: &DatabaseTransaction,
    org: OrgId,
    events: &[Event],
) -> Result<()> {
    let Some(root) = root_of(txn, org).await? else {
        return insert_events(txn, events).await;
    };
    number_waiting(txn, root).await?;
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let reserved = txn
        .query_one(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "UPDATE event_sequences SET last_seq = last_seq + $1 WHERE root_id = $2 RETURNING last_seq",
            [count.into(), root.into()],
        ))
        .await
        .map_err(db_err)?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("tenant {root} has no sequence row")))?
        .try_get::<i64>("", "last_seq")
        .map_err(db_err)?;
    let mut next = reserved - count;
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let mut sql = Sql::default();
        let root_param = sql.bind(root);
        let rows: Vec<String> = chunk
            .iter()
            .map(|event| {
                next += 1;
                format!(
                    "({}, {root_param}, {})",
                    event_row(event, &mut sql),
                    sql.bind(next)
                )
            })
            .collect();
        txn.execute(Statement::from_sql_and_values(
            txn.get_database_backend(),
            format!(
                "INSERT INTO events ({EVENT_COLUMNS}, root_id, seq) VALUES {}",
                rows.join(", ")
            ),
            sql.values,
        ))
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

async fn root_of(conn: &impl ConnectionTrait, org: OrgId) -> Result<Option<Uuid>> {
    let row = conn
        .query_one(Statement::from_sql_and_values(
            conn.get_database_backend(),
            "SELECT root_id FROM organizations WHERE id = $1",
            [org.0.into()],
        ))
        .await
        .map_err(db_err)?;
    row.map(|r| r.try_get::<Uuid>("", "root_id").map_err(db_err))
        .transpose()
}

async fn last_seq(conn: &impl ConnectionTrait, root: Uuid) -> Result<i64> {
    let row = conn
        .query_one(Statement::from_sql_and_values(
            conn.get_database_backend(),
            "SELECT last_seq FROM event_sequences WHERE root_id = $1",
            [root.into()],
        ))
        .await
        .map_err(db_err)?;
    match row {
        Some(row) => row.try_get::<i64>("", "last_seq").map_err(db_err),
        None => Ok(0),
    }
}

/// Root orgs of tenants with events waiting for a number (at most `limit`).
pub async fn tenants_with_unnumbered(db: &DatabaseConnection, limit: u64) -> Result<Vec<Uuid>> {
    #[derive(FromQueryResult)]
    struct Row {
        root_id: Uuid,
    }
    // A skip scan of the unnumbered index: one descent per org that has
    // events waiting, each stopping at its first entry. `DISTINCT` over the
    // index would read every waiting event (a million after a bulk switch,
    // each a heap visit for visibility) on every pass of the dispatcher.
    // Replanned each pass: prepared when the table was empty, its plan
    // scanned every event (see [`query_replanned`]).
    let rows = query_replanned(
        db,
        "WITH RECURSIVE waiting(org_id, n) AS ( \
           SELECT (SELECT org_id FROM events WHERE seq IS NULL ORDER BY org_id LIMIT 1), 1 \
           UNION ALL \
           SELECT (SELECT e.org_id FROM events e WHERE e.seq IS NULL AND e.org_id > w.org_id ORDER BY e.org_id LIMIT 1), w.n + 1 \
           FROM waiting w WHERE w.org_id IS NOT NULL AND w.n < $1) \
         SELECT DISTINCT o.root_id FROM waiting w JOIN organizations o ON o.id = w.org_id",
        vec![i64::try_from(limit).unwrap_or(i64::MAX).into()],
    )
    .await
    .map_err(db_err)?;
    rows.iter()
        .map(|row| Row::from_query_result(row, "").map_err(db_err))
        .map(|row| row.map(|r| r.root_id))
        .collect()
}

#[derive(FromQueryResult)]
pub(crate) struct EventRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub seq: Option<i64>,
    pub event_type: String,
    pub occurred_at: OffsetDateTime,
    pub data: String,
    pub previous: Option<String>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<Event> {
        let id = self.id;
        let json = |text: String| {
            Payload::from_json(text)
                .map_err(|e| Error::Internal(anyhow::anyhow!("event {id}: {e}")))
        };
        Ok(Event {
            id: self.id,
            event_type: EventType::parse(&self.event_type, "event_type")
                .map_err(|e| Error::Internal(anyhow::anyhow!("event {}: {e}", self.id)))?,
            occurred_at: self.occurred_at,
            org_id: OrgId(self.org_id),
            data: json(self.data)?,
            previous: self.previous.map(json).transpose()?,
            seq: self.seq,
        })
    }
}

pub struct SqlEventLog {
    db: Database,
}

impl SqlEventLog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl EventLog for SqlEventLog {
    async fn append(&self, events: &[Event]) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        insert_events(&txn, events).await?;
        txn.commit().await.map_err(db_err)
    }

    async fn read(&self, org: OrgId, query: &EventQuery) -> Result<Vec<Event>> {
        let db = self.db.connection();
        let Some(root) = root_of(db, org).await? else {
            return Ok(Vec::new());
        };
        sequence_root(db, root).await?;
        let mut sql = Sql::default();
        let mut conditions = if query.include_descendants {
            // The tenant's sequence in order, kept to the subtree: the orgs
            // in it now and those deleted from it.
            let top = sql.bind(org.0);
            vec![
                format!("root_id = {}", sql.bind(root)),
                format!(
                    "org_id IN (SELECT descendant_id FROM org_closure WHERE ancestor_id = {top} \
                     UNION ALL SELECT org_id FROM retired_org_ancestors WHERE ancestor_id = {top})"
                ),
            ]
        } else {
            vec![format!("org_id = {}", sql.bind(org.0))]
        };
        conditions.push(format!("seq > {}", sql.bind(query.after.0)));
        if !query.types.is_empty() {
            let names: Vec<String> = query.types.iter().map(|t| sql.bind(t.as_str())).collect();
            conditions.push(format!("event_type IN ({})", names.join(", ")));
        }
        let limit = sql.bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows: Vec<EventRow> = find_replanned(
            db,
            &format!(
                "SELECT id, org_id, seq, event_type, occurred_at, data, previous FROM events \
                 WHERE {} ORDER BY seq LIMIT {limit}",
                conditions.join(" AND ")
            ),
            sql.values,
        )
        .await?;
        rows.into_iter().map(EventRow::into_event).collect()
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64> {
        let db = self.db.connection();
        // Numbered events only: an unnumbered one is still on its way out.
        // Deliveries go with them, but never one still being retried.
        let mut purged = 0;
        for statement in [
            "DELETE FROM events WHERE occurred_at < $1 AND seq IS NOT NULL",
            // An event written for an org after its deletion numbered the
            // org's last ones (a run's or a connection's, landing late) is
            // never numbered: nothing names its tenant any more.
            "DELETE FROM events WHERE occurred_at < $1 AND seq IS NULL \
             AND NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = events.org_id)",
            "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
            // A deleted org's ancestry, once its last events (all older than
            // its deletion) are gone.
            "DELETE FROM retired_org_ancestors WHERE retired_at < $1",
        ] {
            purged += db
                .execute(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    statement,
                    [before.into()],
                ))
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(purged)
    }
}
