//! Wiring: turns [`Settings`] into connected adapters and the use cases built
//! on them. The only place that knows which adapter serves which port.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orgsync_domain::ports::{EventLog, WebhookSender};
use orgsync_domain::ports::{HealthCheck, JobQueue, SystemClock};
use orgsync_domain::service::{
    ConnectionService, EventPorts, EventService, ExportAdmission, JobPolicy, MemberPorts,
    MembersService, OrgService, PlanBudget, ScimService, SsoPorts, SsoService, SyncPorts,
    SyncService, WebhookPolicy,
};
use orgsync_infra::sso::oidc::{HttpOidcProvider, OidcClientSettings};
use orgsync_infra::sso::saml::SamaelSamlProvider;
use orgsync_infra::webhooks::deliver::{Deliverer, RetryPolicy};
use orgsync_infra::webhooks::dispatch::EventDispatcher;
use orgsync_infra::webhooks::sender::{HttpWebhookSender, SenderSettings};
use orgsync_infra::worker::{Worker, WorkerSettings};
use orgsync_infra::{
    Database, DatabaseHealth, LocalJobQueue, OsSecretSource, QueueHealth, RedisJobQueue,
    SqlConnectionRepository, SqlDeletionProtection, SqlDirectoryRepository, SqlEventLog,
    SqlExportSnapshots, SqlMembershipRepository, SqlOrgRepository, SqlSsoRepository,
    SqlSyncRunRepository, SqlWebhookRepository,
};
use rand::RngCore;

use crate::auth::{Minter, Verifier};
use crate::config::{JwtAlgorithm, Settings};
use crate::jobs::{Dispatcher, Sweeper};
use crate::state::AppState;
use crate::throttle::admin::AdminLimiter;
use crate::throttle::scim::{FailedAuthLimiter, ScimRateLimiter};
use crate::throttle::sign_in::SignInLimiter;

/// A connected orgsync: database, queue, and the application state.
pub struct Runtime {
    pub settings: Settings,
    pub db: Database,
    pub queue: Arc<dyn JobQueue>,
    pub state: AppState,
    /// The memory budget every full plan of this process shares.
    pub plan_budget: PlanBudget,
    events: Arc<dyn EventLog>,
    sender: Arc<dyn WebhookSender>,
}

impl Runtime {
    /// Connects every adapter the settings name and applies migrations if configured to.
    ///
    /// # Errors
    /// When a dependency cannot be reached or key material cannot be loaded.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        if settings.is_embedded() {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating data_dir {}", settings.data_dir.display()))?;
        }
        let db = Database::connect(&settings.database_url(), settings.database.max_connections)
            .await
            .with_context(|| "connecting to database.url")?;
        if settings.database.migrate_on_start {
            db.migrate().await.context("applying migrations")?;
        }
        let mut health: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(DatabaseHealth(db.clone()))];
        let queue: Arc<dyn JobQueue> = match &settings.redis.url {
            Some(url) => {
                let redis = RedisJobQueue::connect(url, &settings.redis.key_prefix)
                    .await
                    .context("connecting to redis.url")?;
                health.push(Arc::new(QueueHealth(redis.clone())));
                Arc::new(redis)
            }
            None => Arc::new(LocalJobQueue::new()),
        };
        let secret = hs256_secret(&settings)?;
        let verifier = Verifier::new(&settings.auth, secret.as_deref())?;
        let clock = Arc::new(SystemClock);
        let org_repo = Arc::new(SqlOrgRepository::new(db.clone()));
        let limits = settings.limits.domain();
        let orgs = OrgService::new(
            org_repo.clone(),
            clock.clone(),
            Arc::new(orgsync_infra::SqlAuditLog::new(db.clone())),
        )
        .with_limits(limits);
        let connection_repo = Arc::new(SqlConnectionRepository::with_bounded_token_cache(
            db.clone(),
            Duration::from_millis(settings.scim.token_cache_ms),
            settings.limits.token_cache_entries,
        ));
        let directory = Arc::new(
            SqlDirectoryRepository::new(db.clone())
                .remembering_users(settings.limits.recent_users_mib.saturating_mul(1 << 20)),
        );
        let members = Arc::new(SqlMembershipRepository::new(db.clone()));
        let events: Arc<dyn EventLog> = Arc::new(SqlEventLog::new(db.clone()));
        let hooks = &settings.webhooks;
        let sender: Arc<dyn WebhookSender> = Arc::new(
            HttpWebhookSender::new(SenderSettings {
                allow_private_targets: hooks.allow_private_targets,
                timeout: Duration::from_millis(hooks.timeout_ms),
                max_response_bytes: hooks.max_response_bytes,
            })
            .context("building the webhook client")?,
        );
        let plan_budget = PlanBudget::new(
            settings.sync.plan_budget,
            Duration::from_millis(settings.sync.plan_wait_ms),
        );
        let longest_export = Duration::from_secs(settings.limits.export_seconds);
        let sync = SyncService::new(
            orgs.clone(),
            SyncPorts {
                orgs: org_repo.clone(),
                connections: connection_repo.clone(),
                directory: directory.clone(),
                feed: directory.clone(),
                members: members.clone(),
                runs: Arc::new(
                    SqlSyncRunRepository::new(db.clone())
                        .renewing_leases_through(lease_pool(&settings, &db).await?),
                ),
                protection: Arc::new(SqlDeletionProtection::new(db.clone())),
                events: events.clone(),
                queue: queue.clone(),
                clock: clock.clone(),
                jobs: JobPolicy {
                    max_attempts: settings.worker.max_attempts,
                    lease: Duration::from_secs(settings.worker.lease),
                    base_backoff: Duration::from_millis(500),
                    max_backoff: Duration::from_secs(300),
                },
                relink: settings.sync.relink(),
                plan_budget: plan_budget.clone(),
            },
        );
        let sso = SsoService::new(
            orgs.clone(),
            sync.clone(),
            SsoPorts {
                sso: Arc::new(SqlSsoRepository::new(db.clone())),
                oidc: Arc::new(
                    HttpOidcProvider::new(OidcClientSettings {
                        allow_insecure_loopback: settings.sso.allow_insecure_loopback,
                        timeout: Duration::from_millis(settings.sso.timeout_ms),
                        ..OidcClientSettings::default()
                    })
                    .context("building the OIDC client")?,
                ),
                saml: Arc::new(
                    SamaelSamlProvider::new(
                        settings.sso.allow_insecure_loopback,
                        Duration::from_millis(settings.sso.timeout_ms),
                    )
                    .context("building the SAML client")?,
                ),
                orgs: org_repo,
                connections: connection_repo.clone(),
                members: members.clone(),
                audit: Arc::new(orgsync_infra::SqlAuditLog::new(db.clone())),
                secrets: Arc::new(OsSecretSource),
                clock: clock.clone(),
            },
            settings.sso_policy()?,
            &settings.public_url(),
        );
        let state = AppState {
            sso,
            connections: ConnectionService::new(
                orgs.clone(),
                sync.clone(),
                connection_repo.clone(),
                Arc::new(OsSecretSource),
                clock.clone(),
                Duration::from_secs(settings.scim.token_rotation_grace),
            ),
            scim: ScimService::new(connection_repo.clone(), directory.clone(), clock.clone())
                .with_limits(limits),
            nudger: Arc::new(crate::jobs::nudge::Nudger::new(
                sync.clone(),
                Duration::from_millis(20),
            )),
            sync: sync.clone(),
            events: EventService::new(
                orgs.clone(),
                EventPorts {
                    events: events.clone(),
                    webhooks: Arc::new(SqlWebhookRepository::new(db.clone())),
                    sender: sender.clone(),
                    secrets: Arc::new(OsSecretSource),
                    clock: clock.clone(),
                },
                WebhookPolicy {
                    allow_private_targets: hooks.allow_private_targets,
                    max_endpoints: hooks.max_endpoints,
                    rotation_grace: Duration::from_secs(hooks.secret_rotation_grace),
                },
            ),
            members: MembersService::new(
                orgs.clone(),
                sync,
                MemberPorts {
                    members: members.clone(),
                    connections: connection_repo.clone(),
                    directory: directory.clone(),
                    snapshots: Arc::new(SqlExportSnapshots::new(db.clone(), longest_export)),
                    feed: directory.clone(),
                    clock: clock.clone(),
                },
                ExportAdmission::new(settings.limits.exports_at_once as usize, longest_export),
            ),
            public_url: settings.public_url(),
            metrics: Arc::new(crate::metrics::Metrics::new().context("defining metrics")?),
            db: db.clone(),
            queue: queue.clone(),
            scim_rate_limit: Arc::new(ScimRateLimiter::new(
                settings.scim.rate_limit_per_second,
                settings.scim.rate_limit_burst,
                settings.scim.tenant_rate_multiple,
            )),
            admin_rate_limit: Arc::new(AdminLimiter::new(
                settings.limits.admin_requests_per_second,
            )),
            scim_failed_auth: Arc::new(FailedAuthLimiter::new(
                settings.limits.scim_unauthenticated_per_second,
            )),
            sso_sign_ins: Arc::new(SignInLimiter::new(settings.sso.sign_ins_per_second)),
            orgs,
            verifier: Arc::new(verifier),
            health: Arc::new(health),
            body_limit: settings.server.body_limit,
            heavy: crate::http::detached::Heavy::current(),
            limits,
        };
        Ok(Self {
            settings,
            db,
            queue,
            state,
            plan_budget,
            events,
            sender,
        })
    }

    /// The background worker, running every kind of task.
    pub fn worker(&self) -> Worker {
        let w = &self.settings.worker;
        let sync = self.state.sync.clone();
        Worker::new(
            self.queue.clone(),
            Arc::new(Dispatcher {
                sync: sync.clone(),
                worker: crate::jobs::worker_name(),
                deliverer: Arc::new(self.deliverer()),
                metrics: self.state.metrics.clone(),
            }),
            WorkerSettings {
                batch: w.batch,
                concurrency: w.concurrency,
                lease: Duration::from_secs(w.lease),
                max_attempts: w.max_attempts,
                ..WorkerSettings::default()
            },
        )
        .with_periodic(
            Arc::new(Sweeper {
                sync,
                events: self.events.clone(),
                retention: Duration::from_secs(
                    u64::from(self.settings.events.retention_days) * 24 * 3600,
                ),
                sso: self.state.sso.clone(),
            }),
            Duration::from_secs(w.sweep_every.max(1)),
        )
    }

    /// The outbox dispatcher: numbers new events and hands them to webhook
    /// endpoints' deliverers through the queue. Runs beside every worker.
    pub fn event_dispatcher(&self) -> EventDispatcher {
        EventDispatcher::new(
            self.db.clone(),
            self.queue.clone(),
            Duration::from_millis(self.settings.events.dispatch_every_ms.max(1)),
            Duration::from_secs(self.settings.worker.lease.max(1)),
            self.settings.webhooks.endpoints_at_once_per_tenant,
        )
    }

    fn deliverer(&self) -> Deliverer {
        let hooks = &self.settings.webhooks;
        Deliverer::new(
            self.db.clone(),
            self.sender.clone(),
            RetryPolicy {
                base: Duration::from_millis(hooks.retry_base_ms.max(1)),
                cap: Duration::from_millis(hooks.retry_cap_ms.max(1)),
                window: Duration::from_secs(hooks.retry_window),
            },
        )
        .observed_by(self.state.metrics.clone())
    }
}

/// Connections kept for renewing running jobs' leases, apart from the
/// pool the jobs write through: two, so one slow renewal does not delay
/// the next (a renewal is two one-row updates every third of a lease).
const LEASE_CONNECTIONS: u32 = 2;

/// The pool heartbeats renew leases through (see
/// [`SqlSyncRunRepository::renewing_leases_through`]).
async fn lease_pool(settings: &Settings, db: &Database) -> anyhow::Result<Database> {
    db.companion(&settings.database_url(), LEASE_CONNECTIONS)
        .await
        .context("connecting the lease pool to database.url")
}

/// The token minter for the configured key.
///
/// # Errors
/// When no signing key is available.
pub fn minter(settings: &Settings) -> anyhow::Result<Minter> {
    let secret = hs256_secret(settings)?;
    Ok(Minter::new(&settings.auth, secret.as_deref())?)
}

/// The HS256 secret in force: the configured one or, in the embedded mode
/// only, a development key generated once and kept in `data_dir` (so `serve`
/// and `token` on the same machine agree without any configuration).
fn hs256_secret(settings: &Settings) -> anyhow::Result<Option<Vec<u8>>> {
    if settings.auth.jwt_algorithm != JwtAlgorithm::HS256 {
        return Ok(None);
    }
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(Some(secret.as_bytes().to_vec()));
    }
    let path = settings.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        // An emptied or hand-edited key file must not become an empty or guessable key.
        if existing.len() < 32 {
            anyhow::bail!(
                "{} holds a signing key shorter than 32 bytes; delete it to have a new one generated, or set auth.jwt_secret",
                path.display()
            );
        }
        if let Some(reason) = crate::config::weak_secret(existing) {
            anyhow::bail!("{}: the signing key {reason}", path.display());
        }
        return Ok(Some(existing.as_bytes().to_vec()));
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data_dir {}", settings.data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret)?;
    tracing::warn!(path = %path.display(), "generated a development JWT signing key; configure auth.jwt_secret in production");
    Ok(Some(secret.into_bytes()))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_guessable_embedded_key_file_stops_the_start_naming_it() {
        let dir = std::env::temp_dir().join(format!("orgsync-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a scratch dir");
        let mut settings = Settings::load(None).expect("the defaults load");
        settings.data_dir = dir.clone();
        settings.auth.jwt_secret = None;
        for contents in ["", "   \n", &"a".repeat(48)] {
            std::fs::write(dir.join("jwt-secret"), contents).expect("written");
            let refused = minter(&settings).err().map(|e| e.to_string());
            assert!(
                refused.as_deref().is_some_and(|e| e.contains("jwt-secret")),
                "{contents:?}: {refused:?}"
            );
        }
        std::fs::remove_file(dir.join("jwt-secret")).expect("removed");
        assert!(minter(&settings).is_ok(), "a missing file is generated");
        std::fs::remove_dir_all(&dir).ok();
    }
}
