//! Configuration: built-in defaults, then an optional file (`--config`), then
//! `ORGSYNC__SECTION__KEY` environment variables. Every value is checked at
//! start; a bad one stops the process with a message naming its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

/// Bounds on what one tenant's request may cost the shared process
/// (see [`orgsync_domain::limits::Limits`] for what each means).
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub org_depth: u32,
    pub org_children: u64,
    pub scim_patch_operations: usize,
    pub scim_attribute_values: usize,
    pub scim_resource_bytes: usize,
    pub scim_members_per_request: usize,
    pub preview_page: usize,
    /// Unauthenticated or wrongly authenticated SCIM requests per second
    /// allowed from one client address (0: no limit).
    pub scim_unauthenticated_per_second: u32,
    /// Entries of the SCIM token look-up cache.
    pub token_cache_entries: u64,
}

impl LimitSettings {
    pub fn domain(&self) -> orgsync_domain::limits::Limits {
        orgsync_domain::limits::Limits {
            org_depth: self.org_depth,
            org_children: self.org_children,
            scim_patch_operations: self.scim_patch_operations,
            scim_attribute_values: self.scim_attribute_values,
            scim_resource_bytes: self.scim_resource_bytes,
            scim_members_per_request: self.scim_members_per_request,
            preview_page: self.preview_page,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScimSettings {
    /// Seconds a rotated-out SCIM token keeps working (0: it stops at once).
    pub token_rotation_grace: u64,
    /// Sustained SCIM requests per second allowed per connection (0: no limit).
    pub rate_limit_per_second: u32,
    /// Requests a connection may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// Milliseconds a token look-up is reused by this process (0: every request asks the
    /// database). Revocations made elsewhere take effect within this time.
    pub token_cache_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    /// The public base URL (used in SCIM `location`s); derived from `bind` when unset.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://...` or `sqlite://...`; unset means an embedded SQLite file in `data_dir`.
    pub url: Option<String>,
    pub max_connections: u32,
    /// Apply pending migrations when `serve` or `worker` starts.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// `redis://...`; unset means the in-process queue (one process only).
    pub url: Option<String>,
    /// Prefix of every key orgsync writes, so deployments can share a Redis.
    pub key_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    EdDSA,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HS256 shared secret, at least 32 bytes.
    pub jwt_secret: Option<String>,
    /// RS256/EdDSA verification key: PEM text, or the path of a PEM file.
    pub jwt_public_key: Option<String>,
    /// RS256/EdDSA signing key for `orgsync token`: PEM text or path. Never needed by `serve`.
    pub jwt_private_key: Option<String>,
    pub jwt_algorithm: JwtAlgorithm,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Lifetime of tokens minted by `orgsync token`, in seconds.
    pub token_ttl: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `orgsync=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SyncSettings {
    /// Seconds after a removal during which the same person (a re-created
    /// directory user) gets the old member back.
    pub relink_window: u64,
    /// Recognise the person by email too, not only by externalId.
    pub relink_by_email: bool,
}

impl SyncSettings {
    pub fn relink(&self) -> orgsync_domain::sync::RelinkPolicy {
        orgsync_domain::sync::RelinkPolicy {
            window: time::Duration::seconds(i64::try_from(self.relink_window).unwrap_or(i64::MAX)),
            by_email: self.relink_by_email,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    /// Jobs taken from the queue per fetch.
    pub batch: usize,
    /// Jobs one worker runs at once.
    pub concurrency: usize,
    /// Seconds before an unacknowledged job may be taken over by another worker.
    pub lease: u64,
    pub max_attempts: u32,
    /// Seconds between sweeps (re-publishing lost or due jobs, reclaiming dead workers' jobs).
    pub sweep_every: u64,
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
            .set_default("scim.token_cache_ms", 1000)?
            .set_default("sync.relink_window", 7 * 24 * 3600)?
            .set_default("sync.relink_by_email", false)?;
        let limits = orgsync_domain::limits::Limits::default();
        builder = builder
            .set_default("limits.org_depth", limits.org_depth)?
            .set_default("limits.org_children", limits.org_children)?
            .set_default(
                "limits.scim_patch_operations",
                limits.scim_patch_operations as u64,
            )?
            .set_default(
                "limits.scim_attribute_values",
                limits.scim_attribute_values as u64,
            )?
            .set_default(
                "limits.scim_resource_bytes",
                limits.scim_resource_bytes as u64,
            )?
            .set_default(
                "limits.scim_members_per_request",
                limits.scim_members_per_request as u64,
            )?
            .set_default("limits.preview_page", limits.preview_page as u64)?
            .set_default("limits.scim_unauthenticated_per_second", 20)?
            .set_default("limits.token_cache_entries", 100_000)?;
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules that span keys or that serde cannot express.
    ///
    /// # Errors
    /// The first rule broken, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .bind
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.bind", format!("not a socket address: {e}")))?;
        if self.server.body_limit < 1024 {
            return Err(invalid("server.body_limit", "must be at least 1024 bytes"));
        }
        if let Some(url) = &self.database.url {
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(invalid(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                ));
            }
        }
        // Tombstones are kept this long; a year bounds their table.
        if self.sync.relink_window > 366 * 24 * 3600 {
            return Err(invalid(
                "sync.relink_window",
                "must be at most 31622400 seconds (366 days)",
            ));
        }
        let limits = &self.limits;
        for (key, value) in [
            ("limits.org_depth", u64::from(limits.org_depth)),
            ("limits.org_children", limits.org_children),
            (
                "limits.scim_patch_operations",
                limits.scim_patch_operations as u64,
            ),
            (
                "limits.scim_attribute_values",
                limits.scim_attribute_values as u64,
            ),
            (
                "limits.scim_resource_bytes",
                limits.scim_resource_bytes as u64,
            ),
            (
                "limits.scim_members_per_request",
                limits.scim_members_per_request as u64,
            ),
            ("limits.preview_page", limits.preview_page as u64),
            ("limits.token_cache_entries", limits.token_cache_entries),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if let Some(url) = &self.redis.url {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(invalid(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        match self.auth.jwt_algorithm {
            JwtAlgorithm::HS256 => {
                if let Some(secret) = &self.auth.jwt_secret {
                    if secret.len() < 32 {
                        return Err(invalid("auth.jwt_secret", "must be at least 32 bytes"));
                    }
                    if let Some(reason) = weak_secret(secret) {
                        return Err(invalid("auth.jwt_secret", &reason));
                    }
                } else if self.database.url.is_some() {
                    return Err(invalid(
                        "auth.jwt_secret",
                        "is required with HS256 when database.url is set (only the embedded mode generates a development key)",
                    ));
                }
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
                if self.auth.jwt_public_key.is_none() {
                    return Err(invalid(
                        "auth.jwt_public_key",
                        "is required when auth.jwt_algorithm is RS256 or EdDSA",
                    ));
                }
            }
        }
        if self.scim.rate_limit_per_second > 0 && self.scim.rate_limit_burst == 0 {
            return Err(invalid(
                "scim.rate_limit_burst",
                "must be at least 1 when a rate limit is set",
            ));
        }
        if self.auth.token_ttl == 0 {
            return Err(invalid("auth.token_ttl", "must be at least 1 second"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        let w = &self.worker;
        if [w.batch, w.concurrency].contains(&0) || w.max_attempts == 0 || w.lease == 0 {
            return Err(invalid(
                "worker",
                "batch, concurrency, lease and max_attempts must be at least 1",
            ));
        }
        Ok(())
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

/// Why a signing secret must not be used, if it must not: a placeholder
/// copied from an example, or too little randomness to resist guessing
/// (whoever guesses it can mint a platform token).
pub fn weak_secret(secret: &str) -> Option<String> {
    const PLACEHOLDERS: [&str; 7] = [
        "change-me",
        "changeme",
        "change_me",
        "placeholder",
        "insecure",
        "example",
        "xxxxxxxx",
    ];
    let lower = secret.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(*w)) {
        return Some(format!(
            "looks like a placeholder (contains \"{word}\"); use a random secret, e.g. openssl rand -base64 48"
        ));
    }
    let mut counts = std::collections::HashMap::new();
    for c in secret.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let len = secret.chars().count() as f64;
    // Shannon entropy of the characters, times the length: a generous
    // estimate of the bits an attacker must guess.
    let bits: f64 = counts
        .values()
        .map(|&n| {
            let p = n as f64 / len;
            -p * p.log2()
        })
        .sum::<f64>()
        * len;
    if counts.len() < 8 || bits < 96.0 {
        return Some(format!(
            "has too little randomness (about {bits:.0} bits); use a random secret, e.g. openssl rand -base64 48"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let source = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::HashMap<_, _>>();
        Settings::load_with(
            None,
            config::Environment::with_prefix("ORGSYNC")
                .prefix_separator("__")
                .separator("__")
                .source(Some(source)),
        )
    }

    #[test]
    fn no_configuration_at_all_means_the_embedded_mode() {
        let settings = load_env(&[]).map_err(|e| e.to_string());
        let settings = settings.as_ref().map_err(String::as_str);
        assert!(settings.is_ok(), "{settings:?}");
        if let Ok(s) = settings {
            assert!(s.is_embedded());
            assert!(s.redis.url.is_none());
            assert_eq!(s.server.bind, "127.0.0.1:8080");
            assert!(s.database_url().starts_with("sqlite://"));
        }
    }

    #[test]
    fn environment_overrides_reach_nested_keys() {
        let s = load_env(&[
            ("ORGSYNC__DATABASE__URL", "postgres://localhost/x"),
            (
                "ORGSYNC__AUTH__JWT_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("ORGSYNC__LOG__FORMAT", "json"),
        ]);
        assert!(matches!(s, Ok(ref s) if s.log.format == LogFormat::Json && !s.is_embedded()));
    }

    #[test]
    fn a_bad_value_is_reported_with_its_key() {
        let cases = [
            (("ORGSYNC__SERVER__BIND", "nowhere"), "server.bind"),
            (("ORGSYNC__LOG__FORMAT", "xml"), "log.format"),
            (("ORGSYNC__DATABASE__URL", "mysql://x"), "database.url"),
            (("ORGSYNC__AUTH__JWT_SECRET", "short"), "auth.jwt_secret"),
            (
                ("ORGSYNC__AUTH__JWT_ALGORITHM", "RS256"),
                "auth.jwt_public_key",
            ),
            (("ORGSYNC__REDIS__URL", "http://x"), "redis.url"),
        ];
        for ((key, value), named) in cases {
            let message = load_env(&[(key, value)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains(named), "{key}={value}: {message}");
        }
    }

    #[test]
    fn placeholder_and_low_entropy_secrets_are_refused_by_name() {
        for weak in [
            "CHANGE-ME-insecure-placeholder-jwt-secret",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababab",
            "your-example-secret-goes-here-0123456789",
        ] {
            let message = load_env(&[
                ("ORGSYNC__DATABASE__URL", "postgres://localhost/x"),
                ("ORGSYNC__AUTH__JWT_SECRET", weak),
            ])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(message.contains("auth.jwt_secret"), "{weak}: {message}");
        }
        for strong in [
            "0123456789abcdef0123456789abcdef",
            "kX3v9QpZ0s8LwN2mB7cR4tY6uJ1hG5fD-aE_iO8pW3qS0zV",
        ] {
            assert_eq!(weak_secret(strong), None, "{strong}");
        }
    }

    #[test]
    fn a_server_database_requires_an_explicit_signing_key() {
        let message = load_env(&[("ORGSYNC__DATABASE__URL", "postgres://localhost/x")])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("auth.jwt_secret"), "{message}");
    }
}
