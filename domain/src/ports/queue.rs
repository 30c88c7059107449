use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Result;

/// A unit of background work. `kind` names the handler; `payload` is its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub kind: String,
    pub payload: serde_json::Value,
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
}

/// Carries work between processes. Delivery is at least once: handlers must be
/// idempotent. The queue is never the source of truth; anything it loses can
/// be re-published from the database.
#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn publish(&self, job: &Job) -> Result<()>;

    /// Waits up to `wait` for new jobs and hands at most `max` of them to `consumer`.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Takes over jobs delivered to any consumer more than `lease` ago and not acknowledged.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn reclaim(&self, consumer: &str, lease: Duration, max: usize) -> Result<Vec<Delivery>>;

    /// Marks a delivery done; acknowledging twice is harmless.
    ///
    /// # Errors
    /// `Unavailable` when the queue cannot be reached.
    async fn ack(&self, delivery: &Delivery) -> Result<()>;

    /// Entries waiting or pending, where the queue can tell (for metrics).
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
