use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::directory::{ConnectionId, TokenHash};
use crate::membership::Member;
use crate::org::OrgId;
use crate::sso::{
    IssuedCode, OidcEndpoints, PendingLogin, Redemption, SamlAssertion, SamlSettings, SamlSource,
    SignInError, SsoConfig,
};
use crate::Result;

/// Where SSO settings, sign-ins in flight and identity links are kept.
#[async_trait]
pub trait SsoRepository: Send + Sync {
    /// # Errors
    /// Only infrastructure failures.
    async fn find_config(&self, conn: ConnectionId) -> Result<Option<SsoConfig>>;

    /// The org's own connection with SSO configured (the oldest, if several).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn config_of_org(&self, org: OrgId) -> Result<Option<SsoConfig>>;

    /// Creates or replaces a connection's settings, with its audit entry.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn save_config(&self, config: &SsoConfig, audit: &AuditEntry) -> Result<()>;

    /// Removes a connection's settings and its identity links; `false` when
    /// there were none.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn delete_config(&self, conn: ConnectionId, audit: &AuditEntry) -> Result<bool>;

    /// # Errors
    /// Only infrastructure failures.
    async fn insert_login(&self, login: &PendingLogin) -> Result<()>;

    /// Takes a login out, so its `state` works once, with its connection's
    /// settings as they are now (`None` when SSO was turned off meanwhile);
    /// `None` when the login is unknown, already used or expired.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn take_login(
        &self,
        handle: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(PendingLogin, Option<SsoConfig>)>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn insert_code(&self, code: &TokenHash, issued: &IssuedCode) -> Result<()>;

    /// Takes a code out, so it works once; `None` when unknown, used or expired.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn take_code(&self, code: &TokenHash, now: OffsetDateTime) -> Result<Option<IssuedCode>>;

    /// The member an IdP subject signed in as before, in `org`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn linked_member(
        &self,
        conn: ConnectionId,
        subject: &str,
        org: OrgId,
    ) -> Result<Option<Member>>;

    /// Links (or relinks) an IdP subject to a member of `org`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn link(
        &self,
        conn: ConnectionId,
        subject: &str,
        member: &Member,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// A member of `org` with this email (case-insensitive) that no other
    /// subject of `conn` signs in as, for a first sign-in.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn member_by_email(
        &self,
        org: OrgId,
        conn: ConnectionId,
        subject: &str,
        email: &str,
    ) -> Result<Option<Member>>;

    /// The member of `org` that mirrors the directory user this identity
    /// is, in the directory `org` draws on (as
    /// [`ConnectionRepository::drawing_connection`](super::ConnectionRepository::drawing_connection)
    /// finds it): the user whose `externalId` is the subject, else whose
    /// userName or email is the email.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn directory_member(
        &self,
        org: OrgId,
        subject: &str,
        email: &str,
    ) -> Result<Option<Member>>;

    /// Remembers a SAML assertion's id until it expires; `false` when it
    /// was seen before (a replay).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn remember_assertion(
        &self,
        conn: ConnectionId,
        id: &str,
        until: OffsetDateTime,
    ) -> Result<bool>;

    /// Drops expired logins, codes and remembered assertions; how many.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64>;
}

/// An OpenID Connect provider, reached over HTTP.
#[async_trait]
pub trait OidcProvider: Send + Sync {
    /// The provider's discovery document (cached).
    ///
    /// # Errors
    /// When it cannot be fetched, does not parse, or names another issuer.
    async fn discover(&self, issuer: &str) -> std::result::Result<OidcEndpoints, SignInError>;

    /// Exchanges an authorization code and returns the ID token's claims,
    /// verified: signature with a key of the provider's JWKS and an
    /// algorithm it advertises (never `none` or HMAC), issuer, audience,
    /// expiry and not-before within two minutes of skew, and the nonce.
    ///
    /// # Errors
    /// `access_denied` for anything that fails verification;
    /// `temporarily_unavailable` when the provider cannot be reached.
    async fn redeem(
        &self,
        redemption: &Redemption<'_>,
    ) -> std::result::Result<Map<String, Value>, SignInError>;
}

/// This service as a SAML service provider: its entity id and where the
/// IdP posts responses, for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProvider {
    pub entity_id: String,
    pub acs_url: String,
}

/// SAML 2.0, through a maintained implementation of XML signatures.
#[async_trait]
pub trait SamlProvider: Send + Sync {
    /// The IdP's settings from its metadata (given, or fetched), or from
    /// its values by hand (the certificate checked).
    ///
    /// # Errors
    /// `Invalid` naming the field: metadata that cannot be read, has no
    /// IdP, no HTTP-Redirect sign-in URL or no signing certificate; a
    /// certificate that does not parse.
    async fn idp_settings(&self, source: SamlSource) -> Result<SamlSettings>;

    /// An AuthnRequest for the HTTP-Redirect binding: its id and the URL to
    /// send the browser to, carrying `relay_state`.
    ///
    /// # Errors
    /// Only when the request cannot be encoded.
    fn authn_request(
        &self,
        idp: &SamlSettings,
        sp: &ServiceProvider,
        relay_state: &str,
    ) -> Result<(String, String)>;

    /// This service's SP metadata for the connection, as XML.
    ///
    /// # Errors
    /// Only when it cannot be encoded.
    fn sp_metadata(&self, idp: &SamlSettings, sp: &ServiceProvider) -> Result<String>;

    /// Verifies a posted `SAMLResponse` (base64): the signature (of the
    /// response or the assertion) with the IdP's certificate, using only
    /// what was signed; issuer, destination and recipient, audience,
    /// `InResponseTo` (one of `request_id`, or none only when IdP-initiated
    /// sign-in is allowed), `NotBefore`/`NotOnOrAfter` within two minutes
    /// of skew.
    ///
    /// # Errors
    /// `access_denied` saying which check failed.
    async fn verify(
        &self,
        idp: &SamlSettings,
        sp: &ServiceProvider,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> std::result::Result<SamlAssertion, SignInError>;
}
