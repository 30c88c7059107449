//! Provisioning mode and group mappings: previewed, and applied in the
//! request when confirmed.

use super::*;

impl SyncService {
    /// What switching `org` to `mode` would do.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `Conflict(NoDirectory)` for
    /// `scim` when no directory reaches the org.
    pub async fn preview_mode(
        &self,
        principal: &Principal,
        org: OrgId,
        mode: ProvisioningMode,
    ) -> Result<Preview> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        if mode == ProvisioningMode::Scim {
            self.require_directory(&org).await?;
        }
        let settings = self.ports.members.settings(org.id).await?;
        let plan = self
            .plan_full(&org, mode, &settings, Waiter::Request)
            .await?;
        Ok(Preview::of(plan.changes, &mode))
    }

    /// Switches the provisioning mode. Switching to `scim` reconciles the org
    /// with its directory in the same request; when that removes or suspends
    /// anyone, `confirm` must be the confirmation of the preview showing it.
    ///
    /// # Errors
    /// As [`Self::preview_mode`]; `Conflict(ConfirmationRequired)` when a
    /// destructive change was not confirmed (or the preview is out of date).
    pub async fn set_mode(
        &self,
        principal: &Principal,
        org: OrgId,
        mode: ProvisioningMode,
        confirm: Option<&str>,
    ) -> Result<(Organization, Applied)> {
        self.write_as(principal, org, |org| {
            self.set_mode_as_writer(principal, org, mode, confirm)
        })
        .await
    }

    pub(super) async fn set_mode_as_writer(
        &self,
        principal: &Principal,
        mut org: Organization,
        mode: ProvisioningMode,
        confirm: Option<&str>,
    ) -> Result<(Organization, Applied)> {
        let started = self.now();
        if mode == ProvisioningMode::Scim {
            self.require_directory(&org).await?;
        }
        let settings = self.ports.members.settings(org.id).await?;
        let plan = self
            .plan_full(&org, mode, &settings, Waiter::Request)
            .await?;
        let preview = Preview::of(plan.changes, &mode);
        require_confirmation(org.id, &preview, confirm)?;
        if org.provisioning_mode != mode {
            let before = org.provisioning_mode;
            org.provisioning_mode = mode;
            org.updated_at = self.now();
            self.ports.orgs.update(&org).await?;
            self.orgs
                .audit(
                    principal,
                    org.id,
                    "provisioning_mode.changed",
                    ("org", org.id.to_string()),
                    Some(serde_json::json!({ "mode": before })),
                    Some(serde_json::json!({ "mode": mode, "changes": preview.counts })),
                )
                .await?;
        }
        if mode != ProvisioningMode::Scim {
            self.drop_held_removals(principal, org.id).await?;
            return Ok((org, Applied { run: None }));
        }
        let run = self
            .apply_plan(
                org.id,
                principal,
                SyncKind::ModeChange,
                (&preview.changes, &plan.current, plan.position),
                started,
            )
            .await?;
        Ok((org, Applied { run: Some(run) }))
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn settings(&self, principal: &Principal, org: OrgId) -> Result<MembershipSettings> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.members.settings(org).await
    }

    pub(super) async fn validate_settings(
        &self,
        org: &Organization,
        settings: &MembershipSettings,
    ) -> Result<()> {
        let mappings = &settings.mappings;
        let groups: Vec<ResourceId> = mappings
            .roles
            .iter()
            .map(|m| m.group)
            .chain(mappings.seat_tiers.iter().map(|m| m.group))
            .chain(mappings.spend_limits.iter().map(|m| m.group))
            .collect();
        let existing: HashSet<ResourceId> =
            match self.ports.connections.drawing_connection(org.id).await? {
                Some(conn) if !groups.is_empty() => self
                    .ports
                    .feed
                    .existing_groups(conn, &groups)
                    .await?
                    .into_iter()
                    .collect(),
                _ => HashSet::new(),
            };
        let roles: HashSet<String> = self
            .ports
            .members
            .roles(org.id)
            .await?
            .into_iter()
            .map(|r| r.name.as_str().to_owned())
            .collect();
        let tiers: HashSet<String> = self
            .ports
            .members
            .seat_tiers(org.id)
            .await?
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        mappings.validate(
            &|group| existing.contains(&group),
            &|role| roles.contains(role.as_str()),
            &|tier| tiers.contains(tier.as_str()),
        )
    }

    /// What saving `settings` would do to the members.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `Invalid` for mappings naming
    /// unknown groups, roles or tiers, or listing a group twice.
    pub async fn preview_settings(
        &self,
        principal: &Principal,
        org: OrgId,
        settings: &MembershipSettings,
    ) -> Result<Preview> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.validate_settings(&org, settings).await?;
        let plan = self
            .plan_full(&org, org.provisioning_mode, settings, Waiter::Request)
            .await?;
        Ok(Preview::of(plan.changes, settings))
    }

    /// Saves group mappings and deprovisioning, and (in SCIM mode) applies
    /// them to every member at once; removals need the preview's confirmation.
    ///
    /// # Errors
    /// As [`Self::preview_settings`]; `Conflict(ConfirmationRequired)` as in [`Self::set_mode`].
    pub async fn save_settings(
        &self,
        principal: &Principal,
        org: OrgId,
        settings: &MembershipSettings,
        confirm: Option<&str>,
    ) -> Result<Applied> {
        self.write_as(principal, org, |org| {
            self.save_settings_as_writer(principal, org, settings, confirm)
        })
        .await
    }

    pub(super) async fn save_settings_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        settings: &MembershipSettings,
        confirm: Option<&str>,
    ) -> Result<Applied> {
        let started = self.now();
        self.validate_settings(&org, settings).await?;
        let plan = self
            .plan_full(&org, org.provisioning_mode, settings, Waiter::Request)
            .await?;
        let preview = Preview::of(plan.changes, settings);
        require_confirmation(org.id, &preview, confirm)?;
        let before = self.ports.members.settings(org.id).await?;
        // Saving what is already saved (a retried or doubled request) is
        // answered the same, but is not a change to log.
        if before != *settings {
            self.ports
                .members
                .save_settings(org.id, settings, self.now())
                .await?;
            self.orgs
                .audit(
                    principal,
                    org.id,
                    "group_mappings.saved",
                    ("org", org.id.to_string()),
                    serde_json::to_value(&before).ok(),
                    serde_json::to_value(settings).ok(),
                )
                .await?;
        }
        if org.provisioning_mode != ProvisioningMode::Scim {
            return Ok(Applied { run: None });
        }
        let run = self
            .apply_plan(
                org.id,
                principal,
                SyncKind::MappingChange,
                (&preview.changes, &plan.current, plan.position),
                started,
            )
            .await?;
        Ok(Applied { run: Some(run) })
    }
}

pub(super) fn require_confirmation(
    org: OrgId,
    preview: &Preview,
    confirm: Option<&str>,
) -> Result<()> {
    require_confirmation_described(org, preview, confirm, |counts, token| {
        format!(
            "this change removes {} and suspends {} member(s); preview it and confirm with \"confirm\": \"{token}\"",
            counts.removals, counts.suspensions
        )
    })
}

/// As [`require_confirmation`], with the refusal's detail written by
/// `describe` from the plan's counts and its confirmation.
pub(super) fn require_confirmation_described(
    org: OrgId,
    preview: &Preview,
    confirm: Option<&str>,
    describe: impl FnOnce(ChangeCounts, &str) -> String,
) -> Result<()> {
    if !preview.is_destructive() || confirm == Some(preview.confirmation.as_str()) {
        return Ok(());
    }
    Err(Error::ConfirmationRequired(Box::new(ConfirmationNeeded {
        detail: describe(preview.counts, &preview.confirmation),
        confirmation: preview.confirmation.clone(),
        effects: vec![OrgEffect::of(org, None, preview)],
    })))
}
