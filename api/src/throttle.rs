//! What keeps one client from spending the shared process: SCIM request
//! budgets per connection and per tenant, failed SCIM authentications per
//! address, sign-in starts per address, and admin API requests per token
//! scope. The HTTP layer consults them through the
//! application state; they know nothing of HTTP themselves.

pub mod admin;
mod budget;
pub mod scim;
pub mod sign_in;
