//! Organization membership and the reconcile planner that derives it from the directory.
//!
//! - [`model`]: members and their validated values (roles, seat tiers, spend limits).
//! - [`mapping`]: group mappings (group → role, seat tier, spend limit, each in precedence order).
//! - [`attribute`]: custom attribute definitions and reading their values from a SCIM resource.
//! - [`changes`]: the [`ChangeSet`] a plan produces, its reasons, and applying it in memory.
//! - [`planner`]: the pure planner: `desired` for one user, `plan` for a whole directory,
//!   `plan_user` for one changed user. Full and incremental sync use the same rules, so they
//!   reach the same state.
//!
//! Identity is the directory user's id, never the email: an email change is an update in place.

pub mod attribute;
pub mod changes;
pub mod mapping;
pub mod model;
pub mod planner;

#[cfg(test)]
mod proptests;

pub use attribute::{read_scim_value, validate_attributes, AttributeDefinition};
pub use changes::{
    apply, Add, ChangeCounts, ChangeSet, Field, FieldChange, Reason, Removal, Update,
};
pub use mapping::{GroupMappings, RoleMapping, SpendMapping, TierMapping};
pub use model::{
    Deprovision, Member, MemberId, MemberSource, MemberStatus, Role, SeatTier, SpendLimit,
};
pub use planner::{
    desired, plan, plan_user, Decision, Desired, DesiredMember, DirectoryUser, OrgPolicy, Planner,
    ResourceKeys, SpendDecision, TierDecision,
};
