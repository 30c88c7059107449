//! The rows the SSO tables are read into, and how each becomes the
//! domain's value.

use orgsync_domain::directory::{ConnectionId, TokenHash};
use orgsync_domain::org::OrgId;
use orgsync_domain::sso::{OidcSettings, PendingLogin, SamlSettings, SsoConfig, SsoProtocol};
use orgsync_domain::{Error, Result};
use sea_orm::FromQueryResult;
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) const CONFIG_COLUMNS: &str =
    "connection_id, org_id, protocol, settings, client_secret, created_at, updated_at";

#[derive(FromQueryResult)]
pub(super) struct ConfigRow {
    connection_id: Uuid,
    org_id: Uuid,
    protocol: String,
    settings: String,
    client_secret: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<ConfigRow> for SsoConfig {
    type Error = Error;

    fn try_from(row: ConfigRow) -> Result<Self> {
        let corrupt = |what: &str| {
            Error::Internal(anyhow::anyhow!(
                "sso settings of connection {}: corrupt {what}",
                row.connection_id
            ))
        };
        let protocol = match row.protocol.as_str() {
            "oidc" => SsoProtocol::Oidc {
                settings: serde_json::from_str::<OidcSettings>(&row.settings)
                    .map_err(|_| corrupt("settings"))?,
                client_secret: row.client_secret,
            },
            "saml" => SsoProtocol::Saml(
                serde_json::from_str::<SamlSettings>(&row.settings)
                    .map_err(|_| corrupt("settings"))?,
            ),
            _ => return Err(corrupt("protocol")),
        };
        Ok(SsoConfig {
            connection_id: ConnectionId(row.connection_id),
            org_id: OrgId(row.org_id),
            protocol,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(FromQueryResult)]
pub(super) struct LoginRow {
    pub(super) connection_id: Uuid,
    pub(super) org_id: Uuid,
    pub(super) redirect_uri: String,
    pub(super) client_state: Option<String>,
    pub(super) nonce: String,
    pub(super) pkce_verifier: String,
    pub(super) expires_at: OffsetDateTime,
}

impl LoginRow {
    pub(super) fn into_login(self, handle: TokenHash) -> PendingLogin {
        PendingLogin {
            handle,
            connection_id: ConnectionId(self.connection_id),
            org_id: OrgId(self.org_id),
            redirect_uri: self.redirect_uri,
            client_state: self.client_state,
            nonce: self.nonce,
            pkce_verifier: self.pkce_verifier,
            expires_at: self.expires_at,
        }
    }
}

#[derive(FromQueryResult)]
pub(super) struct LoginWithConfigRow {
    connection_id: Uuid,
    org_id: Uuid,
    redirect_uri: String,
    client_state: Option<String>,
    nonce: String,
    pkce_verifier: String,
    expires_at: OffsetDateTime,
    config_org_id: Option<Uuid>,
    protocol: Option<String>,
    settings: Option<String>,
    client_secret: Option<String>,
    created_at: Option<OffsetDateTime>,
    updated_at: Option<OffsetDateTime>,
}

impl LoginWithConfigRow {
    pub(super) fn split(self) -> Result<(LoginRow, Option<SsoConfig>)> {
        let config = match (
            self.config_org_id,
            self.protocol,
            self.settings,
            self.client_secret,
            self.created_at,
            self.updated_at,
        ) {
            (
                Some(org_id),
                Some(protocol),
                Some(settings),
                Some(client_secret),
                Some(created_at),
                Some(updated_at),
            ) => Some(SsoConfig::try_from(ConfigRow {
                connection_id: self.connection_id,
                org_id,
                protocol,
                settings,
                client_secret,
                created_at,
                updated_at,
            })?),
            _ => None,
        };
        let login = LoginRow {
            connection_id: self.connection_id,
            org_id: self.org_id,
            redirect_uri: self.redirect_uri,
            client_state: self.client_state,
            nonce: self.nonce,
            pkce_verifier: self.pkce_verifier,
            expires_at: self.expires_at,
        };
        Ok((login, config))
    }
}

#[derive(FromQueryResult)]
pub(super) struct CodeRow {
    pub(super) data: String,
}
