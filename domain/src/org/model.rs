//! The organization entity.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{OrgName, Slug};

crate::id::uuid_id!(
    /// Identifies an organization. UUIDv7, so ids sort by creation time.
    OrgId
);

/// What an organization is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Standard,
    /// A child used for testing; it can draw on its parent's directory like any child.
    Sandbox,
}

impl OrgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Sandbox => "sandbox",
        }
    }

    /// # Errors
    /// `Invalid` (field `kind`) for anything but `standard` or `sandbox`.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "standard" => Ok(Self::Standard),
            "sandbox" => Ok(Self::Sandbox),
            _ => Err(crate::Error::invalid(
                "kind",
                "must be \"standard\" or \"sandbox\"",
            )),
        }
    }
}

/// How members enter an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningMode {
    /// Admins add and remove members by hand.
    #[default]
    Manual,
    /// Members are created on first sign-in through SSO.
    Jit,
    /// Membership is derived from the directory pushed over SCIM.
    Scim,
}

impl ProvisioningMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Jit => "jit",
            Self::Scim => "scim",
        }
    }

    /// # Errors
    /// `Invalid` (field `mode`) for an unknown mode.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "manual" => Ok(Self::Manual),
            "jit" => Ok(Self::Jit),
            "scim" => Ok(Self::Scim),
            _ => Err(crate::Error::invalid(
                "mode",
                "must be \"manual\", \"jit\" or \"scim\"",
            )),
        }
    }
}

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    /// `None` for a root (a tenant).
    pub parent_id: Option<OrgId>,
    /// The tenant this organization belongs to; a root is its own tenant.
    pub root_id: OrgId,
    pub kind: OrgKind,
    pub name: OrgName,
    pub slug: Slug,
    pub provisioning_mode: ProvisioningMode,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Organization {
    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// Everything needed to create an organization; the rest is derived.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: OrgName,
    pub slug: Slug,
    pub kind: OrgKind,
}

impl NewOrganization {
    /// Builds the root of a new tenant.
    pub fn into_root(self, now: OffsetDateTime) -> Organization {
        let id = OrgId::new();
        self.placed(id, None, id, now)
    }

    /// Builds a child of `parent`, in the parent's tenant.
    pub fn into_child_of(self, parent: &Organization, now: OffsetDateTime) -> Organization {
        self.placed(OrgId::new(), Some(parent.id), parent.root_id, now)
    }

    fn placed(
        self,
        id: OrgId,
        parent_id: Option<OrgId>,
        root_id: OrgId,
        now: OffsetDateTime,
    ) -> Organization {
        Organization {
            id,
            parent_id,
            root_id,
            kind: self.kind,
            name: self.name,
            slug: self.slug,
            provisioning_mode: ProvisioningMode::default(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// An organization within a subtree listing, with its distance from the subtree's top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub org: Organization,
    pub depth: u32,
}
