//! A connection's SSO settings, as admins configure them.

use serde_json::json;

use super::SsoService;
use crate::audit::{Actor, AuditEntry};
use crate::auth::{Action, Principal};
use crate::directory::ConnectionId;
use crate::org::OrgId;
use crate::sso::{OidcInput, SamlInput, SsoConfig, SsoProtocol};
use crate::{Error, Result};

/// An admin's SSO settings as sent.
#[derive(Debug, Clone)]
pub enum SsoInput {
    Oidc(OidcInput),
    Saml(SamlInput),
}

impl SsoService {
    /// The settings as admins see them: everything but the secret, with
    /// what the customer's IT admin enters at the IdP.
    pub fn view(&self, config: &SsoConfig) -> serde_json::Value {
        match &config.protocol {
            SsoProtocol::Oidc { settings, .. } => json!({
                "connection_id": config.connection_id,
                "protocol": "oidc",
                "issuer": settings.issuer,
                "client_id": settings.client_id,
                "scopes": settings.scopes,
                "groups_claim": settings.groups_claim,
                "client_secret_set": true,
                "redirect_uri": self.callback_url,
            }),
            SsoProtocol::Saml(idp) => {
                let sp = self.service_provider(config.connection_id);
                json!({
                    "connection_id": config.connection_id,
                    "protocol": "saml",
                    "idp_entity_id": idp.idp_entity_id,
                    "idp_sso_url": idp.idp_sso_url,
                    "idp_certificate": idp.idp_certificate,
                    "allow_idp_initiated": idp.allow_idp_initiated,
                    "acs_url": sp.acs_url,
                    "sp_entity_id": sp.entity_id,
                    "sp_metadata_url": sp.entity_id,
                })
            }
        }
    }

    /// The settings of `conn`, once `action` on its org is authorized.
    async fn config_of(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        action: Action,
    ) -> Result<SsoConfig> {
        self.current_config(principal, org, conn, action)
            .await?
            .ok_or(Error::NotFound {
                entity: "sso settings",
            })
    }

    /// The settings of `conn` if it has any, once `action` on its org is authorized.
    async fn current_config(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        action: Action,
    ) -> Result<Option<SsoConfig>> {
        self.orgs
            .authorize_connection(principal, org, conn, action, &*self.ports.connections)
            .await?;
        self.ports.sso.find_config(conn).await
    }

    /// # Errors
    /// `NotFound` for a connection of another org or one without SSO; as `authorize`.
    pub async fn settings(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<SsoConfig> {
        self.config_of(principal, org, conn, Action::Read).await
    }

    /// Creates or replaces a connection's settings: OIDC after checking that
    /// the issuer's discovery document can be read and names that issuer;
    /// SAML from the IdP's metadata or values, its certificate checked.
    ///
    /// # Errors
    /// `Invalid` naming the field (the issuer when discovery fails); as [`Self::settings`].
    pub async fn configure(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        input: SsoInput,
    ) -> Result<SsoConfig> {
        let current = self
            .current_config(principal, org, conn, Action::Write)
            .await?;
        let protocol = match input {
            SsoInput::Oidc(input) => {
                let current_secret = match current.as_ref().map(|c| &c.protocol) {
                    Some(SsoProtocol::Oidc { client_secret, .. }) => Some(client_secret.as_str()),
                    _ => None,
                };
                let (settings, client_secret) = input.validate(&self.policy, current_secret)?;
                self.ports
                    .oidc
                    .discover(&settings.issuer)
                    .await
                    .map_err(|e| {
                        Error::invalid("issuer", format!("discovery failed: {}", e.description))
                    })?;
                SsoProtocol::Oidc {
                    settings,
                    client_secret,
                }
            }
            SsoInput::Saml(input) => {
                let allow_idp_initiated = input.allow_idp_initiated;
                let source = input.source(&self.policy)?;
                let mut idp = self.ports.saml.idp_settings(source).await?;
                crate::sso::check_endpoint(
                    &idp.idp_sso_url,
                    "idp_sso_url",
                    self.policy.allow_insecure_loopback,
                )?;
                idp.allow_idp_initiated = allow_idp_initiated;
                SsoProtocol::Saml(idp)
            }
        };
        let now = self.now();
        let config = SsoConfig {
            connection_id: conn,
            org_id: org,
            protocol,
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        let audit = AuditEntry::new(
            org,
            Actor::of(principal),
            "sso.configured",
            ("connection", conn.to_string()),
            current.as_ref().map(|c| self.view(c)),
            Some(self.view(&config)),
            now,
        );
        self.ports.sso.save_config(&config, &audit).await?;
        Ok(config)
    }

    /// Turns SSO off on a connection; its users' links to members go too.
    ///
    /// # Errors
    /// As [`Self::settings`].
    pub async fn remove(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<()> {
        let current = self.config_of(principal, org, conn, Action::Write).await?;
        let audit = AuditEntry::new(
            org,
            Actor::of(principal),
            "sso.removed",
            ("connection", conn.to_string()),
            Some(self.view(&current)),
            None,
            self.now(),
        );
        if self.ports.sso.delete_config(conn, &audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound {
                entity: "sso settings",
            })
        }
    }

    /// This service's SP metadata for a SAML connection (public: the IdP's
    /// admin, or the IdP itself, reads it).
    ///
    /// # Errors
    /// `NotFound` unless the connection has SAML settings.
    pub async fn sp_metadata(&self, conn: ConnectionId) -> Result<String> {
        let config = self.ports.sso.find_config(conn).await?;
        match config.map(|c| c.protocol) {
            Some(SsoProtocol::Saml(idp)) => self
                .ports
                .saml
                .sp_metadata(&idp, &self.service_provider(conn)),
            _ => Err(Error::NotFound {
                entity: "saml connection",
            }),
        }
    }
}
