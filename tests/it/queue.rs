//! The Redis Streams job queue against a real Redis.

use std::time::Duration;

use orgsync_domain::ports::{Job, JobQueue};
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
        .arg(format!("{prefix}jobs"))
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
        .receive("a", 2, Duration::from_millis(100))
        .await
        .unwrap();
    let second = queue
        .receive("b", 10, Duration::from_millis(100))
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
        .receive("c", 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());

    // "a" acknowledges one job and dies holding the other.
    queue.ack(&first[0]).await.unwrap();
    queue.ack(&second[0]).await.unwrap();
    assert!(
        queue
            .reclaim("c", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "lease not expired"
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let reclaimed = queue
        .reclaim("c", Duration::from_millis(20), 10)
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
        .receive("a", 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    queue.publish(&job(2)).await.unwrap();
    let got = queue
        .receive("a", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.job.clone()).collect::<Vec<_>>(),
        [job(2)]
    );
    cleanup(&prefix).await;
}
