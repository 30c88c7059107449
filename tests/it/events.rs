//! Events out, from the outside: the events API read by cursor, and signed
//! webhooks delivered to a real receiver on loopback (the test settings
//! allow private targets), through failures, outages and lost queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::fixtures::{connect_directory, create_root};
use crate::scim::Directory;
use crate::support::{poll, TestApp};

/// What the receiver got: every request, and whether it accepted it.
#[derive(Debug, Clone)]
struct Received {
    webhook_id: String,
    event: Value,
    accepted: bool,
    signature_valid: bool,
}

/// How the receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    /// Answers 500 to the first `n` requests, then accepts.
    FailFirst(usize),
    /// Answers 503 to everything.
    Down,
    /// Answers nothing for a minute (a receiver that hangs).
    Hang,
}

/// A webhook receiver on a loopback port, verifying signatures with the
/// endpoint's secret (set once the endpoint is created).
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    secret: Arc<Mutex<Option<String>>>,
}

impl Receiver {
    fn start(behaviour: Behaviour) -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let secret: Arc<Mutex<Option<String>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (state_log, state_secret) = (log.clone(), secret.clone());
        let server = HttpServer::new(move || {
            let (log, secret) = (state_log.clone(), state_secret.clone());
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let (log, secret) = (log.clone(), secret.clone());
                    async move {
                        if matches!(behaviour, Behaviour::Hang) {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        let mut headers = http::HeaderMap::new();
                        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                            if let Some(v) = req.headers().get(name) {
                                headers.insert(
                                    name,
                                    http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                                );
                            }
                        }
                        let signature_valid = secret
                            .lock()
                            .unwrap()
                            .as_deref()
                            .and_then(|s| standardwebhooks::Webhook::new(s).ok())
                            .is_some_and(|hook| hook.verify(&body, &headers).is_ok());
                        let mut log = log.lock().unwrap();
                        let accepted = match behaviour {
                            Behaviour::Accept | Behaviour::Hang => true,
                            Behaviour::FailFirst(n) => log.len() >= n,
                            Behaviour::Down => false,
                        };
                        log.push(Received {
                            webhook_id: req
                                .headers()
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned(),
                            event: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            accepted,
                            signature_valid,
                        });
                        if accepted {
                            HttpResponse::NoContent().finish()
                        } else if matches!(behaviour, Behaviour::Down) {
                            HttpResponse::ServiceUnavailable().finish()
                        } else {
                            HttpResponse::InternalServerError().finish()
                        }
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        Self { url, log, secret }
    }

    fn got(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The events accepted, in the order accepted, each once by webhook-id.
    fn accepted(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.got()
            .into_iter()
            .filter(|r| r.accepted && seen.insert(r.webhook_id.clone()))
            .collect()
    }

    /// Waits (15 s at most) until `n` events were accepted.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        poll(300, Duration::from_millis(50), async || {
            (self.accepted().len() >= n).then_some(())
        })
        .await;
        self.accepted()
    }
}

/// Creates a webhook endpoint on `org` for `receiver` (every type unless
/// `events` says); its id. The receiver learns the secret.
async fn subscribe(app: &TestApp, org: &str, receiver: &Receiver, events: Value) -> String {
    let (status, hook) = app
        .admin(
            "POST",
            org,
            "/webhooks",
            Some(json!({"url": receiver.url, "events": events, "description": "test receiver"})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    *receiver.secret.lock().unwrap() = Some(secret);
    hook["id"].as_str().unwrap().to_owned()
}

/// An app allowing loopback targets, a tenant `Acme`, a receiver behaving
/// as `behaviour` and an endpoint of the tenant sending it `events`.
async fn hooked_tenant(behaviour: Behaviour, events: Value) -> (TestApp, String, Receiver, String) {
    let app = TestApp::spawn_with(allow_loopback).await;
    let org = create_root(&app, "Acme", "acme").await;
    let receiver = Receiver::start(behaviour);
    let hook = subscribe(&app, &org, &receiver, events).await;
    (app, org, receiver, hook)
}

/// A tenant with a SCIM directory (on an app allowing loopback targets) and
/// an endpoint sending `events` to a receiver that accepts everything.
async fn hooked_directory(events: Value) -> (Directory, Receiver) {
    let dir = Directory::with(allow_loopback).await;
    let receiver = Receiver::start(Behaviour::Accept);
    subscribe(&dir.app, &dir.org, &receiver, events).await;
    (dir, receiver)
}

/// A member `email` with the `user` role, as an admin adds it.
fn user_member(email: &str) -> Value {
    json!({"email": email, "role": "user"})
}

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.event["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Reads the org's events through the API, `limit` per page, to the end.
async fn read_all(app: &TestApp, org: &str, query: &str, limit: u64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .admin(
                "GET",
                org,
                &format!("/events?limit={limit}&after={cursor}{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap().clone();
        let done = data.is_empty();
        events.extend(data);
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        if done {
            return events;
        }
    }
}

fn allow_loopback(settings: &mut orgsync_api::config::Settings) {
    settings.webhooks.allow_private_targets = true;
    settings.webhooks.retry_base_ms = 50;
    settings.webhooks.retry_cap_ms = 200;
    settings.events.dispatch_every_ms = 20;
}

#[actix_web::test]
async fn member_changes_arrive_signed_in_order_and_the_events_api_pages_them() {
    let (app, org, receiver, _hook) = hooked_tenant(Behaviour::Accept, json!([])).await;

    let (status, member) = app
        .add_member(
            &org,
            json!({"email": "ada@example.com", "role": "user", "name": "Ada"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let id = member["id"].as_str().unwrap();
    let path = format!("/members/{id}");
    let (status, _) = app
        .admin("PATCH", &org, &path, Some(json!({"role": "admin"})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .admin("PATCH", &org, &path, Some(json!({"status": "suspended"})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.admin("DELETE", &org, &path, None).await;
    assert_eq!(status, 204);
    let (conn, _) = connect_directory(&app, &org, "Okta").await;
    let (status, off) = app
        .admin(
            "PUT",
            &org,
            &format!("/connections/{conn}/directory-sync"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{off}");

    let got = receiver.wait_for(6).await;
    assert_eq!(
        types(&got),
        [
            "member.created",
            "member.updated",
            "member.suspended",
            "member.removed",
            "connection.activated",
            "connection.deactivated"
        ]
    );
    assert!(got.iter().all(|r| r.signature_valid), "{got:?}");
    assert!(got.iter().all(|r| r.event["org_id"] == org.as_str()));
    assert_eq!(got[1].event["data"]["role"], "admin");
    assert_eq!(got[1].event["previous"], json!({"role": "user"}));
    assert_eq!(got[3].event["data"]["email"], "ada@example.com");
    let ids: Vec<&str> = got.iter().map(|r| r.webhook_id.as_str()).collect();
    let event_ids: Vec<&str> = got
        .iter()
        .map(|r| r.event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, event_ids, "webhook-id is the event's id");

    // The API gives the same events in the same order, page by page, with
    // no gaps and no repeats; a type filter narrows them.
    let all = read_all(&app, &org, "", 2).await;
    let api_ids: Vec<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(api_ids, event_ids);
    let removed = read_all(&app, &org, "&types=member.removed,member.created", 50).await;
    assert_eq!(removed.len(), 2);
    let (status, bad) = app
        .admin("GET", &org, "/events?types=member.exploded", None)
        .await;
    assert_eq!(status, 422, "{bad}");
    for bad in [
        "/events?after=abc",
        "/events?after=-1",
        "/events?limit=0",
        "/events?limit=5000",
    ] {
        let (status, body) = app.admin("GET", &org, bad, None).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }

    // Deliveries are listed with their outcome.
    let (status, hooks) = app.admin("GET", &org, "/webhooks", None).await;
    assert_eq!(status, 200);
    let hook = hooks["data"][0]["id"].as_str().unwrap();
    assert!(
        hooks["data"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let (status, deliveries) = app
        .admin("GET", &org, &format!("/webhooks/{hook}/deliveries"), None)
        .await;
    assert_eq!(status, 200, "{deliveries}");
    let deliveries = deliveries["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), 6);
    assert!(deliveries
        .iter()
        .all(|d| d["status"] == "succeeded" && d["attempts"] == 1 && d["last_status_code"] == 204));
    app.finish().await;
}

#[actix_web::test]
async fn directory_changes_arrive_as_member_events_with_the_sync_run() {
    let (dir, receiver) = hooked_directory(json!([
        "member.created",
        "member.updated",
        "sync.run.completed"
    ]))
    .await;
    crate::fixtures::switch_to_scim(&dir, &dir.org).await;
    let ada = dir.user("ada@example.com").await;
    crate::fixtures::wait_for_members(&dir, &dir.org, 1).await;
    dir.scim_patch(
        &format!("/Users/{ada}"),
        json!([{"op": "replace", "path": "name.formatted", "value": "Ada L."}]),
    )
    .await;
    crate::fixtures::start_sync(&dir, &dir.org, json!({"scope": "both"})).await;
    let got = receiver.wait_for(3).await;
    let types = types(&got);
    assert!(types.contains(&"member.created".to_owned()), "{types:?}");
    assert!(
        types.contains(&"sync.run.completed".to_owned()),
        "{types:?}"
    );
    assert!(
        !types.contains(&"connection.activated".to_owned()),
        "only the types asked for: {types:?}"
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_receiver_failing_three_times_gets_each_event_once_and_in_order() {
    let (app, org, receiver, hook) =
        hooked_tenant(Behaviour::FailFirst(3), json!(["member.created"])).await;
    for i in 0..5 {
        let (status, body) = app
            .add_member(&org, user_member(&format!("u{i}@example.com")))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let got = receiver.wait_for(5).await;
    let emails: Vec<&str> = got
        .iter()
        .map(|r| r.event["data"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        (0..5)
            .map(|i| format!("u{i}@example.com"))
            .collect::<Vec<_>>()
    );
    // The three failures were the first event, retried with the same id;
    // no later event overtook it.
    let all = receiver.got();
    assert!(all[..3].iter().all(|r| !r.accepted));
    assert!(all[..4].iter().all(|r| r.webhook_id == all[0].webhook_id));
    let mut accepted_per_id: HashMap<String, usize> = HashMap::new();
    for r in all.iter().filter(|r| r.accepted) {
        *accepted_per_id.entry(r.webhook_id.clone()).or_default() += 1;
    }
    assert!(
        accepted_per_id.values().all(|n| *n == 1),
        "{accepted_per_id:?}"
    );
    // Successes are recorded after the batch of sends they were part of, so
    // the receiver can hold every event a moment before the records say so.
    let deliveries = format!("/webhooks/{hook}/deliveries?limit=10");
    let first = poll(100, Duration::from_millis(50), async || {
        let (_, page) = app.admin("GET", &org, &deliveries, None).await;
        let first = page["data"].as_array()?.last()?.clone();
        (first["status"] == "succeeded").then_some(first)
    })
    .await
    .expect("the first delivery is recorded as succeeded");
    assert_eq!(first["attempts"], 4, "{first}");
    app.finish().await;
}

/// A tenant whose endpoint (for `member.created`) answers 503 to everything,
/// with a retry window of a second, and a member just added.
async fn a_member_for_a_receiver_that_is_down() -> (TestApp, String, Receiver, String) {
    let app = TestApp::spawn_with(|s| {
        allow_loopback(s);
        s.webhooks.retry_window = 1;
    })
    .await;
    let org = create_root(&app, "Acme", "acme").await;
    let receiver = Receiver::start(Behaviour::Down);
    let hook = subscribe(&app, &org, &receiver, json!(["member.created"])).await;
    let (status, _) = app.add_member(&org, user_member("ada@example.com")).await;
    assert_eq!(status, 201);
    (app, org, receiver, hook)
}

#[actix_web::test]
async fn a_receiver_down_for_the_whole_retry_window_ends_disabled_with_an_event() {
    let (app, org, receiver, hook) = a_member_for_a_receiver_that_is_down().await;
    let endpoint = poll(300, Duration::from_millis(50), async || {
        let (_, endpoint) = app
            .admin("GET", &org, &format!("/webhooks/{hook}"), None)
            .await;
        (endpoint["enabled"] == false).then_some(endpoint)
    })
    .await
    .expect("the endpoint is disabled after its retry window");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("503")),
        "{endpoint}"
    );
    assert!(receiver.got().len() >= 2, "it was retried before giving up");
    let events = read_all(&app, &org, "&types=webhook.endpoint.disabled", 10).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["id"], hook.as_str());
    let (_, audit) = app
        .admin("GET", &org, "/audit-log?action=webhook.disabled", None)
        .await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    let (_, deliveries) = app
        .admin("GET", &org, &format!("/webhooks/{hook}/deliveries"), None)
        .await;
    assert_eq!(deliveries["data"][0]["status"], "failed");
    app.finish().await;
}

/// A delivery that failed for good is sent again when an admin retries it,
/// once the receiver is back: the same event (same webhook-id), signed, and
/// the delivery then shows it succeeded. Another tenant cannot retry it.
#[actix_web::test]
async fn a_failed_delivery_is_sent_again_when_an_admin_retries_it() {
    let (app, org, down, hook) = a_member_for_a_receiver_that_is_down().await;
    let deliveries = format!("/webhooks/{hook}/deliveries");
    let failed = poll(300, Duration::from_millis(50), async || {
        let (_, page) = app.admin("GET", &org, &deliveries, None).await;
        (page["data"][0]["status"] == "failed").then(|| page["data"][0].clone())
    })
    .await
    .expect("the delivery fails once the retry window is over");
    let retry = format!("{deliveries}/{}/retry", failed["id"].as_str().unwrap());

    let other = create_root(&app, "Other", "other").await;
    let outsider = app.tokens.org(
        uuid::Uuid::parse_str(&other).unwrap(),
        orgsync_domain::auth::AdminRole::Admin,
    );
    let (status, _) = app.admin_as(&outsider, "POST", &org, &retry, None).await;
    assert_eq!(status, 404, "another tenant cannot reach the delivery");
    let (status, _) = app.admin_as(&outsider, "POST", &other, &retry, None).await;
    assert_eq!(status, 404, "nor through its own org");

    let up = Receiver::start(Behaviour::Accept);
    *up.secret.lock().unwrap() = down.secret.lock().unwrap().clone();
    let (status, endpoint) = app
        .admin(
            "PATCH",
            &org,
            &format!("/webhooks/{hook}"),
            Some(json!({"url": up.url, "enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{endpoint}");
    let (status, retried) = app.admin("POST", &org, &retry, None).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["status"], "pending", "{retried}");

    let received = up.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].signature_valid);
    assert_eq!(received[0].event["type"], "member.created");
    assert_eq!(
        received[0].webhook_id,
        down.got()[0].webhook_id,
        "the same event, not a new one"
    );
    let succeeded = poll(300, Duration::from_millis(50), async || {
        let (_, page) = app.admin("GET", &org, &deliveries, None).await;
        (page["data"][0]["status"] == "succeeded").then_some(())
    })
    .await;
    assert!(succeeded.is_some(), "the delivery shows it succeeded");

    // A delivered event can be sent again on request, under the same
    // webhook-id, so a receiver that deduplicates by id takes it once.
    let (status, _) = app.admin("POST", &org, &retry, None).await;
    assert_eq!(status, 202);
    let resent = poll(300, Duration::from_millis(50), async || {
        let got = up.got();
        (got.len() >= 2).then_some(got)
    })
    .await
    .expect("the delivery is sent again");
    assert_eq!(resent[1].webhook_id, resent[0].webhook_id);
    assert_eq!(up.accepted().len(), 1, "one event, by its id");
    app.finish().await;
}

#[actix_web::test]
async fn events_made_while_workers_and_the_queue_were_gone_arrive_later() {
    let app = TestApp::spawn_idle(allow_loopback).await;
    let org = create_root(&app, "Acme", "acme").await;
    let receiver = Receiver::start(Behaviour::Accept);
    subscribe(&app, &org, &receiver, json!(["member.created"])).await;
    for i in 0..3 {
        app.add_member(&org, user_member(&format!("u{i}@example.com")))
            .await;
    }
    // A dispatcher hands the endpoint to the queue, then the queue loses
    // everything before any worker takes it.
    let handed = app.runtime.event_dispatcher().pass().await.unwrap();
    assert_eq!(handed, 1);
    let client = redis::Client::open(crate::support::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.runtime.settings.redis.key_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    for key in keys {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    app.start_worker();
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    app.finish().await;
}

#[actix_web::test]
async fn webhook_targets_inside_the_network_and_bad_input_are_refused() {
    let app = TestApp::spawn().await;
    let org = create_root(&app, "Acme", "acme").await;
    for (body, field) in [
        (json!({"url": "http://hooks.example.com/"}), "url"),
        (json!({"url": "https://127.0.0.1/hook"}), "url"),
        (json!({"url": "https://169.254.169.254/latest"}), "url"),
        (json!({"url": "https://[::1]/"}), "url"),
        (json!({"url": "https://localhost/"}), "url"),
        (
            json!({"url": "https://hooks.example.com/", "events": ["member.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["webhook.test"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "description": "x".repeat(600)}),
            "description",
        ),
        (
            json!({"url": format!("https://hooks.example.com/{}", "a".repeat(3000))}),
            "url",
        ),
    ] {
        let (status, problem) = app
            .admin("POST", &org, "/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(problem.to_string().contains(field), "{body}: {problem}");
    }
    let (status, _) = app
        .admin(
            "POST",
            &org,
            "/webhooks",
            Some(json!({"url": "https://hooks.example.com/", "extra": 1})),
        )
        .await;
    assert_eq!(status, 422);
    let create = async || {
        app.admin(
            "POST",
            &org,
            "/webhooks",
            Some(json!({"url": "https://hooks.example.com/"})),
        )
        .await
    };
    let (status, hook) = create().await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    // Another tenant's admin sees nothing of it.
    let other = create_root(&app, "Other", "other").await;
    let token = app.tokens.org(
        other.parse().unwrap(),
        orgsync_domain::auth::AdminRole::Owner,
    );
    for (method, path) in [
        ("GET", format!("/api/v1/orgs/{org}/webhooks/{id}")),
        ("GET", format!("/api/v1/orgs/{org}/webhooks")),
        ("GET", format!("/api/v1/orgs/{org}/events")),
        ("DELETE", format!("/api/v1/orgs/{org}/webhooks/{id}")),
        ("GET", format!("/api/v1/orgs/{other}/webhooks/{id}")),
    ] {
        let (status, _) = app.call(method, &path, Some(&token), None).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    // Rotation answers a new secret; an endpoint caps per org.
    let (status, rotated) = app
        .admin("POST", &org, &format!("/webhooks/{id}/secret"), None)
        .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"], hook["secret"]);
    for _ in 1..20 {
        assert_eq!(create().await.0, 201);
    }
    let (status, problem) = create().await;
    assert_eq!(status, 409, "{problem}");
    app.finish().await;
}

#[actix_web::test]
async fn a_rotated_secret_signs_alongside_the_new_one() {
    let (app, org, receiver, hook) = hooked_tenant(Behaviour::Accept, json!([])).await;
    let old = receiver.secret.lock().unwrap().clone();
    let (status, test) = app
        .admin("POST", &org, &format!("/webhooks/{hook}/test"), None)
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["succeeded"], true, "{test}");
    let (_, rotated) = app
        .admin("POST", &org, &format!("/webhooks/{hook}/secret"), None)
        .await;
    // A receiver still on the old secret verifies, and so does one on the new.
    app.admin("POST", &org, &format!("/webhooks/{hook}/test"), None)
        .await;
    *receiver.secret.lock().unwrap() = rotated["secret"].as_str().map(str::to_owned);
    app.admin("POST", &org, &format!("/webhooks/{hook}/test"), None)
        .await;
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.signature_valid), "{got:?}");
    assert!(old.is_some());
    assert_eq!(got[0].event["type"], "webhook.test");
    app.finish().await;
}

#[actix_web::test]
async fn the_embedded_mode_records_and_delivers_events_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("orgsync-events-{}", uuid::Uuid::new_v4()));
    let data_dir = dir.join("data");
    let env = [
        ("ORGSYNC__DATA_DIR", data_dir.display().to_string()),
        (
            "ORGSYNC__WEBHOOKS__ALLOW_PRIVATE_TARGETS",
            "true".to_owned(),
        ),
        ("ORGSYNC__WEBHOOKS__RETRY_BASE_MS", "50".to_owned()),
    ];
    let server = crate::support::Server::start(&env).await;
    let token = crate::support::embedded_platform_token(&data_dir);
    let org = server.create_root(&token, "Acme", "acme").await;
    let receiver = Receiver::start(Behaviour::FailFirst(1));
    let (status, hook) = server
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/orgs/{org}/webhooks"),
            Some(&token),
            Some(json!({"url": receiver.url})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    *receiver.secret.lock().unwrap() = hook["secret"].as_str().map(str::to_owned);
    for i in 0..3 {
        let (status, body) = server
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/orgs/{org}/members"),
                Some(&token),
                Some(user_member(&format!("u{i}@example.com"))),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let got = receiver.wait_for(3).await;
    assert_eq!(types(&got), ["member.created"; 3]);
    assert!(got.iter().all(|r| r.signature_valid));
    let (status, events) = server
        .get(&format!("/api/v1/orgs/{org}/events"), Some(&token))
        .await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["data"].as_array().map(Vec::len), Some(3));
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[actix_web::test]
async fn directory_changes_arrive_as_directory_events_in_order() {
    let (dir, receiver) = hooked_directory(json!([
        "directory.user.created",
        "directory.user.updated",
        "directory.user.deleted",
        "directory.group.created",
        "directory.group.deleted",
        "directory.group.user_added",
        "directory.group.user_removed"
    ]))
    .await;
    let [ada, bob] = dir
        .users_named(["ada@example.com", "bob@example.com"])
        .await;
    let group = dir.group("Engineering", &[&ada]).await;
    dir.add_to_group(&group, &bob).await;
    dir.remove_from_group(&group, &ada).await;
    dir.set_active(&bob, false).await;
    let (status, _) = dir.scim("DELETE", &format!("/Groups/{group}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = dir.scim("DELETE", &format!("/Users/{ada}"), None).await;
    assert_eq!(status, 204);

    let got = receiver.wait_for(9).await;
    assert_eq!(
        types(&got),
        [
            "directory.user.created",
            "directory.user.created",
            "directory.group.created",
            "directory.group.user_added",
            "directory.group.user_added",
            "directory.group.user_removed",
            "directory.user.updated",
            "directory.group.deleted",
            "directory.user.deleted",
        ]
    );
    assert!(got.iter().all(|r| r.signature_valid));
    // Data is the resource as it is when published: Ada and the group are
    // gone by then (only their ids are left), Bob is still there.
    assert_eq!(got[0].event["data"]["id"], ada.as_str());
    assert_eq!(got[1].event["data"]["user_name"], "bob@example.com");
    assert_eq!(got[3].event["data"]["user"]["id"], ada.as_str());
    assert_eq!(got[3].event["data"]["group"]["id"], group.as_str());
    assert_eq!(got[4].event["data"]["user"]["user_name"], "bob@example.com");
    assert_eq!(got[5].event["data"]["user"]["id"], ada.as_str());
    assert_eq!(got[6].event["data"]["active"], false);
    assert_eq!(got[8].event["data"]["id"], ada.as_str());
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_subtree_reads_as_one_ordered_stream_and_a_child_cannot_read_up() {
    let app = TestApp::spawn().await;
    let root = create_root(&app, "Acme", "acme").await;
    let (status, child) = crate::fixtures::create_child(
        &app,
        &app.tokens.platform(),
        &root,
        json!({"name": "Acme EU", "slug": "acme-eu", "kind": "sandbox"}),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    for (i, org) in [&root, &child, &root, &child].into_iter().enumerate() {
        let (status, body) = app
            .add_member(org, user_member(&format!("u{i}@example.com")))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let emails = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["data"]["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let subtree = read_all(&app, &root, "&include_descendants=true", 1).await;
    assert_eq!(
        emails(&subtree),
        [
            "u0@example.com",
            "u1@example.com",
            "u2@example.com",
            "u3@example.com"
        ]
    );
    assert_eq!(
        emails(&read_all(&app, &root, "", 10).await),
        ["u0@example.com", "u2@example.com"]
    );
    assert_eq!(
        emails(&read_all(&app, &child, "&include_descendants=true", 10).await),
        ["u1@example.com", "u3@example.com"]
    );
    let token = app.tokens.org(
        child.parse().unwrap(),
        orgsync_domain::auth::AdminRole::Owner,
    );
    let (status, _) = app
        .admin_as(
            &token,
            "GET",
            &root,
            "/events?include_descendants=true",
            None,
        )
        .await;
    assert_eq!(status, 404);
    app.finish().await;
}

#[actix_web::test]
async fn retention_forgets_old_events_and_finished_deliveries() {
    let (app, org, receiver, hook) = hooked_tenant(Behaviour::Accept, json!([])).await;
    app.add_member(&org, user_member("ada@example.com")).await;
    receiver.wait_for(1).await;
    assert_eq!(read_all(&app, &org, "", 10).await.len(), 1);
    let log = orgsync_infra::SqlEventLog::new(app.runtime.db.clone());
    use orgsync_domain::ports::EventLog;
    let gone = orgsync_domain::org::OrgId(uuid::Uuid::now_v7());
    let stray = orgsync_domain::events::Event::new(
        gone,
        orgsync_domain::events::EventType::SyncRunCompleted,
        json!({}),
        time::OffsetDateTime::now_utc(),
    );
    log.append(&[stray]).await.unwrap();
    let horizon = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    assert_eq!(
        log.purge(horizon).await.unwrap(),
        3,
        "the event, its delivery, and one of an org deleted, never numbered"
    );
    assert!(read_all(&app, &org, "", 10).await.is_empty());
    let (_, deliveries) = app
        .admin("GET", &org, &format!("/webhooks/{hook}/deliveries"), None)
        .await;
    assert_eq!(deliveries["data"], json!([]));
    app.finish().await;
}

/// The dispatcher finds the tenants with events waiting for a number by a
/// skip scan over the orgs that have any: each tenant once, however many of
/// its orgs and events wait, never more than it asks for, and none once
/// they are numbered.
#[actix_web::test]
async fn the_dispatcher_finds_each_tenant_with_waiting_events_once() {
    use crate::fixtures::create_child;
    // Idle: no dispatcher runs, so every event stays unnumbered until asked.
    let app = TestApp::spawn_idle(|_| {}).await;
    let token = app.tokens.platform();
    let mut roots = Vec::new();
    for t in 0..3 {
        let root = create_root(&app, &format!("Tenant {t}"), &format!("tenant-{t}")).await;
        let child = json!({"name": format!("Child {t}"), "slug": format!("child-{t}")});
        let (status, child) = create_child(&app, &token, &root, child).await;
        assert_eq!(status, 201, "{child}");
        let child = child["id"].as_str().unwrap().to_owned();
        for (org, n) in [(&root, 3), (&child, 2)] {
            for m in 0..n {
                let member = json!({"email": format!("m{m}@{org}.example.com")});
                let (status, body) = app.add_member(org, member).await;
                assert_eq!(status, 201, "{body}");
            }
        }
        roots.push(root.parse::<uuid::Uuid>().unwrap());
    }
    let db = app.runtime.db.connection();
    let mut waiting = orgsync_infra::events::tenants_with_unnumbered(db, 100)
        .await
        .unwrap();
    waiting.sort_unstable();
    roots.sort_unstable();
    assert_eq!(waiting, roots, "each tenant once");
    let asked_for_two = orgsync_infra::events::tenants_with_unnumbered(db, 2)
        .await
        .unwrap();
    assert!(
        !asked_for_two.is_empty() && asked_for_two.len() <= 2,
        "{asked_for_two:?}"
    );
    for root in &roots {
        orgsync_infra::events::sequence_root(db, *root)
            .await
            .unwrap();
    }
    let left = orgsync_infra::events::tenants_with_unnumbered(db, 100)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    app.finish().await;
}

/// Deleting an org removes its members, each with its `member.removed`
/// event, and its events stay where its ancestors read their subtree; the
/// parent hears `organization.deleted`.
#[actix_web::test]
async fn a_deleted_orgs_events_stay_in_its_ancestors_subtree() {
    use crate::fixtures::create_child;
    let app = TestApp::spawn_idle(|_| {}).await;
    let root = create_root(&app, "Acme", "acme").await;
    let (status, child) = create_child(
        &app,
        &app.tokens.platform(),
        &root,
        json!({"name": "Lab", "slug": "lab"}),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    for org in [&root, &child] {
        let member = json!({"email": format!("ada@{org}.example.com")});
        let (status, body) = app.add_member(org, member).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, preview) = app.admin("GET", &child, "/deletion-preview", None).await;
    assert_eq!(status, 200, "{preview}");
    let confirm = preview["confirmation"].as_str().unwrap();
    let (status, body) = app
        .admin("DELETE", &child, &format!("?confirm={confirm}"), None)
        .await;
    assert_eq!(status, 204, "{body}");

    let read = |query: &'static str| app.admin("GET", &root, query, None);
    let (status, page) = read("/events?include_descendants=true").await;
    assert_eq!(status, 200, "{page}");
    let seen: Vec<(&str, &str)> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["org_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("member.created", root.as_str()),
            ("member.created", child.as_str()),
            ("member.removed", child.as_str()),
            ("organization.deleted", root.as_str()),
        ]
    );
    let removed = &page["data"][2]["data"];
    assert_eq!(removed["email"], format!("ada@{child}.example.com"));
    let deleted = &page["data"][3]["data"];
    assert_eq!(deleted["id"], child.as_str());
    assert_eq!(deleted["members_removed"], 1);

    let (_, own) = read("/events").await;
    let own: Vec<&str> = own["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        own,
        ["member.created", "organization.deleted"],
        "the parent's own"
    );
    let (status, _) = app.admin("GET", &child, "/events", None).await;
    assert_eq!(status, 404, "the deleted org itself is gone");
    app.finish().await;
}

/// A tenant whose receivers hang until the timeout holds only its share of
/// the delivery slots: another tenant's webhook goes out at once. Before,
/// its six hanging endpoints were all handed to the workers, took every
/// slot (four) for a timeout each, and the other tenant's delivery waited
/// behind them.
#[actix_web::test]
async fn a_tenants_hanging_receivers_do_not_hold_back_another_tenants_webhooks() {
    let app = TestApp::spawn_with(|settings| {
        allow_loopback(settings);
        settings.webhooks.timeout_ms = 3_000;
    })
    .await;
    let acme = create_root(&app, "Acme", "acme").await;
    let hanging = Receiver::start(Behaviour::Hang);
    for _ in 0..6 {
        subscribe(&app, &acme, &hanging, json!(["member.created"])).await;
    }
    let beta = create_root(&app, "Beta", "beta").await;
    let receiver = Receiver::start(Behaviour::Accept);
    subscribe(&app, &beta, &receiver, json!(["member.created"])).await;

    let (status, _) = app.add_member(&acme, user_member("ann@acme.example")).await;
    assert_eq!(status, 201);
    // Acme's attempts are under way, hanging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = std::time::Instant::now();
    let (status, _) = app.add_member(&beta, user_member("bea@beta.example")).await;
    assert_eq!(status, 201);
    let took = poll(300, Duration::from_millis(10), async || {
        (!receiver.accepted().is_empty()).then(|| sent.elapsed())
    })
    .await
    .expect("Beta's webhook arrives");
    assert!(
        took < Duration::from_millis(1_500),
        "Beta's webhook waited {took:?} behind Acme's hanging receivers"
    );
    app.finish().await;
}
