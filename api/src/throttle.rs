//! What keeps one client from spending the shared process: per-connection
//! SCIM request budgets, failed SCIM authentications per address, and
//! sign-in starts per address. The HTTP layer consults them through the
//! application state; they know nothing of HTTP themselves.

pub mod scim;
pub mod sign_in;
