//! Configuration: built-in defaults, then an optional file (`--config`), then
//! `ORGSYNC__SECTION__KEY` environment variables. Every value is checked at
//! start; a bad one stops the process with a message naming its key.
//!
//! - `sections`: one struct per `[section]` of the file, what each key means;
//! - `validation`: the rules serde cannot express, checked before anything starts;
//! - `tests`: loading from the environment, and the refusals by key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod sections;
#[cfg(test)]
mod tests;
mod validation;

pub use sections::{
    AuthSettings, DatabaseSettings, EventSettings, JwtAlgorithm, LimitSettings, LogFormat,
    LogSettings, RedisSettings, ScimSettings, ServerSettings, SsoSettings, SyncSettings,
    WebhookSettings, WorkerSettings,
};
pub use validation::weak_secret;

use sections::domain_limits;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where the embedded mode keeps its SQLite file and its development signing key.
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub worker: WorkerSettings,
    pub scim: ScimSettings,
    pub limits: LimitSettings,
    pub sync: SyncSettings,
    pub events: EventSettings,
    pub webhooks: WebhookSettings,
    pub sso: SsoSettings,
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then the environment.
    ///
    /// # Errors
    /// When the file is unreadable, a value has the wrong type, or a rule in
    /// [`Settings::validate`] fails.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(
            file,
            config::Environment::with_prefix("ORGSYNC")
                .prefix_separator("__")
                .separator("__"),
        )
    }

    fn load_with(file: Option<&Path>, env: config::Environment) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("data_dir", ".orgsync")?
            .set_default("server.bind", "127.0.0.1:8080")?
            .set_default("server.body_limit", 1_048_576)?
            .set_default("server.shutdown_timeout", 30)?
            .set_default("database.max_connections", 10)?
            .set_default("database.migrate_on_start", true)?
            .set_default("redis.key_prefix", "orgsync:")?
            .set_default("auth.jwt_algorithm", "HS256")?
            .set_default("auth.token_ttl", 3600)?
            .set_default("log.format", "text")?
            .set_default("log.level", "info")?
            .set_default("worker.batch", 4)?
            .set_default("worker.concurrency", 4)?
            .set_default("worker.lease", 30)?
            .set_default("worker.max_attempts", 5)?
            .set_default("worker.sweep_every", 5)?
            .set_default("scim.token_rotation_grace", 0)?
            .set_default("scim.rate_limit_per_second", 100)?
            .set_default("scim.rate_limit_burst", 200)?
            .set_default("scim.tenant_rate_multiple", 10)?
            .set_default("scim.token_cache_ms", 1000)?
            .set_default("sync.relink_window", 7 * 24 * 3600)?
            .set_default("sync.relink_by_email", false)?
            .set_default("sync.plan_budget", 3_000_000)?
            .set_default("sync.plan_wait_ms", 10_000)?
            .set_default("events.retention_days", 30)?
            .set_default("events.dispatch_every_ms", 50)?
            .set_default("webhooks.allow_private_targets", false)?
            .set_default("webhooks.max_endpoints", 20)?
            .set_default("webhooks.endpoints_at_once_per_tenant", 2)?
            .set_default("webhooks.timeout_ms", 10_000)?
            .set_default("webhooks.max_response_bytes", 65_536)?
            .set_default("webhooks.retry_base_ms", 5_000)?
            .set_default("webhooks.retry_cap_ms", 3_600_000)?
            .set_default("webhooks.retry_window", 24 * 3600)?
            .set_default("webhooks.secret_rotation_grace", 24 * 3600)?
            .set_default("sso.redirect_uris", Vec::<String>::new())?
            .set_default("sso.allow_insecure_loopback", false)?
            .set_default("sso.login_ttl", 600)?
            .set_default("sso.timeout_ms", 10_000)?
            .set_default("sso.sign_ins_per_second", 20)?;
        for (key, value) in domain_limits(&orgsync_domain::limits::Limits::default()) {
            builder = builder.set_default(key, value)?;
        }
        builder = builder
            .set_default("limits.admin_requests_per_second", 100)?
            .set_default("limits.scim_unauthenticated_per_second", 20)?
            .set_default("limits.token_cache_entries", 100_000)?
            .set_default("limits.recent_users_mib", 64)?
            .set_default("limits.exports_at_once", 2)?
            .set_default("limits.export_seconds", 600)?;
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The sign-in rules the SSO use cases enforce.
    ///
    /// # Errors
    /// A redirect URI that may not be configured (checked at start).
    pub fn sso_policy(&self) -> Result<orgsync_domain::sso::SsoPolicy, ConfigError> {
        orgsync_domain::sso::SsoPolicy::new(
            self.sso.redirect_uris.clone(),
            self.sso.allow_insecure_loopback,
            std::time::Duration::from_secs(self.sso.login_ttl),
        )
        .map_err(|e| invalid("sso.redirect_uris", e.to_string()))
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("orgsync.db").display()
            ),
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.database.url.is_none()
    }

    /// The externally visible base URL of this server.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.server.bind),
        }
    }
}
