//! The ports: what the domain needs from the outside world. `infra` implements
//! them; every method that touches tenant data takes the org (or connection) first.

mod audit_log;
mod change_feed;
mod clock;
mod connection_repository;
mod deletion_protection;
mod directory_repository;
mod event_log;
mod export_snapshots;
mod health;
mod membership_repository;
mod org_repository;
mod queue;
mod secrets;
mod sso;
mod sync_run_repository;
mod webhooks;

pub use audit_log::AuditLog;
pub use change_feed::{ChangeFeed, SnapshotScope, UserPages};
pub use clock::{Clock, SystemClock};
pub use connection_repository::{ConnectionRepository, ScimAccess};
pub use deletion_protection::DeletionProtection;
pub use directory_repository::{DirectoryRepository, GroupGuard, GroupPatch, Listed, WriteTarget};
pub use event_log::EventLog;
pub use export_snapshots::{ExportSnapshot, ExportSnapshots};
pub use health::HealthCheck;
pub use membership_repository::{MemberWrites, MembershipRepository};
pub use org_repository::OrgRepository;
pub use queue::{Delivery, Job, JobQueue, Lane, Task, UnknownTask};
pub use secrets::SecretSource;
pub use sso::{OidcProvider, SamlProvider, ServiceProvider, SsoRepository};
pub use sync_run_repository::{job_writer, SyncRunRepository};
pub use webhooks::{Attempt, WebhookRepository, WebhookSender};
