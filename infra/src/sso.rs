//! SSO on PostgreSQL or SQLite: connection settings, sign-ins waiting at
//! the IdP, codes waiting for the product (each taken out by one
//! `DELETE … RETURNING`, so a value works once even under a race), and the
//! links from IdP subjects to members.
//!
//! - [`oidc`]: the OpenID Connect client (discovery, JWKS, code exchange,
//!   ID token verification).
//! - [`saml`]: SAML 2.0 (metadata, AuthnRequests, response verification).

pub mod oidc;
pub mod saml;

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::directory::{ConnectionId, TokenHash};
use orgsync_domain::membership::Member;
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::SsoRepository;
use orgsync_domain::sso::{
    IssuedCode, OidcSettings, PendingLogin, SamlSettings, SsoConfig, SsoProtocol,
};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, TransactionTrait, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit_log::insert_entries;
use crate::db::db_err;
use crate::membership_repository::rows::{rows_to_members, MemberRow, MEMBER_COLUMNS};
use crate::Database;

pub struct SqlSsoRepository {
    db: Database,
}

impl SqlSsoRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.backend(), sql, values)
    }

    /// The member a query finds, if any.
    async fn one_member(&self, sql: &str, values: Vec<Value>) -> Result<Option<Member>> {
        let rows = MemberRow::find_by_statement(self.stmt(sql, values))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
        Ok(rows_to_members(rows)?.into_iter().next())
    }

    async fn configs(&self, sql: &str, values: Vec<Value>) -> Result<Option<SsoConfig>> {
        ConfigRow::find_by_statement(self.stmt(sql, values))
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

const CONFIG_COLUMNS: &str =
    "connection_id, org_id, protocol, settings, client_secret, created_at, updated_at";

#[derive(FromQueryResult)]
struct ConfigRow {
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
struct LoginRow {
    connection_id: Uuid,
    org_id: Uuid,
    redirect_uri: String,
    client_state: Option<String>,
    nonce: String,
    pkce_verifier: String,
    expires_at: OffsetDateTime,
}

impl LoginRow {
    fn into_login(self, handle: TokenHash) -> PendingLogin {
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
struct LoginWithConfigRow {
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
    fn split(self) -> Result<(LoginRow, Option<SsoConfig>)> {
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
struct CodeRow {
    data: String,
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
        txn.execute(self.stmt(
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
        txn.execute(self.stmt(
            "DELETE FROM sso_identities WHERE connection_id = $1",
            vec![conn.0.into()],
        ))
        .await
        .map_err(db_err)?;
        let deleted = txn
            .execute(self.stmt(
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
            .execute(self.stmt(
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
            let row = LoginWithConfigRow::find_by_statement(self.stmt(
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
            let row = LoginRow::find_by_statement(self.stmt(
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
            .execute(self.stmt(
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
        let row = CodeRow::find_by_statement(self.stmt(
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
            .execute(self.stmt(
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
            .execute(self.stmt(
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
                .execute(self.stmt(
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
mod tests {
    use super::*;
    use orgsync_domain::membership::{MemberId, MemberSource, MemberStatus, Role};
    use orgsync_domain::sso::SsoProfile;

    /// The embedded adapter (SQLite) takes a login and a code out once, and
    /// never an expired one; PostgreSQL is covered by the integration tests.
    #[tokio::test]
    async fn on_sqlite_logins_and_codes_are_taken_out_once_and_never_expired() {
        let dir = std::env::temp_dir().join(format!("orgsync-sso-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a scratch dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("sso.db").display());
        let db = Database::connect(&url, 1).await.expect("sqlite");
        db.migrate().await.expect("migrations run on SQLite");
        let repo = SqlSsoRepository::new(db);
        let now = OffsetDateTime::now_utc();
        let login = |handle: &str, expires_at| PendingLogin {
            handle: TokenHash::of(handle),
            connection_id: ConnectionId::new(),
            org_id: OrgId::new(),
            redirect_uri: "https://app.example.com/cb".into(),
            client_state: Some("s".into()),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            expires_at,
        };
        let fresh = login("fresh", now + time::Duration::minutes(5));
        repo.insert_login(&fresh).await.expect("inserted");
        repo.insert_login(&login("stale", now - time::Duration::seconds(1)))
            .await
            .expect("inserted");
        let taken = repo.take_login(&fresh.handle, now).await.expect("read");
        assert_eq!(taken, Some((fresh.clone(), None)));
        assert_eq!(repo.take_login(&fresh.handle, now).await.ok(), Some(None));
        let stale = repo.take_login(&TokenHash::of("stale"), now).await;
        assert_eq!(stale.ok(), Some(None));

        let issued = IssuedCode {
            org_id: fresh.org_id,
            connection_id: fresh.connection_id,
            profile: SsoProfile {
                id: "sub".into(),
                email: "a@example.com".into(),
                first_name: None,
                last_name: None,
                groups: vec![],
                raw_attributes: serde_json::Map::new(),
            },
            member: Member {
                id: MemberId::new(),
                org_id: fresh.org_id,
                directory_user_id: None,
                email: "a@example.com".into(),
                name: None,
                role: Role::User,
                seat_tier: None,
                spend_limit: None,
                public_metadata: serde_json::Map::new(),
                status: MemberStatus::Active,
                source: MemberSource::Jit,
                created_at: now,
                updated_at: now,
            },
            expires_at: now + time::Duration::seconds(60),
        };
        let code = TokenHash::of("code");
        repo.insert_code(&code, &issued).await.expect("inserted");
        let redeemed = repo.take_code(&code, now).await.expect("read");
        assert_eq!(redeemed.map(|c| c.member.id), Some(issued.member.id));
        assert!(repo.take_code(&code, now).await.expect("read").is_none());
        assert_eq!(repo.purge_expired(now).await.ok(), Some(0));
        std::fs::remove_dir_all(&dir).ok();
    }
}
