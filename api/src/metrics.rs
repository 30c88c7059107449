//! Prometheus metrics, served as text at `/metrics`: HTTP requests by route
//! and status with latency histograms, SCIM operations, sync jobs by state
//! and duration, queue depth, directory lag and database pool usage.
//! Counters are updated as things happen; gauges are read at scrape time.

use std::sync::Arc;

use orgsync_domain::directory::RateBudget;
use orgsync_domain::ports::JobQueue;
use orgsync_infra::Database;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    scim_operations: IntCounterVec,
    scim_rate_limited: IntCounterVec,
    sync_job_duration: HistogramVec,
    sync_jobs: IntGaugeVec,
    queue_depth: IntGauge,
    pending_events: IntGauge,
    held_removals: IntGauge,
    db_connections: IntGaugeVec,
    webhook_attempts: IntCounterVec,
    webhook_duration: HistogramVec,
    webhook_pending: IntGauge,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Names are fixed at compile time and unique, so registration cannot clash.
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl Metrics {
    /// # Errors
    /// Only if a metric definition is malformed (a bug caught by the tests).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("orgsync".into()), None)?;
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Ok(Self {
            http_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests by route pattern, method and status",
                    ),
                    &["route", "method", "status"],
                )?,
            ),
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "HTTP request latency by route pattern",
                    )
                    .buckets(latency.clone()),
                    &["route", "method"],
                )?,
            ),
            scim_operations: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "scim_operations_total",
                        "SCIM operations by resource, method and outcome",
                    ),
                    &["resource", "method", "outcome"],
                )?,
            ),
            scim_rate_limited: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "scim_rate_limited_total",
                        "SCIM requests refused with 429, by the budget they ran out of \
                         (connection, tenant, failed_authentications)",
                    ),
                    &["budget"],
                )?,
            ),
            sync_job_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("sync_job_duration_seconds", "Sync job run time by outcome")
                        .buckets(vec![
                            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        ]),
                    &["outcome"],
                )?,
            ),
            sync_jobs: register(
                &registry,
                IntGaugeVec::new(Opts::new("sync_jobs", "Sync jobs by state"), &["state"])?,
            ),
            queue_depth: register(
                &registry,
                IntGauge::new("queue_depth", "Entries waiting or pending in the job queue")?,
            ),
            pending_events: register(
                &registry,
                IntGauge::new(
                    "directory_pending_events",
                    "Directory changes not yet applied, summed over orgs",
                )?,
            ),
            held_removals: register(
                &registry,
                IntGauge::new(
                    "held_removal_orgs",
                    "Organizations whose removals deletion protection holds for an admin",
                )?,
            ),
            db_connections: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("db_pool_connections", "Database pool connections by state"),
                    &["state"],
                )?,
            ),
            webhook_attempts: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "webhook_attempts_total",
                        "Webhook delivery attempts by outcome (succeeded, http_error, unreachable)",
                    ),
                    &["outcome"],
                )?,
            ),
            webhook_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "webhook_attempt_duration_seconds",
                        "Webhook delivery attempt latency by outcome",
                    )
                    .buckets(latency.clone()),
                    &["outcome"],
                )?,
            ),
            webhook_pending: register(
                &registry,
                IntGauge::new(
                    "webhook_pending_deliveries",
                    "Webhook deliveries waiting to be sent (due or backing off)",
                )?,
            ),
            registry,
        })
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
        if let Some(rest) = route.strip_prefix("/scim/v2/{conn}/") {
            let resource = rest.split('/').next().unwrap_or("unknown");
            let outcome = match status {
                200..=299 => "success",
                400..=499 => "client_error",
                _ => "server_error",
            };
            self.scim_operations
                .with_label_values(&[resource, method, outcome])
                .inc();
        }
    }

    /// A SCIM request refused for having spent `budget`.
    pub fn scim_rate_limited(&self, budget: RateBudget) {
        let label = match budget {
            RateBudget::Connection => "connection",
            RateBudget::Tenant => "tenant",
            RateBudget::FailedAuthentications => "failed_authentications",
        };
        self.scim_rate_limited.with_label_values(&[label]).inc();
    }

    pub fn observe_job(&self, outcome: &str, seconds: f64) {
        self.sync_job_duration
            .with_label_values(&[outcome])
            .observe(seconds);
    }

    /// Reads the gauges and renders everything in the Prometheus text format.
    pub async fn render(&self, db: &Database, queue: &Arc<dyn JobQueue>) -> String {
        for state in ["queued", "running", "succeeded", "failed"] {
            self.sync_jobs.with_label_values(&[state]).set(0);
        }
        if let Ok(counts) = db.job_counts().await {
            for (state, count) in counts {
                self.sync_jobs.with_label_values(&[&state]).set(count);
            }
        }
        if let Ok(pending) = db.pending_events().await {
            self.pending_events.set(pending);
        }
        if let Ok(held) = db.held_removal_orgs().await {
            self.held_removals.set(held);
        }
        if let Ok(pending) = db.pending_deliveries().await {
            self.webhook_pending.set(pending);
        }
        if let Ok(Some(depth)) = queue.depth().await {
            self.queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let (size, idle) = db.pool_usage();
        self.db_connections
            .with_label_values(&["open"])
            .set(i64::from(size));
        self.db_connections
            .with_label_values(&["idle"])
            .set(i64::try_from(idle).unwrap_or(0));
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl orgsync_infra::webhooks::deliver::DeliveryObserver for Metrics {
    fn attempted(&self, attempt: &orgsync_domain::ports::Attempt) {
        let outcome = match attempt.status {
            _ if attempt.succeeded() => "succeeded",
            Some(_) => "http_error",
            None => "unreachable",
        };
        self.webhook_attempts.with_label_values(&[outcome]).inc();
        self.webhook_duration
            .with_label_values(&[outcome])
            .observe(attempt.latency.as_secs_f64());
    }
}

/// The method as a label: the standard ones by name, any other as `other`.
/// HTTP lets a client send any token as a method, before it has
/// authenticated, and each label value is a series kept for the life of the
/// process: taken as sent, a stream of made-up methods would grow every
/// tenant's process without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}
