use std::time::Duration;

use time::OffsetDateTime;

use crate::events::Event;
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::webhooks::{DeliveryId, SigningSecrets, WebhookDelivery, WebhookEndpoint, WebhookId};
use crate::Result;

/// Stores webhook endpoints and their deliveries. Every method is scoped by
/// the org.
#[async_trait::async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Saves a new endpoint while its org has fewer than `at_most` (decided
    /// in the insert's transaction); it receives the org's events from now on.
    ///
    /// # Errors
    /// `Conflict(LimitReached)` when the org has its share of endpoints.
    async fn create(&self, endpoint: &WebhookEndpoint, secret: &str, at_most: u64) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures.
    async fn list(&self, org: OrgId) -> Result<Vec<WebhookEndpoint>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn find(&self, org: OrgId, id: WebhookId) -> Result<Option<WebhookEndpoint>>;

    /// Saves url, events, description and `enabled` (re-enabling clears
    /// the reason it was disabled).
    ///
    /// # Errors
    /// MUST return `NotFound` when the endpoint does not exist.
    async fn update(&self, endpoint: &WebhookEndpoint) -> Result<()>;

    /// # Errors
    /// MUST return `NotFound` when the endpoint does not exist.
    async fn delete(&self, org: OrgId, id: WebhookId) -> Result<()>;

    /// # Errors
    /// MUST return `NotFound` when the endpoint does not exist.
    async fn secrets(&self, org: OrgId, id: WebhookId) -> Result<SigningSecrets>;

    /// Makes `secret` the current one; the one it replaces keeps signing
    /// until `previous_until`.
    ///
    /// # Errors
    /// MUST return `NotFound` when the endpoint does not exist.
    async fn rotate_secret(
        &self,
        org: OrgId,
        id: WebhookId,
        secret: &str,
        previous_until: OffsetDateTime,
    ) -> Result<()>;

    /// The endpoint's deliveries, newest first.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn deliveries(
        &self,
        org: OrgId,
        id: WebhookId,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>>;

    /// Schedules a delivery again, now, whatever its state.
    ///
    /// # Errors
    /// MUST return `NotFound` when the delivery is not the endpoint's.
    async fn retry(
        &self,
        org: OrgId,
        id: WebhookId,
        delivery: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<WebhookDelivery>;
}

/// What one attempt to deliver came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    pub latency: Duration,
    /// Why the attempt failed (a refused target, a timeout, a non-2xx answer).
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends one signed event to one URL, refusing targets inside the
/// operator's network (as resolved at send time).
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    async fn send(&self, url: &str, secrets: &[&str], event: &Event) -> Attempt;
}
