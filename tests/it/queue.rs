//! The Redis Streams job queue against a real Redis.

use std::time::Duration;

use orgsync_domain::ports::{Job, JobQueue, Lane, Task};
use orgsync_infra::RedisJobQueue;
use serde_json::json;

use crate::support::redis_url;

fn prefix() -> String {
    format!("orgsync-test:{}:", uuid::Uuid::new_v4().simple())
}

fn job(n: u64) -> Job {
    Job {
        kind: "test".into(),
        payload: json!({ "n": n }),
    }
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(
            ["jobs", "changes", "webhooks", "dead"]
                .map(|key| format!("{prefix}{key}"))
                .to_vec(),
        )
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn each_job_goes_to_one_consumer_and_an_unacknowledged_one_is_reclaimed() {
    let prefix = prefix();
    let queue = RedisJobQueue::connect(&redis_url(), &prefix).await.unwrap();
    for n in 0..3 {
        queue.publish(&job(n)).await.unwrap();
    }
    let first = queue
        .receive(Lane::Sync, "a", 2, Duration::from_millis(100))
        .await
        .unwrap();
    let second = queue
        .receive(Lane::Sync, "b", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(second.len(), 1);
    let payloads: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|d| d.job.payload["n"].clone())
        .collect();
    assert_eq!(payloads, [json!(0), json!(1), json!(2)]);
    assert!(queue
        .receive(Lane::Sync, "c", 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());

    // "a" acknowledges one job and dies holding the other.
    queue.ack(&first[0]).await.unwrap();
    queue.ack(&second[0]).await.unwrap();
    assert!(
        queue
            .reclaim(Lane::Sync, "c", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "lease not expired"
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let reclaimed = queue
        .reclaim(Lane::Sync, "c", Duration::from_millis(20), 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].job, first[1].job);
    assert_eq!(reclaimed[0].attempt, 2);
    queue.ack(&reclaimed[0]).await.unwrap();
    assert_eq!(
        queue.len().await.unwrap(),
        0,
        "acknowledged entries are removed"
    );
    cleanup(&prefix).await;
}

#[tokio::test]
async fn the_queue_recovers_when_redis_loses_its_stream() {
    let prefix = prefix();
    let queue = RedisJobQueue::connect(&redis_url(), &prefix).await.unwrap();
    queue.publish(&job(1)).await.unwrap();
    // What a FLUSHALL or a restart without persistence does to our keys.
    cleanup(&prefix).await;
    assert!(queue
        .receive(Lane::Sync, "a", 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    queue.publish(&job(2)).await.unwrap();
    let got = queue
        .receive(Lane::Sync, "a", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.job.clone()).collect::<Vec<_>>(),
        [job(2)]
    );
    cleanup(&prefix).await;
}

/// Each lane is its own stream with its own blocking connection: a job is
/// handed out only by its lane, and a read waiting on an empty lane does
/// not hold up a read of another (on one shared connection, the second
/// read queued behind the first's whole wait).
#[tokio::test]
async fn lanes_hand_out_their_own_jobs_and_never_wait_on_each_other() {
    let prefix = prefix();
    let queue = RedisJobQueue::connect(&redis_url(), &prefix).await.unwrap();
    let change = Task::DirectoryChanged {
        connection_id: orgsync_domain::directory::ConnectionId::new(),
    };
    let waiting_on_syncs = tokio::spawn({
        let queue = queue.clone();
        async move {
            queue
                .receive(Lane::Sync, "a", 10, Duration::from_secs(3))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue.publish(&change.to_job()).await.unwrap();
    let asked = std::time::Instant::now();
    let changes = queue
        .receive(Lane::Changes, "b", 10, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "the changes lane waited {:?} on the sync lane's read",
        asked.elapsed()
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].lane, Lane::Changes);
    assert_eq!(Task::from_job(&changes[0].job), Ok(change));
    assert!(queue
        .receive(Lane::Webhooks, "b", 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    queue.ack(&changes[0]).await.unwrap();
    assert!(
        waiting_on_syncs.await.unwrap().unwrap().is_empty(),
        "the sync lane saw no change"
    );
    assert_eq!(queue.len().await.unwrap(), 0);
    cleanup(&prefix).await;
}

/// Counts the tasks it is handed; fails those of one connection.
struct Recorder {
    ran: std::sync::Mutex<Vec<orgsync_domain::ports::Task>>,
    failing: orgsync_domain::directory::ConnectionId,
}

#[async_trait::async_trait]
impl orgsync_infra::worker::TaskHandler for Recorder {
    async fn handle(&self, task: orgsync_domain::ports::Task) -> orgsync_domain::Result<()> {
        self.ran.lock().unwrap().push(task);
        match task {
            orgsync_domain::ports::Task::DirectoryChanged { connection_id }
                if connection_id == self.failing =>
            {
                Err(orgsync_domain::Error::Unavailable("down".into()))
            }
            _ => Ok(()),
        }
    }
}

/// A job no task fits (an unknown kind, a malformed payload) is never run
/// and never quietly dropped: it is set aside with the reason. So is a job
/// that failed its last attempt. Everything else runs.
#[tokio::test]
async fn unknown_and_exhausted_jobs_are_dead_lettered_with_the_reason() {
    use orgsync_domain::directory::ConnectionId;
    use orgsync_infra::worker::{Worker, WorkerSettings};

    let prefix = prefix();
    let queue = RedisJobQueue::connect(&redis_url(), &prefix).await.unwrap();
    let failing = ConnectionId(uuid::Uuid::now_v7());
    let fine = Task::Sync {
        job_id: orgsync_domain::sync::JobId::new(),
    };
    queue.publish(&job(1)).await.unwrap();
    queue
        .publish(&Job {
            kind: "sync.job".into(),
            payload: json!({"job_id": 42}),
        })
        .await
        .unwrap();
    queue.publish(&fine.to_job()).await.unwrap();
    queue
        .publish(
            &Task::DirectoryChanged {
                connection_id: failing,
            }
            .to_job(),
        )
        .await
        .unwrap();
    let recorder = std::sync::Arc::new(Recorder {
        ran: std::sync::Mutex::new(Vec::new()),
        failing,
    });
    let worker = Worker::new(
        std::sync::Arc::new(queue.clone()),
        recorder.clone(),
        WorkerSettings {
            lease: Duration::from_millis(100),
            max_attempts: 2,
            poll: Duration::from_millis(50),
            ..WorkerSettings::default()
        },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = queue.dead_letters().await.unwrap();
        if dead.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert_eq!(dead[0].0.kind, "test");
    assert!(dead[0].1.contains("no such kind"), "{}", dead[0].1);
    assert!(dead[1].1.contains("malformed payload"), "{}", dead[1].1);
    assert!(dead[2].1.starts_with("failed 2 times"), "{}", dead[2].1);
    let ran = recorder.ran.lock().unwrap().clone();
    assert_eq!(ran.iter().filter(|t| **t == fine).count(), 1);
    assert_eq!(
        ran.len(),
        3,
        "the fine one once, the failing one twice: {ran:?}"
    );
    assert_eq!(queue.len().await.unwrap(), 0, "nothing left pending");
    cleanup(&prefix).await;
}

/// Runs `long` for 2 s and every other task for 20 ms; notes when each ended.
struct Sleeper {
    finished: std::sync::Mutex<Vec<(orgsync_domain::ports::Task, std::time::Instant)>>,
    long: orgsync_domain::ports::Task,
}

#[async_trait::async_trait]
impl orgsync_infra::worker::TaskHandler for Sleeper {
    async fn handle(&self, task: Task) -> orgsync_domain::Result<()> {
        let ms = if task == self.long { 2_000 } else { 20 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let now = std::time::Instant::now();
        self.finished.lock().unwrap().push((task, now));
        Ok(())
    }
}

/// A long job holds one of the worker's slots, not the lane: jobs read
/// with it, and jobs published after it, run while it does. (The worker used
/// to read the next jobs only once all those in hand were done.)
#[tokio::test]
async fn a_long_job_holds_one_slot_and_the_rest_keep_flowing() {
    use orgsync_infra::worker::{Worker, WorkerSettings};

    let prefix = prefix();
    let queue = RedisJobQueue::connect(&redis_url(), &prefix).await.unwrap();
    let sync = || Task::Sync {
        job_id: orgsync_domain::sync::JobId::new(),
    };
    let long = sync();
    let handler = std::sync::Arc::new(Sleeper {
        finished: std::sync::Mutex::new(Vec::new()),
        long,
    });
    queue.publish(&long.to_job()).await.unwrap();
    for _ in 0..3 {
        queue.publish(&sync().to_job()).await.unwrap();
    }
    let worker = Worker::new(
        std::sync::Arc::new(queue.clone()),
        handler.clone(),
        WorkerSettings {
            batch: 4,
            concurrency: 4,
            poll: Duration::from_millis(100),
            ..WorkerSettings::default()
        },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = std::time::Instant::now();
    let running = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..6 {
        queue.publish(&sync().to_job()).await.unwrap();
    }
    let all = crate::support::poll(100, Duration::from_millis(50), async || {
        let finished = handler.finished.lock().unwrap().clone();
        (finished.len() == 10).then_some(finished)
    })
    .await
    .expect("every job ran");
    shutdown.cancel();
    running.await.unwrap();
    let long_done = all.iter().find(|(task, _)| *task == long).unwrap().1;
    let short_done: Vec<_> = all.iter().filter(|(task, _)| *task != long).collect();
    assert!(
        short_done.iter().all(|(_, at)| *at < long_done),
        "short jobs waited for the long one: {:?}",
        short_done
            .iter()
            .map(|(_, at)| at.duration_since(started))
            .collect::<Vec<_>>()
    );
    cleanup(&prefix).await;
}

/// A TCP relay to Redis that can stall: connections stay open but nothing
/// crosses them until it resumes, as when Redis hangs or the path to it
/// stops delivering for a while.
struct Relay {
    url: String,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let silent = std::sync::Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let silent = flag.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf).await {
                            // Held, not dropped: TCP delivers what was sent once the path clears.
                            while silent.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        Self { url, silent }
    }

    fn silence(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Redis is not the source of truth, and callers publish on a request's
/// path: a Redis that stops answering must fail a command within seconds
/// (the caller goes on; the sweeper publishes again), not hold it until the
/// kernel gives up on the connection. Once Redis answers again, so does
/// the queue.
#[tokio::test]
async fn a_redis_that_stops_answering_fails_commands_soon_and_is_used_again_after() {
    let prefix = prefix();
    let relay = Relay::start().await;
    let queue = RedisJobQueue::connect(&relay.url, &prefix).await.unwrap();
    queue.publish(&job(0)).await.unwrap();

    relay.silence(true);
    let bound = Duration::from_secs(10);
    let published = tokio::time::timeout(bound, queue.publish(&job(1))).await;
    assert!(matches!(published, Ok(Err(_))), "{published:?}");
    let received = tokio::time::timeout(
        bound,
        queue.receive(Lane::Sync, "a", 10, Duration::from_millis(100)),
    )
    .await;
    assert!(matches!(received, Ok(Err(_))), "{received:?}");

    relay.silence(false);
    let recovered = crate::support::poll(50, Duration::from_millis(200), async || {
        queue.publish(&job(2)).await.ok()
    })
    .await;
    assert!(recovered.is_some(), "the queue never answered again");
    // The reads sent while the relay held them reach Redis when it resumes
    // and may take entries for a consumer nobody waits on: the job shows up
    // either as new or, idle in that consumer's pending list, by reclaiming.
    let delivered = crate::support::poll(50, Duration::from_millis(100), async || {
        let mut seen = queue
            .receive(Lane::Sync, "b", 10, Duration::from_millis(50))
            .await
            .ok()?;
        seen.extend(
            queue
                .reclaim(Lane::Sync, "b", Duration::ZERO, 10)
                .await
                .ok()?,
        );
        seen.iter()
            .any(|d| d.job.payload["n"] == json!(2))
            .then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "the job published after the stall never arrived"
    );
    cleanup(&prefix).await;
}
