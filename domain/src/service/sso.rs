//! Single sign-on: a connection's OIDC settings (admins), and the sign-in
//! flow (the product's backend and the user's browser): start, callback,
//! redemption of the one-time code.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use time::OffsetDateTime;

use super::sync::SyncService;
use crate::audit::{Actor, AuditEntry};
use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, TokenHash};
use crate::org::OrgId;
use crate::ports::{
    AuditLog, Clock, ConnectionRepository, MembershipRepository, OidcProvider, OrgRepository,
    SecretSource, SsoRepository,
};
use crate::service::OrgService;
use crate::sso::{
    AuthorizeRequest, CallbackOutcome, CallbackParams, OidcInput, PendingLogin, SignInError,
    SignInResult, SsoConfig, SsoPolicy, Target,
};
use crate::{Error, Result};

mod sign_in;

use sign_in::SignInFailure;

/// The product's `state` is handed back verbatim; it need not be long.
const MAX_CLIENT_STATE: usize = 1024;
/// What of an IdP's own error description is passed on.
const MAX_IDP_DESCRIPTION: usize = 300;

/// What the SSO use cases read and write.
#[derive(Clone)]
pub struct SsoPorts {
    pub sso: Arc<dyn SsoRepository>,
    pub oidc: Arc<dyn OidcProvider>,
    pub orgs: Arc<dyn OrgRepository>,
    pub connections: Arc<dyn ConnectionRepository>,
    pub members: Arc<dyn MembershipRepository>,
    pub audit: Arc<dyn AuditLog>,
    pub secrets: Arc<dyn SecretSource>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Clone)]
pub struct SsoService {
    orgs: OrgService,
    /// Sign-ins that write members take the org's writer lease, as edits by hand do.
    sync: SyncService,
    ports: SsoPorts,
    policy: Arc<SsoPolicy>,
    /// Where the IdP sends the user back: `{public_url}/sso/oidc/callback`.
    callback_url: String,
}

fn random_token(secrets: &dyn SecretSource) -> String {
    URL_SAFE_NO_PAD.encode(secrets.random_32())
}

/// The settings as admins see them: everything but the secret.
pub fn settings_view(config: &SsoConfig, callback_url: &str) -> serde_json::Value {
    json!({
        "connection_id": config.connection_id,
        "protocol": "oidc",
        "issuer": config.oidc.issuer,
        "client_id": config.oidc.client_id,
        "scopes": config.oidc.scopes,
        "groups_claim": config.oidc.groups_claim,
        "client_secret_set": true,
        "redirect_uri": callback_url,
    })
}

impl SsoService {
    pub fn new(
        orgs: OrgService,
        sync: SyncService,
        ports: SsoPorts,
        policy: SsoPolicy,
        public_url: &str,
    ) -> Self {
        Self {
            orgs,
            sync,
            ports,
            policy: Arc::new(policy),
            callback_url: format!("{}/sso/oidc/callback", public_url.trim_end_matches('/')),
        }
    }

    /// The redirect URI to register at the IdP.
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    async fn connection_of(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        action: Action,
    ) -> Result<()> {
        self.orgs.authorize(principal, org, action).await?;
        self.ports
            .connections
            .find(org, conn)
            .await?
            .map(|_| ())
            .ok_or(Error::NotFound {
                entity: "connection",
            })
    }

    /// # Errors
    /// `NotFound` for a connection of another org or one without SSO; as `authorize`.
    pub async fn settings(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<SsoConfig> {
        self.connection_of(principal, org, conn, Action::Read)
            .await?;
        self.ports
            .sso
            .find_config(conn)
            .await?
            .ok_or(Error::NotFound {
                entity: "sso settings",
            })
    }

    /// Creates or replaces a connection's OIDC settings, after checking that
    /// the issuer's discovery document can be read and names that issuer.
    ///
    /// # Errors
    /// `Invalid` naming the field (the issuer when discovery fails); as [`Self::settings`].
    pub async fn configure(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        input: OidcInput,
    ) -> Result<SsoConfig> {
        self.connection_of(principal, org, conn, Action::Write)
            .await?;
        let current = self.ports.sso.find_config(conn).await?;
        let (oidc, client_secret) = input.validate(
            &self.policy,
            current.as_ref().map(|c| c.client_secret.as_str()),
        )?;
        self.ports.oidc.discover(&oidc.issuer).await.map_err(|e| {
            Error::invalid("issuer", format!("discovery failed: {}", e.description))
        })?;
        let now = self.now();
        let config = SsoConfig {
            connection_id: conn,
            org_id: org,
            oidc,
            client_secret,
            created_at: current.as_ref().map_or(now, |c| c.created_at),
            updated_at: now,
        };
        let audit = AuditEntry::new(
            org,
            Actor::of(principal),
            "sso.configured",
            ("connection", conn.to_string()),
            current
                .as_ref()
                .map(|c| settings_view(c, &self.callback_url)),
            Some(settings_view(&config, &self.callback_url)),
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
        let current = self.settings(principal, org, conn).await?;
        self.orgs.authorize(principal, org, Action::Write).await?;
        let audit = AuditEntry::new(
            org,
            Actor::of(principal),
            "sso.removed",
            ("connection", conn.to_string()),
            Some(settings_view(&current, &self.callback_url)),
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

    /// The connection a sign-in goes through, and the org it signs in to.
    async fn resolve(&self, target: Target) -> Result<Option<(SsoConfig, OrgId)>> {
        let sso = &self.ports.sso;
        Ok(match target {
            Target::Connection(conn) => sso.find_config(conn).await?.map(|c| {
                let org = c.org_id;
                (c, org)
            }),
            Target::Organization(org) => match sso.config_of_org(org).await? {
                Some(config) => Some((config, org)),
                None => match self.ports.connections.drawing_connection(org).await? {
                    Some(conn) => sso.find_config(conn).await?.map(|c| (c, org)),
                    None => None,
                },
            },
        })
    }

    /// Starts a sign-in: where to send the user's browser (the IdP, or back
    /// to the product with an error).
    ///
    /// # Errors
    /// `Invalid` (field `redirect_uri`) when the product's URI is not allowed:
    /// then nothing may be redirected to it. Infrastructure failures.
    pub async fn start(&self, request: AuthorizeRequest) -> Result<String> {
        self.policy.check_redirect_uri(&request.redirect_uri)?;
        let back = |error: SignInError| CallbackOutcome {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            result: Err(error),
        };
        if request
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_CLIENT_STATE)
        {
            let error = SignInError::invalid_request("state is longer than 1024 bytes");
            return Ok(back(error).location());
        }
        let Some((config, org)) = self.resolve(request.target).await? else {
            let error = SignInError::invalid_request(
                "no connection with single sign-on for this organization or connection",
            );
            return Ok(back(error).location());
        };
        let endpoints = match self.ports.oidc.discover(&config.oidc.issuer).await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::warn!(connection = %config.connection_id, %error, "OIDC discovery failed");
                return Ok(back(error).location());
            }
        };
        let secrets = &*self.ports.secrets;
        let handle = random_token(secrets);
        let login = PendingLogin {
            handle: TokenHash::of(&handle),
            connection_id: config.connection_id,
            org_id: org,
            redirect_uri: request.redirect_uri.clone(),
            client_state: request.state.clone(),
            nonce: random_token(secrets),
            pkce_verifier: random_token(secrets),
            expires_at: self.now() + self.policy.login_ttl,
        };
        self.ports.sso.insert_login(&login).await?;
        let mut url = url::Url::parse(&endpoints.authorization_endpoint)
            .map_err(|e| Error::Internal(anyhow::anyhow!("authorization endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.oidc.client_id)
            .append_pair("redirect_uri", &self.callback_url)
            .append_pair("scope", &config.oidc.scopes.join(" "))
            .append_pair("state", &handle)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &login.pkce_challenge())
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Finishes a sign-in at the IdP's callback: verifies the IdP's answer,
    /// admits (and provisions) the user, and sends them back to the product
    /// with a one-time code, or with the reason they were not let in.
    ///
    /// # Errors
    /// `Invalid` (field `state`) for an unknown, used or expired sign-in:
    /// then there is no product URI to send the user to. Infrastructure
    /// failures.
    pub async fn finish_oidc(&self, params: CallbackParams) -> Result<CallbackOutcome> {
        let state = params
            .state
            .as_deref()
            .ok_or_else(|| Error::invalid("state", "missing"))?;
        let (login, config) = self
            .ports
            .sso
            .take_login(&TokenHash::of(state), self.now())
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "state",
                    "this sign-in is unknown, already finished or expired; start again",
                )
            })?;
        let result = self.complete(&login, config.as_ref(), &params).await;
        let result = match result {
            Ok(code) => Ok(code),
            Err(SignInFailure::Refused(error)) => Err(error),
            Err(SignInFailure::Broken(error)) => {
                tracing::error!(connection = %login.connection_id, %error, "sign-in failed");
                Err(SignInError::server_error())
            }
        };
        Ok(CallbackOutcome {
            redirect_uri: login.redirect_uri,
            state: login.client_state,
            result,
        })
    }

    /// Redeems a sign-in's one-time code for the profile and the member.
    ///
    /// # Errors
    /// `Invalid` (field `code`) for an unknown, used or expired code, or one
    /// for an org out of the caller's reach.
    pub async fn redeem(&self, principal: &Principal, code: &str) -> Result<SignInResult> {
        let unknown = || Error::invalid("code", "unknown, already used or expired");
        let issued = self
            .ports
            .sso
            .take_code(&TokenHash::of(code), self.now())
            .await?
            .ok_or_else(unknown)?;
        match self
            .orgs
            .authorize(principal, issued.org_id, Action::Read)
            .await
        {
            Ok(_) => {}
            Err(Error::NotFound { .. } | Error::Forbidden(_)) => return Err(unknown()),
            Err(other) => return Err(other),
        }
        Ok(SignInResult {
            profile: issued.profile,
            organization_id: issued.org_id,
            connection_id: issued.connection_id,
            member: issued.member,
        })
    }

    /// Drops sign-ins and codes that expired.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.ports.sso.purge_expired(self.now()).await
    }
}
