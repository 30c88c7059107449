//! orgsync's adapters: the ports of `orgsync-domain`, implemented on real engines.
//!
//! - [`db`]: connecting to PostgreSQL or SQLite, migrations, the shared
//!   statement helpers; `errors` classifies failures, `planning` keeps
//!   PostgreSQL's plans true to the tables.
//! - [`entity`]: sea-orm entities; they never leave this crate.
//! - [`org_repository`]: [`SqlOrgRepository`], the organization tree.
//! - [`connection_repository`], [`directory`]: enterprise connections, SCIM
//!   tokens and the directory (users, groups, members, change events, and
//!   the feed and snapshots sync reads).
//! - [`filter_sql`]: SCIM filters as SQL conditions.
//! - [`membership_repository`]: members, their settings, relink tombstones.
//! - [`export_snapshots`]: the one moment every page of an export reads.
//! - [`sync_run_repository`]: sync runs, their jobs, per-org writer leases.
//! - [`deletion_protection_repository`], [`audit_log`]: deletion thresholds and
//!   held removals; the append-only audit log.
//! - [`secrets`]: secrets from the operating system's CSPRNG.
//! - [`queue`]: [`RedisJobQueue`] (Redis Streams) and [`LocalJobQueue`] (in process).
//! - [`events`], [`webhooks`]: the events outbox; webhook endpoints, the
//!   dispatcher that fans events out to them and the signed sender.
//! - [`sso`]: SSO settings, sign-ins in flight and identity links; the
//!   OpenID Connect client that verifies ID tokens and the SAML provider
//!   that verifies signed responses.
//! - `net`: outbound HTTP clients that reach only the addresses allowed
//!   (no private networks unless configured), for OIDC and webhooks.
//! - [`worker`]: the loop that takes jobs off a queue and runs their handlers.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod audit_log;
pub mod connection_repository;
pub mod db;
pub mod deletion_protection_repository;
pub mod directory;
pub mod entity;
pub mod events;
pub mod export_snapshots;
pub mod filter_sql;
pub mod membership_repository;
pub(crate) mod net;
pub mod org_repository;
pub mod queue;
pub mod secrets;
pub mod sso;
pub mod sync_run_repository;
pub mod webhooks;
pub mod worker;

pub use audit_log::SqlAuditLog;
pub use connection_repository::SqlConnectionRepository;
pub use db::{Database, DatabaseHealth};
pub use deletion_protection_repository::SqlDeletionProtection;
pub use directory::SqlDirectoryRepository;
pub use events::SqlEventLog;
pub use export_snapshots::SqlExportSnapshots;
pub use membership_repository::SqlMembershipRepository;
pub use org_repository::SqlOrgRepository;
pub use queue::{LocalJobQueue, QueueHealth, RedisJobQueue};
pub use secrets::OsSecretSource;
pub use sso::oidc::HttpOidcProvider;
pub use sso::SqlSsoRepository;
pub use sync_run_repository::SqlSyncRunRepository;
pub use webhooks::SqlWebhookRepository;
