//! One signed POST of one event (Standard Webhooks: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature`). Targets are judged where the
//! connection is made: names through a resolver that refuses any answer
//! inside the operator's network (so a name that re-points after it was
//! saved, DNS rebinding, gets nowhere), literal addresses before sending.
//! No redirects are followed and no proxy from the environment is used:
//! either would carry the request past those checks.

use std::time::{Duration, Instant};

use orgsync_domain::events::Event;
use orgsync_domain::ports::{Attempt, WebhookSender};
use orgsync_domain::webhooks::check_target;

use crate::net::{guarded_client, Reach};

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    /// Admits `http` and private or loopback targets (development, tests).
    pub allow_private_targets: bool,
    /// Whole attempt: connect, send, and the receiver's answer.
    pub timeout: Duration,
    /// Bytes of a receiver's answer read before the connection is dropped.
    pub max_response_bytes: usize,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
        }
    }
}

pub struct HttpWebhookSender {
    client: reqwest::Client,
    settings: SenderSettings,
}

impl HttpWebhookSender {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(settings: SenderSettings) -> anyhow::Result<Self> {
        let reach = if settings.allow_private_targets {
            Reach::Anywhere
        } else {
            Reach::Public
        };
        let client = guarded_client(
            reach,
            settings.timeout,
            concat!("orgsync-webhooks/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Self { client, settings })
    }

    async fn post(&self, url: &str, secrets: &[&str], event: &Event) -> Result<u16, String> {
        // Checked again at send time: a target saved under a laxer setting,
        // or a literal address (which no resolver sees), stops here.
        check_target(url, self.settings.allow_private_targets).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(event).map_err(|e| format!("encoding the event: {e}"))?;
        let msg_id = event.id.to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut signatures = Vec::with_capacity(secrets.len());
        for secret in secrets {
            let signer = standardwebhooks::Webhook::new(secret)
                .map_err(|e| format!("the endpoint's secret is unusable: {e}"))?;
            signatures.push(
                signer
                    .sign(&msg_id, timestamp, &body)
                    .map_err(|e| format!("signing: {e}"))?,
            );
        }
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        // Read a bounded part of the answer (so the connection can be
        // reused when it is small), never all of what a receiver sends.
        let mut response = response;
        let mut read = 0usize;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > self.settings.max_response_bytes {
                break;
            }
        }
        Ok(status)
    }
}

/// A reqwest error without the URL (it is the tenant's, and may carry a
/// token in its query).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(source) = cause.source() {
            cause = source;
        }
        format!("could not connect: {cause}")
    } else {
        e.to_string()
    }
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, url: &str, secrets: &[&str], event: &Event) -> Attempt {
        let started = Instant::now();
        let outcome = self.post(url, secrets, event).await;
        let latency = started.elapsed();
        match outcome {
            Ok(status) if (200..300).contains(&status) => Attempt {
                status: Some(status),
                latency,
                error: None,
            },
            Ok(status) => Attempt {
                status: Some(status),
                latency,
                error: Some(format!("the receiver answered {status}")),
            },
            Err(error) => Attempt {
                status: None,
                latency,
                error: Some(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_domain::events::EventType;
    use orgsync_domain::org::OrgId;

    fn event() -> Event {
        Event::new(
            OrgId::new(),
            EventType::WebhookTest,
            serde_json::json!({}),
            time::OffsetDateTime::now_utc(),
        )
    }

    #[tokio::test]
    async fn private_targets_are_refused_before_any_connection() {
        let sender = HttpWebhookSender::new(SenderSettings::default()).expect("a client");
        for url in [
            "https://127.0.0.1:9/hook",
            "https://localhost:9/hook",
            "https://[::1]:9/",
            "https://169.254.169.254/latest",
            "http://example.com/",
        ] {
            let attempt = sender.send(url, &["whsec_AAAA"], &event()).await;
            assert!(!attempt.succeeded(), "{url}");
            assert_eq!(attempt.status, None, "{url}");
            assert!(
                attempt
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("url")),
                "{url}: {:?}",
                attempt.error
            );
        }
    }
}
