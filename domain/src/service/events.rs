//! Events out: the events API (an org's changes, read by cursor) and the
//! webhook endpoints they are pushed to.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use crate::auth::{Action, Principal};
use crate::events::{Event, EventQuery, EventType, MAX_EVENTS_PAGE};
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::ports::{Attempt, Clock, EventLog, SecretSource, WebhookRepository, WebhookSender};
use crate::service::OrgService;
use crate::webhooks::{
    check_target, DeliveryId, WebhookDelivery, WebhookEndpoint, WebhookId, MAX_DESCRIPTION_LEN,
};
use crate::{Error, Result};

/// How webhook endpoints may be set up.
#[derive(Debug, Clone, Copy)]
pub struct WebhookPolicy {
    /// Admits `http` and private or loopback targets (development, tests).
    pub allow_private_targets: bool,
    /// Endpoints one org may have.
    pub max_endpoints: usize,
    /// How long a rotated-out secret keeps signing beside the new one.
    pub rotation_grace: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            max_endpoints: 20,
            rotation_grace: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Clone)]
pub struct EventPorts {
    pub events: Arc<dyn EventLog>,
    pub webhooks: Arc<dyn WebhookRepository>,
    pub sender: Arc<dyn WebhookSender>,
    pub secrets: Arc<dyn SecretSource>,
    pub clock: Arc<dyn Clock>,
}

/// A new endpoint, as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Clone)]
pub struct EventService {
    orgs: OrgService,
    ports: EventPorts,
    policy: WebhookPolicy,
}

impl EventService {
    pub fn new(orgs: OrgService, ports: EventPorts, policy: WebhookPolicy) -> Self {
        Self {
            orgs,
            ports,
            policy,
        }
    }

    /// An org's events after `after`, oldest first, each with the cursor
    /// that resumes after it.
    ///
    /// # Errors
    /// As [`OrgService::authorize`] with `Read`; `Invalid` for a bad limit.
    pub async fn events(
        &self,
        principal: &Principal,
        org: OrgId,
        query: EventQuery,
    ) -> Result<Vec<Event>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        if query.limit == 0 || query.limit > MAX_EVENTS_PAGE {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_EVENTS_PAGE}"),
            ));
        }
        self.ports.events.read(org, &query).await
    }

    /// Creates an endpoint; its signing secret is answered once, here.
    ///
    /// # Errors
    /// `Invalid` for a target or event type that is not allowed;
    /// `Conflict` when the org has as many endpoints as allowed.
    pub async fn create_endpoint(
        &self,
        principal: &Principal,
        org: OrgId,
        new: NewEndpoint,
    ) -> Result<(WebhookEndpoint, String)> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        let url = check_target(&new.url, self.policy.allow_private_targets)?;
        let events = parse_types(&new.events)?;
        let description = check_description(new.description)?;
        let now = self.ports.clock.now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::new(),
            org_id: org.id,
            url: url.to_string(),
            events,
            description,
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let secret = self.new_secret();
        let most = self.policy.max_endpoints;
        self.ports
            .webhooks
            .create(&endpoint, &secret, most as u64)
            .await
            .map_err(|e| {
                e.when_limit_reached(|| {
                    Error::conflict(
                        crate::error::ConflictCode::LimitReached,
                        format!("an organization has at most {most} webhook endpoints"),
                    )
                })
            })?;
        self.audit(principal, &endpoint, "webhook.created", None)
            .await?;
        Ok((endpoint, secret))
    }

    /// # Errors
    /// As [`OrgService::authorize`] with `Read`.
    pub async fn endpoints(
        &self,
        principal: &Principal,
        org: OrgId,
    ) -> Result<Vec<WebhookEndpoint>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.webhooks.list(org).await
    }

    /// # Errors
    /// `NotFound` for an endpoint not the org's.
    pub async fn endpoint(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
    ) -> Result<WebhookEndpoint> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.find(org, id).await
    }

    /// # Errors
    /// As [`Self::create_endpoint`]; `NotFound`.
    pub async fn update_endpoint(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
        changes: EndpointChanges,
    ) -> Result<WebhookEndpoint> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let before = self.find(org, id).await?;
        let mut endpoint = before.clone();
        if let Some(url) = changes.url {
            endpoint.url = check_target(&url, self.policy.allow_private_targets)?.to_string();
        }
        if let Some(events) = changes.events {
            endpoint.events = parse_types(&events)?;
        }
        if let Some(description) = changes.description {
            endpoint.description = check_description(description)?;
        }
        if let Some(enabled) = changes.enabled {
            endpoint.enabled = enabled;
            if enabled {
                endpoint.disabled_reason = None;
            }
        }
        endpoint.updated_at = self.ports.clock.now();
        self.ports.webhooks.update(&endpoint).await?;
        self.audit(principal, &endpoint, "webhook.updated", Some(&before))
            .await?;
        Ok(endpoint)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn delete_endpoint(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
    ) -> Result<()> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let endpoint = self.find(org, id).await?;
        self.ports.webhooks.delete(org, id).await?;
        self.orgs
            .audit(
                principal,
                org,
                "webhook.deleted",
                ("webhook", id.to_string()),
                serde_json::to_value(&endpoint).ok(),
                None,
            )
            .await
    }

    /// Issues a new signing secret; the old one keeps signing alongside for
    /// the rotation grace, so receivers can switch without missing a beat.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn rotate_secret(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
    ) -> Result<String> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let endpoint = self.find(org, id).await?;
        let secret = self.new_secret();
        let until = self.ports.clock.now() + self.policy.rotation_grace;
        self.ports
            .webhooks
            .rotate_secret(org, id, &secret, until)
            .await?;
        self.orgs
            .audit(
                principal,
                org,
                "webhook.secret_rotated",
                ("webhook", endpoint.id.to_string()),
                None,
                Some(json!({ "previous_signs_until": until.unix_timestamp() })),
            )
            .await?;
        Ok(secret)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn deliveries(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.find(org, id).await?;
        self.ports.webhooks.deliveries(org, id, page).await
    }

    /// Schedules a delivery again (a failed one, or one the receiver lost).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn retry_delivery(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<WebhookDelivery> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        self.find(org, id).await?;
        let now = self.ports.clock.now();
        self.ports.webhooks.retry(org, id, delivery, now).await
    }

    /// Sends a signed `webhook.test` event to the endpoint now and answers
    /// how the receiver took it (it is not recorded as an event).
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn send_test(
        &self,
        principal: &Principal,
        org: OrgId,
        id: WebhookId,
    ) -> Result<Attempt> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let endpoint = self.find(org, id).await?;
        let secrets = self.ports.webhooks.secrets(org, id).await?;
        let now = self.ports.clock.now();
        let event = Event::new(
            org,
            EventType::WebhookTest,
            json!({ "webhook_id": endpoint.id }),
            now,
        );
        Ok(self
            .ports
            .sender
            .send(&endpoint.url, &secrets.in_force(now), &event)
            .await)
    }

    async fn find(&self, org: OrgId, id: WebhookId) -> Result<WebhookEndpoint> {
        self.ports
            .webhooks
            .find(org, id)
            .await?
            .ok_or(Error::NotFound {
                entity: "webhook endpoint",
            })
    }

    fn new_secret(&self) -> String {
        format!("whsec_{}", STANDARD.encode(self.ports.secrets.random_32()))
    }

    async fn audit(
        &self,
        principal: &Principal,
        endpoint: &WebhookEndpoint,
        action: &str,
        before: Option<&WebhookEndpoint>,
    ) -> Result<()> {
        self.orgs
            .audit(
                principal,
                endpoint.org_id,
                action,
                ("webhook", endpoint.id.to_string()),
                before.and_then(|b| serde_json::to_value(b).ok()),
                serde_json::to_value(endpoint).ok(),
            )
            .await
    }
}

/// Event type names as given, checked and deduplicated; `webhook.test` is
/// always sent and cannot be asked for.
fn parse_types(names: &[String]) -> Result<Vec<EventType>> {
    let types = EventType::parse_list(names.iter().map(String::as_str), "events")?;
    if types.contains(&EventType::WebhookTest) {
        return Err(Error::invalid("events", "webhook.test is always sent"));
    }
    Ok(types)
}

fn check_description(description: Option<String>) -> Result<Option<String>> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(Error::invalid(
            "description",
            format!("longer than {MAX_DESCRIPTION_LEN} characters"),
        )),
        Some(d) if d.chars().any(char::is_control) => Err(Error::invalid(
            "description",
            "must not contain control characters",
        )),
        other => Ok(other),
    }
}
