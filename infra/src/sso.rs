//! SSO on PostgreSQL or SQLite: connection settings, sign-ins waiting at
//! the IdP, codes waiting for the product (each taken out by one
//! `DELETE … RETURNING`, so a value works once even under a race), and the
//! links from IdP subjects to members.
//!
//! - [`oidc`]: the OpenID Connect client (discovery, JWKS, code exchange,
//!   ID token verification).
//! - [`saml`]: SAML 2.0 (metadata, AuthnRequests, response verification).

pub mod oidc;
mod rows;
pub mod saml;

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::directory::{ConnectionId, TokenHash};
use orgsync_domain::membership::Member;
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::SsoRepository;
use orgsync_domain::sso::{IssuedCode, PendingLogin, SsoConfig, SsoProtocol};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, TransactionTrait, Value};
use time::OffsetDateTime;

use crate::audit_log::insert_entries;
use crate::db::db_err;
use crate::membership_repository::rows::{rows_to_members, MemberRow, MEMBER_COLUMNS};
use crate::Database;
use rows::{CodeRow, ConfigRow, LoginRow, LoginWithConfigRow, CONFIG_COLUMNS};

pub struct SqlSsoRepository {
    db: Database,
}

impl SqlSsoRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The member a query finds, if any.
    async fn one_member(&self, sql: &str, values: Vec<Value>) -> Result<Option<Member>> {
        let rows = MemberRow::find_by_statement(self.db.stmt(sql, values))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
        Ok(rows_to_members(rows)?.into_iter().next())
    }

    async fn configs(&self, sql: &str, values: Vec<Value>) -> Result<Option<SsoConfig>> {
        ConfigRow::find_by_statement(self.db.stmt(sql, values))
            .one(self.db.connection())
            .await
            .map_err(db_err)?
            .map(SsoConfig::try_from)
            .transpose()
    }
}

/// The stored form of a handed-out value: its SHA-256, in hex.
fn key(hash: &TokenHash) -> String {
    use std::fmt::Write;
    hash.0.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[async_trait::async_trait]
impl SsoRepository for SqlSsoRepository {
    async fn find_config(&self, conn: ConnectionId) -> Result<Option<SsoConfig>> {
        self.configs(
            &format!("SELECT {CONFIG_COLUMNS} FROM sso_connections WHERE connection_id = $1"),
            vec![conn.0.into()],
        )
        .await
    }

    async fn config_of_org(&self, org: OrgId) -> Result<Option<SsoConfig>> {
        self.configs(
            &format!(
                "SELECT {CONFIG_COLUMNS} FROM sso_connections WHERE org_id = $1 \
                 ORDER BY created_at, connection_id LIMIT 1"
            ),
            vec![org.0.into()],
        )
        .await
    }

    async fn save_config(&self, config: &SsoConfig, audit: &AuditEntry) -> Result<()> {
        let encode =
            |value: serde_json::Result<String>| value.map_err(|e| Error::Internal(e.into()));
        let (settings, secret) = match &config.protocol {
            SsoProtocol::Oidc {
                settings,
                client_secret,
            } => (
                encode(serde_json::to_string(settings))?,
                client_secret.clone(),
            ),
            SsoProtocol::Saml(settings) => {
                (encode(serde_json::to_string(settings))?, String::new())
            }
        };
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.db.stmt(
            "INSERT INTO sso_connections (connection_id, org_id, protocol, settings, client_secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (connection_id) DO UPDATE SET protocol = excluded.protocol, settings = excluded.settings, \
             client_secret = excluded.client_secret, updated_at = excluded.updated_at",
            vec![
                config.connection_id.0.into(),
                config.org_id.0.into(),
                config.protocol.name().to_owned().into(),
                settings.into(),
                secret.into(),
                config.created_at.into(),
                config.updated_at.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
        insert_entries(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await.map_err(db_err)
    }

    async fn delete_config(&self, conn: ConnectionId, audit: &AuditEntry) -> Result<bool> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.db.stmt(
            "DELETE FROM sso_identities WHERE connection_id = $1",
            vec![conn.0.into()],
        ))
        .await
        .map_err(db_err)?;
        let deleted = txn
            .execute(self.db.stmt(
                "DELETE FROM sso_connections WHERE connection_id = $1",
                vec![conn.0.into()],
            ))
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        insert_entries(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn insert_login(&self, login: &PendingLogin) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO sso_logins (handle, connection_id, org_id, redirect_uri, client_state, nonce, pkce_verifier, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    key(&login.handle).into(),
                    login.connection_id.0.into(),
                    login.org_id.0.into(),
                    login.redirect_uri.clone().into(),
                    login.client_state.clone().into(),
                    login.nonce.clone().into(),
                    login.pkce_verifier.clone().into(),
                    login.expires_at.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn take_login(
        &self,
        handle: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(PendingLogin, Option<SsoConfig>)>> {
        let key = key(handle);
        let conn = self.db.connection();
        let (login, config) = if self.db.backend() == DbBackend::Postgres {
            // One round trip: the login taken out, joined to its settings.
            let row = LoginWithConfigRow::find_by_statement(self.db.stmt(
                "WITH taken AS (DELETE FROM sso_logins WHERE handle = $1 RETURNING *) \
                 SELECT t.connection_id, t.org_id, t.redirect_uri, t.client_state, t.nonce, t.pkce_verifier, \
                 t.expires_at, c.org_id AS config_org_id, c.protocol, c.settings, c.client_secret, \
                 c.created_at, c.updated_at \
                 FROM taken t LEFT JOIN sso_connections c ON c.connection_id = t.connection_id",
                vec![key.into()],
            ))
            .one(conn)
            .await
            .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            row.split()?
        } else {
            let row = LoginRow::find_by_statement(self.db.stmt(
                "DELETE FROM sso_logins WHERE handle = $1 \
                 RETURNING connection_id, org_id, redirect_uri, client_state, nonce, pkce_verifier, expires_at",
                vec![key.into()],
            ))
            .one(conn)
            .await
            .map_err(db_err)?;
            let Some(row) = row else { return Ok(None) };
            let config = self.find_config(ConnectionId(row.connection_id)).await?;
            (row, config)
        };
        if login.expires_at <= now {
            return Ok(None);
        }
        Ok(Some((login.into_login(*handle), config)))
    }

    async fn insert_code(&self, code: &TokenHash, issued: &IssuedCode) -> Result<()> {
        let data = serde_json::to_string(issued).map_err(|e| Error::Internal(e.into()))?;
        self.db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO sso_codes (code, org_id, data, expires_at) VALUES ($1, $2, $3, $4)",
                vec![
                    key(code).into(),
                    issued.org_id.0.into(),
                    data.into(),
                    issued.expires_at.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn take_code(&self, code: &TokenHash, now: OffsetDateTime) -> Result<Option<IssuedCode>> {
        let row = CodeRow::find_by_statement(self.db.stmt(
            "DELETE FROM sso_codes WHERE code = $1 RETURNING data",
            vec![key(code).into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let issued: IssuedCode = serde_json::from_str(&row.data)
            .map_err(|e| Error::Internal(anyhow::anyhow!("corrupt sign-in code: {e}")))?;
        Ok((issued.expires_at > now).then_some(issued))
    }

    async fn linked_member(
        &self,
        conn: ConnectionId,
        subject: &str,
        org: OrgId,
    ) -> Result<Option<Member>> {
        self.one_member(
        &format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND id = \
             (SELECT member_id FROM sso_identities WHERE connection_id = $2 AND subject = $3 AND org_id = $1)"
        ),
        vec![org.0.into(), conn.0.into(), subject.to_owned().into()],
        )
        .await
    }

    async fn link(
        &self,
        conn: ConnectionId,
        subject: &str,
        member: &Member,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO sso_identities (connection_id, subject, org_id, member_id, created_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (connection_id, subject, org_id) DO UPDATE \
                 SET member_id = excluded.member_id, last_sign_in_at = excluded.last_sign_in_at",
                vec![
                    conn.0.into(),
                    subject.to_owned().into(),
                    member.org_id.0.into(),
                    member.id.0.into(),
                    now.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn member_by_email(
        &self,
        org: OrgId,
        conn: ConnectionId,
        subject: &str,
        email: &str,
    ) -> Result<Option<Member>> {
        self.one_member(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND email_lower = $2 \
             AND NOT EXISTS (SELECT 1 FROM sso_identities i WHERE i.member_id = members.id \
             AND i.connection_id = $3 AND i.subject <> $4) \
             ORDER BY id LIMIT 1"
            ),
            vec![
                org.0.into(),
                email.to_lowercase().into(),
                conn.0.into(),
                subject.to_owned().into(),
            ],
        )
        .await
    }

    async fn directory_member(
        &self,
        org: OrgId,
        subject: &str,
        email: &str,
    ) -> Result<Option<Member>> {
        // One round trip: the directory the org draws on (the nearest
        // ancestor-or-self connection with directory sync on, as
        // `SqlConnectionRepository::drawing_connection`), the user in it
        // (the IdP's own id as externalId first, as Okta and Entra send it;
        // then userName or email), and the org's member for that user.
        self.one_member(
        &format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE org_id = $1 AND directory_user_id = ( \
               SELECT u.id FROM directory_users u WHERE u.connection_id = ( \
                 SELECT c.id FROM org_closure oc JOIN enterprise_connections c ON c.org_id = oc.ancestor_id \
                 WHERE oc.descendant_id = $1 AND c.directory_sync_enabled ORDER BY oc.depth, c.id LIMIT 1) \
               AND (u.external_id = $2 OR u.user_name_lower = $3 OR u.email = $4) \
               ORDER BY CASE WHEN u.external_id = $2 THEN 0 ELSE 1 END, u.id LIMIT 1)"
        ),
        vec![
            org.0.into(),
            subject.to_owned().into(),
            email.to_lowercase().into(),
            email.to_owned().into(),
        ],
        )
        .await
    }

    async fn remember_assertion(
        &self,
        conn: ConnectionId,
        id: &str,
        until: OffsetDateTime,
    ) -> Result<bool> {
        let inserted = self
            .db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO sso_assertions (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (connection_id, assertion_id) DO NOTHING",
                vec![conn.0.into(), id.to_owned().into(), until.into()],
            ))
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(inserted == 1)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64> {
        let conn = self.db.connection();
        let mut purged = 0;
        for table in ["sso_logins", "sso_codes", "sso_assertions"] {
            purged += conn
                .execute(self.db.stmt(
                    &format!("DELETE FROM {table} WHERE expires_at <= $1"),
                    vec![now.into()],
                ))
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests;
