//! orgsync's integration tests: one binary (each test binary costs a link),
//! one module per capability. They talk to real PostgreSQL and Redis
//! (`ORGSYNC_TEST_DATABASE_URL`, `ORGSYNC_TEST_REDIS_URL`; defaults on
//! 127.0.0.1), each test in its own database cloned from a migrated template
//! and under its own Redis key prefix, so they run in parallel.

// A failed unwrap in a test is a failed assertion with a backtrace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cascade;
mod cli;
mod contention;
mod embedded;
mod events;
mod export;
mod fairness;
mod fixtures;
mod group_members;
mod health;
mod hostile;
mod incremental;
mod isolation;
mod json;
mod migrations;
mod openapi;
mod orgs;
mod protection;
mod queue;
mod recent_users;
mod resilience;
mod restart;
mod scim;
mod source;
mod sso;
mod sync;
