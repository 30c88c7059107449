//! Bounds on what one request or one tenant may make the shared process do.
//!
//! orgsync serves many tenants from one process: without these, one tenant's
//! admin (or whoever holds an IdP token) could create a tree deep enough to
//! overflow a stack, or send a PATCH whose cost grows with the square of its
//! size. Each bound is a setting (`limits.*`); the defaults sit well above what
//! the IdPs we know of send.

/// The bounds in force. [`Limits::default`] holds the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Levels below a root organization (a root's children are at depth 1).
    pub org_depth: u32,
    /// Direct children of one organization.
    pub org_children: u64,
    /// Operations in one SCIM PATCH request.
    pub scim_patch_operations: usize,
    /// Values of one multi-valued attribute of a stored user or group (emails,
    /// phone numbers, extension lists); group members are counted separately.
    pub scim_attribute_values: usize,
    /// Size of a stored user or group resource, as compact JSON, in bytes.
    pub scim_resource_bytes: usize,
    /// Group members named by one POST, PUT or PATCH of a group.
    pub scim_members_per_request: usize,
    /// Changes a preview answers per page.
    pub preview_page: usize,
    /// Entries of one of an org's lists: custom roles, seat tiers, a role's
    /// capabilities, a connection's attribute definitions. Every plan reads
    /// them for every member.
    pub catalog_entries: usize,
    /// Size of one member's public metadata, as compact JSON, in bytes: it
    /// travels with the member into every list page, audit entry, event and
    /// webhook.
    pub member_metadata_bytes: usize,
    /// Enterprise connections of one org: each has its SCIM tokens, its own
    /// rate limit and its directory.
    pub connections_per_org: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            org_depth: 32,
            org_children: 10_000,
            scim_patch_operations: 1_000,
            scim_attribute_values: 1_000,
            scim_resource_bytes: 64 * 1024,
            scim_members_per_request: 20_000,
            preview_page: 1_000,
            catalog_entries: 100,
            member_metadata_bytes: 16 * 1024,
            connections_per_org: 50,
        }
    }
}
