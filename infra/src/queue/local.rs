//! The in-process job queue of the embedded mode: the same contract as the
//! Redis queue (pending until acknowledged, reclaimable after a lease), held in
//! memory. It lives as long as the process; the database stays the source of
//! truth, exactly as with Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orgsync_domain::ports::{Delivery, Job, JobQueue, Lane};
use orgsync_domain::{Error, Result};
use tokio::sync::Notify;

struct Pending {
    job: Job,
    lane: Lane,
    consumer: String,
    delivered_at: Instant,
    attempt: u32,
}

#[derive(Default)]
struct State {
    next_id: u64,
    ready: HashMap<Lane, VecDeque<(String, Job)>>,
    pending: HashMap<String, Pending>,
    /// Jobs set aside with the reason (the newest [`DEAD_LETTERS_KEPT`]).
    dead: VecDeque<(Job, String)>,
}

const DEAD_LETTERS_KEPT: usize = 1_000;

#[derive(Clone)]
pub struct LocalJobQueue {
    state: Arc<Mutex<State>>,
    /// One per lane: a publish wakes only the readers of its lane.
    arrived: Arc<HashMap<Lane, Notify>>,
}

impl Default for LocalJobQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalJobQueue {
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            arrived: Arc::new(Lane::ALL.map(|lane| (lane, Notify::new())).into()),
        }
    }

    fn arrived(&self, lane: Lane) -> Result<&Notify> {
        self.arrived.get(&lane).ok_or_else(|| {
            Error::Internal(anyhow::anyhow!("local queue has no {} lane", lane.as_str()))
        })
    }

    /// The jobs set aside, oldest first, with why.
    pub fn dead_letters(&self) -> Vec<(Job, String)> {
        self.lock()
            .map(|state| state.dead.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal(anyhow::anyhow!("local queue state poisoned")))
    }

    fn take(&self, lane: Lane, consumer: &str, max: usize) -> Result<Vec<Delivery>> {
        let mut state = self.lock()?;
        let mut out = Vec::new();
        while out.len() < max {
            let Some((id, job)) = state.ready.get_mut(&lane).and_then(VecDeque::pop_front) else {
                break;
            };
            state.pending.insert(
                id.clone(),
                Pending {
                    job: job.clone(),
                    lane,
                    consumer: consumer.to_owned(),
                    delivered_at: Instant::now(),
                    attempt: 1,
                },
            );
            out.push(Delivery {
                id,
                job,
                attempt: 1,
                lane,
            });
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl JobQueue for LocalJobQueue {
    async fn publish(&self, job: &Job) -> Result<()> {
        let lane = job.lane();
        {
            let mut state = self.lock()?;
            state.next_id += 1;
            let id = format!("local-{}", state.next_id);
            state
                .ready
                .entry(lane)
                .or_default()
                .push_back((id, job.clone()));
        }
        self.arrived(lane)?.notify_one();
        Ok(())
    }

    async fn receive(
        &self,
        lane: Lane,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.arrived(lane)?;
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let arrived = notify.notified();
            let batch = self.take(lane, consumer, max)?;
            if !batch.is_empty() {
                return Ok(batch);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn reclaim(
        &self,
        lane: Lane,
        consumer: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>> {
        let mut state = self.lock()?;
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, pending) in state.pending.iter_mut() {
            if out.len() >= max {
                break;
            }
            if pending.lane == lane && now.duration_since(pending.delivered_at) >= lease {
                pending.consumer = consumer.to_owned();
                pending.delivered_at = now;
                pending.attempt += 1;
                out.push(Delivery {
                    id: id.clone(),
                    job: pending.job.clone(),
                    attempt: pending.attempt,
                    lane,
                });
            }
        }
        Ok(out)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.lock()?.pending.remove(&delivery.id);
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let mut state = self.lock()?;
        state.pending.remove(&delivery.id);
        if state.dead.len() == DEAD_LETTERS_KEPT {
            state.dead.pop_front();
        }
        state
            .dead
            .push_back((delivery.job.clone(), reason.to_owned()));
        Ok(())
    }

    async fn depth(&self) -> Result<Option<u64>> {
        let state = self.lock()?;
        let ready: usize = state.ready.values().map(VecDeque::len).sum();
        Ok(Some((ready + state.pending.len()) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> Job {
        Job {
            kind: "test".into(),
            payload: serde_json::json!({ "n": n }),
        }
    }

    const LANE: Lane = Lane::Sync;

    #[tokio::test]
    async fn a_job_is_delivered_once_and_reclaimed_only_after_its_lease() {
        let queue = LocalJobQueue::new();
        queue.publish(&job(1)).await.ok();
        let first = queue
            .receive(LANE, "a", 10, Duration::from_millis(10))
            .await
            .unwrap_or_default();
        assert_eq!(first.len(), 1);
        let again = queue
            .receive(LANE, "b", 10, Duration::from_millis(10))
            .await
            .unwrap_or_default();
        assert!(
            again.is_empty(),
            "a pending job is not handed to another consumer"
        );

        let early = queue
            .reclaim(LANE, "b", Duration::from_secs(60), 10)
            .await
            .unwrap_or_default();
        assert!(early.is_empty());
        let late = queue
            .reclaim(LANE, "b", Duration::ZERO, 10)
            .await
            .unwrap_or_default();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].attempt, 2);

        queue.ack(&late[0]).await.ok();
        let after_ack = queue
            .reclaim(LANE, "c", Duration::ZERO, 10)
            .await
            .unwrap_or_default();
        assert!(after_ack.is_empty());
    }

    #[tokio::test]
    async fn each_lane_hands_out_only_its_own_jobs() {
        let queue = LocalJobQueue::new();
        let change = Job {
            kind: "directory.changed".into(),
            payload: serde_json::json!({}),
        };
        queue.publish(&job(1)).await.ok();
        queue.publish(&change).await.ok();
        let wait = Duration::from_millis(10);
        let changes = queue
            .receive(Lane::Changes, "a", 10, wait)
            .await
            .unwrap_or_default();
        assert_eq!(
            changes.iter().map(|d| &d.job).collect::<Vec<_>>(),
            [&change]
        );
        assert_eq!(changes[0].lane, Lane::Changes);
        let webhooks = queue
            .receive(Lane::Webhooks, "a", 10, wait)
            .await
            .unwrap_or_default();
        assert!(webhooks.is_empty());
        let syncs = queue.receive(LANE, "a", 10, wait).await.unwrap_or_default();
        assert_eq!(
            syncs.iter().map(|d| d.job.clone()).collect::<Vec<_>>(),
            [job(1)]
        );
        let reclaimed = queue
            .reclaim(Lane::Webhooks, "b", Duration::ZERO, 10)
            .await
            .unwrap_or_default();
        assert!(reclaimed.is_empty(), "a lane reclaims only its own");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_when_a_job_arrives() {
        let queue = LocalJobQueue::new();
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.receive(LANE, "a", 1, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.publish(&job(7)).await.ok();
        let got = waiter.await.ok().and_then(|r| r.ok()).unwrap_or_default();
        assert_eq!(got.first().map(|d| d.job.clone()), Some(job(7)));
    }
}
