//! The job queue on Redis Streams.
//!
//! Design: one stream (`{prefix}jobs`) read through one consumer group
//! (`workers`). `XADD` publishes; `XREADGROUP ... >` hands each new entry to
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

use orgsync_domain::ports::{Delivery, HealthCheck, Job, JobQueue};
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
    /// Blocking reads hold a connection for their whole wait, so they get their own.
    blocking: ConnectionManager,
    stream: String,
    /// `{prefix}dead`: jobs set aside with the reason, for an operator.
    dead: String,
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
        let blocking = ConnectionManager::new_with_config(client, Self::reconnecting())
            .await
            .map_err(unavailable)?;
        let queue = Self {
            conn,
            blocking,
            stream: format!("{prefix}jobs"),
            dead: format!("{prefix}dead"),
        };
        queue.ensure_group().await?;
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

    async fn ensure_group(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let created: std::result::Result<(), RedisError> =
            conn.xgroup_create_mkstream(&self.stream, GROUP, "0").await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Runs `op`, recreating the group once if Redis lost it (flush, restart).
    async fn with_group<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        match op().await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                op().await.map_err(unavailable)
            }
            other => other.map_err(unavailable),
        }
    }

    fn decode(entry: &StreamId, attempt: u32) -> Option<Delivery> {
        let raw: String = entry.get(FIELD)?;
        match serde_json::from_str::<Job>(&raw) {
            Ok(job) => Some(Delivery {
                id: entry.id.clone(),
                job,
                attempt,
            }),
            Err(e) => {
                tracing::error!(entry = %entry.id, error = %e, "undecodable job entry");
                None
            }
        }
    }

    /// Entries that cannot be decoded can never succeed: drop them rather than
    /// let them be reclaimed forever.
    async fn discard(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        redis::pipe()
            .xack(&self.stream, GROUP, ids)
            .xdel(&self.stream, ids)
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    fn decode_all(
        &self,
        entries: &[StreamId],
        attempts: impl Fn(&str) -> u32,
    ) -> (Vec<Delivery>, Vec<String>) {
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut broken = Vec::new();
        for entry in entries {
            match Self::decode(entry, attempts(&entry.id)) {
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

    /// Number of entries waiting or pending in the stream (for metrics and tests).
    ///
    /// # Errors
    /// `Unavailable` when Redis cannot be reached.
    pub async fn len(&self) -> Result<u64> {
        let mut conn = self.conn.clone();
        conn.xlen(&self.stream).await.map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl JobQueue for RedisJobQueue {
    async fn publish(&self, job: &Job) -> Result<()> {
        let raw = serde_json::to_string(job).map_err(|e| Error::Internal(e.into()))?;
        let mut conn = self.conn.clone();
        let _: String = conn
            .xadd(&self.stream, "*", &[(FIELD, raw)])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let block_ms = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let read = self.with_group(|| {
            let mut conn = self.blocking.clone();
            let options = StreamReadOptions::default()
                .group(GROUP, consumer)
                .count(max)
                .block(block_ms);
            async move { conn.xread_options(&[&self.stream], &[">"], &options).await }
        });
        let reply: Option<StreamReadReply> = tokio::time::timeout(wait + ANSWER_WITHIN, read)
            .await
            .map_err(|_| Error::Unavailable("redis: no answer to a blocking read".into()))??;
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        let (deliveries, broken) = self.decode_all(&entries, |_| 1);
        self.discard(&broken).await?;
        Ok(deliveries)
    }

    async fn reclaim(&self, consumer: &str, lease: Duration, max: usize) -> Result<Vec<Delivery>> {
        let idle_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let claimed: StreamAutoClaimReply = self
            .with_group(|| {
                let mut conn = self.conn.clone();
                async move {
                    conn.xautoclaim_options(
                        &self.stream,
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
            .xpending_consumer_count(&self.stream, GROUP, &first, &last, entries.len(), consumer)
            .await
            .map_err(unavailable)?;
        let counts: std::collections::HashMap<String, u32> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, u32::try_from(p.times_delivered).unwrap_or(u32::MAX)))
            .collect();
        let (deliveries, broken) =
            self.decode_all(&entries, |id| counts.get(id).copied().unwrap_or(1));
        self.discard(&broken).await?;
        Ok(deliveries)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<()> {
        self.discard(std::slice::from_ref(&delivery.id)).await
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
            pipe.xadd(&self.stream, "*", &[(FIELD, raw)]).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn depth(&self) -> Result<Option<u64>> {
        self.len().await.map(Some)
    }

    async fn ack_batch(&self, deliveries: &[Delivery]) -> Result<()> {
        let ids: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
        self.discard(&ids).await
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
