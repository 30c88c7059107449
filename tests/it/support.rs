//! Test harness: isolated databases, in-process apps and real server processes.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test;
use orgsync_api::auth::Minter;
use orgsync_api::config::Settings;
use orgsync_api::runtime::Runtime;
use orgsync_domain::auth::AdminRole;
use orgsync_domain::org::OrgId;
use orgsync_migrations::MigratorTrait;
use sea_orm::{ConnectionTrait, Database as SeaDatabase};
use serde_json::Value;
use uuid::Uuid;

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

pub fn admin_url() -> String {
    std::env::var("ORGSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("ORGSYNC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{database}")
}

/// The template's name changes whenever any migration's source does, so an
/// edited migration never meets a template built from its older self.
fn template_name() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/src");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations source")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in files {
        for byte in std::fs::read(&file).expect("migration file") {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("orgsync_template_{hash:016x}")
}

/// A PostgreSQL database of its own, cloned from a migrated template.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = SeaDatabase::connect(admin_url())
            .await
            .expect("connect to PostgreSQL");
        // Test processes run side by side; one lock serialises template builds and clones.
        admin
            .execute_unprepared("SELECT pg_advisory_lock(724301)")
            .await
            .unwrap();
        let template = template_name();
        let exists = admin
            .query_one(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
            ))
            .await
            .unwrap()
            .is_some();
        if !exists {
            let building = format!("{template}_building");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {building}"))
                .await
                .unwrap();
            let db = SeaDatabase::connect(url_for(&building)).await.unwrap();
            orgsync_migrations::Migrator::up(&db, None).await.unwrap();
            db.close().await.unwrap();
            admin
                .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .await
                .unwrap();
        }
        let name = format!("orgsync_test_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .unwrap();
        admin
            .execute_unprepared("SELECT pg_advisory_unlock(724301)")
            .await
            .unwrap();
        admin.close().await.unwrap();
        Self {
            url: url_for(&name),
            name,
        }
    }

    /// Drops the database, ending any connection still open to it.
    pub async fn drop_db(&self) {
        let admin = SeaDatabase::connect(admin_url()).await.unwrap();
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

/// Settings for a test: its own database, its own Redis prefix, a known secret.
pub fn settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None).expect("default settings");
    settings.database.url = Some(database_url.to_owned());
    // Small pools keep many tests in parallel under PostgreSQL's connection
    // limit; one export at a time holds half of it.
    settings.database.max_connections = 4;
    settings.limits.exports_at_once = 1;
    settings.database.migrate_on_start = false;
    settings.redis.url = Some(redis_url());
    settings.redis.key_prefix = format!("orgsync-test:{}:", Uuid::new_v4().simple());
    settings.auth.jwt_secret = Some(SECRET.into());
    // Tests hammer single connections on purpose; the limit has its own test.
    settings.scim.rate_limit_per_second = 0;
    // Failed jobs come back quickly instead of after the production lease.
    settings.worker.lease = 2;
    settings.worker.sweep_every = 1;
    settings.validate().expect("test settings are valid");
    settings
}

/// Mints tokens the test servers accept.
pub struct Tokens(Minter);

impl Tokens {
    pub fn new(settings: &Settings) -> Self {
        Self(orgsync_api::runtime::minter(settings).unwrap())
    }
    pub fn platform(&self) -> String {
        self.0.mint("platform-operator", None).unwrap()
    }
    pub fn org(&self, org: Uuid, role: AdminRole) -> String {
        self.0.mint("org-admin", Some((OrgId(org), role))).unwrap()
    }
}

/// An orgsync application in process, on its own PostgreSQL database and Redis prefix.
pub struct TestApp {
    pub db: TestDb,
    pub runtime: Runtime,
    pub tokens: Tokens,
    /// Stops the app's background worker.
    worker: tokio_util::sync::CancellationToken,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with settings adjusted first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let app = Self::spawn_idle(adjust).await;
        app.start_worker();
        app
    }

    /// Starts (another) worker on the app's queue, as `serve` or `orgsync worker` runs one.
    pub fn start_worker(&self) {
        let running = self.runtime.worker();
        let stop = self.worker.clone();
        tokio::spawn(async move { running.run(stop).await });
        let dispatcher = self.runtime.event_dispatcher();
        let stop = self.worker.clone();
        tokio::spawn(async move { dispatcher.run(stop).await });
    }

    /// An app whose jobs wait in the queue until [`TestApp::start_worker`].
    pub async fn spawn_idle(adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::create().await;
        let mut settings = settings(&db.url);
        adjust(&mut settings);
        let tokens = Tokens::new(&settings);
        let runtime = Runtime::start(settings).await.unwrap();
        let worker = tokio_util::sync::CancellationToken::new();
        Self {
            db,
            runtime,
            tokens,
            worker,
        }
    }

    /// Sends a request to the app and returns the status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let response = self.send(request(method, path, token, body)).await;
        let status = response.status().as_u16();
        let bytes = test::read_body(response).await;
        (status, parse(&bytes))
    }

    /// An admin API call on `org` (`/api/v1/orgs/{org}{rest}`) with a platform token.
    pub async fn admin(
        &self,
        method: &str,
        org: &str,
        rest: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.admin_as(&self.tokens.platform(), method, org, rest, body)
            .await
    }

    /// An admin adds `member` (`POST /members`) to `org`: the answer.
    pub async fn add_member(&self, org: &str, member: Value) -> (u16, Value) {
        self.admin("POST", org, "/members", Some(member)).await
    }

    /// An admin API call on `org` (`/api/v1/orgs/{org}{rest}`) with `token`.
    pub async fn admin_as(
        &self,
        token: &str,
        method: &str,
        org: &str,
        rest: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = format!("/api/v1/orgs/{org}{rest}");
        self.call(method, &path, Some(token), body).await
    }

    /// Sends `request` to the app: the response as it is, for what
    /// [`TestApp::call`] would parse away (headers, CSV, plain text).
    pub async fn send(&self, request: test::TestRequest) -> ServiceResponse<impl MessageBody> {
        let app = test::init_service(orgsync_api::http::app(self.runtime.state.clone())).await;
        test::call_service(&app, request.to_request()).await
    }

    /// Sends every request at once, through one service, with a platform
    /// token, each [`Timed::after`] the start: the answers, in order. (Building
    /// a service per request, as [`TestApp::call`] does, spaces requests
    /// ~90 ms apart in a debug build, so they would never race.)
    pub async fn race(&self, requests: Vec<Timed>) -> Vec<(u16, Value)> {
        self.race_as(&self.tokens.platform(), requests).await
    }

    /// [`TestApp::race`] with `token` as every request's bearer (a SCIM
    /// token, an org admin's).
    pub async fn race_as(&self, token: &str, requests: Vec<Timed>) -> Vec<(u16, Value)> {
        let service = test::init_service(orgsync_api::http::app(self.runtime.state.clone())).await;
        let service = &service;
        futures::future::join_all(requests.into_iter().map(|timed| {
            let request = request(timed.method, &timed.path, Some(token), timed.body);
            async move {
                tokio::time::sleep(timed.after).await;
                let response = test::call_service(service, request.to_request()).await;
                let status = response.status().as_u16();
                (status, parse(&test::read_body(response).await))
            }
        }))
        .await
    }

    pub async fn finish(self) {
        self.worker.cancel();
        self.runtime.db.connection().clone().close().await.ok();
        self.db.drop_db().await;
    }
}

/// One request of [`TestApp::race`].
pub struct Timed {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
    /// How long after the race starts it is sent.
    pub after: Duration,
}

impl Timed {
    pub fn at(after_ms: u64, method: &'static str, path: String, body: Option<Value>) -> Self {
        Self {
            method,
            path,
            body,
            after: Duration::from_millis(after_ms),
        }
    }
}

/// A request for the app: `method` on `path`, with `token` as its bearer
/// and `body` as JSON when given.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> test::TestRequest {
    let mut req = test::TestRequest::default()
        .method(method.parse().unwrap())
        .uri(path);
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    if let Some(body) = body {
        req = req.set_json(body);
    }
    req
}

/// Calls `probe` until it returns something, `tries` times at most with
/// `every` between tries; `None` when it never did.
pub async fn poll<T>(
    tries: usize,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    for _ in 0..tries {
        if let Some(found) = probe().await {
            return Some(found);
        }
        tokio::time::sleep(every).await;
    }
    None
}

pub fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    }
}

/// The `orgsync` binary cargo built for this test run.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("ORGSYNC_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> → target/<profile>/orgsync
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    dir.join("orgsync")
}

/// A real `orgsync serve` process on a free port; killed on drop.
pub struct Server {
    pub base: String,
    child: std::process::Child,
}

impl Server {
    pub async fn start(envs: &[(&str, String)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(binary())
            .arg("serve")
            .env("ORGSYNC__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("ORGSYNC__LOG__LEVEL", "warn")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        let server = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("orgsync serve did not become healthy");
    }

    /// Environment that points a server at `db` and a private Redis prefix.
    pub fn env_for(settings: &Settings) -> Vec<(&'static str, String)> {
        vec![
            ("ORGSYNC__DATABASE__URL", settings.database_url()),
            ("ORGSYNC__REDIS__URL", redis_url()),
            (
                "ORGSYNC__REDIS__KEY_PREFIX",
                settings.redis.key_prefix.clone(),
            ),
            ("ORGSYNC__AUTH__JWT_SECRET", SECRET.to_owned()),
            ("ORGSYNC__SCIM__RATE_LIMIT_PER_SECOND", "0".to_owned()),
        ]
    }

    /// A tenant (a root org) named `name` and `slug`, created with `token`; its id.
    pub async fn create_root(&self, token: &str, name: &str, slug: &str) -> String {
        let (status, org) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/orgs",
                Some(token),
                Some(serde_json::json!({"name": name, "slug": slug})),
            )
            .await;
        assert_eq!(status, 201, "{org}");
        org["id"].as_str().unwrap().to_owned()
    }

    /// Asks, with `token`, for a child of `parent` as `child` describes it: the answer.
    pub async fn create_child(&self, token: &str, parent: &str, child: Value) -> (u16, Value) {
        let path = format!("/api/v1/orgs/{parent}/children");
        self.request(reqwest::Method::POST, &path, Some(token), Some(child))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, token, None).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (status, parse(&bytes))
    }
}

/// An embedded server (SQLite, no configuration) in a temporary data
/// directory, with an org and a connection whose directory sync is on.
pub struct EmbeddedDirectory {
    pub server: Server,
    pub conn: String,
    scim_token: String,
    dir: PathBuf,
}

impl EmbeddedDirectory {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("orgsync-embedded-{}", Uuid::new_v4()));
        let data_dir = dir.join("data");
        let server = Server::start(&[("ORGSYNC__DATA_DIR", data_dir.display().to_string())]).await;
        let token = embedded_platform_token(&data_dir);
        let org = server.create_root(&token, "Acme", "acme").await;
        let connections = format!("/api/v1/orgs/{org}/connections");
        let (status, conn) = server
            .request(
                reqwest::Method::POST,
                &connections,
                Some(&token),
                Some(serde_json::json!({"name": "Okta"})),
            )
            .await;
        assert_eq!(status, 201, "{conn}");
        let conn = conn["id"].as_str().unwrap().to_owned();
        let (status, sync) = server
            .request(
                reqwest::Method::PUT,
                &format!("{connections}/{conn}/directory-sync"),
                Some(&token),
                Some(serde_json::json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, 200, "{sync}");
        let scim_token = sync["token"].as_str().unwrap().to_owned();
        Self {
            server,
            conn,
            scim_token,
            dir,
        }
    }

    /// A SCIM call on the connection (`path` under its base URL).
    pub async fn scim(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let path = format!("/scim/v2/{}{path}", self.conn);
        self.server
            .request(method, &path, Some(&self.scim_token), Some(body))
            .await
    }
}

impl Drop for EmbeddedDirectory {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A platform token for an embedded server on `data_dir`: `orgsync token`
/// reads the same development key the server made there.
pub fn embedded_platform_token(data_dir: &std::path::Path) -> String {
    let output = std::process::Command::new(binary())
        .args(["token", "--platform"])
        .env("ORGSYNC__DATA_DIR", data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator for tests that interleave random steps:
/// runs differ only through scheduling, and a failure names its seed.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}
