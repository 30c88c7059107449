//! The org's catalogue members draw on: custom roles, seat tiers and a
//! connection's attribute definitions. Removing an entry members or group
//! mappings still use is refused, so nothing is orphaned.

use std::collections::HashSet;

use super::*;

impl MembersService {
    /// The role members created on first sign-in (JIT) get; `None`: `user`.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn jit_default_role(
        &self,
        principal: &Principal,
        org: OrgId,
    ) -> Result<Option<Role>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.members.jit_default_role(org).await
    }

    /// Sets the role JIT members get (`None`: `user`). Owner is refused: a
    /// sign-in must never make anyone an owner.
    ///
    /// # Errors
    /// `Invalid` (field `default_role`) for `owner` or an undefined custom role.
    pub async fn set_jit_default_role(
        &self,
        principal: &Principal,
        org: OrgId,
        role: Option<Role>,
    ) -> Result<Option<Role>> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        // As the org's writer, as a catalog save is, so the role cannot be
        // removed between the check that it exists and its choice.
        self.sync
            .write_as(principal, org, |org| {
                self.set_jit_default_role_as_writer(principal, org.id, role)
            })
            .await
    }

    async fn set_jit_default_role_as_writer(
        &self,
        principal: &Principal,
        org: OrgId,
        role: Option<Role>,
    ) -> Result<Option<Role>> {
        if role == Some(Role::Owner) {
            return Err(Error::invalid(
                "default_role",
                "owner cannot be granted by signing in; make owners by hand",
            ));
        }
        if let Some(custom) = role.as_ref().filter(|r| !r.is_builtin()) {
            if !self
                .ports
                .members
                .roles(org)
                .await?
                .iter()
                .any(|r| &r.name == custom)
            {
                return Err(Error::invalid(
                    "default_role",
                    format!("no role named {}", custom.as_str()),
                ));
            }
        }
        let before = self.ports.members.jit_default_role(org).await?;
        self.ports
            .members
            .set_jit_default_role(org, role.as_ref())
            .await?;
        self.orgs
            .audit(
                principal,
                org,
                "provisioning.jit_default_role_set",
                ("organization", org.to_string()),
                Some(serde_json::json!({ "default_role": before })),
                Some(serde_json::json!({ "default_role": role })),
            )
            .await?;
        Ok(role)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn roles(&self, principal: &Principal, org: OrgId) -> Result<Vec<CustomRole>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.members.roles(org).await
    }

    /// Replaces the org's custom roles.
    ///
    /// # Errors
    /// `Invalid` for a bad or duplicate role, or removing a role that members,
    /// group mappings or the JIT default still use.
    pub async fn save_roles(
        &self,
        principal: &Principal,
        org: OrgId,
        roles: Vec<CustomRole>,
    ) -> Result<Vec<CustomRole>> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let most = self.orgs.limits().catalog_entries;
        at_most(ROLES.field, roles.len(), most)?;
        let valid = roles.iter().enumerate().map(|(i, role)| {
            role.validate(i)?;
            at_most(
                format!("roles[{i}].capabilities"),
                role.capabilities.len(),
                most,
            )?;
            Ok(role.name.as_str())
        });
        let kept = distinct(&ROLES, valid)?;
        // As the org's only writer, as every assignment of a role is (an
        // admin's add or edit, a sync), so no member takes a role between the
        // check that no one holds it and its removal.
        self.sync
            .write_as(principal, org, |org| {
                self.save_roles_as_writer(principal, org.id, roles, kept)
            })
            .await
    }

    async fn save_roles_as_writer(
        &self,
        principal: &Principal,
        org: OrgId,
        roles: Vec<CustomRole>,
        kept: HashSet<String>,
    ) -> Result<Vec<CustomRole>> {
        let members = &self.ports.members;
        let (before, settings, jit_default) = futures::try_join!(
            members.roles(org),
            members.settings(org),
            members.jit_default_role(org)
        )?;
        if let Some(default) = jit_default.filter(|r| !r.is_builtin() && !kept.contains(r.as_str()))
        {
            return Err(Error::invalid(
                ROLES.field,
                format!(
                    "role {} is the role members get on first sign-in; choose another JIT default role first",
                    default.as_str()
                ),
            ));
        }
        let mapped = (settings.mappings.roles.iter())
            .filter(|m| !m.role.is_builtin())
            .map(|m| m.role.as_str().to_owned());
        let held = before.iter().map(|old| {
            let filter = MemberFilter {
                role: Some(old.name.clone()),
                ..MemberFilter::default()
            };
            (old.name.as_str(), filter)
        });
        self.keep_what_is_used(org, &ROLES, &kept, mapped, held)
            .await?;
        members.save_roles(org, &roles).await?;
        self.audit_saved(principal, org, &ROLES, &before, &roles)
            .await?;
        Ok(roles)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn seat_tiers(&self, principal: &Principal, org: OrgId) -> Result<Vec<SeatTier>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.members.seat_tiers(org).await
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
        at_most(
            SEAT_TIERS.field,
            tiers.len(),
            self.orgs.limits().catalog_entries,
        )?;
        let kept = distinct(&SEAT_TIERS, tiers.iter().map(|tier| Ok(tier.as_str())))?;
        // As the org's only writer, for the reason roles are.
        self.sync
            .write_as(principal, org, |org| {
                self.save_seat_tiers_as_writer(principal, org.id, tiers, kept)
            })
            .await
    }

    async fn save_seat_tiers_as_writer(
        &self,
        principal: &Principal,
        org: OrgId,
        tiers: Vec<SeatTier>,
        kept: HashSet<String>,
    ) -> Result<Vec<SeatTier>> {
        let members = &self.ports.members;
        let (before, settings) =
            futures::try_join!(members.seat_tiers(org), members.settings(org))?;
        let mapped = (settings.mappings.seat_tiers.iter()).map(|m| m.tier.as_str().to_owned());
        let held = before.iter().map(|old| {
            let filter = MemberFilter {
                seat_tier: Some(old.clone()),
                ..MemberFilter::default()
            };
            (old.as_str(), filter)
        });
        self.keep_what_is_used(org, &SEAT_TIERS, &kept, mapped, held)
            .await?;
        members.save_seat_tiers(org, &tiers).await?;
        self.audit_saved(principal, org, &SEAT_TIERS, &before, &tiers)
            .await?;
        Ok(tiers)
    }

    /// # Errors
    /// `NotFound` for a connection of another org, or as `authorize`.
    pub async fn attributes(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<Vec<AttributeDefinition>> {
        self.authorize_connection(principal, org, conn, Action::Read)
            .await?;
        self.ports.members.attributes(conn).await
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
        self.authorize_connection(principal, org, conn, Action::Write)
            .await?;
        at_most(
            "attributes",
            definitions.len(),
            self.orgs.limits().catalog_entries,
        )?;
        validate_attributes(&definitions)?;
        let before = self.ports.members.attributes(conn).await?;
        self.ports
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

/// A list of names an org defines and members and group mappings refer to.
struct Catalog {
    /// The request's field.
    field: &'static str,
    /// Where in an entry its name is (a seat tier is its name).
    name_at: &'static str,
    /// What one entry is called in a refusal.
    entry: &'static str,
    /// The audit action of a save.
    saved: &'static str,
}

const ROLES: Catalog = Catalog {
    field: "roles",
    name_at: ".name",
    entry: "role",
    saved: "roles.saved",
};

const SEAT_TIERS: Catalog = Catalog {
    field: "seat_tiers",
    name_at: "",
    entry: "seat tier",
    saved: "seat_tiers.saved",
};

/// Refuses a list of more than `most` entries (`limits.catalog_entries`):
/// each plan reads an org's lists for every member it decides.
fn at_most(field: impl Into<String>, len: usize, most: usize) -> Result<()> {
    if len > most {
        return Err(Error::invalid(
            field,
            format!("{len} entries; at most {most} (limits.catalog_entries)"),
        ));
    }
    Ok(())
}

/// The names of a new catalog, each valid and listed once.
fn distinct<'a>(
    catalog: &Catalog,
    names: impl Iterator<Item = Result<&'a str>>,
) -> Result<HashSet<String>> {
    let mut kept = HashSet::new();
    for (i, name) in names.enumerate() {
        if !kept.insert(name?.to_owned()) {
            let Catalog { field, name_at, .. } = catalog;
            return Err(Error::invalid(
                format!("{field}[{i}]{name_at}"),
                "listed twice",
            ));
        }
    }
    Ok(kept)
}

impl MembersService {
    /// Authorizes `action` on `org`, whose own connection `conn` must be.
    async fn authorize_connection(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        action: Action,
    ) -> Result<()> {
        let connections = &*self.ports.connections;
        self.orgs
            .authorize_connection(principal, org, conn, action, connections)
            .await
    }

    /// Refuses a new catalog that drops an entry a group mapping (`mapped`)
    /// or a member (each old entry with the filter of its holders) still uses.
    async fn keep_what_is_used<'a>(
        &self,
        org: OrgId,
        catalog: &Catalog,
        kept: &HashSet<String>,
        mut mapped: impl Iterator<Item = String>,
        held: impl Iterator<Item = (&'a str, MemberFilter)>,
    ) -> Result<()> {
        let Catalog { field, entry, .. } = catalog;
        if let Some(name) = mapped.find(|name| !kept.contains(name)) {
            return Err(Error::invalid(
                *field,
                format!("{entry} {name} is used by a group mapping"),
            ));
        }
        for (name, holders) in held {
            if !kept.contains(name) && self.anyone_matches(org, &holders).await? {
                return Err(Error::invalid(
                    *field,
                    format!("{entry} {name} is held by members"),
                ));
            }
        }
        Ok(())
    }

    /// Audits a catalog's save, before and after.
    async fn audit_saved<T: serde::Serialize>(
        &self,
        principal: &Principal,
        org: OrgId,
        catalog: &Catalog,
        before: &[T],
        after: &[T],
    ) -> Result<()> {
        self.orgs
            .audit(
                principal,
                org,
                catalog.saved,
                ("org", org.to_string()),
                serde_json::to_value(before).ok(),
                serde_json::to_value(after).ok(),
            )
            .await
    }
}
