//! A worker's side of webhooks: takes an endpoint (one deliverer at a time,
//! by lease), sends its due deliveries in event order, records every
//! attempt. A failure holds the endpoint's later events back (receivers see
//! events in order) and is retried with backoff; a delivery still failing
//! after the retry window is given up on and the endpoint is disabled, with
//! an event and an audit entry saying why.

use std::sync::Arc;
use std::time::Duration;

use orgsync_domain::audit::{Actor, AuditEntry};
use orgsync_domain::events::{Event, EventType};
use orgsync_domain::ports::{Attempt, WebhookSender};
use orgsync_domain::webhooks::{retry_delay, SigningSecrets, WebhookId};
use orgsync_domain::Result;
use rand::Rng;
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use super::dispatch::QUEUED;
use super::secrets_of;
use crate::audit_log::insert_entries;
use crate::db::db_err;
use crate::events::{insert_events, EventRow};
use crate::filter_sql::Sql;
use crate::Database;

/// How failing deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// From a delivery's first failure until it is given up on.
    pub window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Deliveries read per step.
const STEP: i64 = 100;

/// What was sent, for the operator's metrics.
pub trait DeliveryObserver: Send + Sync {
    fn attempted(&self, attempt: &Attempt);
}

pub struct Deliverer {
    db: Database,
    sender: Arc<dyn WebhookSender>,
    retry: RetryPolicy,
    lease: Duration,
    holder: String,
    observer: Option<Arc<dyn DeliveryObserver>>,
}

struct Due {
    id: Uuid,
    attempts: i32,
    first_failed_at: Option<OffsetDateTime>,
    next_attempt_at: Option<OffsetDateTime>,
    event: Option<Event>,
}

impl Deliverer {
    pub fn new(db: Database, sender: Arc<dyn WebhookSender>, retry: RetryPolicy) -> Self {
        Self {
            db,
            sender,
            retry,
            lease: Duration::from_secs(30),
            holder: format!("deliverer-{}", Uuid::new_v4()),
            observer: None,
        }
    }

    #[must_use]
    pub fn observed_by(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sends the endpoint's due deliveries, oldest event first, until none
    /// is due or one fails. Another deliverer holding the endpoint makes
    /// this a no-op.
    ///
    /// # Errors
    /// Only infrastructure failures (the endpoint is handed out again).
    pub async fn deliver(&self, endpoint: WebhookId) -> Result<()> {
        let Some(url) = self.claim(endpoint).await? else {
            return Ok(());
        };
        let outcome = self.drain(endpoint, &url).await;
        self.release(endpoint).await?;
        outcome
    }

    async fn drain(&self, endpoint: WebhookId, url: &str) -> Result<()> {
        let mut claimed_at = tokio::time::Instant::now();
        loop {
            let now = OffsetDateTime::now_utc();
            let due = self.due(endpoint).await?;
            if due.is_empty() {
                return Ok(());
            }
            let Some(secrets) = secrets_of(self.db.connection(), None, endpoint).await? else {
                return Ok(());
            };
            let mut succeeded: Vec<(Uuid, Attempt, OffsetDateTime)> = Vec::new();
            for delivery in due {
                if delivery.next_attempt_at.is_some_and(|at| at > now) {
                    // Not due yet, and later events wait behind it.
                    self.record_successes(&succeeded).await?;
                    return Ok(());
                }
                let Some(event) = &delivery.event else {
                    self.expire(delivery.id).await?;
                    continue;
                };
                let attempt = self.send(url, &secrets, event).await;
                let at = OffsetDateTime::now_utc();
                if attempt.succeeded() {
                    succeeded.push((delivery.id, attempt, at));
                    continue;
                }
                self.record_successes(&succeeded).await?;
                self.record_failure(endpoint, &delivery, &attempt, at)
                    .await?;
                return Ok(());
            }
            self.record_successes(&succeeded).await?;
            if claimed_at.elapsed() > self.lease / 3 {
                if !self.renew(endpoint).await? {
                    return Ok(());
                }
                claimed_at = tokio::time::Instant::now();
            }
        }
    }

    async fn send(&self, url: &str, secrets: &SigningSecrets, event: &Event) -> Attempt {
        let now = OffsetDateTime::now_utc();
        let attempt = self.sender.send(url, &secrets.in_force(now), event).await;
        if let Some(observer) = &self.observer {
            observer.attempted(&attempt);
        }
        attempt
    }

    /// Takes the endpoint if it is free or merely queued; answers its URL.
    async fn claim(&self, endpoint: WebhookId) -> Result<Option<String>> {
        let now = OffsetDateTime::now_utc();
        self.db
            .value(
                "UPDATE webhook_endpoints SET lease_holder = $1, lease_until = $2 \
                 WHERE id = $3 AND enabled AND (lease_until IS NULL OR lease_until < $4 OR lease_holder = $5) \
                 RETURNING url",
                vec![
                    self.holder.clone().into(),
                    (now + self.lease).into(),
                    endpoint.0.into(),
                    now.into(),
                    QUEUED.into(),
                ],
            )
            .await
    }

    async fn renew(&self, endpoint: WebhookId) -> Result<bool> {
        let result = self
            .db
            .connection()
            .execute(self.db.stmt(
                "UPDATE webhook_endpoints SET lease_until = $1 WHERE id = $2 AND lease_holder = $3",
                vec![
                    (OffsetDateTime::now_utc() + self.lease).into(),
                    endpoint.0.into(),
                    self.holder.clone().into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() == 1)
    }

    async fn release(&self, endpoint: WebhookId) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt(
                "UPDATE webhook_endpoints SET lease_holder = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_holder = $2",
                vec![endpoint.0.into(), self.holder.clone().into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The endpoint's pending deliveries in event order, with their events
    /// (`None` for one whose event has outlived retention).
    async fn due(&self, endpoint: WebhookId) -> Result<Vec<Due>> {
        #[derive(FromQueryResult)]
        struct Row {
            delivery_id: Uuid,
            attempts: i32,
            first_failed_at: Option<OffsetDateTime>,
            next_attempt_at: Option<OffsetDateTime>,
            id: Option<Uuid>,
            org_id: Option<Uuid>,
            seq: Option<i64>,
            event_type: Option<String>,
            occurred_at: Option<OffsetDateTime>,
            data: Option<String>,
            previous: Option<String>,
        }
        let rows = Row::find_by_statement(self.db.stmt(
            "SELECT d.id AS delivery_id, d.attempts, d.first_failed_at, d.next_attempt_at, \
             e.id, e.org_id, e.seq, e.event_type, e.occurred_at, e.data, e.previous \
             FROM webhook_deliveries d LEFT JOIN events e ON e.id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.status = 'pending' ORDER BY d.event_seq LIMIT $2",
            vec![endpoint.0.into(), STEP.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| {
                let event = match (r.id, r.org_id, r.event_type, r.occurred_at, r.data) {
                    (Some(id), Some(org_id), Some(event_type), Some(occurred_at), Some(data)) => {
                        Some(
                            EventRow {
                                id,
                                org_id,
                                seq: r.seq,
                                event_type,
                                occurred_at,
                                data,
                                previous: r.previous,
                            }
                            .into_event()?,
                        )
                    }
                    _ => None,
                };
                Ok(Due {
                    id: r.delivery_id,
                    attempts: r.attempts,
                    first_failed_at: r.first_failed_at,
                    next_attempt_at: r.next_attempt_at,
                    event,
                })
            })
            .collect()
    }

    /// Marks deliveries done, in one statement.
    async fn record_successes(&self, done: &[(Uuid, Attempt, OffsetDateTime)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::default();
        let rows: Vec<String> = done
            .iter()
            .map(|(id, attempt, at)| {
                let params = [
                    sql.bind(*id),
                    sql.bind(i32::from(attempt.status.unwrap_or_default())),
                    sql.bind(millis(attempt.latency)),
                    sql.bind(*at),
                ];
                format!("({})", params.join(", "))
            })
            .collect();
        self.db
            .connection()
            .execute(self.db.stmt(&format!(
                    "UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, \
                     last_status_code = done.column2, last_latency_ms = done.column3, \
                     last_attempt_at = done.column4, delivered_at = done.column4, next_attempt_at = NULL, \
                     last_error = NULL FROM (VALUES {}) AS done WHERE webhook_deliveries.id = done.column1",
                    rows.join(", ")
                ), sql.values))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Records a failed attempt and schedules the next one, or gives up
    /// (and disables the endpoint) once the retry window has passed.
    async fn record_failure(
        &self,
        endpoint: WebhookId,
        delivery: &Due,
        attempt: &Attempt,
        at: OffsetDateTime,
    ) -> Result<()> {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(0) + 1;
        let first_failed = delivery.first_failed_at.unwrap_or(at);
        let exhausted = at - first_failed >= self.retry.window;
        let delay = retry_delay(
            attempts,
            self.retry.base,
            self.retry.cap,
            rand::thread_rng().gen::<f64>(),
        );
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.db.stmt("UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, first_failed_at = $2, \
             next_attempt_at = $3, last_attempt_at = $4, last_status_code = $5, last_latency_ms = $6, \
             last_error = $7 WHERE id = $8", vec![
                if exhausted { "failed" } else { "pending" }.into(),
                first_failed.into(),
                (!exhausted).then_some(at + delay).into(),
                at.into(),
                attempt.status.map(i32::from).into(),
                millis(attempt.latency).into(),
                attempt.error.clone().into(),
                delivery.id.into(),
            ]))
        .await
        .map_err(db_err)?;
        if exhausted {
            self.disable(&txn, endpoint, attempt, at).await?;
        }
        txn.commit().await.map_err(db_err)
    }

    async fn disable(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        endpoint: WebhookId,
        attempt: &Attempt,
        at: OffsetDateTime,
    ) -> Result<()> {
        #[derive(FromQueryResult)]
        struct Row {
            org_id: Uuid,
            url: String,
        }
        let window = self.retry.window.as_secs();
        let window = if window >= 3600 {
            format!("{} h", window / 3600)
        } else {
            format!("{window} s")
        };
        let reason = format!(
            "deliveries failed for {window}; last: {}",
            attempt.error.as_deref().unwrap_or("no answer")
        );
        let Some(row) = Row::find_by_statement(self.db.stmt(
            "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
             WHERE id = $3 AND enabled RETURNING org_id, url",
            vec![reason.clone().into(), at.into(), endpoint.0.into()],
        ))
        .one(txn)
        .await
        .map_err(db_err)?
        else {
            return Ok(());
        };
        tracing::warn!(%endpoint, org = %row.org_id, "webhook endpoint disabled after its retry window");
        let org = orgsync_domain::org::OrgId(row.org_id);
        let detail = serde_json::json!({ "id": endpoint, "url": row.url, "reason": reason });
        insert_events(
            txn,
            &[Event::new(
                org,
                EventType::WebhookEndpointDisabled,
                detail.clone(),
                at,
            )],
        )
        .await?;
        insert_entries(
            txn,
            &[AuditEntry::new(
                org,
                Actor::System,
                "webhook.disabled",
                ("webhook", endpoint.to_string()),
                None,
                Some(detail),
                at,
            )],
        )
        .await
    }

    /// A delivery whose event retention removed: nothing left to send.
    async fn expire(&self, delivery: Uuid) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt("UPDATE webhook_deliveries SET status = 'failed', last_error = 'the event outlived retention' \
                 WHERE id = $1", vec![delivery.into()]))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
