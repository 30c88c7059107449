//! The worker's job handlers: thin adapters from queue payloads to use cases.

use orgsync_domain::directory::ConnectionId;
use orgsync_domain::service::{JobOutcome, SyncService, DIRECTORY_CHANGED_JOB, SYNC_JOB};
use orgsync_domain::Error;
use orgsync_infra::worker::JobHandler;
use serde::Deserialize;
use uuid::Uuid;

fn payload<T: for<'de> Deserialize<'de>>(value: &serde_json::Value) -> orgsync_domain::Result<T> {
    serde_json::from_value(value.clone())
        .map_err(|e| Error::Internal(anyhow::anyhow!("malformed job payload: {e}")))
}

/// Performs one org's sync job, timing it for the metrics.
pub struct SyncJobHandler(pub SyncService, pub std::sync::Arc<crate::metrics::Metrics>);

#[async_trait::async_trait]
impl JobHandler for SyncJobHandler {
    fn kind(&self) -> &'static str {
        SYNC_JOB
    }

    async fn handle(&self, job: &serde_json::Value) -> orgsync_domain::Result<()> {
        #[derive(Deserialize)]
        struct Payload {
            job_id: Uuid,
        }
        let Payload { job_id } = payload(job)?;
        let started = std::time::Instant::now();
        let Some(claimed) = self.0.claim_job(job_id).await? else {
            return Ok(());
        };
        // The lease is renewed every third of its length while the job runs,
        // so only a silent (dead or partitioned) worker loses it.
        let heartbeat = {
            let (sync, attempt) = (self.0.clone(), claimed.attempts);
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
        let outcome = self.0.run_claimed(claimed).await;
        heartbeat.abort();
        let label = match &outcome {
            Ok(JobOutcome::Failed { org, cause }) => {
                tracing::warn!(%job_id, %org, error = %cause, "sync job failed; the tenant sees only its summary");
                "failed"
            }
            Ok(_) => "done",
            Err(_) => "error",
        };
        self.1.observe_job(label, started.elapsed().as_secs_f64());
        outcome.map(|_| ())
    }
}

/// The worker's periodic duty: reconcile the queue with PostgreSQL.
pub struct Sweeper(pub SyncService);

#[async_trait::async_trait]
impl orgsync_infra::worker::Periodic for Sweeper {
    async fn tick(&self) -> orgsync_domain::Result<()> {
        self.0.sweep().await
    }
}

/// Applies a directory's new change events to the orgs drawing on it.
pub struct DirectoryChangedHandler(pub SyncService);

#[async_trait::async_trait]
impl JobHandler for DirectoryChangedHandler {
    fn kind(&self) -> &'static str {
        DIRECTORY_CHANGED_JOB
    }

    async fn handle(&self, job: &serde_json::Value) -> orgsync_domain::Result<()> {
        #[derive(Deserialize)]
        struct Payload {
            connection_id: Uuid,
        }
        let Payload { connection_id } = payload(job)?;
        self.0
            .apply_directory_changes(ConnectionId(connection_id))
            .await
    }
}
