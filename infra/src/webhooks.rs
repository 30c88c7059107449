//! Webhook endpoints and their deliveries on PostgreSQL or SQLite, and the
//! machinery that pushes events to them:
//!
//! - [`dispatch`]: numbers new events and fans them out into one delivery
//!   row per endpoint that wants them, then hands endpoints to the queue;
//! - [`deliver`]: a worker's side: sends an endpoint's due deliveries in
//!   event order, records each attempt, backs off, disables after the window;
//! - [`sender`]: the signed HTTP POST, refusing private targets at resolve time.

pub mod deliver;
pub mod dispatch;
pub mod sender;

use orgsync_domain::events::EventType;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::WebhookRepository;
use orgsync_domain::webhooks::{
    DeliveryId, DeliveryStatus, SigningSecrets, WebhookDelivery, WebhookEndpoint, WebhookId,
};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{db_err, qualified, room_for_one_more};
use crate::Database;

pub struct SqlWebhookRepository {
    db: Database,
}

impl SqlWebhookRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

const ENDPOINT_COLUMNS: &str =
    "id, org_id, url, event_types, description, enabled, disabled_reason, created_at, updated_at";

#[derive(FromQueryResult)]
struct EndpointRow {
    id: Uuid,
    org_id: Uuid,
    url: String,
    event_types: String,
    description: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// An endpoint's stored `event_types` (comma-separated; empty: every type).
pub(crate) fn parse_type_list(id: Uuid, list: &str) -> Result<Vec<EventType>> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|name| EventType::parse(name, "event_types"))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| Error::Internal(anyhow::anyhow!("webhook {id}: {e}")))
}

impl EndpointRow {
    fn into_endpoint(self) -> Result<WebhookEndpoint> {
        let events = parse_type_list(self.id, &self.event_types)?;
        Ok(WebhookEndpoint {
            id: WebhookId(self.id),
            org_id: OrgId(self.org_id),
            url: self.url,
            events,
            description: self.description,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn type_list(events: &[EventType]) -> String {
    events
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, status, attempts, \
     next_attempt_at, last_attempt_at, last_status_code, last_latency_ms, last_error, created_at, delivered_at";

#[derive(FromQueryResult)]
pub(crate) struct DeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<OffsetDateTime>,
    last_attempt_at: Option<OffsetDateTime>,
    last_status_code: Option<i32>,
    last_latency_ms: Option<i64>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    delivered_at: Option<OffsetDateTime>,
}

impl DeliveryRow {
    pub(crate) fn into_delivery(self) -> Result<WebhookDelivery> {
        let corrupt = |what: &str| Error::Internal(anyhow::anyhow!("delivery {}: {what}", self.id));
        Ok(WebhookDelivery {
            id: DeliveryId(self.id),
            endpoint_id: WebhookId(self.endpoint_id),
            event_id: self.event_id,
            event_type: EventType::parse(&self.event_type, "event_type")
                .map_err(|_| corrupt("unknown event type"))?,
            status: DeliveryStatus::parse(&self.status).ok_or_else(|| corrupt("unknown status"))?,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_status_code: self.last_status_code,
            last_latency_ms: self.last_latency_ms,
            last_error: self.last_error,
            created_at: self.created_at,
            delivered_at: self.delivered_at,
        })
    }
}

#[async_trait::async_trait]
impl WebhookRepository for SqlWebhookRepository {
    async fn create(&self, e: &WebhookEndpoint, secret: &str, at_most: u64) -> Result<()> {
        // The endpoint follows the org's events from those numbered now on:
        // number what is committed first, so it starts from a settled point.
        let from = crate::events::sequence_tenant(self.db.connection(), e.org_id).await?;
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        let endpoints = ("webhook_endpoints", "org_id");
        room_for_one_more(&self.db, &txn, e.org_id.0, endpoints, at_most).await?;
        txn.execute(self.db.stmt(
            "INSERT INTO webhook_endpoints (id, org_id, url, event_types, description, secret, enabled, \
             fanned_out_seq, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![
                e.id.0.into(),
                e.org_id.0.into(),
                e.url.clone().into(),
                type_list(&e.events).into(),
                e.description.clone().into(),
                secret.to_owned().into(),
                e.enabled.into(),
                from.into(),
                e.created_at.into(),
                e.updated_at.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn list(&self, org: OrgId) -> Result<Vec<WebhookEndpoint>> {
        let rows = EndpointRow::find_by_statement(self.db.stmt(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY id"
            ),
            vec![org.0.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        rows.into_iter().map(EndpointRow::into_endpoint).collect()
    }

    async fn find(&self, org: OrgId, id: WebhookId) -> Result<Option<WebhookEndpoint>> {
        let row = EndpointRow::find_by_statement(self.db.stmt(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
            ),
            vec![org.0.into(), id.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        row.map(EndpointRow::into_endpoint).transpose()
    }

    async fn update(&self, e: &WebhookEndpoint) -> Result<()> {
        let result = self
            .db
            .connection()
            .execute(self.db.stmt(
                "UPDATE webhook_endpoints SET url = $1, event_types = $2, description = $3, enabled = $4, \
                 disabled_reason = $5, updated_at = $6 WHERE org_id = $7 AND id = $8",
                vec![
                    e.url.clone().into(),
                    type_list(&e.events).into(),
                    e.description.clone().into(),
                    e.enabled.into(),
                    e.disabled_reason.clone().into(),
                    e.updated_at.into(),
                    e.org_id.0.into(),
                    e.id.0.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        found(result.rows_affected())
    }

    async fn delete(&self, org: OrgId, id: WebhookId) -> Result<()> {
        let result = self
            .db
            .connection()
            .execute(self.db.stmt(
                "DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2",
                vec![org.0.into(), id.0.into()],
            ))
            .await
            .map_err(db_err)?;
        found(result.rows_affected())
    }

    async fn secrets(&self, org: OrgId, id: WebhookId) -> Result<SigningSecrets> {
        secrets_of(self.db.connection(), Some(org), id)
            .await?
            .ok_or(Error::NotFound {
                entity: "webhook endpoint",
            })
    }

    async fn rotate_secret(
        &self,
        org: OrgId,
        id: WebhookId,
        secret: &str,
        previous_until: OffsetDateTime,
    ) -> Result<()> {
        let result = self
            .db
            .connection()
            .execute(self.db.stmt(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $1, \
                 secret = $2 WHERE org_id = $3 AND id = $4",
                vec![
                    previous_until.into(),
                    secret.to_owned().into(),
                    org.0.into(),
                    id.0.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        found(result.rows_affected())
    }

    async fn deliveries(
        &self,
        org: OrgId,
        id: WebhookId,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        let rows = DeliveryRow::find_by_statement(self.db.stmt(
            &format!(
                "SELECT {} FROM webhook_deliveries d WHERE d.endpoint_id = $1 AND d.id < $2 \
                 AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.org_id = $3) \
                 ORDER BY d.id DESC LIMIT $4",
                qualified(DELIVERY_COLUMNS, "d")
            ),
            vec![
                id.0.into(),
                page.after.unwrap_or(Uuid::max()).into(),
                org.0.into(),
                i64::try_from(page.limit + 1).unwrap_or(i64::MAX).into(),
            ],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        let deliveries = rows
            .into_iter()
            .map(DeliveryRow::into_delivery)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(deliveries, page.limit, |d| d.id.0))
    }

    async fn retry(
        &self,
        org: OrgId,
        id: WebhookId,
        delivery: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<WebhookDelivery> {
        let row = DeliveryRow::find_by_statement(self.db.stmt(
            &format!(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, first_failed_at = NULL \
                 WHERE id = $2 AND endpoint_id = $3 \
                 AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = $3 AND e.org_id = $4) \
                 RETURNING {DELIVERY_COLUMNS}"
            ),
            vec![now.into(), delivery.0.into(), id.0.into(), org.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        row.ok_or(Error::NotFound {
            entity: "webhook delivery",
        })?
        .into_delivery()
    }
}

fn found(rows: u64) -> Result<()> {
    if rows == 0 {
        return Err(Error::NotFound {
            entity: "webhook endpoint",
        });
    }
    Ok(())
}

/// An endpoint's signing secrets (of `org`'s endpoint, when given).
pub(crate) async fn secrets_of(
    conn: &impl ConnectionTrait,
    org: Option<OrgId>,
    id: WebhookId,
) -> Result<Option<SigningSecrets>> {
    #[derive(FromQueryResult)]
    struct Row {
        org_id: Uuid,
        secret: String,
        previous_secret: Option<String>,
        previous_secret_until: Option<OffsetDateTime>,
    }
    let row = Row::find_by_statement(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "SELECT org_id, secret, previous_secret, previous_secret_until FROM webhook_endpoints WHERE id = $1",
        [id.0.into()],
    ))
    .one(conn)
    .await
    .map_err(db_err)?;
    Ok(row
        .filter(|r| org.is_none_or(|o| o.0 == r.org_id))
        .map(|r| SigningSecrets {
            current: r.secret,
            previous: r.previous_secret.zip(r.previous_secret_until),
        }))
}
