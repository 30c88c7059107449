//! Use cases: each takes the caller ([`Principal`](crate::auth::Principal))
//! first, authorizes, then works through the ports.

mod connections;
mod orgs;
mod scim;

pub use connections::ConnectionService;
pub use orgs::{OrgChanges, OrgService};
pub use scim::ScimService;
