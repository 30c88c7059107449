//! The rules a configuration must meet before anything starts: those that
//! span keys or that serde cannot express. Each failure names its key, so
//! an operator knows what to change.

use std::net::SocketAddr;

use super::sections::domain_limits;
use super::{invalid, ConfigError, JwtAlgorithm, Settings};

impl Settings {
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
        let process_limits = [
            ("limits.token_cache_entries", limits.token_cache_entries),
            ("limits.exports_at_once", u64::from(limits.exports_at_once)),
            ("limits.export_seconds", limits.export_seconds),
        ];
        for (key, value) in domain_limits(&limits.domain())
            .into_iter()
            .chain(process_limits)
        {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let hooks = &self.webhooks;
        for (key, value) in [
            (
                "events.retention_days",
                u64::from(self.events.retention_days),
            ),
            ("events.dispatch_every_ms", self.events.dispatch_every_ms),
            ("sync.plan_budget", self.sync.plan_budget),
            ("webhooks.max_endpoints", hooks.max_endpoints as u64),
            ("webhooks.retry_base_ms", hooks.retry_base_ms),
            (
                "webhooks.max_response_bytes",
                hooks.max_response_bytes as u64,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.sso.timeout_ms < 100 {
            return Err(invalid("sso.timeout_ms", "must be at least 100"));
        }
        if !(30..=3600).contains(&self.sso.login_ttl) {
            return Err(invalid("sso.login_ttl", "must be 30 to 3600 seconds"));
        }
        self.sso_policy()?;
        if hooks.timeout_ms < 100 {
            return Err(invalid("webhooks.timeout_ms", "must be at least 100"));
        }
        if hooks.endpoints_at_once_per_tenant == 0 {
            return Err(invalid(
                "webhooks.endpoints_at_once_per_tenant",
                "must be at least 1",
            ));
        }
        if hooks.retry_cap_ms < hooks.retry_base_ms {
            return Err(invalid(
                "webhooks.retry_cap_ms",
                "must be at least webhooks.retry_base_ms",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        self.export_share_of_pool()?;
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

    /// On PostgreSQL an export holds two of the pool's connections for as
    /// long as it streams. Exports at once may hold at most half the pool,
    /// so SCIM writes, admin calls and the workers always keep the other half.
    fn export_share_of_pool(&self) -> Result<(), ConfigError> {
        if !self.database_url().starts_with("postgres") {
            return Ok(());
        }
        let pool = u64::from(self.database.max_connections);
        let exports = u64::from(self.limits.exports_at_once);
        if 2 * exports > pool / 2 {
            let raise = format!("raise database.max_connections to {}", 4 * exports);
            let remedy = match pool / 4 {
                0 => raise,
                fits => format!("lower it to {fits} or {raise}"),
            };
            return Err(invalid(
                "limits.exports_at_once",
                format!(
                    "each export holds two database connections, and exports may hold at most \
                     half of database.max_connections ({pool}): {remedy}"
                ),
            ));
        }
        Ok(())
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
