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
        let outcome = self.0.perform_job(job_id).await;
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
