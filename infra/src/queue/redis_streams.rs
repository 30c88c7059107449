//! The job queue on Redis Streams.
//!
//! Design: one stream per lane (`{prefix}jobs` for syncs, `{prefix}changes`,
//! `{prefix}webhooks`), each read through one consumer group (`workers`)
//! on a blocking connection of its own, so a read waiting on one lane never
//! holds up another's. `XADD` publishes; `XREADGROUP ... >` hands each new entry to
//! exactly one consumer, where it stays *pending* until `XACK`. A consumer that
//! dies leaves its entries pending; `XAUTOCLAIM` lets another consumer take
//! over entries idle longer than the lease, and the entry's delivery count
//! tells how many attempts it has had. Acknowledged entries are deleted so the
//! stream holds only live work.
//!
//! Redis is not the source of truth: if it is flushed or restarted, the stream
//! and group vanish; they are recreated on the next call (`NOGROUP` is handled),
//! and the dispatcher re-publishes unfinished work from the database.

use std::time::Duration;

use orgsync_domain::ports::{Delivery, HealthCheck, Job, JobQueue, Lane};
use orgsync_domain::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError};

const GROUP: &str = "workers";
const FIELD: &str = "job";
/// Dead letters kept (oldest trimmed first): enough to see what went wrong.
const DEAD_LETTERS_KEPT: usize = 10_000;
/// Reconnection attempts after a connection is lost, and the longest pause
/// between two (the crate's defaults add up to about ten seconds).
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MAX_DELAY_MS: u64 = 500;
/// How long a command, or an attempt to connect, may go unanswered before
/// it fails. Redis is not the source of truth, and callers treat it so (a
/// request that publishes a job answers without it; the sweeper publishes
/// again): without a bound, a Redis that went away held such a request for
/// two minutes, until the kernel gave up on the connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisJobQueue {
    /// Multiplexed, reconnecting connection for short commands.
    conn: ConnectionManager,
    lanes: std::sync::Arc<[LaneStream; 3]>,
    /// `{prefix}dead`: jobs set aside with the reason, for an operator.
    dead: String,
}

/// A lane's stream, and the connection its blocking reads hold for their
/// whole wait (on a shared one, each lane's read would queue behind the others').
#[derive(Clone)]
struct LaneStream {
    lane: Lane,
    key: String,
    blocking: ConnectionManager,
}

/// Where each lane lives; syncs keep the key every job had before lanes.
fn stream_key(prefix: &str, lane: Lane) -> String {
    match lane {
        Lane::Sync => format!("{prefix}jobs"),
        Lane::Changes | Lane::Webhooks => format!("{prefix}{}", lane.as_str()),
    }
}

fn unavailable(err: RedisError) -> Error {
    Error::Unavailable(format!("redis: {err}"))
}

impl RedisJobQueue {
    /// Connects to `url`; every key this queue touches starts with `prefix`
    /// (so tenants of one Redis, or parallel tests, never meet).
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::invalid("redis.url", e.to_string()))?;
        let short_commands = Self::reconnecting().set_response_timeout(ANSWER_WITHIN);
        let conn = ConnectionManager::new_with_config(client.clone(), short_commands)
            .await
            .map_err(unavailable)?;
        // A blocking read waits as long as its caller asks (bounded in
        // `receive`), so only its connection attempts are bounded here.
        let mut lanes = Vec::with_capacity(Lane::ALL.len());
        for lane in Lane::ALL {
            let blocking = ConnectionManager::new_with_config(client.clone(), Self::reconnecting())
                .await
                .map_err(unavailable)?;
            lanes.push(LaneStream {
                lane,
                key: stream_key(prefix, lane),
                blocking,
            });
        }
        let lanes: [LaneStream; 3] = lanes
            .try_into()
            .map_err(|_| Error::Internal(anyhow::anyhow!("one stream per lane")))?;
        let queue = Self {
            conn,
            lanes: std::sync::Arc::new(lanes),
            dead: format!("{prefix}dead"),
        };
        for lane in queue.lanes.iter() {
            queue.ensure_group(&lane.key).await?;
        }
        Ok(queue)
    }

    /// Connects within [`ANSWER_WITHIN`], and retries a lost connection a
    /// few times quickly rather than for many seconds.
    fn reconnecting() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(ANSWER_WITHIN)
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY_MS)
    }

    /// `lanes` holds one stream per lane, in [`Lane::ALL`]'s order.
    fn lane(&self, lane: Lane) -> &LaneStream {
        let at = Lane::ALL.iter().position(|l| *l == lane).unwrap_or(0);
        &self.lanes[at]
    }

    async fn ensure_group(&self, stream: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let created: std::result::Result<(), RedisError> =
            conn.xgroup_create_mkstream(stream, GROUP, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Runs `op` on `stream`, recreating its group once if Redis lost it (flush, restart).
    async fn with_group<T, F, Fut>(&self, stream: &str, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        match op().await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group(stream).await?;
                op().await.map_err(unavailable)
            }
            other => other.map_err(unavailable),
        }
    }

    fn decode(entry: &StreamId, attempt: u32, lane: Lane) -> Option<Delivery> {
        let raw: String = entry.get(FIELD)?;
        match serde_json::from_str::<Job>(&raw) {
            Ok(job) => Some(Delivery {
                id: entry.id.clone(),
                job,
                attempt,
                lane,
            }),
            Err(e) => {
                tracing::error!(entry = %entry.id, error = %e, "undecodable job entry");
                None
            }
        }
    }

    /// Entries that cannot be decoded can never succeed: drop them rather than
    /// let them be reclaimed forever.
    async fn discard(&self, lane: Lane, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let stream = &self.lane(lane).key;
        let mut conn = self.conn.clone();
        redis::pipe()
            .xack(stream, GROUP, ids)
            .xdel(stream, ids)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    fn decode_all(
        lane: Lane,
        entries: &[StreamId],
        attempts: impl Fn(&str) -> u32,
    ) -> (Vec<Delivery>, Vec<String>) {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut broken = Vec::new();
        for entry in entries {
            match Self::decode(entry, attempts(&entry.id), lane) {
                Some(d) => deliveries.push(d),
                None => broken.push(entry.id.clone()),
            }
        }
        (deliveries, broken)
    }

    /// The jobs set aside, oldest first, with why (for operators and tests).
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn dead_letters(&self) -> Result<Vec<(Job, String)>> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply =
            conn.xrange_all(&self.dead).await.map_err(unavailable)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| {
                let raw: String = entry.get(FIELD)?;
                let reason: String = entry.get("reason")?;
                Some((serde_json::from_str(&raw).ok()?, reason))
            })
            .collect())
    }

    /// Number of entries waiting or pending in every lane (for metrics and tests).
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn len(&self) -> Result<u64> {
        let mut pipe = redis::pipe();
        for lane in self.lanes.iter() {
            pipe.xlen(&lane.key);
        }
        let mut conn = self.conn.clone();
        let lengths: Vec<u64> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(lengths.iter().sum())
    }
}

#[async_trait::async_trait]
impl JobQueue for RedisJobQueue {
    async fn publish(&self, job: &Job) -> Result<()> {
        let raw = serde_json::to_string(job).map_err(|e| Error::Internal(e.into()))?;
        let mut conn = self.conn.clone();
        let _: String = conn
            .xadd(&self.lane(job.lane()).key, "*", &[(FIELD, raw)])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn receive(
        &self,
        lane: Lane,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let block_ms = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let stream = self.lane(lane);
        let read = self.with_group(&stream.key, || {
            let mut conn = stream.blocking.clone();
            let options = StreamReadOptions::default()
                .group(GROUP, consumer)
                .count(max)
                .block(block_ms);
            async move { conn.xread_options(&[&stream.key], &[">"], &options).await }
        });
        let reply: Option<StreamReadReply> = tokio::time::timeout(wait + ANSWER_WITHIN, read)
            .await
            .map_err(|_| Error::Unavailable("redis: no answer to a blocking read".into()))??;
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        let (deliveries, broken) = Self::decode_all(lane, &entries, |_| 1);
        self.discard(lane, &broken).await?;
        Ok(deliveries)
    }

    async fn reclaim(
        &self,
        lane: Lane,
        consumer: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>> {
        let idle_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let stream = &self.lane(lane).key;
        let claimed: StreamAutoClaimReply = self
            .with_group(stream, || {
                let mut conn = self.conn.clone();
                async move {
                    conn.xautoclaim_options(
                        stream,
                        GROUP,
                        consumer,
                        idle_ms,
                        "0-0",
                        StreamAutoClaimOptions::default().count(max),
                    )
                    .await
                }
            })
            .await?;
        let entries = claimed.claimed;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM does not report delivery counts; XPENDING over the same range does.
        let first = entries.first().map(|e| e.id.clone()).unwrap_or_default();
        let last = entries.last().map(|e| e.id.clone()).unwrap_or_default();
        let mut conn = self.conn.clone();
        let pending: redis::streams::StreamPendingCountReply = conn
            .xpending_consumer_count(stream, GROUP, &first, &last, entries.len(), consumer)
            .await
            .map_err(unavailable)?;
        let counts: std::collections::HashMap<String, u32> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, u32::try_from(p.times_delivered).unwrap_or(u32::MAX)))
            .collect();
        let (deliveries, broken) =
            Self::decode_all(lane, &entries, |id| counts.get(id).copied().unwrap_or(1));
        self.discard(lane, &broken).await?;
        Ok(deliveries)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.discard(delivery.lane, std::slice::from_ref(&delivery.id))
            .await
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let raw = serde_json::to_string(&delivery.job).map_err(|e| Error::Internal(e.into()))?;
        let mut conn = self.conn.clone();
        let _: String = conn
            .xadd_maxlen(
                &self.dead,
                redis::streams::StreamMaxlen::Approx(DEAD_LETTERS_KEPT),
                "*",
                &[
                    (FIELD, raw),
                    ("reason", reason.to_owned()),
                    ("attempts", delivery.attempt.to_string()),
                ],
            )
            .await
            .map_err(unavailable)?;
        self.ack(delivery).await
    }

    async fn publish_batch(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            let raw = serde_json::to_string(job).map_err(|e| Error::Internal(e.into()))?;
            pipe.xadd(&self.lane(job.lane()).key, "*", &[(FIELD, raw)])
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn depth(&self) -> Result<Option<u64>> {
        self.len().await.map(Some)
    }

    async fn ack_batch(&self, deliveries: &[Delivery]) -> Result<()> {
        for lane in self.lanes.iter() {
            let ids: Vec<String> = (deliveries.iter())
                .filter(|d| d.lane == lane.lane)
                .map(|d| d.id.clone())
                .collect();
            self.discard(lane.lane, &ids).await?;
        }
        Ok(())
    }
}

/// Readiness of the queue: Redis must answer PING.
pub struct QueueHealth(pub RedisJobQueue);

#[async_trait::async_trait]
impl HealthCheck for QueueHealth {
    fn component(&self) -> &'static str {
        "queue"
    }

    async fn check(&self) -> std::result::Result<(), String> {
        let mut conn = self.0.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("redis: {e}"))
    }
}
