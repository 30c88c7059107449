//! Use cases: each takes the caller ([`Principal`](crate::auth::Principal))
//! first, authorizes, then works through the ports.

mod orgs;

pub use orgs::{OrgChanges, OrgService};
