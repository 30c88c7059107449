use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::ConnectionId;
use crate::sync::JobId;
use crate::webhooks::WebhookId;
use crate::Result;

/// The queue's envelope for a [`Task`] (what is stored and sent): `kind`
/// names the task, `payload` carries its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub kind: String,
    pub payload: serde_json::Value,
}

impl Job {
    /// The lane this job travels in, by its kind (a kind no version of this
    /// code knows goes with syncs, and is dead-lettered there).
    pub fn lane(&self) -> Lane {
        match self.kind.as_str() {
            DIRECTORY_CHANGED => Lane::Changes,
            DELIVER_WEBHOOK => Lane::Webhooks,
            _ => Lane::Sync,
        }
    }
}

/// Jobs travel in lanes, each taken by its own workers, so that one kind of
/// work never waits behind another: an IdP's change is applied while
/// another tenant's reconcile of a million members runs, and a webhook
/// receiver that answers slowly holds up only deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Directory changes to apply: short, and the propagation delay users see.
    Changes,
    /// Webhook deliveries: as slow as the slowest receiver.
    Webhooks,
    /// Full reconciles, one org each: seconds to minutes.
    Sync,
}

impl Lane {
    pub const ALL: [Self; 3] = [Self::Changes, Self::Webhooks, Self::Sync];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Changes => "changes",
            Self::Webhooks => "webhooks",
            Self::Sync => "sync",
        }
    }
}

/// Background work, typed. Each variant is one kind of job; the queue carries
/// it as a [`Job`] (`{"kind": "sync.job", "payload": {"job_id": ...}}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Perform one org's part of a sync run (the run's job `job_id`).
    Sync { job_id: JobId },
    /// Apply a directory's new change events to every org drawing on it.
    DirectoryChanged { connection_id: ConnectionId },
    /// Send a webhook endpoint's due deliveries.
    DeliverWebhook { endpoint_id: WebhookId },
}

const SYNC: &str = "sync.job";
const DIRECTORY_CHANGED: &str = "directory.changed";
const DELIVER_WEBHOOK: &str = "webhook.deliver";

/// A job no version of this code can run: an unknown kind or a payload that
/// does not fit it. Such jobs are dead-lettered, never run or dropped quietly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot run job of kind {kind:?}: {reason}")]
pub struct UnknownTask {
    pub kind: String,
    pub reason: String,
}

impl Task {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Sync { .. } => SYNC,
            Self::DirectoryChanged { .. } => DIRECTORY_CHANGED,
            Self::DeliverWebhook { .. } => DELIVER_WEBHOOK,
        }
    }

    pub fn lane(self) -> Lane {
        match self {
            Self::Sync { .. } => Lane::Sync,
            Self::DirectoryChanged { .. } => Lane::Changes,
            Self::DeliverWebhook { .. } => Lane::Webhooks,
        }
    }

    pub fn to_job(self) -> Job {
        let payload = match self {
            Self::Sync { job_id } => serde_json::json!({ "job_id": job_id }),
            Self::DirectoryChanged { connection_id } => {
                serde_json::json!({ "connection_id": connection_id })
            }
            Self::DeliverWebhook { endpoint_id } => {
                serde_json::json!({ "endpoint_id": endpoint_id })
            }
        };
        Job {
            kind: self.kind().to_owned(),
            payload,
        }
    }

    /// # Errors
    /// [`UnknownTask`] for a kind or payload this code does not know.
    pub fn from_job(job: &Job) -> std::result::Result<Self, UnknownTask> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SyncPayload {
            job_id: JobId,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct DirectoryPayload {
            connection_id: ConnectionId,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct WebhookPayload {
            endpoint_id: WebhookId,
        }
        fn read<T: for<'de> Deserialize<'de>>(job: &Job) -> std::result::Result<T, UnknownTask> {
            T::deserialize(&job.payload).map_err(|e| UnknownTask {
                kind: job.kind.clone(),
                reason: format!("malformed payload: {e}"),
            })
        }
        match job.kind.as_str() {
            SYNC => read::<SyncPayload>(job).map(|p| Self::Sync { job_id: p.job_id }),
            DIRECTORY_CHANGED => read::<DirectoryPayload>(job).map(|p| Self::DirectoryChanged {
                connection_id: p.connection_id,
            }),
            DELIVER_WEBHOOK => read::<WebhookPayload>(job).map(|p| Self::DeliverWebhook {
                endpoint_id: p.endpoint_id,
            }),
            _ => Err(UnknownTask {
                kind: job.kind.clone(),
                reason: "no such kind".into(),
            }),
        }
    }
}

/// A job handed to one consumer. It stays pending until acknowledged; if the
/// consumer dies, the job is reclaimed by another after a lease timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The queue's own id for this entry, used to acknowledge it.
    pub id: String,
    pub job: Job,
    /// How many times this entry has been delivered, this time included.
    pub attempt: u32,
    /// The lane it came from, where it is acknowledged.
    pub lane: Lane,
}

/// Carries work between processes. Delivery is at least once: handlers must be
/// idempotent. The queue is never the source of truth; anything it loses can
/// be re-published from the database.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn publish(&self, job: &Job) -> Result<()>;

    /// Waits up to `wait` for new jobs in `lane` and hands at most `max` of
    /// them to `consumer`. Lanes are read independently: a wait on one
    /// never delays a read of another.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn receive(
        &self,
        lane: Lane,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>>;

    /// Takes over jobs of `lane` delivered to any consumer more than
    /// `lease` ago and not acknowledged.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn reclaim(
        &self,
        lane: Lane,
        consumer: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>>;

    /// Sets a delivery aside that can never succeed (a job of an unknown kind,
    /// or one that failed every attempt), with why, and acknowledges it. An
    /// operator reads dead letters; they are never run again by themselves.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()>;

    /// Marks a delivery done; acknowledging twice is harmless.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn ack(&self, delivery: &Delivery) -> Result<()>;

    /// Entries waiting or pending in every lane, where the queue can tell (for metrics).
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn depth(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Publishes several jobs in one round trip where the queue can.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached (some may have been published).
    async fn publish_batch(&self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            self.publish(job).await?;
        }
        Ok(())
    }

    /// Acknowledges several deliveries in one round trip where the queue can.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn ack_batch(&self, deliveries: &[Delivery]) -> Result<()> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> [Task; 3] {
        [
            Task::Sync {
                job_id: JobId::new(),
            },
            Task::DirectoryChanged {
                connection_id: ConnectionId::new(),
            },
            Task::DeliverWebhook {
                endpoint_id: WebhookId::new(),
            },
        ]
    }

    #[test]
    fn tasks_round_trip_through_their_envelope_in_the_wire_format() {
        for task in one_of_each() {
            assert_eq!(Task::from_job(&task.to_job()), Ok(task));
        }
        let job = Task::Sync {
            job_id: JobId(uuid::Uuid::nil()),
        }
        .to_job();
        assert_eq!(job.kind, "sync.job");
        assert_eq!(
            job.payload,
            serde_json::json!({"job_id": "00000000-0000-0000-0000-000000000000"})
        );
    }

    #[test]
    fn a_job_travels_in_its_tasks_lane_and_an_unknown_one_with_syncs() {
        for task in one_of_each() {
            assert_eq!(task.to_job().lane(), task.lane());
        }
        let unknown = Job {
            kind: "email.send".into(),
            payload: serde_json::json!({}),
        };
        assert_eq!(unknown.lane(), Lane::Sync);
    }

    #[test]
    fn unknown_kinds_and_malformed_payloads_are_refused_not_guessed() {
        let unknown = Job {
            kind: "email.send".into(),
            payload: serde_json::json!({}),
        };
        assert_eq!(Task::from_job(&unknown).unwrap_err().reason, "no such kind");
        let malformed = Job {
            kind: "sync.job".into(),
            payload: serde_json::json!({"job_id": "not a uuid"}),
        };
        assert!(Task::from_job(&malformed)
            .unwrap_err()
            .reason
            .starts_with("malformed payload"));
    }
}
