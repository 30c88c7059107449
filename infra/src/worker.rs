//! The worker loop: takes jobs off a queue, decodes each into a [`Task`],
//! runs it, acknowledges what succeeded. A failed job is left pending, so it
//! is redelivered after the lease; after `max_attempts` it is dead-lettered
//! (the database keeps the record of what failed). A job no [`Task`] fits is
//! dead-lettered at once, never run or silently acknowledged.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use orgsync_domain::ports::{Delivery, JobQueue, Lane, Task};
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
    /// Jobs run at once by this worker, in each lane.
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

/// Cheap to clone: each job runs as a task of its own, with its own handle.
#[derive(Clone)]
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

    /// Runs `task` every `every`, beside the jobs.
    #[must_use]
    pub fn with_periodic(mut self, task: Arc<dyn Periodic>, every: Duration) -> Self {
        self.periodic = Some((task, every));
        self
    }

    /// Processes jobs of every lane until `shutdown` is cancelled. The jobs
    /// in hand are finished first; anything not acknowledged is reclaimed by
    /// another worker.
    pub async fn run(&self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.settings.consumer, "worker started");
        let lanes = Lane::ALL.map(|lane| self.run_lane(lane, &shutdown));
        futures::join!(
            futures::future::join_all(lanes),
            self.run_periodic(&shutdown)
        );
        tracing::info!(consumer = %self.settings.consumer, "worker stopped");
    }

    async fn run_periodic(&self, shutdown: &CancellationToken) {
        let Some((task, every)) = &self.periodic else {
            return;
        };
        while !shutdown.is_cancelled() {
            if let Err(e) = task.tick().await {
                tracing::warn!(error = %e, "periodic task failed; retrying at the next tick");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(*every) => {}
            }
        }
    }

    /// One lane's loop. A job runs as its own task, and a slot it frees is
    /// filled at once: a long job holds one slot, never the lane (jobs read
    /// together used to wait for the slowest of them before more were read).
    async fn run_lane(&self, lane: Lane, shutdown: &CancellationToken) {
        let concurrency = self.settings.concurrency.max(1);
        let mut running = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while running.try_join_next().is_some() {}
            let free = concurrency.saturating_sub(running.len());
            if free == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = running.join_next() => continue,
                }
            }
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = self.next_batch(lane, free.min(self.settings.batch.max(1))) => batch,
            };
            match batch {
                Ok(deliveries) => {
                    for (delivery, copies) in identical_runs_once(deliveries) {
                        let worker = self.clone();
                        running.spawn(
                            async move { worker.process_with_copies(delivery, copies).await },
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(lane = lane.as_str(), error = %e, "queue unavailable; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(self.settings.poll) => {}
                    }
                }
            }
        }
        while running.join_next().await.is_some() {}
    }

    async fn next_batch(&self, lane: Lane, max: usize) -> orgsync_domain::Result<Vec<Delivery>> {
        let s = &self.settings;
        let reclaimed = self.queue.reclaim(lane, &s.consumer, s.lease, max).await?;
        if !reclaimed.is_empty() {
            return Ok(reclaimed);
        }
        self.queue.receive(lane, &s.consumer, max, s.poll).await
    }

    async fn process_with_copies(&self, delivery: Delivery, copies: Vec<Delivery>) {
        if self.process(delivery).await && !copies.is_empty() {
            if let Err(e) = self.queue.ack_batch(&copies).await {
                tracing::warn!(error = %e, "could not acknowledge duplicate jobs");
            }
        }
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

/// Identical jobs read together (the same kind and payload, such as many
/// "this directory changed" nudges) run once; every copy is acknowledged
/// with it. Handlers are idempotent, so this only saves work.
fn identical_runs_once(deliveries: Vec<Delivery>) -> Vec<(Delivery, Vec<Delivery>)> {
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
    groups
}
