//! The `orgsync` binary's library: command line, configuration, wiring and
//! the HTTP surface. Tests build the same application in process from here.
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
