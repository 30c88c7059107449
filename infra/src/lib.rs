//! orgsync's adapters: the ports of `orgsync-domain`, implemented on real engines.
//!
//! - [`db`]: connecting to PostgreSQL or SQLite, migrations, error classification.
//! - [`entity`]: sea-orm entities; they never leave this crate.
//! - [`org_repository`]: [`SqlOrgRepository`], the organization tree.
//! - [`queue`]: [`RedisJobQueue`] (Redis Streams) and [`LocalJobQueue`] (in process).
//! - [`worker`]: the loop that takes jobs off a queue and runs their handlers.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod db;
pub mod entity;
pub mod org_repository;
pub mod queue;
pub mod worker;

pub use db::{Database, DatabaseHealth};
pub use org_repository::SqlOrgRepository;
pub use queue::{LocalJobQueue, QueueHealth, RedisJobQueue};
