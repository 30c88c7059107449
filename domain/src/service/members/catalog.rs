//! The org's catalogue members draw on: custom roles, seat tiers and a
//! connection's attribute definitions. Removing an entry members or group
//! mappings still use is refused, so nothing is orphaned.

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
        let ports = &self.ports;
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
        let mut names = std::collections::HashSet::new();
        for (i, tier) in tiers.iter().enumerate() {
            if !names.insert(tier.as_str().to_owned()) {
                return Err(Error::invalid(format!("seat_tiers[{i}]"), "listed twice"));
            }
        }
        let ports = &self.ports;
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

    /// # Errors
    /// `NotFound` for a connection of another org, or as `authorize`.
    pub async fn attributes(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<Vec<AttributeDefinition>> {
        self.orgs
            .authorize_connection(principal, org, conn, Action::Read, &*self.ports.connections)
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
        self.orgs
            .authorize_connection(
                principal,
                org,
                conn,
                Action::Write,
                &*self.ports.connections,
            )
            .await?;
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
