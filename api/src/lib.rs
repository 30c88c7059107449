//! The `orgsync` binary's library: command line, configuration, wiring and
//! the HTTP surface. Tests build the same application in process from here.
//!
//! - [`cli`], [`sync_cli`]: the `orgsync` commands (`serve`, `worker`,
//!   `migrate`, `token`, `sync start`).
//! - [`config`]: settings from file and environment, validated before anything starts.
//! - [`runtime`]: which adapter serves which port; the use cases built on them.
//! - [`state`]: what every handler can reach.
//! - [`http`]: the admin API (`/api/v1`, problem+json), SCIM (`/scim/v2`),
//!   SSO, probes and the OpenAPI document.
//! - [`auth`]: admin JWTs, verified with the pinned algorithm.
//! - [`throttle`]: request budgets per SCIM connection and per client address.
//! - [`jobs`]: the dispatcher from typed tasks to use cases, the sweeper and
//!   the nudge debounce.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and logging.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod runtime;
pub mod state;
pub mod sync_cli;
pub mod telemetry;
pub mod throttle;
