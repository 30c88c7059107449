//! Members, roles, seat tiers and attribute definitions, by hand — within the
//! limits the directory sets: while an org is in SCIM mode its directory
//! members are owned by the directory, and fields that group mappings or
//! attribute definitions govern cannot be changed here.

use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::sync::SyncService;
use crate::audit::{Actor, AuditEntry};
use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, ResourceId};
use crate::error::ConflictCode;
use crate::membership::{
    validate_attributes, AttributeDefinition, Member, MemberId, MemberSource, MemberStatus, Role,
    SeatTier, SpendLimit,
};
use crate::org::{OrgId, Organization, ProvisioningMode};
use crate::page::{Page, PageRequest};
use crate::ports::{
    ChangeFeed, Clock, ConnectionRepository, DirectoryRepository, ExportSnapshots,
    MembershipRepository,
};
use crate::service::OrgService;
use crate::sync::{CustomRole, MemberFilter};
use crate::{Error, Result};

/// A member added by hand.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub seat_tier: Option<SeatTier>,
    pub public_metadata: Map<String, Value>,
}

/// Changes to a member by hand; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct MemberChanges {
    pub name: Option<Option<String>>,
    pub role: Option<Role>,
    pub seat_tier: Option<Option<SeatTier>>,
    pub spend_limit: Option<Option<SpendLimit>>,
    /// Merged into the metadata; a `null` value removes its key.
    pub public_metadata: Option<Map<String, Value>>,
    pub status: Option<MemberStatus>,
}

mod catalog;
mod export;

pub use export::{ExportAdmission, ExportRow, MemberExport};

/// What the members use cases read and write.
#[derive(Clone)]
pub struct MemberPorts {
    pub members: Arc<dyn MembershipRepository>,
    /// Which connection an org draws on, and whether a connection is the org's.
    pub connections: Arc<dyn ConnectionRepository>,
    /// The directory's groups, for filters.
    pub directory: Arc<dyn DirectoryRepository>,
    /// Members and their groups as of one moment, for exports.
    pub snapshots: Arc<dyn ExportSnapshots>,
    /// A directory user's groups as sync sees them, to tell which mapping
    /// governs a member's role or tier.
    pub feed: Arc<dyn ChangeFeed>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Clone)]
pub struct MembersService {
    orgs: OrgService,
    /// Edits by hand take the org's writer lease, as a sync does, so the two
    /// never interleave.
    sync: SyncService,
    ports: MemberPorts,
    exports: ExportAdmission,
}

/// Which of `mapped` (mappings' groups, in precedence order) is the first
/// the user is in.
fn first_applying(
    mapped: impl Iterator<Item = ResourceId>,
    groups: &std::collections::BTreeSet<ResourceId>,
) -> Option<usize> {
    mapped
        .enumerate()
        .find_map(|(i, group)| groups.contains(&group).then_some(i))
}

fn governed(detail: impl Into<String>) -> Error {
    Error::conflict(ConflictCode::GovernedByDirectory, detail)
}

fn parse_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    let valid = email.len() <= 320
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

impl MembersService {
    pub fn new(
        orgs: OrgService,
        sync: SyncService,
        ports: MemberPorts,
        exports: ExportAdmission,
    ) -> Self {
        Self {
            orgs,
            sync,
            ports,
            exports,
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn list(
        &self,
        principal: &Principal,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.check_group_filter(org, filter).await?;
        self.ports.members.list_members(org, filter, page).await
    }

    /// A `group` filter names a group of the directory this org draws on;
    /// any other id (another tenant's group included) is refused the same way,
    /// so the answer says nothing about directories out of reach.
    async fn check_group_filter(&self, org: OrgId, filter: &MemberFilter) -> Result<()> {
        let Some(group) = filter.group else {
            return Ok(());
        };
        let ports = &self.ports;
        let found = match ports.connections.drawing_connection(org).await? {
            Some(conn) => ports.directory.find_group(conn, group).await?.is_some(),
            None => false,
        };
        if found {
            Ok(())
        } else {
            Err(Error::invalid(
                "group",
                "no such group in the directory this organization draws on",
            ))
        }
    }

    /// # Errors
    /// `NotFound`, or as `OrgService::authorize` with `Read`.
    pub async fn get(&self, principal: &Principal, org: OrgId, id: MemberId) -> Result<Member> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.find(org, id).await
    }

    async fn find(&self, org: OrgId, id: MemberId) -> Result<Member> {
        self.ports
            .members
            .find_member(org, id)
            .await?
            .ok_or(Error::NotFound { entity: "member" })
    }

    async fn check_role_and_tier(
        &self,
        org: OrgId,
        role: Option<&Role>,
        tier: Option<&SeatTier>,
    ) -> Result<()> {
        let members = &self.ports.members;
        if let Some(role) = role.filter(|r| !r.is_builtin()) {
            if !members.roles(org).await?.iter().any(|r| &r.name == role) {
                return Err(Error::invalid(
                    "role",
                    format!("no role named {}", role.as_str()),
                ));
            }
        }
        if let Some(tier) = tier {
            if !members.seat_tiers(org).await?.contains(tier) {
                return Err(Error::invalid(
                    "seat_tier",
                    format!("no seat tier named {}", tier.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// Adds a member by hand (manual and JIT modes only).
    ///
    /// # Errors
    /// `Conflict(GovernedByDirectory)` in SCIM mode; `Invalid` for a bad
    /// email, an unknown role or tier; `Conflict(AlreadyExists)` for an email
    /// already a member.
    pub async fn create(
        &self,
        principal: &Principal,
        org: OrgId,
        new: NewMember,
    ) -> Result<Member> {
        self.sync
            .write_as(principal, org, |org| {
                self.create_as_writer(principal, org, new)
            })
            .await
    }

    /// As the org's only writer, so that what the add checks stays true
    /// until it is written: a mode switch to SCIM, or a role or tier removed
    /// from the catalog, either went first (and the add sees it) or waits.
    async fn create_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        new: NewMember,
    ) -> Result<Member> {
        if org.provisioning_mode == ProvisioningMode::Scim {
            return Err(governed(
                "this organization is provisioned by SCIM: members come from its directory",
            ));
        }
        let email = parse_email(&new.email)?;
        let name = new.name.as_deref().map(parse_name).transpose()?;
        self.check_metadata(&new.public_metadata, None)?;
        self.check_role_and_tier(org.id, Some(&new.role), new.seat_tier.as_ref())
            .await?;
        let now = self.now();
        let member = Member {
            id: MemberId::new(),
            org_id: org.id,
            directory_user_id: None,
            email,
            name,
            role: new.role,
            seat_tier: new.seat_tier,
            spend_limit: None,
            public_metadata: new.public_metadata,
            status: MemberStatus::Active,
            source: match org.provisioning_mode {
                ProvisioningMode::Jit => MemberSource::Jit,
                _ => MemberSource::Manual,
            },
            created_at: now,
            updated_at: now,
        };
        let audit = AuditEntry::new(
            org.id,
            Actor::of(principal),
            "member.created",
            ("member", member.id.0.to_string()),
            None,
            serde_json::to_value(&member).ok(),
            now,
        );
        self.ports.members.insert_member(&member, &audit).await?;
        Ok(member)
    }

    /// Changes a member by hand, refusing what the directory governs, as the
    /// org's only writer (a sync changing the org's members goes first).
    ///
    /// # Errors
    /// `Conflict(GovernedByDirectory)` naming the mapping or attribute that
    /// governs a field; `Invalid` for unknown roles or tiers; `NotFound`;
    /// `Conflict(SyncInProgress)` when a sync holds the org too long.
    pub async fn update(
        &self,
        principal: &Principal,
        org: OrgId,
        id: MemberId,
        changes: MemberChanges,
    ) -> Result<Member> {
        self.sync
            .write_as(principal, org, |org| {
                self.update_as_writer(principal, org, id, changes)
            })
            .await
    }

    async fn update_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        id: MemberId,
        changes: MemberChanges,
    ) -> Result<Member> {
        // `org` as read under the lease: a switch to SCIM that went first
        // decides what the directory governs now.
        let mut member = self.find(org.id, id).await?;
        let unchanged = member.clone();
        let before = serde_json::to_value(&member).ok();
        self.check_role_and_tier(
            org.id,
            changes.role.as_ref(),
            changes.seat_tier.as_ref().and_then(Option::as_ref),
        )
        .await?;
        self.check_governance(&org, &member, &changes).await?;
        if let Some(name) = changes.name {
            member.name = name.as_deref().map(parse_name).transpose()?;
        }
        if let Some(role) = changes.role {
            member.role = role;
        }
        if let Some(tier) = changes.seat_tier {
            member.seat_tier = tier;
        }
        if let Some(limit) = changes.spend_limit {
            member.spend_limit = limit;
        }
        if let Some(status) = changes.status {
            member.status = status;
        }
        if let Some(metadata) = changes.public_metadata {
            for (key, value) in metadata {
                if value.is_null() {
                    member.public_metadata.remove(&key);
                } else {
                    member.public_metadata.insert(key, value);
                }
            }
            self.check_metadata(&member.public_metadata, Some(&unchanged.public_metadata))?;
        }
        member.updated_at = self.now();
        let audit = AuditEntry::new(
            org.id,
            Actor::of(principal),
            "member.updated",
            ("member", member.id.0.to_string()),
            before,
            serde_json::to_value(&member).ok(),
            member.updated_at,
        );
        self.ports
            .members
            .update_member(&unchanged, &member, &audit)
            .await?;
        Ok(member)
    }

    /// Refuses metadata over `limits.member_metadata_bytes`, unless it is
    /// no larger than `before` (directory attributes may have filled it: a
    /// change that shrinks it is always taken).
    fn check_metadata(
        &self,
        metadata: &Map<String, Value>,
        before: Option<&Map<String, Value>>,
    ) -> Result<()> {
        let most = self.orgs.limits().member_metadata_bytes;
        let size = |m: &Map<String, Value>| serde_json::to_vec(m).map_or(usize::MAX, |j| j.len());
        let bytes = size(metadata);
        if bytes <= most || before.is_some_and(|before| bytes <= size(before)) {
            return Ok(());
        }
        Err(Error::invalid(
            "public_metadata",
            format!("{bytes} bytes as JSON; at most {most} (limits.member_metadata_bytes)"),
        ))
    }

    async fn check_governance(
        &self,
        org: &Organization,
        member: &Member,
        changes: &MemberChanges,
    ) -> Result<()> {
        let ports = &self.ports;
        let conn = ports.connections.drawing_connection(org.id).await?;
        if let (Some(conn), Some(metadata)) = (conn, &changes.public_metadata) {
            let synced = ports.members.attributes(conn).await?;
            if let Some(def) = synced
                .iter()
                .find(|d| d.scim_path.is_some() && metadata.contains_key(&d.key))
            {
                return Err(governed(format!(
                    "public_metadata.{} is synced from the directory ({}) and is read-only while directory sync is on",
                    def.key,
                    def.scim_path.as_deref().unwrap_or_default()
                )));
            }
        }
        let directory_member =
            org.provisioning_mode == ProvisioningMode::Scim && member.directory_user_id.is_some();
        if !directory_member {
            return Ok(());
        }
        if changes.name.is_some() || changes.status.is_some() {
            return Err(governed(
                "the name and status of a directory member follow the directory",
            ));
        }
        let mappings = ports.members.settings(org.id).await?.mappings;
        if !mappings.enabled {
            return Ok(());
        }
        let groups = match (conn, member.directory_user_id) {
            (Some(conn), Some(user)) => ports
                .feed
                .snapshot_users(conn, &[user])
                .await?
                .into_iter()
                .next()
                .map(|(_, groups)| groups)
                .unwrap_or_default(),
            _ => Default::default(),
        };
        let set_by = |what: &str, list: &str, index: Option<usize>, advice: &str| {
            let mapping = match index {
                Some(i) => format!("{list}[{i}]"),
                None => format!(
                    "{list} (no mapped group applies; the member would be removed at the next sync)"
                ),
            };
            governed(format!("{what} is set by group mapping {mapping}{advice}"))
        };
        if changes.role.is_some() {
            let index = first_applying(mappings.roles.iter().map(|m| m.group), &groups);
            let advice = "; change the mapping or the IdP group instead";
            return Err(set_by("the role", "roles", index, advice));
        }
        if changes.seat_tier.is_some() && !mappings.seat_tiers.is_empty() {
            let index = first_applying(mappings.seat_tiers.iter().map(|m| m.group), &groups);
            return Err(set_by("the seat tier", "seat_tiers", index, ""));
        }
        if changes.spend_limit.is_some() && !mappings.spend_limits.is_empty() {
            let index = first_applying(mappings.spend_limits.iter().map(|m| m.group), &groups);
            return Err(set_by("the spend limit", "spend_limits", index, ""));
        }
        Ok(())
    }

    /// # Errors
    /// `Conflict(GovernedByDirectory)` for a directory member of an org in
    /// SCIM mode (remove it in the IdP); `NotFound`.
    pub async fn delete(&self, principal: &Principal, org: OrgId, id: MemberId) -> Result<()> {
        self.sync
            .write_as(principal, org, |org| {
                self.delete_as_writer(principal, org, id)
            })
            .await
    }

    async fn delete_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        id: MemberId,
    ) -> Result<()> {
        let member = self.find(org.id, id).await?;
        if org.provisioning_mode == ProvisioningMode::Scim && member.directory_user_id.is_some() {
            return Err(governed(
                "this member comes from the directory; remove it there (or unassign it in the IdP)",
            ));
        }
        let audit = AuditEntry::new(
            org.id,
            Actor::of(principal),
            "member.deleted",
            ("member", id.0.to_string()),
            serde_json::to_value(&member).ok(),
            None,
            self.now(),
        );
        self.ports.members.delete_member(&member, &audit).await
    }

    /// Whether at least one member matches `filter` (a removed role or tier still held).
    async fn anyone_matches(&self, org: OrgId, filter: &MemberFilter) -> Result<bool> {
        let page = PageRequest::new(None, Some(1))?;
        let found = self.ports.members.list_members(org, filter, page).await?;
        Ok(!found.items.is_empty())
    }
}

/// A name given by hand: as an organization's (trimmed, 1 to 200
/// characters, no control characters).
fn parse_name(raw: &str) -> Result<String> {
    crate::org::OrgName::parse(raw).map(String::from)
}
