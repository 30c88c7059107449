//! orgsync's SCIM benchmark: a real release `orgsync serve` on PostgreSQL and
//! Redis, driven over HTTP by concurrent clients on this machine. It reports
//! throughput and latency percentiles; it asserts nothing (that is the tests' job).
//!
//! `cargo build --release -p orgsync-api -p orgsync-tests && target/release/orgsync-bench`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod limits;
mod sso;
mod webhooks;

use clap::Parser;
use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks orgsync's SCIM endpoints against PostgreSQL")]
struct Args {
    /// An admin connection to PostgreSQL (a scratch database is created and dropped).
    #[arg(
        long,
        env = "ORGSYNC_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database: String,
    #[arg(
        long,
        env = "ORGSYNC_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// The orgsync binary (default: the release build next to this one).
    #[arg(long)]
    bin: Option<std::path::PathBuf>,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Users created through POST /Users.
    #[arg(long, default_value_t = 20_000)]
    posts: usize,
    /// Directory size for the read and group scenarios.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Seconds per timed scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Leaves the scratch database in place at the end (and says its name),
    /// to look at the plans of a slow phase's queries afterwards.
    #[arg(long)]
    keep_database: bool,
    /// Which benchmarks: `scim`, `sync`, `queue`, `cascade`, `hostile`, `webhooks`, `sso` or `all`.
    #[arg(long, default_value = "all")]
    only: String,
    /// Database pool size of the server under test (shipped default: 10).
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Member changes per second in the webhooks benchmark (for `--seconds`).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Directory groups for the sync benchmark.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// SCIM writes per second offered as background load while the sync
    /// benchmark probes propagation (0: as fast as 4 clients can). Paced, so
    /// that two builds are compared under the same load: a faster write path
    /// would otherwise offer the sync engine more work.
    #[arg(long, default_value_t = 500)]
    background_rate: u64,
}

struct Stats {
    name: String,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    /// The figures of `latencies.len()` calls that took `elapsed` in all.
    fn new(name: impl Into<String>, elapsed: Duration, latencies: Vec<Duration>) -> Self {
        Self {
            name: name.into(),
            count: latencies.len(),
            elapsed,
            latencies,
        }
    }

    fn print(&mut self) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies
                .get(i)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:<58} {:>8} req  {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.name,
            self.count,
            self.count as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    }
}

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Target {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    /// A SCIM PATCH of `path` with the operations `ops`.
    async fn patch(&self, path: &str, ops: Value) -> (u16, Value) {
        self.send(Method::PATCH, path, Some(patch(ops))).await
    }

    /// Adds `user` to the group at `group_path` by PATCH: the status.
    async fn add_member(&self, group_path: &str, user: uuid::Uuid) -> u16 {
        let ops = json!([{"op": "add", "path": "members", "value": [{"value": user}]}]);
        self.patch(group_path, ops).await.0
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json");
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Runs `op(i)` from `clients` tasks until `total` calls (if given) or `duration` passed.
async fn drive<F, Fut>(
    name: &str,
    target: Arc<Target>,
    clients: usize,
    total: Option<usize>,
    duration: Duration,
    op: F,
) -> Stats
where
    F: Fn(Arc<Target>, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = u16> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, target, op) = (next.clone(), target.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if total.is_some_and(|t| i >= t)
                    || (total.is_none() && started.elapsed() >= duration)
                {
                    break;
                }
                let t0 = Instant::now();
                let status = op(target.clone(), i).await;
                latencies.push(t0.elapsed());
                assert!(status < 300, "{status} in benchmark");
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Stats::new(name, started.elapsed(), latencies)
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) {
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        values,
    ))
    .await
    .expect(sql);
}

/// Adds directory users `from..to` in one statement (the read scenarios need a
/// large directory; POST throughput is measured separately). Their ids are
/// time-ordered UUIDv7, one millisecond apart, as `POST /Users` assigns them:
/// random v4 ids would scatter the table against its key order, which no
/// directory the product built has.
async fn seed_users(db: &DatabaseConnection, conn: uuid::Uuid, from: usize, to: usize) {
    exec(
        db,
        "INSERT INTO directory_users (id, connection_id, user_name, user_name_lower, external_id, display_name, active, email, resource, version, created_at, updated_at) \
         SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - 86400000 + n), 12, '0') || '7' \
           || substr(md5(n::text), 1, 3) || '8' || substr(md5(n::text), 4, 15))::uuid, $1, 'user-' || n || '@bench.example', 'user-' || n || '@bench.example', 'ext-' || n, 'User ' || n, TRUE, \
         'user-' || n || '@bench.example', jsonb_build_object('schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'), \
         'userName', 'user-' || n || '@bench.example', 'active', TRUE), 1, now(), now() FROM generate_series($2::bigint, $3::bigint - 1) AS n",
        vec![conn.into(), (from as i64).into(), (to as i64).into()],
    )
    .await;
}

/// Adds `n` empty directory groups named `{prefix}` and their number,
/// zero-padded to `width` digits (so name order is number order).
async fn seed_groups(
    db: &DatabaseConnection,
    conn: uuid::Uuid,
    prefix: &str,
    width: i32,
    n: usize,
) {
    exec(
        db,
        "INSERT INTO directory_groups (id, connection_id, display_name, display_name_lower, external_id, resource, member_count, version, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, $2 || lpad(g::text, $3, '0'), $2 || lpad(g::text, $3, '0'), NULL, \
         jsonb_build_object('displayName', $2 || g::text), 0, 1, now(), now() FROM generate_series(0, $4::bigint - 1) AS g",
        vec![conn.into(), prefix.into(), width.into(), (n as i64).into()],
    )
    .await;
}

/// Puts every directory user of the connection in the groups `which`
/// numbers: SQL `VALUES` rows over `u.n`, the user's number in id order, and
/// `$2`, the number of groups (`groups`), counting groups in name order.
async fn seed_memberships(db: &DatabaseConnection, conn: uuid::Uuid, groups: usize, which: &str) {
    let sql = format!(
        "WITH u AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM directory_users WHERE connection_id = $1), \
         g AS (SELECT id, row_number() OVER (ORDER BY display_name) - 1 AS n FROM directory_groups WHERE connection_id = $1) \
         INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type) \
         SELECT $1, g.id, u.id::text, 'User' FROM u CROSS JOIN LATERAL (VALUES {which}) AS k(n) \
         JOIN g ON g.n = k.n ON CONFLICT DO NOTHING"
    );
    exec(db, &sql, vec![conn.into(), (groups as i64).into()]).await;
}

/// Makes the group's membership `size` users (set-based, outside the API).
async fn seed_members(db: &DatabaseConnection, conn: uuid::Uuid, group: uuid::Uuid, size: usize) {
    exec(
        db,
        "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type) \
         SELECT $1, $2, id::text, 'User' FROM directory_users WHERE connection_id = $1 ORDER BY id LIMIT $3 \
         ON CONFLICT DO NOTHING",
        vec![conn.into(), group.into(), (size as i64).into()],
    )
    .await;
    // Counted from the rows, so the group's pending deltas (from the PATCH
    // phases) are counted already: locked, so no fold runs meanwhile.
    let txn = db.begin().await.expect("begin");
    for sql in [
        "SELECT id FROM directory_groups WHERE id = $1 FOR UPDATE",
        "DELETE FROM directory_group_deltas WHERE group_id = $1",
        "UPDATE directory_groups SET member_count = (SELECT COUNT(*) FROM directory_group_members WHERE group_id = $1) WHERE id = $1",
    ] {
        txn.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            vec![group.into()],
        ))
        .await
        .expect(sql);
    }
    txn.commit().await.expect("commit");
}

/// Sets every group's `member_count` of the connection from its member rows,
/// then refreshes the planner's statistics: the end of a set-based seeding.
async fn finish_seeding(db: &DatabaseConnection, conn: uuid::Uuid) {
    exec(
        db,
        "UPDATE directory_groups g SET member_count = (SELECT COUNT(*) FROM directory_group_members m WHERE m.group_id = g.id) \
         WHERE g.connection_id = $1",
        vec![conn.into()],
    )
    .await;
    exec(db, "ANALYZE", vec![]).await;
}

/// The `id` column of `sql`'s rows, `sql` taking the connection as `$1`.
async fn query_ids(db: &DatabaseConnection, sql: &str, conn: uuid::Uuid) -> Vec<uuid::Uuid> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [conn.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<uuid::Uuid>("", "id").unwrap())
        .collect()
}

/// Deletes the connection's directory users and groups (memberships go with them).
async fn clear_directory(db: &DatabaseConnection, conn: uuid::Uuid) {
    exec(
        db,
        "DELETE FROM directory_users WHERE connection_id = $1",
        vec![conn.into()],
    )
    .await;
    exec(
        db,
        "DELETE FROM directory_groups WHERE connection_id = $1",
        vec![conn.into()],
    )
    .await;
}

/// A new connection of `org` with directory sync on: its id and SCIM token.
async fn directory_sync_connection(api: &Target, org: &str, name: &str) -> (uuid::Uuid, String) {
    let (status, conn) = api
        .post(&format!("/orgs/{org}/connections"), json!({"name": name}))
        .await;
    assert_eq!(status, 201, "{conn}");
    let conn_id: uuid::Uuid = conn["id"].as_str().unwrap().parse().unwrap();
    let (status, sync) = api
        .send(
            Method::PUT,
            &format!("/orgs/{org}/connections/{conn_id}/directory-sync"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{sync}");
    (conn_id, sync["token"].as_str().unwrap().to_owned())
}

/// Milliseconds since `t0`.
fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

struct Server(Child);

impl Server {
    /// `orgsync serve` on `port` with the benchmark's settings, and the SCIM
    /// rate limit off unless `shipped_rate_limit`.
    fn start(
        bin: &std::path::Path,
        port: u16,
        db_url: &str,
        args: &Args,
        name: &str,
        secret: &str,
        shipped_rate_limit: bool,
    ) -> Self {
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env("ORGSYNC__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("ORGSYNC__DATABASE__URL", db_url)
            .env("ORGSYNC__DATABASE__MAX_CONNECTIONS", args.pool.to_string())
            .env("ORGSYNC__REDIS__URL", &args.redis)
            .env("ORGSYNC__REDIS__KEY_PREFIX", format!("{name}:"))
            .env("ORGSYNC__AUTH__JWT_SECRET", secret)
            .env("ORGSYNC__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")
            .env("ORGSYNC__SSO__ALLOW_INSECURE_LOOPBACK", "true")
            .env("ORGSYNC__SSO__REDIRECT_URIS", sso::PRODUCT)
            .env("ORGSYNC__SSO__SIGN_INS_PER_SECOND", "0")
            .env("ORGSYNC__LOG__LEVEL", "error")
            .stdout(Stdio::null());
        if !shipped_rate_limit {
            command.env("ORGSYNC__SCIM__RATE_LIMIT_PER_SECOND", "0");
        }
        Self(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
        )
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server at `base` answers its health check.
async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("orgsync"));
    let admin = Database::connect(&args.database).await.expect("PostgreSQL");
    let name = format!("orgsync_bench_{}", std::process::id());
    exec(&admin, &format!("CREATE DATABASE {name}"), vec![]).await;
    let db_url = format!("{}/{name}", args.database.rsplit_once('/').unwrap().0);
    let port = free_port();
    let secret = "benchmark-secret-benchmark-secret-0123";
    // Every setting that differs from the shipped defaults, stated with the figures.
    // The SCIM rate limit is off: with the shipped one (100 requests/s per
    // connection, bursts of 200) a one-connection benchmark measures the
    // limit. `--only scim` ends with figures under the shipped limit.
    println!(
        "server settings: database.max_connections={} (shipped default 10), \
         scim.rate_limit_per_second=0 (off, the per-tenant limit with it, except where a figure says `limit shipped`: 100 per connection, burst 200, ten times that per tenant), \
         webhooks.allow_private_targets=true (the receiver is on loopback), \
         sso.allow_insecure_loopback=true and sso.redirect_uris={} (the IdP and the product are on loopback), \
         sso.sign_ins_per_second=0 (off; shipped default 20 per client address: the benchmark signs in from one); \
         {} clients, {} users",
        args.pool,
        sso::PRODUCT,
        args.clients,
        args.users
    );
    // The servers inherit this environment: a setting given there is
    // stated with the figures too.
    for (key, value) in std::env::vars().filter(|(key, _)| key.starts_with("ORGSYNC__")) {
        println!("server setting from the environment: {key}={value}");
    }
    let server = Server::start(&bin, port, &db_url, &args, &name, secret, false);
    // Idle connections are dropped before the server's keep-alive (5 s) closes
    // them: reusing one the server is closing fails the request (IncompleteMessage),
    // which a pause between phases (a VACUUM) made happen.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&http, &base).await;
    let platform = String::from_utf8(
        Command::new(&bin)
            .args(["token", "--platform"])
            .env("ORGSYNC__AUTH__JWT_SECRET", secret)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let admin_api = Target {
        http: http.clone(),
        base: format!("{base}/api/v1"),
        token: platform.trim().to_owned(),
    };
    let (_, org) = admin_api
        .post("/orgs", json!({"name": "Bench", "slug": "bench"}))
        .await;
    let org = org["id"].as_str().unwrap().to_owned();
    let (conn_id, token) = directory_sync_connection(&admin_api, &org, "bench").await;
    let target = Arc::new(Target {
        http,
        base: format!("{base}/scim/v2/{conn_id}"),
        token,
    });
    let db = Database::connect(&db_url).await.unwrap();
    let run = Duration::from_secs(args.seconds);
    if args.only == "scim" || args.only == "all" {
        scim_benchmarks(&args, target.clone(), &db, conn_id, run).await;
        let limited_port = free_port();
        let limited_server = Server::start(&bin, limited_port, &db_url, &args, &name, secret, true);
        let limited_base = format!("http://127.0.0.1:{limited_port}");
        wait_healthy(&admin_api.http, &limited_base).await;
        let limited_api = Target {
            base: format!("{limited_base}/api/v1"),
            ..admin_api.clone()
        };
        limits::rate_limit_benchmark(&admin_api, &limited_api, &db, args.clients, run).await;
        drop(limited_server);
    }
    if args.only == "hostile" || args.only == "all" {
        hostile_benchmark(target.clone(), &base, run).await;
    }
    if args.only == "queue" || args.only == "all" {
        queue_benchmark(&args.redis, &format!("{name}-queue:")).await;
    }
    if args.only == "sync" || args.only == "all" {
        sync_benchmarks(&args, &admin_api, &org, &db, conn_id, server.0.id()).await;
    }
    if args.only == "webhooks" || args.only == "all" {
        webhooks::webhook_benchmark(&admin_api, &db, args.rate, args.seconds, args.clients).await;
    }
    if args.only == "sso" || args.only == "all" {
        sso::sso_benchmark(&admin_api, &base, &org, conn_id, 1_000).await;
        sso::saml_benchmark(&admin_api, &base, &org, 1_000).await;
    }
    if args.only == "cascade" || args.only == "all" {
        let mut worker = Command::new(&bin);
        worker
            .arg("worker")
            .env("ORGSYNC__DATABASE__URL", &db_url)
            .env("ORGSYNC__REDIS__URL", &args.redis)
            .env("ORGSYNC__REDIS__KEY_PREFIX", format!("{name}:"))
            .env("ORGSYNC__AUTH__JWT_SECRET", secret)
            .env("ORGSYNC__LOG__LEVEL", "error")
            .stdout(Stdio::null());
        cascade_benchmark(&admin_api, &org, &db, conn_id, &mut worker).await;
    }
    drop(server);
    db.close().await.ok();
    if args.keep_database {
        eprintln!("database kept: {db_url}");
        return;
    }
    exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        vec![],
    )
    .await;
}

async fn scim_benchmarks(
    args: &Args,
    target: Arc<Target>,
    db: &DatabaseConnection,
    conn_id: uuid::Uuid,
    run: Duration,
) {
    println!(
        "orgsync SCIM benchmark: {} clients, PostgreSQL + Redis, release build",
        args.clients
    );

    drive(&format!("POST /Users ({} users)", args.posts), target.clone(), args.clients, Some(args.posts), run, |t, i| async move {
        t.post("/Users", json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("posted-{i}@bench.example"), "externalId": format!("p-{i}"),
            "name": {"givenName": "Post", "familyName": format!("{i}")},
            "emails": [{"value": format!("posted-{i}@bench.example"), "type": "work", "primary": true}],
            "active": true
        })).await.0
    }).await.print();

    let seeded = args.users.saturating_sub(args.posts);
    seed_users(db, conn_id, 0, seeded).await;
    exec(db, "ANALYZE", vec![]).await;
    let users = args.users;
    drive(
        &format!("GET /Users?filter=userName eq (directory of {users})"),
        target.clone(),
        args.clients,
        None,
        run,
        move |t, i| async move {
            let n = (i * 7919) % seeded.max(1);
            let (status, list) = t
                .get(&format!(
                    "/Users?filter=userName%20eq%20%22user-{n}@bench.example%22"
                ))
                .await;
            assert_eq!(list["totalResults"], 1);
            status
        },
    )
    .await
    .print();

    // Ids of seeded users, for PATCH/DELETE/group scenarios.
    let ids: Arc<Vec<uuid::Uuid>> = Arc::new(
        query_ids(
            db,
            "SELECT id FROM directory_users WHERE connection_id = $1 AND user_name LIKE 'user-%' ORDER BY id",
            conn_id,
        )
        .await,
    );

    let patch_ids = ids.clone();
    drive("PATCH /Users/{id} replace displayName", target.clone(), args.clients, None, run, move |t, i| {
        let id = patch_ids[(i * 104_729) % patch_ids.len()];
        async move {
            t.patch(&format!("/Users/{id}"), json!([{"op": "replace", "path": "displayName", "value": format!("Renamed {i}")}])).await.0
        }
    }).await.print();

    let (_, group) = target
        .post("/Groups", json!({"displayName": "Everyone"}))
        .await;
    let group_id: uuid::Uuid = group["id"].as_str().unwrap().parse().unwrap();
    // Every add is of a user not in the group yet: the group is seeded with
    // the first `size` users, and phase k adds the k-th block of 1,000 from
    // the end, which no seeding and no earlier phase reached.
    for (phase, size) in [0usize, ids.len() / 2, ids.len().saturating_sub(3_000)]
        .into_iter()
        .enumerate()
    {
        let fresh_end = ids.len().saturating_sub(1_000 * phase);
        let fresh_start = fresh_end.saturating_sub(1_000).max(size);
        if fresh_start >= fresh_end {
            continue;
        }
        if size > 0 {
            seed_members(db, conn_id, group_id, size).await;
        }
        let member_ids = ids.clone();
        drive(
            &format!("PATCH /Groups add 1 new member (group of ~{size}), 1 client"),
            target.clone(),
            1,
            Some(fresh_end - fresh_start),
            run,
            move |t, i| {
                let id = member_ids[fresh_start + i];
                async move {
                    let group = format!("/Groups/{group_id}?excludedAttributes=members");
                    t.add_member(&group, id).await
                }
            },
        )
        .await
        .print();
    }
    // Entra ID and Okta: one PATCH per new member, many at once, one group.
    // A second group, seeded with all but the last 5,000 users, takes them.
    let (_, crowd) = target
        .post("/Groups", json!({"displayName": "Concurrent"}))
        .await;
    let crowd_id: uuid::Uuid = crowd["id"].as_str().unwrap().parse().unwrap();
    let adds = ids.len().min(5_000);
    let seeded = ids.len() - adds;
    seed_members(db, conn_id, crowd_id, seeded).await;
    let member_ids = ids.clone();
    drive(
        &format!(
            "PATCH /Groups add 1 new member (group of ~{seeded}), {} clients on one group",
            args.clients
        ),
        target.clone(),
        args.clients,
        Some(adds),
        run,
        move |t, i| {
            let id = member_ids[seeded + i];
            async move { t.add_member(&format!("/Groups/{crowd_id}"), id).await }
        },
    )
    .await
    .print();
    // Nothing lost: the stored count and the rows both hold every user.
    let sizes = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT member_count, (SELECT COUNT(*) FROM directory_group_members WHERE group_id = $1) AS rows \
             FROM directory_groups_current WHERE id = $1",
            vec![crowd_id.into()],
        ))
        .await
        .expect("group size")
        .expect("the group");
    let (count, rows): (i64, i64) = (
        sizes.try_get("", "member_count").expect("member_count"),
        sizes.try_get("", "rows").expect("rows"),
    );
    assert_eq!(
        (count, rows),
        (ids.len() as i64, ids.len() as i64),
        "members lost"
    );
    println!(
        "{:<58} {count} members, {rows} rows (all {} users)",
        "  group after the concurrent adds",
        ids.len()
    );

    let t0 = Instant::now();
    let (status, body) = target.get(&format!("/Groups/{group_id}")).await;
    let listed = body["members"].as_array().map_or(0, Vec::len);
    println!(
        "{:<58} status {status}, {listed} members in {:.0} ms",
        format!("GET /Groups/{{id}} with all members (streamed)"),
        ms_since(t0)
    );

    let delete_ids = ids.clone();
    drive(
        "DELETE /Users/{id} (members of the big group)",
        target.clone(),
        args.clients,
        Some(2000),
        run,
        move |t, i| {
            let id = delete_ids[i];
            async move {
                t.send(Method::DELETE, &format!("/Users/{id}"), None)
                    .await
                    .0
            }
        },
    )
    .await
    .print();

    let (_, group) = target
        .get(&format!("/Groups/{group_id}?excludedAttributes=members"))
        .await;
    let _ = group;
    let count: i64 = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT member_count FROM directory_groups WHERE id = $1",
            [group_id.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "member_count")
        .unwrap();
    let path = format!("/Groups/{group_id}");
    let t0 = Instant::now();
    let (status, _) = target.send(Method::DELETE, &path, None).await;
    println!(
        "{:<58} status {status} in {:.0} ms",
        format!("DELETE /Groups/{{id}} with {count} members"),
        ms_since(t0)
    );

    // Leave an empty directory for the next benchmark.
    clear_directory(db, conn_id).await;
}

/// Peak resident memory of a process, in MiB (Linux).
fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resyncs `org` in full (`POST /syncs`, both scopes) and waits for the run:
/// the finished run, and the milliseconds from the request to its end.
async fn timed_resync(api: &Target, org: &str) -> (Value, f64) {
    let t0 = Instant::now();
    let request = json!({"scope": "both"});
    let (run, _) = timed_admin(api, Method::POST, org, "/syncs", request, 202).await;
    let done = wait_run(api, org, &run).await;
    let took = ms_since(t0);
    // A figure only counts for a run that did its work.
    assert_eq!(done["status"], "succeeded", "resync failed: {done}");
    (done, took)
}

/// Sends `method` to `org`'s `rest` with `body`, which must answer
/// `expected`: the answer, and the milliseconds it took.
async fn timed_admin(
    api: &Target,
    method: Method,
    org: &str,
    rest: &str,
    body: Value,
    expected: u16,
) -> (Value, f64) {
    let t0 = Instant::now();
    let (status, answer) = api
        .send(method, &format!("/orgs/{org}{rest}"), Some(body))
        .await;
    let took = ms_since(t0);
    assert_eq!(status, expected, "{answer}");
    (answer, took)
}

async fn wait_run(api: &Target, org: &str, run: &Value) -> Value {
    let path = format!("/orgs/{org}/syncs/{}", run["id"].as_str().unwrap());
    loop {
        let (_, current) = api.get(&path).await;
        if current["status"] == "succeeded" || current["status"] == "failed" {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sync_benchmarks(
    args: &Args,
    api: &Target,
    org: &str,
    db: &DatabaseConnection,
    conn_id: uuid::Uuid,
    pid: u32,
) {
    let users = args.users;
    let groups = args.groups.max(20);
    println!(
        "orgsync sync benchmark: {users} directory users, {groups} groups, 5 memberships each"
    );
    seed_users(db, conn_id, 0, users).await;
    seed_groups(db, conn_id, "group-", 5, groups).await;
    // Every user is in one of the first ten groups (the role-mapped ones) and in four others.
    seed_memberships(
        db,
        conn_id,
        groups,
        "(u.n % 10), (10 + (u.n * 7) % ($2 - 10)), (10 + (u.n * 7 + 13) % ($2 - 10)), \
         (10 + (u.n * 7 + 26) % ($2 - 10)), (10 + (u.n * 7 + 39) % ($2 - 10))",
    )
    .await;
    finish_seeding(db, conn_id).await;
    let top = query_ids(
        db,
        "SELECT id FROM directory_groups WHERE connection_id = $1 ORDER BY display_name LIMIT 10",
        conn_id,
    )
    .await;
    let idle = rss_mib(pid, "VmRSS:");

    let scim = json!({"mode": "scim"});
    let (_, took) = timed_admin(api, Method::PUT, org, "/provisioning", scim, 200).await;
    println!(
        "{:<58} {:>8.0} ms",
        format!("switch to SCIM: {users} members added"),
        took
    );

    let roles: Vec<Value> = top
        .iter()
        .enumerate()
        .map(|(i, g)| json!({"group": g, "role": if i < 2 { "admin" } else { "user" }}))
        .collect();
    let mappings = json!({"enabled": true, "roles": roles});
    let (body, took) = timed_admin(api, Method::PUT, org, "/group-mappings", mappings, 200).await;
    println!(
        "{:<58} {:>8.0} ms ({} updated)",
        "save 10 role mappings and apply them", took, body["sync_run"]["counts"]["updates"]
    );
    println!(
        "{:<58} {:>8.0} MiB",
        "  server peak RSS so far",
        rss_mib(pid, "VmHWM:")
    );

    let (done, took) = timed_resync(api, org).await;
    println!(
        "{:<58} {:>8.0} ms ({} changes)",
        "no-op full resync (POST /syncs until succeeded)",
        took,
        done["counts"]["updates"].as_u64().unwrap_or(0)
            + done["counts"]["adds"].as_u64().unwrap_or(0)
    );
    let other_member = other_tenant_during_resync(api, org).await;

    let changed = ten_percent_changed_through_scim(api, org, db, conn_id, users / 10).await;
    let request = json!({"scope": "both"});
    let preview = timed_admin(api, Method::POST, org, "/syncs/preview", request, 200);
    let ((preview, took), mut reads) =
        other_tenant_reading_during(api, &other_member, preview).await;
    println!(
        "{:<58} {:>8.0} ms ({} updates)",
        "preview of a resync with 10% changed", took, preview["orgs"][0]["counts"]["updates"]
    );
    reads.print();
    assert_eq!(
        preview["orgs"][0]["counts"]["updates"], changed,
        "{preview}"
    );
    let (done, took) = timed_resync(api, org).await;
    println!(
        "{:<58} {:>8.0} ms ({} updates)",
        "full resync with 10% changed", took, done["counts"]["updates"]
    );
    assert_eq!(done["counts"]["updates"], changed, "{done}");
    propagation(api, org, db, conn_id, None, args.background_rate).await;
    // Entra ID and Okta push membership as a PATCH per change on mapped groups.
    propagation(api, org, db, conn_id, Some(&top), args.background_rate).await;
    export_benchmark(api, org, pid).await;
    println!(
        "{:<58} {:>8.0} MiB (idle before: {:.0} MiB)",
        "server peak RSS (VmHWM)",
        rss_mib(pid, "VmHWM:"),
        idle
    );
}

/// Another tenant reading one of its members (`path`), one read after
/// another, each on a new connection (so that the server's HTTP workers
/// share them), while `work` runs: what `work` gave, and the reads' figures.
async fn other_tenant_reading_during<T>(
    api: &Target,
    path: &str,
    work: impl std::future::Future<Output = T>,
) -> (T, Stats) {
    let reader = Target {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client"),
        base: api.base.clone(),
        token: api.token.clone(),
    };
    let started = Instant::now();
    let mut latencies = Vec::new();
    let reads = async {
        loop {
            let t0 = Instant::now();
            let (status, body) = reader.get(path).await;
            assert_eq!(status, 200, "{body}");
            latencies.push(t0.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let out = tokio::select! {
        out = work => out,
        () = reads => unreachable!("the reads loop until the work is done"),
    };
    let stats = Stats::new(
        "  another tenant's member read meanwhile (a new connection each)",
        started.elapsed(),
        latencies,
    );
    (out, stats)
}

/// Another tenant's SCIM change, made while this tenant's full resync runs
/// (the same no-op resync as above, holding a sync slot for seconds): how
/// long until it shows on that tenant's member, and how many of the probes
/// were seen while the resync still ran (with one queue, none were: the
/// change waited for the resync).
///
/// Returns the path of that tenant's member, for later probes.
async fn other_tenant_during_resync(api: &Target, org: &str) -> String {
    let (status, beta) = api
        .post("/orgs", json!({"name": "Beta", "slug": "beta-bench"}))
        .await;
    assert_eq!(status, 201, "{beta}");
    let beta = beta["id"].as_str().unwrap().to_owned();
    let (conn, token) = directory_sync_connection(api, &beta, "beta").await;
    let scim = Target {
        http: api.http.clone(),
        base: api.base.replace("/api/v1", &format!("/scim/v2/{conn}")),
        token,
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bea@beta.example",
        "emails": [{"value": "bea@beta.example", "primary": true}],
    });
    let (status, user) = scim.post("/Users", user).await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_str().unwrap().to_owned();
    timed_admin(
        api,
        Method::PUT,
        &beta,
        "/provisioning",
        json!({"mode": "scim"}),
        200,
    )
    .await;
    let (_, members) = api.get(&format!("/orgs/{beta}/members")).await;
    let member = members["data"][0]["id"].as_str().unwrap().to_owned();
    let member_path = format!("/orgs/{beta}/members/{member}");

    let request = json!({"scope": "both"});
    let (run, _) = timed_admin(api, Method::POST, org, "/syncs", request, 202).await;
    let run_path = format!("/orgs/{org}/syncs/{}", run["id"].as_str().unwrap());
    let started = Instant::now();
    let (mut latencies, mut sent_at, mut during) = (Vec::new(), Vec::new(), 0);
    for i in 0.. {
        let (_, current) = api.get(&run_path).await;
        if current["status"] != "queued" && current["status"] != "running" {
            assert_eq!(current["status"], "succeeded", "{current}");
            break;
        }
        let name = format!("Probe {i}");
        let t0 = Instant::now();
        sent_at.push(started.elapsed());
        let ops = json!([{"op": "replace", "path": "displayName", "value": name}]);
        assert_eq!(scim.patch(&format!("/Users/{user}"), ops).await.0, 200);
        loop {
            let (_, m) = api.get(&member_path).await;
            if m["name"] == name.as_str() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "change not propagated"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t0.elapsed());
        let (_, current) = api.get(&run_path).await;
        if current["status"] == "running" {
            during += 1;
        }
    }
    let probes = latencies.len();
    if probes == 0 {
        println!("another tenant's SCIM change: the resync ended before a probe was made");
        return member_path;
    }
    let slowest = (0..probes).max_by_key(|&i| latencies[i]).unwrap_or(0);
    let (slowest_took, slowest_sent) = (latencies[slowest], sent_at[slowest]);
    Stats::new(
        format!("another tenant's SCIM change visible during this resync ({during} of {probes} seen while it ran)"),
        started.elapsed(),
        latencies,
    )
    .print();
    println!(
        "  its slowest: probe {} of {probes}, sent {:.2} s after the resync was asked for, took {:.0} ms",
        slowest + 1,
        slowest_sent.as_secs_f64(),
        slowest_took.as_secs_f64() * 1000.0
    );
    member_path
}

/// Makes `count` members differ from what the org's policy derives, through
/// the product only: `count` users get a `title` over SCIM (8 clients), the
/// incremental sync takes them in (no member changes: nothing maps `title`),
/// then the connection starts mapping `title` to a custom attribute. Like
/// role and seat settings, a new attribute mapping reaches existing members
/// at the next resync, so preview and resync each find `count` updates.
async fn ten_percent_changed_through_scim(
    api: &Target,
    org: &str,
    db: &DatabaseConnection,
    conn_id: uuid::Uuid,
    count: usize,
) -> usize {
    let ids = Arc::new(
        query_ids(
            db,
            &format!(
                "SELECT id FROM directory_users WHERE connection_id = $1 ORDER BY id LIMIT {count}"
            ),
            conn_id,
        )
        .await,
    );
    let scim = Arc::new(Target {
        http: api.http.clone(),
        base: api.base.replace("/api/v1", &format!("/scim/v2/{conn_id}")),
        token: scim_token(api, org, conn_id).await,
    });
    let (_, status) = api.get(&format!("/orgs/{org}/sync-status")).await;
    let target_seq = status["latest_seq"].as_u64().expect("latest_seq") + count as u64;
    let t0 = Instant::now();
    drive(
        &format!("SCIM PATCH /Users title on {count} users (10%)"),
        scim,
        8,
        Some(count),
        Duration::MAX,
        move |scim, i| {
            let id = ids[i];
            async move {
                let ops = json!([{"op": "replace", "path": "title", "value": format!("Title {}", i % 97)}]);
                scim.patch(&format!("/Users/{id}"), ops).await.0
            }
        },
    )
    .await
    .print();
    loop {
        let (_, status) = api.get(&format!("/orgs/{org}/sync-status")).await;
        if status["applied_seq"]
            .as_u64()
            .is_some_and(|s| s >= target_seq)
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "not caught up: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{:<58} {:>8.0} ms",
        "  all of them taken in by the incremental sync after",
        ms_since(t0)
    );
    let path = format!("/orgs/{org}/connections/{conn_id}/attributes");
    let mapping = json!({"attributes": [{"key": "title", "scim_path": "title"}]});
    let (status, answer) = api.send(Method::PUT, &path, Some(mapping)).await;
    assert_eq!(status, 200, "{answer}");
    count
}

/// How long a SCIM change takes to show on the member (incremental sync),
/// probed while other SCIM writes keep the worker busy: renames of other
/// users, or (with `groups`) member adds and removes on those role-mapped
/// groups, each of which moves a member's role.
async fn propagation(
    api: &Target,
    org: &str,
    db: &DatabaseConnection,
    conn_id: uuid::Uuid,
    groups: Option<&[uuid::Uuid]>,
    rate: u64,
) {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT m.id AS member_id, m.directory_user_id AS user_id FROM members m WHERE m.org_id = $1 ORDER BY m.id LIMIT 2000",
            [uuid::Uuid::parse_str(org).unwrap().into()],
        ))
        .await
        .unwrap();
    let pairs: Vec<(uuid::Uuid, uuid::Uuid)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "member_id").unwrap(),
                r.try_get("", "user_id").unwrap(),
            )
        })
        .collect();
    let scim = Arc::new(Target {
        http: api.http.clone(),
        base: api.base.replace("/api/v1", &format!("/scim/v2/{conn_id}")),
        token: scim_token(api, org, conn_id).await,
    });
    // Background load: 4 clients writing about other users, each at a
    // quarter of `rate` (on a fixed schedule; late sends are not made up
    // in a burst), or as fast as they can when `rate` is 0.
    let every = (rate > 0).then(|| Duration::from_secs_f64(4.0 / rate as f64));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let groups: Option<Arc<Vec<uuid::Uuid>>> = groups.map(|g| Arc::new(g.to_vec()));
    let mut load = Vec::new();
    for c in 0..4usize {
        let (scim, stop, users, groups) =
            (scim.clone(), stop.clone(), pairs.clone(), groups.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0usize;
            let mut sent = 0usize;
            let mut ticks = every.map(|every| {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(ticks) = ticks.as_mut() {
                    ticks.tick().await;
                }
                let (_, user) = users[1000 + (c * 250 + i) % 1000];
                i += 1;
                let status = match &groups {
                    // Into an admin-mapped group and out again: a role change each way.
                    Some(groups) => {
                        let group = groups[c % 2];
                        let op = if i % 2 == 1 { "add" } else { "remove" };
                        let user = users[1000 + (c * 250 + i / 2) % 1000].1;
                        let ops = if op == "add" {
                            json!([{"op": "add", "path": "members", "value": [{"value": user}]}])
                        } else {
                            json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}])
                        };
                        scim.patch(&format!("/Groups/{group}"), ops).await.0
                    }
                    None => {
                        scim.patch(
                            &format!("/Users/{user}"),
                            json!([{"op": "replace", "path": "displayName", "value": format!("Load {i}")}]),
                        )
                        .await
                        .0
                    }
                };
                assert!(status < 300, "background write failed: {status}");
                sent += 1;
            }
            sent
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for (i, (member, user)) in pairs.iter().take(200).enumerate() {
        let name = format!("Probe {i}");
        let t0 = Instant::now();
        scim.patch(
            &format!("/Users/{user}"),
            json!([{"op": "replace", "path": "displayName", "value": name}]),
        )
        .await;
        loop {
            let (_, m) = api.get(&format!("/orgs/{org}/members/{member}")).await;
            if m["name"] == name.as_str() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                panic!("change not propagated in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t0.elapsed());
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut background = 0;
    for task in load {
        background += task.await.unwrap();
    }
    let writes_per_second = (background as f64 / elapsed.as_secs_f64()) as u64;
    Stats::new(
        format!(
            "SCIM change visible on the member ({writes_per_second} background {}/s, {})",
            if groups.is_some() {
                "group member PATCHes"
            } else {
                "user PATCHes"
            },
            if rate > 0 {
                format!("paced at {rate}/s")
            } else {
                "unpaced".to_owned()
            }
        ),
        elapsed,
        latencies,
    )
    .print();
}

/// Rotates in a token for the probe (the benchmark's own was shown once, elsewhere).
async fn scim_token(api: &Target, org: &str, conn: uuid::Uuid) -> String {
    let path = format!("/orgs/{org}/connections/{conn}/directory-sync/token");
    let (_, body) = api.send(Method::POST, &path, None).await;
    body["token"].as_str().unwrap().to_owned()
}

/// Jobs through Redis Streams (one lane): published in batches of 10 by 4
/// producers, received 100 at a time and acknowledged in batches by 2 consumers.
async fn queue_benchmark(redis: &str, prefix: &str) {
    use orgsync_domain::ports::{Job, JobQueue, Lane};
    let total = 200_000usize;
    let queue = Arc::new(
        orgsync_infra::RedisJobQueue::connect(redis, prefix)
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..4 {
        let queue = queue.clone();
        producers.push(tokio::spawn(async move {
            for batch in 0..total / 4 / 10 {
                let jobs: Vec<Job> = (0..10)
                    .map(|i| Job {
                        kind: "bench".into(),
                        payload: json!({"p": p, "n": batch * 10 + i}),
                    })
                    .collect();
                queue.publish_batch(&jobs).await.unwrap();
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for c in 0..2 {
        let (queue, done) = (queue.clone(), done.clone());
        consumers.push(tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::Relaxed) < total {
                let batch = queue
                    .receive(
                        Lane::Sync,
                        &format!("bench-{c}"),
                        100,
                        Duration::from_millis(100),
                    )
                    .await
                    .unwrap();
                if batch.is_empty() {
                    continue;
                }
                queue.ack_batch(&batch).await.unwrap();
                done.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for task in producers.into_iter().chain(consumers) {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{:<58} {:>8.0} jobs/s ({total} jobs in {:.2} s)",
        "Redis queue: publish (batches of 10) + receive + ack",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let client = redis::Client::open(redis).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(
            ["jobs", "changes", "webhooks"]
                .map(|lane| format!("{prefix}{lane}"))
                .to_vec(),
        )
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A cascade over 1 parent + 20 children + 5 sandboxes, each drawing about
/// 10,000 members from a shared 50,000-user directory, with two workers
/// (the server's own and one `orgsync worker` process).
async fn cascade_benchmark(
    api: &Target,
    parent: &str,
    db: &DatabaseConnection,
    conn_id: uuid::Uuid,
    worker: &mut Command,
) {
    let users = 50_000usize;
    println!("orgsync cascade benchmark: 26 orgs x ~10,000 members from {users} directory users, 2 workers");
    clear_directory(db, conn_id).await;
    seed_users(db, conn_id, 0, users).await;
    seed_groups(db, conn_id, "team-", 3, 100).await;
    seed_memberships(db, conn_id, 100, "(u.n % 100), ((u.n * 7 + 3) % 100)").await;
    finish_seeding(db, conn_id).await;
    let groups = query_ids(
        db,
        "SELECT id FROM directory_groups WHERE connection_id = $1 ORDER BY display_name",
        conn_id,
    )
    .await;
    let mut orgs = vec![parent.to_owned()];
    for i in 0..25 {
        let kind = if i < 20 { "standard" } else { "sandbox" };
        let (status, child) = api
            .post(
                &format!("/orgs/{parent}/children"),
                json!({"name": format!("child {i}"), "slug": format!("child-{i}"), "kind": kind}),
            )
            .await;
        assert_eq!(status, 201, "{child}");
        orgs.push(child["id"].as_str().unwrap().to_owned());
    }
    let t0 = Instant::now();
    for (i, org) in orgs.iter().enumerate() {
        // Ten of the hundred teams each: about 10,000 of the 50,000 users.
        let roles: Vec<Value> = (0..10)
            .map(|k| json!({"group": groups[(i * 3 + k) % 100], "role": if k == 0 { "admin" } else { "user" }}))
            .collect();
        confirmed_put(
            api,
            org,
            "/group-mappings",
            json!({"enabled": true, "roles": roles}),
        )
        .await;
        confirmed_put(api, org, "/provisioning", json!({"mode": "scim"})).await;
    }
    let members: i64 = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM members".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    println!(
        "{:<58} {:>8.0} ms ({members} members)",
        "setup: 26 orgs switched to SCIM one by one",
        ms_since(t0)
    );

    // Every user's profile drifts (no events), so every member of every org needs an update.
    exec(db, "UPDATE directory_users SET display_name = 'Renamed ' || user_name WHERE connection_id = $1", vec![conn_id.into()]).await;
    let mut second = worker.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, took) = timed_resync(api, parent).await;
    let jobs = done["jobs"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<58} {:>8.0} ms ({} jobs, {} updates, {})",
        "cascade resync: 26 orgs, every member changed",
        took,
        jobs.len(),
        done["counts"]["updates"],
        done["status"]
    );
    // Each job names the process that ran it (`host:pid`): the fan-out
    // really reached the separate `orgsync worker` process.
    let separate = format!(":{}", second.id());
    let by_separate = jobs
        .iter()
        .filter(|j| j["worker"].as_str().is_some_and(|w| w.ends_with(&separate)))
        .count();
    println!(
        "{:<58} {:>8} of {} jobs",
        "  run by the separate `orgsync worker` process",
        by_separate,
        jobs.len()
    );
    assert!(
        by_separate > 0,
        "no job ran on the separate worker process: {jobs:?}"
    );
    let (done, took) = timed_resync(api, parent).await;
    println!(
        "{:<58} {:>8.0} ms ({})",
        "cascade resync: 26 orgs, nothing changed", took, done["status"]
    );
    second.kill().ok();
    second.wait().ok();
}

/// Streams the members CSV, sampling the server's resident memory meanwhile.
async fn export_benchmark(api: &Target, org: &str, pid: u32) {
    let before = rss_mib(pid, "VmRSS:");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let t0 = Instant::now();
    let mut response = api
        .http
        .get(format!("{}/orgs/{org}/members.csv", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let elapsed = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    println!(
        "{:<58} {:>8.0} ms ({} rows, {:.1} MiB; server RSS +{:.0} MiB over {:.0} MiB)",
        "GET /members.csv (streamed)",
        elapsed.as_secs_f64() * 1000.0,
        lines.saturating_sub(1),
        bytes as f64 / 1_048_576.0,
        (peak - before).max(0.0),
        before
    );
}

/// PUTs a change that may remove members: previews it and confirms with the
/// preview's fingerprint, again if the directory moved in between.
async fn confirmed_put(api: &Target, org: &str, rest: &str, body: Value) {
    for _ in 0..5 {
        let (_, preview) = api
            .post(&format!("/orgs/{org}{rest}/preview"), body.clone())
            .await;
        let mut confirmed = body.clone();
        confirmed["confirm"] = preview["confirmation"].clone();
        let (status, answer) = api
            .send(Method::PUT, &format!("/orgs/{org}{rest}"), Some(confirmed))
            .await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 409, "{answer}");
    }
    panic!("{rest} kept changing under its preview");
}

/// The heaviest SCIM requests the limits allow (bodies near `server.body_limit`,
/// the most operations and values, most of them refused only after the work),
/// sent by 4 clients while a fifth polls `/healthz`: the shared process must
/// keep answering its probe.
async fn hostile_benchmark(target: Arc<Target>, base: &str, run: Duration) {
    println!("hostile input: 4 clients sending the heaviest allowed PATCHes, 1 polling /healthz");
    let (status, user) = target
        .post("/Users", json!({"userName": "heavy@bench.example"}))
        .await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_str().unwrap().to_owned();
    let heavy: Vec<Value> = vec![
        // 1,000 distinct values of ~900 bytes (~0.9 MB): applied, then refused by size.
        patch(json!([{"op": "add", "path": "x",
            "value": (0..1000).map(|i| format!("{i:0>900}")).collect::<Vec<_>>()}])),
        // 1,000 operations, each a filtered add on a multi-valued attribute.
        patch(json!((0..1000)
            .map(|i| json!({"op": "add",
            "path": format!("emails[type eq \"t{}\"].value", i % 50),
            "value": format!("u{i}@bench.example")}))
            .collect::<Vec<_>>())),
        // 120,000 values (the reported 44 s stall): refused before any work.
        patch(json!([{"op": "add", "path": "y", "value": (0..120_000).collect::<Vec<_>>()}])),
    ];
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (target, user, heavy) = (target.clone(), user.clone(), heavy.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c;
            while started.elapsed() < run {
                let t0 = Instant::now();
                let (status, _) = target
                    .send(
                        Method::PATCH,
                        &format!("/Users/{user}"),
                        Some(heavy[i % heavy.len()].clone()),
                    )
                    .await;
                assert!(status < 500, "{status} on a heavy PATCH");
                latencies.push(t0.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let http = reqwest::Client::new();
    let mut probes = Vec::new();
    while started.elapsed() < run {
        let t0 = Instant::now();
        let ok = http
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(ok, "/healthz did not answer");
        probes.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut heavy_latencies = Vec::new();
    for client in clients {
        heavy_latencies.extend(client.await.unwrap());
    }
    Stats::new(
        "heaviest allowed SCIM PATCHes (3 kinds, 4 clients)",
        started.elapsed(),
        heavy_latencies,
    )
    .print();
    Stats::new(
        "GET /healthz meanwhile (every 10 ms)",
        started.elapsed(),
        probes,
    )
    .print();
}
