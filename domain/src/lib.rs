//! orgsync's domain: the model, the rules and the ports. No I/O lives here.
//!
//! - [`org`]: organizations and the tree they form (tenants, children, sandboxes).
//! - [`auth`]: who is asking ([`auth::Principal`]) and what they may reach.
//! - [`directory`]: what an IdP pushes over SCIM (users, groups, change
//!   events), kept as it was sent, and the SCIM error contract.
//! - [`scim`]: SCIM 2.0 grammar that is pure logic (schemas, filters, PATCH).
//! - [`membership`]: members, group mappings, custom attributes, and the
//!   planner that derives membership from the directory.
//! - [`sync`]: sync runs and jobs, the org settings that drive membership,
//!   previews and deletion protection for anything that removes people.
//! - [`audit`]: the append-only record of who changed what.
//! - [`events`], [`webhooks`]: what downstream applications learn of changes, and how.
//! - [`sso`]: single sign-on through a connection, and who it lets in.
//! - [`limits`]: the bounds one request or tenant may not exceed.
//! - [`page`]: cursor pagination shared by every list.
//! - [`ports`]: the traits adapters implement (repositories, job queue, clock).
//! - [`service`]: use cases, written against the ports.
//! - [`error`]: the failures a use case reports, each mapped to one response.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod audit;
pub mod auth;
pub mod directory;
pub mod error;
pub mod events;
mod id;
pub mod limits;
pub mod membership;
pub mod org;
pub mod page;
pub mod ports;
pub mod scim;
pub mod service;
pub mod sso;
pub mod sync;
mod text;
pub mod webhooks;

pub use error::{Error, Result};
