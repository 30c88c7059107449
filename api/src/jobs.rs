//! Background work: the one dispatcher from typed tasks to use cases, the
//! sweeper, and the nudge debounce that turns SCIM writes into
//! "directory changed" tasks.

pub mod nudge;

use std::sync::Arc;

use orgsync_domain::ports::{EventLog, Task};
use orgsync_domain::service::{JobOutcome, SyncService};
use orgsync_domain::sync::JobId;
use orgsync_infra::webhooks::deliver::Deliverer;
use orgsync_infra::worker::{Periodic, TaskHandler};

use crate::metrics::Metrics;

/// Runs every kind of task; a new kind is a new [`Task`] variant and a new
/// arm here (the compiler lists the places that must handle it).
pub struct Dispatcher {
    pub sync: SyncService,
    /// This process, as jobs record who ran them: `host:pid`.
    pub worker: String,
    pub deliverer: Arc<Deliverer>,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl TaskHandler for Dispatcher {
    async fn handle(&self, task: Task) -> orgsync_domain::Result<()> {
        match task {
            Task::Sync { job_id } => self.sync_job(job_id).await,
            Task::DirectoryChanged { connection_id } => {
                self.sync.apply_directory_changes(connection_id).await
            }
            Task::DeliverWebhook { endpoint_id } => self.deliverer.deliver(endpoint_id).await,
        }
    }
}

impl Dispatcher {
    /// Performs one org's sync job, timing it for the metrics.
    async fn sync_job(&self, job_id: JobId) -> orgsync_domain::Result<()> {
        let started = std::time::Instant::now();
        let Some(claimed) = self.sync.claim_job(job_id, &self.worker).await? else {
            return Ok(());
        };
        // The lease is renewed every third of its length while the job runs,
        // so only a silent (dead or partitioned) worker loses it.
        let heartbeat = {
            let (sync, attempt) = (self.sync.clone(), claimed.attempts);
            let every = (sync.lease() / 3).max(std::time::Duration::from_millis(100));
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    match sync.renew_lease(job_id, attempt).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%job_id, attempt, "lost the job's lease; its outcome will not be recorded");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%job_id, error = %e, "could not renew the job's lease")
                        }
                    }
                }
            })
        };
        let outcome = self.sync.run_claimed(claimed).await;
        heartbeat.abort();
        let label = match &outcome {
            Ok(JobOutcome::Failed { org, cause }) => {
                tracing::warn!(%job_id, %org, error = %cause, "sync job failed; the tenant sees only its summary");
                "failed"
            }
            Ok(_) => "done",
            Err(_) => "error",
        };
        self.metrics
            .observe_job(label, started.elapsed().as_secs_f64());
        outcome.map(|_| ())
    }
}

/// This process as job records name it: `host:pid`.
pub fn worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The worker's periodic duties: reconcile the queue with PostgreSQL,
/// forget events past their retention and sign-ins past their expiry.
pub struct Sweeper {
    pub sync: SyncService,
    pub events: Arc<dyn EventLog>,
    pub retention: std::time::Duration,
    pub sso: orgsync_domain::service::SsoService,
}

#[async_trait::async_trait]
impl Periodic for Sweeper {
    async fn tick(&self) -> orgsync_domain::Result<()> {
        self.sync.sweep().await?;
        let horizon = time::OffsetDateTime::now_utc() - self.retention;
        self.events.purge(horizon).await?;
        self.sso.purge_expired().await?;
        Ok(())
    }
}
