//! The outbox dispatcher: publishes directories' change logs as events,
//! numbers new events, turns them into one delivery
//! row per endpoint that wants them (set-based, a page of events at a time,
//! moving each endpoint's cursor in the same transaction), and hands
//! endpoints with due deliveries to the queue. Several dispatchers (one per
//! worker process) may run at once: numbering is serialised per org, and a
//! cursor only moves from the value its dispatcher read.

use std::sync::Arc;
use std::time::Duration;

use orgsync_domain::events::EventType;
use orgsync_domain::ports::{JobQueue, Task};
use orgsync_domain::webhooks::{wanted, DeliveryId, WebhookId};
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::parse_type_list;
use crate::db::{db_err, find_replanned};
use crate::events::{sequence_root, tenants_with_unnumbered};
use crate::filter_sql::Sql;
use crate::Database;

/// Events turned into deliveries per endpoint per step.
const FAN_OUT_PAGE: i64 = 1000;
/// Rows per delivery insert (9 parameters each).
const DELIVERIES_PER_STATEMENT: usize = 500;
pub(crate) const QUEUED: &str = "queued";

pub struct EventDispatcher {
    db: Database,
    queue: Arc<dyn JobQueue>,
    every: Duration,
    reservation: Duration,
    per_tenant: u32,
}

impl EventDispatcher {
    /// Passes run `every` so long; an endpoint handed to the queue stays
    /// reserved for its task for `reservation` (the queue's lease): if the
    /// queue loses the task, the endpoint is handed out again after that.
    /// A tenant has at most `per_tenant` endpoints handed out at once.
    pub fn new(
        db: Database,
        queue: Arc<dyn JobQueue>,
        every: Duration,
        reservation: Duration,
        per_tenant: u32,
    ) -> Self {
        Self {
            db,
            queue,
            every,
            reservation,
            per_tenant: per_tenant.max(1),
        }
    }

    /// Runs passes until `shutdown`; a failed pass is logged and retried.
    /// A pass starts `every` after the last one started, or, when passes
    /// got slow (a million events just written, waiting for numbers), only
    /// after resting three times as long as the last one took: the
    /// dispatcher then keeps to a quarter of one database connection's time
    /// instead of polling back to back beside the writer it waits for.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let started = tokio::time::Instant::now();
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "event dispatch failed; retrying");
            }
            let took = started.elapsed();
            let next = started + self.every.max(took * 4);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// One pass; answers how many endpoints it handed to the queue.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn pass(&self) -> Result<usize> {
        let db = self.db.connection();
        crate::events::directory::publish_directories(db).await?;
        for root in tenants_with_unnumbered(db, 100).await? {
            sequence_root(db, root).await?;
        }
        for endpoint in self.behind().await? {
            self.fan_out(endpoint).await?;
        }
        let due = self.reserve_due().await?;
        for endpoint_id in &due {
            let task = Task::DeliverWebhook {
                endpoint_id: *endpoint_id,
            };
            self.queue.publish(&task.to_job()).await?;
        }
        Ok(due.len())
    }

    /// Enabled endpoints whose cursor is behind their tenant's events.
    async fn behind(&self) -> Result<Vec<Behind>> {
        Behind::find_by_statement(self.db.stmt(
            "SELECT e.id, e.org_id, e.event_types, e.fanned_out_seq, r.last_seq AS event_seq \
             FROM webhook_endpoints e JOIN organizations o ON o.id = e.org_id \
             JOIN event_sequences r ON r.root_id = o.root_id \
             WHERE e.enabled AND e.fanned_out_seq < r.last_seq LIMIT 200",
            vec![],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)
    }

    /// Turns the next page of the endpoint's events into deliveries and
    /// moves its cursor, in one transaction. The tenant's sequence counts
    /// other orgs' events too: a page with fewer events than asked for
    /// moves the cursor to the number `behind` read (all numbered by then).
    async fn fan_out(&self, behind: Behind) -> Result<()> {
        #[derive(FromQueryResult)]
        struct EventKey {
            id: Uuid,
            seq: i64,
            event_type: String,
            occurred_at: OffsetDateTime,
        }
        let (from, upto) = (behind.fanned_out_seq, behind.event_seq);
        let types = parse_type_list(behind.id, &behind.event_types)?;
        let (endpoint, org) = (WebhookId(behind.id), behind.org_id);
        let db = self.db.connection();
        let events: Vec<EventKey> = find_replanned(
            db,
            "SELECT id, seq, event_type, occurred_at FROM events WHERE org_id = $1 AND seq > $2 \
             AND seq <= $3 ORDER BY seq LIMIT $4",
            vec![org.into(), from.into(), upto.into(), FAN_OUT_PAGE.into()],
        )
        .await?;
        let to = match events.last() {
            Some(last) if events.len() as i64 == FAN_OUT_PAGE => last.seq,
            _ => upto,
        };
        let txn = db.begin().await.map_err(db_err)?;
        let moved = txn
            .execute(Statement::from_sql_and_values(
                db.get_database_backend(),
                "UPDATE webhook_endpoints SET fanned_out_seq = $1 WHERE id = $2 AND fanned_out_seq = $3",
                [to.into(), endpoint.0.into(), from.into()],
            ))
            .await
            .map_err(db_err)?;
        if moved.rows_affected() == 0 {
            // Another dispatcher moved it first; it made these deliveries.
            return Ok(());
        }
        let wanted: Vec<&EventKey> = events
            .iter()
            .filter(|e| {
                EventType::parse(&e.event_type, "event_type").is_ok_and(|t| wanted(&types, t))
            })
            .collect();
        let now = OffsetDateTime::now_utc();
        for chunk in wanted.chunks(DELIVERIES_PER_STATEMENT) {
            let mut sql = Sql::default();
            let rows: Vec<String> = chunk
                .iter()
                .map(|e| {
                    let params = [
                        sql.bind(DeliveryId::new().0),
                        sql.bind(endpoint.0),
                        sql.bind(e.id),
                        sql.bind(e.seq),
                        sql.bind(e.event_type.clone()),
                        sql.bind("pending"),
                        sql.bind(e.occurred_at),
                        sql.bind(now),
                    ];
                    format!("({})", params.join(", "))
                })
                .collect();
            txn.execute(Statement::from_sql_and_values(
                db.get_database_backend(),
                format!(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_seq, event_type, status, \
                     next_attempt_at, created_at) VALUES {} ON CONFLICT DO NOTHING",
                    rows.join(", ")
                ),
                sql.values,
            ))
            .await
            .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)
    }

    /// Reserves endpoints with a due delivery and no deliverer, for the
    /// queue; answers them. A tenant (an org's root) has at most
    /// `per_tenant` endpoints reserved or being delivered at once, its turns
    /// drawn at random among its due endpoints: a tenant whose receivers
    /// hang until the timeout holds that many delivery slots, never all of
    /// them, and another tenant's delivery goes out meanwhile.
    async fn reserve_due(&self) -> Result<Vec<WebhookId>> {
        let now = OffsetDateTime::now_utc();
        let ids: Vec<Uuid> = self
            .db
            .column(
                "WITH due AS (SELECT DISTINCT endpoint_id FROM webhook_deliveries \
                   WHERE status = 'pending' AND next_attempt_at <= $3 LIMIT 500), \
                 free AS (SELECT e.id, COALESCE(o.root_id, e.org_id) AS tenant FROM webhook_endpoints e \
                   JOIN due ON due.endpoint_id = e.id LEFT JOIN organizations o ON o.id = e.org_id \
                   WHERE e.enabled AND (e.lease_until IS NULL OR e.lease_until < $3)), \
                 busy AS (SELECT COALESCE(o.root_id, e.org_id) AS tenant, count(*) AS n FROM webhook_endpoints e \
                   LEFT JOIN organizations o ON o.id = e.org_id WHERE e.lease_until >= $3 \
                   GROUP BY COALESCE(o.root_id, e.org_id)), \
                 turns AS (SELECT free.id, COALESCE(busy.n, 0) \
                   + row_number() OVER (PARTITION BY free.tenant ORDER BY random()) AS turn \
                   FROM free LEFT JOIN busy ON busy.tenant = free.tenant) \
                 UPDATE webhook_endpoints SET lease_holder = $1, lease_until = $2 \
                 WHERE id IN (SELECT id FROM turns WHERE turn <= $4) \
                   AND enabled AND (lease_until IS NULL OR lease_until < $3) \
                 RETURNING id",
                vec![
                    QUEUED.into(),
                    (now + self.reservation).into(),
                    now.into(),
                    i64::from(self.per_tenant).into(),
                ],
            )
            .await?;
        Ok(ids.into_iter().map(WebhookId).collect())
    }
}

/// An endpoint behind its tenant's events: where it stands, and the
/// tenant's last number.
#[derive(FromQueryResult)]
struct Behind {
    id: Uuid,
    org_id: Uuid,
    event_types: String,
    fanned_out_seq: i64,
    event_seq: i64,
}
