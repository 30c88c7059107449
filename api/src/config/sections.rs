//! The sections of the configuration, one struct each. A key's doc comment
//! is what an operator reads about it; defaults are set in `Settings::load`
//! and cross-key rules checked in `validation`.

use serde::Deserialize;

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
    pub catalog_entries: usize,
    pub member_metadata_bytes: usize,
    pub connections_per_org: u64,
    /// Admin API requests per second the tokens of one org may make, with
    /// bursts of twice that (0: no limit; platform tokens are not limited).
    pub admin_requests_per_second: u32,
    /// Unauthenticated or wrongly authenticated SCIM requests per second
    /// allowed from one client address (0: no limit).
    pub scim_unauthenticated_per_second: u32,
    /// Entries of the SCIM token look-up cache.
    pub token_cache_entries: u64,
    /// MiB of directory users this process remembers as the base of the next
    /// PATCH of each, saving its read (0: every PATCH reads first).
    pub recent_users_mib: u64,
    /// Member exports reading at once in this process, each holding a
    /// database connection (a tenant may run at most half of them).
    pub exports_at_once: u32,
    /// Seconds an export may read for (its snapshot stays open meanwhile);
    /// a client reading slower than that gets a broken download.
    pub export_seconds: u64,
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
            catalog_entries: self.catalog_entries,
            member_metadata_bytes: self.member_metadata_bytes,
            connections_per_org: self.connections_per_org,
        }
    }
}

/// The `limits.*` keys that mirror [`Limits`](orgsync_domain::limits::Limits),
/// with their values in `limits`: the one list both the defaults and the
/// at-least-1 rule walk, so that a new limit cannot get one and miss the other.
pub(super) fn domain_limits(limits: &orgsync_domain::limits::Limits) -> [(&'static str, u64); 10] {
    [
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
        ("limits.catalog_entries", limits.catalog_entries as u64),
        (
            "limits.member_metadata_bytes",
            limits.member_metadata_bytes as u64,
        ),
        ("limits.connections_per_org", limits.connections_per_org),
    ]
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScimSettings {
    /// Seconds a rotated-out SCIM token keeps working (0: it stops at once).
    pub token_rotation_grace: u64,
    /// Sustained SCIM requests per second allowed per connection (0: no limit).
    pub rate_limit_per_second: u32,
    /// Requests a connection may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// What all the connections of one tenant (a root org and its
    /// descendants) may send together, as a multiple of one connection's
    /// rate and burst (0: no tenant limit).
    pub tenant_rate_multiple: u32,
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
    /// Members and directory users that full plans of this process hold in
    /// memory together; a plan waits while others hold the rest (one larger
    /// than this runs alone).
    pub plan_budget: u64,
    /// Milliseconds a request (a preview, a mode switch, a mapping save)
    /// waits for room in the plan budget before answering `503 busy`;
    /// background sync waits its turn however long.
    pub plan_wait_ms: u64,
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

#[derive(Debug, Clone, Deserialize)]
pub struct EventSettings {
    /// Days events stay readable through the events API.
    pub retention_days: u32,
    /// Milliseconds between the dispatcher's passes (numbering new events,
    /// fanning them out to webhook endpoints): the floor of delivery latency.
    pub dispatch_every_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Admit `http` targets and private, loopback or link-local addresses.
    /// For development and tests only: it lets tenants reach the operator's network.
    pub allow_private_targets: bool,
    /// Endpoints one organization may have.
    pub max_endpoints: usize,
    /// Endpoints of one tenant handed to the workers at once: a tenant whose
    /// receivers hang holds that many delivery slots, not all of them.
    pub endpoints_at_once_per_tenant: u32,
    /// Milliseconds one delivery attempt may take, answer included.
    pub timeout_ms: u64,
    /// Bytes of a receiver's answer read; the rest is dropped unread.
    pub max_response_bytes: usize,
    /// Milliseconds before the first retry; retries double from there, with jitter.
    pub retry_base_ms: u64,
    /// Longest wait between retries, in milliseconds.
    pub retry_cap_ms: u64,
    /// Seconds from a delivery's first failure until it is given up on and
    /// its endpoint disabled.
    pub retry_window: u64,
    /// Seconds a rotated-out signing secret keeps signing beside the new one.
    pub secret_rotation_grace: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SsoSettings {
    /// Where products may have signed-in users sent back, matched exactly; a
    /// list in the file, comma-separated in `ORGSYNC__SSO__REDIRECT_URIS`.
    #[serde(deserialize_with = "list_or_commas")]
    pub redirect_uris: Vec<String>,
    /// Admit `http` issuers and redirect URIs on 127.0.0.0/8 and ::1 (local
    /// development and tests only).
    pub allow_insecure_loopback: bool,
    /// Seconds a user may spend at the IdP before the sign-in expires.
    pub login_ttl: u64,
    /// Milliseconds one request to an IdP (discovery, keys, token) may take.
    pub timeout_ms: u64,
    /// Sign-in requests (starts and callbacks) one client address may make
    /// per second, with bursts of twice that; 0 turns the limit off.
    pub sign_ins_per_second: u32,
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}
