//! The directory: what a customer's IdP pushes over SCIM, kept as it was sent.
//!
//! An organization's *enterprise connection* owns one directory. With
//! directory sync on, the connection has a SCIM base URL and bearer tokens;
//! the IdP creates, replaces, patches and deletes Users and Groups there.
//! Every change bumps the entity's version and appends a [`ChangeEvent`] in
//! the same transaction, which the sync engine consumes.

mod connection;
mod error;
mod event;
pub mod resource;
mod token;

pub use connection::{ConnectionId, EnterpriseConnection};
pub use error::{RateBudget, ScimError};
pub use event::{ChangeEvent, ChangeOp, EntityKind};
pub use resource::{
    GroupFields, GroupRecord, GroupRef, MemberRef, ResourceId, ScimQuery, SortKey, UserFields,
    UserRecord, UserView, WithGroups,
};
pub use token::{ScimToken, TokenHash};
