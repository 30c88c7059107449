//! Organizations and the tree they form.
//!
//! A root organization is a tenant. Every other organization has exactly one
//! parent in the same tenant; `sandbox` organizations are children used for
//! testing. The tree never changes shape after creation (no re-parenting), so
//! ancestry can be stored once and queried as a set.

mod model;
mod values;

pub use model::{NewOrganization, OrgId, OrgKind, Organization, ProvisioningMode, TreeNode};
pub use values::{OrgName, Slug};
