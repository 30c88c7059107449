//! Events out, measured: member changes made through the admin API at a
//! fixed rate, delivered as signed webhooks to a receiver on this machine
//! (latency from the event's `occurred_at`, stamped before its transaction
//! commits, to its arrival); then the events API paging 100,000 events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{exec, Target};

/// Arrivals: (webhook-id, milliseconds from occurred_at to arrival).
type Arrivals = Arc<Mutex<Vec<(String, f64)>>>;

/// A receiver on its own thread and actix system; answers 204 to all.
fn start_receiver() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let log = arrivals.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let log = log.clone();
                App::new().route(
                    "/hook",
                    web::post().to(move |req: actix_web::HttpRequest, body: web::Bytes| {
                        let log = log.clone();
                        async move {
                            let now = OffsetDateTime::now_utc();
                            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let occurred = event["occurred_at"]
                                .as_str()
                                .and_then(|t| {
                                    OffsetDateTime::parse(
                                        t,
                                        &time::format_description::well_known::Rfc3339,
                                    )
                                    .ok()
                                })
                                .unwrap_or(now);
                            let id = req
                                .headers()
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let ms = (now - occurred).as_seconds_f64() * 1000.0;
                            log.lock().unwrap().push((id, ms));
                            HttpResponse::NoContent().finish()
                        }
                    }),
                )
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    (url, arrivals)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) async fn webhook_benchmark(
    api: &Target,
    db: &DatabaseConnection,
    rate: u64,
    seconds: u64,
    clients: usize,
) {
    println!(
        "orgsync webhooks benchmark: POST /members at {rate}/s for {seconds} s from {clients} clients, \
         one endpoint, a receiver on this machine (webhooks.allow_private_targets=true)"
    );
    let (_, org) = api
        .post("/orgs", json!({"name": "Hooks", "slug": "hooks-bench"}))
        .await;
    let org = org["id"].as_str().unwrap().to_owned();
    let (url, arrivals) = start_receiver();
    let (status, hook) = api
        .post(&format!("/orgs/{org}/webhooks"), json!({"url": url}))
        .await;
    assert_eq!(status, 201, "{hook}");

    let total = rate * seconds;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let api = Arc::new(Target {
        http: api.http.clone(),
        base: api.base.clone(),
        token: api.token.clone(),
    });
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, api, org) = (next.clone(), api.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            let mut late = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return late;
                }
                // Open loop: change i is due at i / rate seconds.
                let due = started + interval.mul_f64(i as f64);
                match due.checked_duration_since(Instant::now()) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => late += 1,
                }
                let (status, body) = api
                    .post(
                        &format!("/orgs/{org}/members"),
                        json!({"email": format!("m{i}@example.com"), "role": "user"}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    let mut late = 0;
    for task in tasks {
        late += task.await.unwrap();
    }
    let load = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let mut latencies: Vec<f64> = arrivals.lock().unwrap().iter().map(|(_, ms)| *ms).collect();
    let unique: std::collections::HashSet<String> = arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "  load: {total} changes committed in {:.1} s = {:.0}/s ({late} started behind schedule)",
        load.as_secs_f64(),
        total as f64 / load.as_secs_f64()
    );
    println!(
        "  delivered: {} ({} distinct) by {:.1} s; commit→receiver p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        unique.len(),
        drained.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );

    // The delivery pipeline's own capacity, past what the admin API's write
    // path sustains on this machine: 30,000 events committed at once into
    // the outbox (as one big sync's transaction leaves them), then
    // numbered, fanned out and delivered.
    let burst = 30_000usize;
    let before = arrivals.lock().unwrap().len();
    let t0 = Instant::now();
    exec(
        db,
        "INSERT INTO events (id, org_id, event_type, occurred_at, data) \
         SELECT gen_random_uuid(), $1, 'member.created', clock_timestamp(), \
         jsonb_build_object('id', gen_random_uuid(), 'email', 'b' || g || '@example.com', 'role', 'user')::text \
         FROM generate_series(1, $2) AS g",
        vec![
            org.parse::<uuid::Uuid>().unwrap().into(),
            (burst as i64).into(),
        ],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < before + burst && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed();
    let mut burst_latencies: Vec<f64> = arrivals.lock().unwrap()[before..]
        .iter()
        .map(|(_, ms)| *ms)
        .collect();
    burst_latencies.sort_by(f64::total_cmp);
    println!(
        "  burst: {burst} events committed at once, {} delivered in {:.1} s = {:.0}/s; commit→receiver p50 {:.0} ms, p99 {:.0} ms",
        burst_latencies.len(),
        took.as_secs_f64(),
        burst_latencies.len() as f64 / took.as_secs_f64(),
        percentile(&burst_latencies, 0.5),
        percentile(&burst_latencies, 0.99),
    );

    // The events API: 100,000 events of one org (written straight into the
    // outbox, unnumbered, as writers leave them), read from the start.
    let (_, paged) = api
        .post("/orgs", json!({"name": "Events", "slug": "events-bench"}))
        .await;
    let paged = paged["id"].as_str().unwrap().to_owned();
    exec(
        db,
        "INSERT INTO events (id, org_id, event_type, occurred_at, data) \
         SELECT gen_random_uuid(), $1, 'member.created', now(), \
         jsonb_build_object('id', gen_random_uuid(), 'email', 'u' || g || '@example.com', 'role', 'user')::text \
         FROM generate_series(1, 100000) AS g",
        vec![paged.parse::<uuid::Uuid>().unwrap().into()],
    )
    .await;
    for round in ["first read (numbers the 100,000 first)", "second read"] {
        let t0 = Instant::now();
        let (mut cursor, mut read, mut first_page) = (String::from("0"), 0usize, None);
        loop {
            let (status, page) = api
                .get(&format!("/orgs/{paged}/events?limit=1000&after={cursor}"))
                .await;
            assert_eq!(status, 200, "{page}");
            first_page.get_or_insert(t0.elapsed());
            let n = page["data"].as_array().map_or(0, Vec::len);
            if n == 0 {
                break;
            }
            read += n;
            cursor = page["next_cursor"].as_str().unwrap().to_owned();
        }
        println!(
            "  events API, {round}: {read} events in {:.2} s (1,000 per page; first page {:.0} ms)",
            t0.elapsed().as_secs_f64(),
            first_page.unwrap_or_default().as_secs_f64() * 1000.0
        );
    }
}
