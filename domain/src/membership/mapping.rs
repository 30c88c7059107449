//! Group mappings: directory group → role, seat tier and spend limit, each an ordered list in
//! which index 0 has the highest precedence. The lists are replaced as a whole, so precedence
//! is always explicit and a half-edited mapping is never live.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::{Role, SeatTier, SpendLimit};
use crate::directory::ResourceId;
use crate::Error;

/// An org's group mappings ("advanced group mapping").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMappings {
    /// Off: the directory decides who is a member, admins set roles, tiers and limits by hand.
    pub enabled: bool,
    #[serde(default)]
    pub roles: Vec<RoleMapping>,
    #[serde(default)]
    pub seat_tiers: Vec<TierMapping>,
    #[serde(default)]
    pub spend_limits: Vec<SpendMapping>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    pub group: ResourceId,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMapping {
    pub group: ResourceId,
    pub tier: SeatTier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendMapping {
    pub group: ResourceId,
    pub limit: SpendLimit,
}

impl GroupMappings {
    /// The groups whose membership can decide anything: those the enabled
    /// mappings name (none when mapping is off). A plan needs no other.
    pub fn deciding_groups(&self) -> Vec<ResourceId> {
        if !self.enabled {
            return Vec::new();
        }
        let mut groups: Vec<ResourceId> = self
            .roles
            .iter()
            .map(|m| m.group)
            .chain(self.seat_tiers.iter().map(|m| m.group))
            .chain(self.spend_limits.iter().map(|m| m.group))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }

    /// Whether membership of `group` decides anything (a role, a seat tier or
    /// a spend limit): a change to any other group's members moves no one.
    pub fn decides(&self, group: ResourceId) -> bool {
        self.enabled
            && (self.roles.iter().any(|m| m.group == group)
                || self.seat_tiers.iter().any(|m| m.group == group)
                || self.spend_limits.iter().any(|m| m.group == group))
    }

    /// Checks the mappings against what exists. Built-in roles are always known; custom roles
    /// and tiers are checked with the callbacks.
    ///
    /// Enabled mappings without any role mapping are rejected: they would remove every member
    /// (the reference product's "incomplete mapping" risk at its worst), which is never what an
    /// admin means.
    ///
    /// # Errors
    /// `Invalid` naming the first offending entry (`roles[2].group`, `seat_tiers[0].tier`, ...)
    /// for an unknown group, role or tier, or a group listed twice in one list.
    pub fn validate(
        &self,
        known_groups: &dyn Fn(ResourceId) -> bool,
        known_roles: &dyn Fn(&Role) -> bool,
        known_tiers: &dyn Fn(&SeatTier) -> bool,
    ) -> crate::Result<()> {
        if self.enabled && self.roles.is_empty() {
            return Err(Error::invalid(
                "roles",
                "group mapping needs at least one role mapping; without one every member would be removed",
            ));
        }
        check_groups("roles", self.roles.iter().map(|m| m.group), known_groups)?;
        for (i, mapping) in self.roles.iter().enumerate() {
            if !mapping.role.is_builtin() && !known_roles(&mapping.role) {
                return Err(Error::invalid(
                    format!("roles[{i}].role"),
                    format!("role \"{}\" does not exist", mapping.role),
                ));
            }
        }
        check_groups(
            "seat_tiers",
            self.seat_tiers.iter().map(|m| m.group),
            known_groups,
        )?;
        for (i, mapping) in self.seat_tiers.iter().enumerate() {
            if !known_tiers(&mapping.tier) {
                return Err(Error::invalid(
                    format!("seat_tiers[{i}].tier"),
                    format!("seat tier \"{}\" does not exist", mapping.tier),
                ));
            }
        }
        check_groups(
            "spend_limits",
            self.spend_limits.iter().map(|m| m.group),
            known_groups,
        )
    }
}

/// Each group at most once per list (a second entry could never apply), and every group known.
fn check_groups(
    list: &str,
    groups: impl Iterator<Item = ResourceId>,
    known_groups: &dyn Fn(ResourceId) -> bool,
) -> crate::Result<()> {
    let mut first_seen: HashMap<ResourceId, usize> = HashMap::new();
    for (i, group) in groups.enumerate() {
        let field = format!("{list}[{i}].group");
        if let Some(first) = first_seen.insert(group, i) {
            return Err(Error::invalid(
                field,
                format!("group {group} is already mapped at {list}[{first}]"),
            ));
        }
        if !known_groups(group) {
            return Err(Error::invalid(
                field,
                format!("group {group} does not exist in the directory"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn field_of(result: crate::Result<()>) -> String {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn sample() -> (GroupMappings, [ResourceId; 3]) {
        let groups = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let mappings = GroupMappings {
            enabled: true,
            roles: vec![
                RoleMapping {
                    group: groups[0],
                    role: Role::Admin,
                },
                RoleMapping {
                    group: groups[1],
                    role: Role::parse("analyst").unwrap(),
                },
            ],
            seat_tiers: vec![TierMapping {
                group: groups[2],
                tier: SeatTier::parse("premium").unwrap(),
            }],
            spend_limits: vec![SpendMapping {
                group: groups[0],
                limit: SpendLimit::new(5000, "USD").unwrap(),
            }],
        };
        (mappings, groups)
    }

    #[test]
    fn only_the_groups_enabled_mappings_name_decide_anything() {
        let (mut m, groups) = sample();
        let mut expected = groups.to_vec();
        expected.sort_unstable();
        assert_eq!(m.deciding_groups(), expected, "each once, in order");
        m.enabled = false;
        assert!(m.deciding_groups().is_empty());
    }

    #[test]
    fn valid_mappings_pass() {
        let (m, groups) = sample();
        let ok = m.validate(&|g| groups.contains(&g), &|_| true, &|_| true);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn unknown_groups_roles_and_tiers_are_rejected_with_their_path() {
        let (m, groups) = sample();
        let known = |g| groups.contains(&g);
        assert_eq!(
            field_of(m.validate(&|g| g != groups[1], &|_| true, &|_| true)),
            "roles[1].group"
        );
        assert_eq!(
            field_of(m.validate(&known, &|_| false, &|_| true)),
            "roles[1].role"
        );
        assert_eq!(
            field_of(m.validate(&known, &|_| true, &|_| false)),
            "seat_tiers[0].tier"
        );
    }

    #[test]
    fn built_in_roles_need_no_definition() {
        let (mut m, groups) = sample();
        m.roles.truncate(1);
        assert!(m
            .validate(&|g| groups.contains(&g), &|_| false, &|_| true)
            .is_ok());
    }

    #[test]
    fn a_group_listed_twice_in_one_list_is_rejected() {
        let (mut m, groups) = sample();
        m.roles.push(RoleMapping {
            group: groups[0],
            role: Role::User,
        });
        assert_eq!(
            field_of(m.validate(&|_| true, &|_| true, &|_| true)),
            "roles[2].group"
        );
    }

    #[test]
    fn enabled_mappings_without_a_role_mapping_are_rejected_but_disabled_ones_may_be_empty() {
        let enabled = GroupMappings {
            enabled: true,
            ..GroupMappings::default()
        };
        assert_eq!(
            field_of(enabled.validate(&|_| true, &|_| true, &|_| true)),
            "roles"
        );
        assert!(GroupMappings::default()
            .validate(&|_| true, &|_| true, &|_| true)
            .is_ok());
    }
}
