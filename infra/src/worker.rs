//! The worker loop: takes jobs off a queue, decodes each into a [`Task`],
//! runs it, acknowledges what succeeded. A failed job is left pending, so it
//! is redelivered after the lease; after `max_attempts` it is dead-lettered
//! (the database keeps the record of what failed). A job no [`Task`] fits is
//! dead-lettered at once, never run or silently acknowledged.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::Instrument;

use orgsync_domain::ports::{Delivery, JobQueue, Task};
use tokio_util::sync::CancellationToken;

/// Runs tasks. It must be idempotent: delivery is at least once.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync {
    /// # Errors
    /// Any error leaves the job for a later attempt.
    async fn handle(&self, task: Task) -> orgsync_domain::Result<()>;
}

/// Work a worker does on a timer besides taking jobs (re-publishing what the
/// queue lost, reclaiming dead workers' jobs).
#[async_trait::async_trait]
pub trait Periodic: Send + Sync {
    /// # Errors
    /// Logged; the next tick tries again.
    async fn tick(&self) -> orgsync_domain::Result<()>;
}

/// How a worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub consumer: String,
    /// Jobs taken per read. Kept near `concurrency`: a worker that takes more
    /// than it can run holds work another worker could be doing.
    pub batch: usize,
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    pub lease: Duration,
    pub max_attempts: u32,
    pub poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            consumer: format!("worker-{}", uuid::Uuid::new_v4()),
            batch: 4,
            concurrency: 4,
            lease: Duration::from_secs(30),
            max_attempts: 5,
            poll: Duration::from_secs(1),
        }
    }
}

pub struct Worker {
    queue: Arc<dyn JobQueue>,
    handler: Arc<dyn TaskHandler>,
    settings: WorkerSettings,
    periodic: Option<(Arc<dyn Periodic>, Duration)>,
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        handler: Arc<dyn TaskHandler>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            queue,
            handler,
            settings,
            periodic: None,
        }
    }

    /// Runs `task` every `every` between batches.
    #[must_use]
    pub fn with_periodic(mut self, task: Arc<dyn Periodic>, every: Duration) -> Self {
        self.periodic = Some((task, every));
        self
    }

    /// Processes jobs until `shutdown` is cancelled. The batch in hand is
    /// finished first; anything not acknowledged is reclaimed by another worker.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.settings.consumer, "worker started");
        let mut last_tick: Option<std::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if let Some((task, every)) = &self.periodic {
                if last_tick.is_none_or(|t| t.elapsed() >= *every) {
                    last_tick = Some(std::time::Instant::now());
                    if let Err(e) = task.tick().await {
                        tracing::warn!(error = %e, "periodic task failed; retrying at the next tick");
                    }
                }
            }
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = self.next_batch() => batch,
            };
            match batch {
                Ok(deliveries) => self.process_batch(deliveries).await,
                Err(e) => {
                    tracing::warn!(error = %e, "queue unavailable; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.settings.poll) => {}
                    }
                }
            }
        }
        tracing::info!(consumer = %self.settings.consumer, "worker stopped");
    }

    async fn next_batch(&self) -> orgsync_domain::Result<Vec<Delivery>> {
        let s = &self.settings;
        let reclaimed = self.queue.reclaim(&s.consumer, s.lease, s.batch).await?;
        if !reclaimed.is_empty() {
            return Ok(reclaimed);
        }
        self.queue.receive(&s.consumer, s.batch, s.poll).await
    }

    /// Identical jobs in one batch (the same kind and payload, such as many
    /// "this directory changed" nudges) run once; every copy is acknowledged
    /// with it. Handlers are idempotent, so this only saves work.
    async fn process_batch(&self, deliveries: Vec<Delivery>) {
        let mut groups: Vec<(Delivery, Vec<Delivery>)> = Vec::new();
        for delivery in deliveries {
            match groups
                .iter_mut()
                .find(|(first, _)| first.job == delivery.job)
            {
                Some((_, copies)) => copies.push(delivery),
                None => groups.push((delivery, Vec::new())),
            }
        }
        futures::stream::iter(groups)
            .for_each_concurrent(
                self.settings.concurrency.max(1),
                |(delivery, copies)| async move {
                    if self.process(delivery).await && !copies.is_empty() {
                        if let Err(e) = self.queue.ack_batch(&copies).await {
                            tracing::warn!(error = %e, "could not acknowledge duplicate jobs");
                        }
                    }
                },
            )
            .await;
    }

    /// Runs one job; `true` when it is done with (acknowledged or dead-lettered).
    async fn process(&self, delivery: Delivery) -> bool {
        let task = match Task::from_job(&delivery.job) {
            Ok(task) => task,
            Err(unknown) => {
                tracing::error!(job = %delivery.id, kind = %unknown.kind, reason = %unknown.reason, "job fits no task; dead-lettering it");
                self.dead_letter(&delivery, &unknown.to_string()).await;
                return true;
            }
        };
        // Instrumented, not entered: jobs run concurrently on one task, and an
        // entered guard held across an await would label the others' logs.
        let span = tracing::info_span!("job", id = %delivery.id, kind = task.kind(), attempt = delivery.attempt);
        match self.handler.handle(task).instrument(span.clone()).await {
            Ok(()) => {
                self.ack(&delivery).await;
                true
            }
            Err(e) if delivery.attempt >= self.settings.max_attempts => {
                span.in_scope(|| tracing::error!(error = %e, "job failed for the last time; dead-lettering it"));
                self.dead_letter(
                    &delivery,
                    &format!("failed {} times; last: {e}", delivery.attempt),
                )
                .await;
                true
            }
            Err(e) => {
                span.in_scope(
                    || tracing::warn!(error = %e, "job failed; it will be retried after its lease"),
                );
                false
            }
        }
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) {
        if let Err(e) = self.queue.dead_letter(delivery, reason).await {
            // Left pending: it comes back after the lease and is set aside then.
            tracing::warn!(job = %delivery.id, error = %e, "could not dead-letter job");
        }
    }

    async fn ack(&self, delivery: &Delivery) {
        if let Err(e) = self.queue.ack(delivery).await {
            // Unacknowledged work is redelivered; handlers are idempotent.
            tracing::warn!(job = %delivery.id, error = %e, "could not acknowledge job");
        }
    }
}
