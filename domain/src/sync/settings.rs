use serde::{Deserialize, Serialize};

use crate::directory::ResourceId;
use crate::membership::{Deprovision, GroupMappings, MemberStatus, Role, SeatTier};

/// An org's membership settings, saved as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipSettings {
    pub mappings: GroupMappings,
    pub deprovision: Deprovision,
}

/// A role defined by an org, with the capabilities it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRole {
    pub name: Role,
    pub capabilities: Vec<String>,
}

impl CustomRole {
    /// # Errors
    /// `Invalid` for a built-in name, a blank or overlong capability, or a duplicate one.
    pub fn validate(&self, index: usize) -> crate::Result<()> {
        if self.name.is_builtin() {
            return Err(crate::Error::invalid(
                format!("roles[{index}].name"),
                "owner, admin and user are built in; custom roles need another name",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, capability) in self.capabilities.iter().enumerate() {
            let ok = !capability.is_empty()
                && capability.len() <= 128
                && capability
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
            if !ok {
                return Err(crate::Error::invalid(
                    format!("roles[{index}].capabilities[{i}]"),
                    "1-128 characters of letters, digits, '_', '-', '.', ':'",
                ));
            }
            if !seen.insert(capability) {
                return Err(crate::Error::invalid(
                    format!("roles[{index}].capabilities[{i}]"),
                    "listed twice",
                ));
            }
        }
        Ok(())
    }
}

/// Filters of the members list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    pub role: Option<Role>,
    pub seat_tier: Option<SeatTier>,
    pub status: Option<MemberStatus>,
    /// Members whose directory user belongs to this directory group.
    pub group: Option<ResourceId>,
}
