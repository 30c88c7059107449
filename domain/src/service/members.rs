//! Members, roles, seat tiers and attribute definitions, by hand — within the
//! limits the directory sets: while an org is in SCIM mode its directory
//! members are owned by the directory, and fields that group mappings or
//! attribute definitions govern cannot be changed here.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::sync::SyncService;
use crate::auth::{Action, Principal};
use crate::directory::ConnectionId;
use crate::error::ConflictCode;
use crate::membership::{
    validate_attributes, AttributeDefinition, Member, MemberId, MemberSource, MemberStatus, Role,
    SeatTier, SpendLimit,
};
use crate::org::{OrgId, Organization, ProvisioningMode};
use crate::page::{Page, PageRequest};
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

#[derive(Clone)]
pub struct MembersService {
    orgs: OrgService,
    sync: SyncService,
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
    pub fn new(orgs: OrgService, sync: SyncService) -> Self {
        Self { orgs, sync }
    }

    fn now(&self) -> OffsetDateTime {
        self.sync.ports().clock.now()
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
        self.sync
            .ports()
            .members
            .list_members(org, filter, page)
            .await
    }

    /// A `group` filter names a group of the directory this org draws on;
    /// any other id (another tenant's group included) is refused the same way,
    /// so the answer says nothing about directories out of reach.
    async fn check_group_filter(&self, org: OrgId, filter: &MemberFilter) -> Result<()> {
        let Some(group) = filter.group else {
            return Ok(());
        };
        let ports = self.sync.ports();
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
        self.sync
            .ports()
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
        let members = &self.sync.ports().members;
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
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        if org.provisioning_mode == ProvisioningMode::Scim {
            return Err(governed(
                "this organization is provisioned by SCIM: members come from its directory",
            ));
        }
        let email = parse_email(&new.email)?;
        self.check_role_and_tier(org.id, Some(&new.role), new.seat_tier.as_ref())
            .await?;
        let now = self.now();
        let member = Member {
            id: MemberId::new(),
            org_id: org.id,
            directory_user_id: None,
            email,
            name: new.name,
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
        self.sync.ports().members.insert_member(&member).await?;
        self.orgs
            .audit(
                principal,
                org.id,
                "member.created",
                ("member", member.id.0.to_string()),
                None,
                serde_json::to_value(&member).ok(),
            )
            .await?;
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
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.sync
            .as_writer(org.id, self.update_as_writer(principal, org, id, changes))
            .await
    }

    async fn update_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        id: MemberId,
        changes: MemberChanges,
    ) -> Result<Member> {
        let mut member = self.find(org.id, id).await?;
        let before = serde_json::to_value(&member).ok();
        self.check_role_and_tier(
            org.id,
            changes.role.as_ref(),
            changes.seat_tier.as_ref().and_then(Option::as_ref),
        )
        .await?;
        self.check_governance(&org, &member, &changes).await?;
        if let Some(name) = changes.name {
            member.name = name;
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
        }
        member.updated_at = self.now();
        self.sync.ports().members.update_member(&member).await?;
        self.orgs
            .audit(
                principal,
                org.id,
                "member.updated",
                ("member", member.id.0.to_string()),
                before,
                serde_json::to_value(&member).ok(),
            )
            .await?;
        Ok(member)
    }

    async fn check_governance(
        &self,
        org: &Organization,
        member: &Member,
        changes: &MemberChanges,
    ) -> Result<()> {
        let ports = self.sync.ports();
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
        let governing = |index: Option<usize>, list: &str| match index {
            Some(i) => format!("{list}[{i}]"),
            None => format!(
                "{list} (no mapped group applies; the member would be removed at the next sync)"
            ),
        };
        if changes.role.is_some() {
            let index = mappings
                .roles
                .iter()
                .position(|m| groups.contains(&m.group));
            return Err(governed(format!(
                "the role is set by group mapping {}; change the mapping or the IdP group instead",
                governing(index, "roles")
            )));
        }
        if changes.seat_tier.is_some() && !mappings.seat_tiers.is_empty() {
            let index = mappings
                .seat_tiers
                .iter()
                .position(|m| groups.contains(&m.group));
            return Err(governed(format!(
                "the seat tier is set by group mapping {}",
                governing(index, "seat_tiers")
            )));
        }
        if changes.spend_limit.is_some() && !mappings.spend_limits.is_empty() {
            let index = mappings
                .spend_limits
                .iter()
                .position(|m| groups.contains(&m.group));
            return Err(governed(format!(
                "the spend limit is set by group mapping {}",
                governing(index, "spend_limits")
            )));
        }
        Ok(())
    }

    /// # Errors
    /// `Conflict(GovernedByDirectory)` for a directory member of an org in
    /// SCIM mode (remove it in the IdP); `NotFound`.
    pub async fn delete(&self, principal: &Principal, org: OrgId, id: MemberId) -> Result<()> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.sync
            .as_writer(org.id, self.delete_as_writer(principal, org, id))
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
        self.sync.ports().members.delete_member(org.id, id).await?;
        self.orgs
            .audit(
                principal,
                org.id,
                "member.deleted",
                ("member", id.0.to_string()),
                serde_json::to_value(&member).ok(),
                None,
            )
            .await
    }

    /// Whether at least one member matches `filter` (a removed role or tier still held).
    async fn anyone_matches(&self, org: OrgId, filter: &MemberFilter) -> Result<bool> {
        let page = PageRequest::new(None, Some(1))?;
        let found = self
            .sync
            .ports()
            .members
            .list_members(org, filter, page)
            .await?;
        Ok(!found.items.is_empty())
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn roles(&self, principal: &Principal, org: OrgId) -> Result<Vec<CustomRole>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.sync.ports().members.roles(org).await
    }

    /// Replaces the org's custom roles.
    ///
    /// # Errors
    /// `Invalid` for a bad or duplicate role, or removing a role that members
    /// or group mappings still use.
    pub async fn save_roles(
        &self,
        principal: &Principal,
        org: OrgId,
        roles: Vec<CustomRole>,
    ) -> Result<Vec<CustomRole>> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let mut names = std::collections::HashSet::new();
        for (i, role) in roles.iter().enumerate() {
            role.validate(i)?;
            if !names.insert(role.name.as_str().to_owned()) {
                return Err(Error::invalid(format!("roles[{i}].name"), "listed twice"));
            }
        }
        let ports = self.sync.ports();
        let mappings = ports.members.settings(org).await?.mappings;
        if let Some(m) = mappings
            .roles
            .iter()
            .find(|m| !m.role.is_builtin() && !names.contains(m.role.as_str()))
        {
            return Err(Error::invalid(
                "roles",
                format!("role {} is used by a group mapping", m.role.as_str()),
            ));
        }
        for old in ports.members.roles(org).await? {
            if names.contains(old.name.as_str()) {
                continue;
            }
            let filter = MemberFilter {
                role: Some(old.name.clone()),
                ..MemberFilter::default()
            };
            if self.anyone_matches(org, &filter).await? {
                return Err(Error::invalid(
                    "roles",
                    format!("role {} is held by members", old.name.as_str()),
                ));
            }
        }
        let before = ports.members.roles(org).await?;
        ports.members.save_roles(org, &roles).await?;
        self.orgs
            .audit(
                principal,
                org,
                "roles.saved",
                ("org", org.to_string()),
                serde_json::to_value(&before).ok(),
                serde_json::to_value(&roles).ok(),
            )
            .await?;
        Ok(roles)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn seat_tiers(&self, principal: &Principal, org: OrgId) -> Result<Vec<SeatTier>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.sync.ports().members.seat_tiers(org).await
    }

    /// Replaces the org's seat tiers.
    ///
    /// # Errors
    /// `Invalid` for a duplicate, or removing a tier members or mappings use.
    pub async fn save_seat_tiers(
        &self,
        principal: &Principal,
        org: OrgId,
        tiers: Vec<SeatTier>,
    ) -> Result<Vec<SeatTier>> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let mut names = std::collections::HashSet::new();
        for (i, tier) in tiers.iter().enumerate() {
            if !names.insert(tier.as_str().to_owned()) {
                return Err(Error::invalid(format!("seat_tiers[{i}]"), "listed twice"));
            }
        }
        let ports = self.sync.ports();
        let mappings = ports.members.settings(org).await?.mappings;
        if let Some(m) = mappings
            .seat_tiers
            .iter()
            .find(|m| !names.contains(m.tier.as_str()))
        {
            return Err(Error::invalid(
                "seat_tiers",
                format!("seat tier {} is used by a group mapping", m.tier.as_str()),
            ));
        }
        for old in ports.members.seat_tiers(org).await? {
            if names.contains(old.as_str()) {
                continue;
            }
            let filter = MemberFilter {
                seat_tier: Some(old.clone()),
                ..MemberFilter::default()
            };
            if self.anyone_matches(org, &filter).await? {
                return Err(Error::invalid(
                    "seat_tiers",
                    format!("seat tier {} is held by members", old.as_str()),
                ));
            }
        }
        let before = ports.members.seat_tiers(org).await?;
        ports.members.save_seat_tiers(org, &tiers).await?;
        self.orgs
            .audit(
                principal,
                org,
                "seat_tiers.saved",
                ("org", org.to_string()),
                serde_json::to_value(&before).ok(),
                serde_json::to_value(&tiers).ok(),
            )
            .await?;
        Ok(tiers)
    }

    async fn connection_of(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        action: Action,
    ) -> Result<()> {
        self.orgs.authorize(principal, org, action).await?;
        self.sync
            .ports()
            .connections
            .find(org, conn)
            .await?
            .map(|_| ())
            .ok_or(Error::NotFound {
                entity: "connection",
            })
    }

    /// # Errors
    /// `NotFound` for a connection of another org, or as `authorize`.
    pub async fn attributes(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<Vec<AttributeDefinition>> {
        self.connection_of(principal, org, conn, Action::Read)
            .await?;
        self.sync.ports().members.attributes(conn).await
    }

    /// Replaces a connection's attribute definitions; they apply at the next sync.
    ///
    /// # Errors
    /// `Invalid` for bad or duplicate keys or paths; as [`Self::attributes`].
    pub async fn save_attributes(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        definitions: Vec<AttributeDefinition>,
    ) -> Result<Vec<AttributeDefinition>> {
        self.connection_of(principal, org, conn, Action::Write)
            .await?;
        validate_attributes(&definitions)?;
        let before = self.sync.ports().members.attributes(conn).await?;
        self.sync
            .ports()
            .members
            .save_attributes(conn, &definitions, self.now())
            .await?;
        self.orgs
            .audit(
                principal,
                org,
                "attributes.saved",
                ("connection", conn.to_string()),
                serde_json::to_value(&before).ok(),
                serde_json::to_value(&definitions).ok(),
            )
            .await?;
        Ok(definitions)
    }
}

/// Pages through an org's members for an export, with each member's
/// directory groups, in batches of any size: memory stays bounded by the
/// batch, whatever the org's size.
pub struct MemberExport {
    sync: SyncService,
    org: OrgId,
    filter: MemberFilter,
    conn: Option<ConnectionId>,
    after: Option<uuid::Uuid>,
    done: bool,
    /// Keys of the synced custom attributes (one column each).
    pub attribute_keys: Vec<String>,
}

/// One exported member and the display names of its directory groups.
pub type ExportRow = (Member, Vec<String>);

impl MemberExport {
    /// The next batch, `None` once every member was returned.
    ///
    /// # Errors
    /// Infrastructure failures.
    pub async fn next_batch(&mut self, size: u64) -> Result<Option<Vec<ExportRow>>> {
        if self.done {
            return Ok(None);
        }
        let ports = self.sync.ports();
        let page = ports
            .members
            .list_members(
                self.org,
                &self.filter,
                PageRequest {
                    after: self.after,
                    limit: size,
                },
            )
            .await?;
        self.after = page.next_after;
        self.done = page.next_after.is_none();
        let users: Vec<crate::directory::ResourceId> = page
            .items
            .iter()
            .filter_map(|m| m.directory_user_id)
            .collect();
        let mut groups: std::collections::HashMap<crate::directory::ResourceId, Vec<String>> =
            std::collections::HashMap::new();
        if let (Some(conn), false) = (self.conn, users.is_empty()) {
            for (user, _, name) in ports.directory.groups_of(conn, &users).await? {
                groups.entry(user).or_default().push(name);
            }
        }
        let rows = page
            .items
            .into_iter()
            .map(|m| {
                let names = m
                    .directory_user_id
                    .and_then(|u| groups.remove(&u))
                    .unwrap_or_default();
                (m, names)
            })
            .collect();
        Ok(Some(rows))
    }
}

impl MembersService {
    /// Starts an export of the members matching `filter`.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn export(
        &self,
        principal: &Principal,
        org: OrgId,
        filter: MemberFilter,
    ) -> Result<MemberExport> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.check_group_filter(org, &filter).await?;
        let ports = self.sync.ports();
        let conn = ports.connections.drawing_connection(org).await?;
        let attribute_keys = match conn {
            Some(conn) => ports
                .members
                .attributes(conn)
                .await?
                .into_iter()
                .map(|d| d.key)
                .collect(),
            None => Vec::new(),
        };
        Ok(MemberExport {
            sync: self.sync.clone(),
            org,
            filter,
            conn,
            after: None,
            done: false,
            attribute_keys,
        })
    }
}
