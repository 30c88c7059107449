//! Who is asking, and what they may reach.
//!
//! A token for an organization reaches that organization and its descendants,
//! never a sibling, a parent or another tenant. Outside that reach the answer
//! is "not found", so a token cannot probe for the existence of other orgs.
//! A read-only token (the member role) is refused every write with one
//! answer, whatever the target, which tells it nothing either.

use serde::{Deserialize, Serialize};

use crate::org::OrgId;
use crate::Error;

/// The role an admin token carries within its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    Owner,
    Admin,
    /// Read-only access to the organization and its descendants.
    Member,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// An authenticated caller of the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform operator: creates tenants and reaches every organization.
    Platform { subject: String },
    /// An admin of one organization (and so of its descendants).
    Org {
        subject: String,
        org: OrgId,
        role: AdminRole,
    },
}

/// What a caller wants to do with an organization it has located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    /// Deleting an organization: a token may delete descendants of its org, not the org itself.
    Delete,
}

impl Principal {
    pub fn subject(&self) -> &str {
        match self {
            Self::Platform { subject } | Self::Org { subject, .. } => subject,
        }
    }

    /// The organization the caller is anchored at, `None` for the platform.
    pub fn anchor(&self) -> Option<OrgId> {
        match self {
            Self::Platform { .. } => None,
            Self::Org { org, .. } => Some(*org),
        }
    }

    /// Decides whether the caller may perform `action` on `target`, given
    /// whether the target lies within the caller's reach (its anchor or a
    /// descendant of it; always true for the platform).
    ///
    /// # Errors
    /// `NotFound` when the target is out of reach, whatever the action;
    /// `Forbidden` when it is within reach but the role does not allow the action.
    pub fn authorize(
        &self,
        target: OrgId,
        within_reach: bool,
        action: Action,
    ) -> crate::Result<()> {
        let (org, role) = match self {
            Self::Platform { .. } => return Ok(()),
            Self::Org { org, role, .. } => (*org, *role),
        };
        if !within_reach {
            return Err(Error::NotFound {
                entity: "organization",
            });
        }
        match (action, role) {
            (Action::Read, _) => Ok(()),
            (Action::Write, AdminRole::Owner | AdminRole::Admin) => Ok(()),
            (Action::Delete, AdminRole::Owner | AdminRole::Admin) if target != org => Ok(()),
            (Action::Delete, AdminRole::Owner | AdminRole::Admin) => Err(Error::Forbidden(
                "a token cannot delete the organization it was issued for".into(),
            )),
            (Action::Write | Action::Delete, AdminRole::Member) => Err(read_only()),
        }
    }

    /// Whether the principal may write at all, whatever the target: the
    /// member role may not. Checked before anything else of a write is read,
    /// so a read-only token learns nothing from one; the rest of what a
    /// write needs (reach, the action) is [`Self::authorize`]'s.
    ///
    /// # Errors
    /// `Forbidden` for the member role.
    pub fn require_writer(&self) -> crate::Result<()> {
        match self {
            Self::Org {
                role: AdminRole::Member,
                ..
            } => Err(read_only()),
            _ => Ok(()),
        }
    }

    /// # Errors
    /// `Forbidden` unless the caller is the platform operator.
    pub fn require_platform(&self) -> crate::Result<()> {
        match self {
            Self::Platform { .. } => Ok(()),
            Self::Org { .. } => Err(Error::Forbidden(
                "only the platform operator may do this".into(),
            )),
        }
    }
}

fn read_only() -> Error {
    Error::Forbidden("the member role is read-only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(role: AdminRole) -> (Principal, OrgId) {
        let org = OrgId::new();
        let principal = Principal::Org {
            subject: "alice".into(),
            org,
            role,
        };
        (principal, org)
    }

    #[test]
    fn only_the_member_role_is_refused_writing_before_its_target_is_known() {
        let platform = Principal::Platform {
            subject: "operator".into(),
        };
        assert!(platform.require_writer().is_ok());
        for (role, may_write) in [
            (AdminRole::Owner, true),
            (AdminRole::Admin, true),
            (AdminRole::Member, false),
        ] {
            let (principal, org) = admin(role);
            assert_eq!(principal.require_writer().is_ok(), may_write, "{role:?}");
            // The early check never admits what `authorize` would refuse.
            let writes = principal.authorize(org, true, Action::Write).is_ok();
            assert_eq!(writes, may_write, "{role:?}");
        }
    }

    #[test]
    fn anything_out_of_reach_is_not_found_whatever_the_role() {
        for role in [AdminRole::Owner, AdminRole::Admin, AdminRole::Member] {
            let (principal, _) = admin(role);
            for action in [Action::Read, Action::Write, Action::Delete] {
                let outcome = principal.authorize(OrgId::new(), false, action);
                assert!(
                    matches!(outcome, Err(Error::NotFound { .. })),
                    "{role:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn members_read_but_do_not_write() {
        let (principal, org) = admin(AdminRole::Member);
        assert!(principal.authorize(org, true, Action::Read).is_ok());
        assert!(matches!(
            principal.authorize(org, true, Action::Write),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn admins_delete_descendants_but_not_their_own_org() {
        let (principal, org) = admin(AdminRole::Admin);
        assert!(principal
            .authorize(OrgId::new(), true, Action::Delete)
            .is_ok());
        assert!(matches!(
            principal.authorize(org, true, Action::Delete),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn the_platform_reaches_everything_and_only_it_creates_tenants() {
        let platform = Principal::Platform {
            subject: "ops".into(),
        };
        assert!(platform
            .authorize(OrgId::new(), false, Action::Delete)
            .is_ok());
        assert!(platform.require_platform().is_ok());
        assert!(admin(AdminRole::Owner).0.require_platform().is_err());
    }
}
