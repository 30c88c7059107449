//! Single sign-on: a connection's OIDC or SAML settings (admins, in
//! `settings`), and the sign-in flow (the product's backend and the user's
//! browser): start, the IdP's return, redemption of the one-time code.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::OffsetDateTime;

use super::sync::SyncService;

use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, TokenHash};
use crate::org::OrgId;
use crate::ports::{
    AuditLog, Clock, ConnectionRepository, MembershipRepository, OidcProvider, OrgRepository,
    SamlProvider, SecretSource, ServiceProvider, SsoRepository,
};
use crate::service::OrgService;
use crate::sso::{
    AuthorizeRequest, CallbackOutcome, CallbackParams, PendingLogin, SignInError, SignInResult,
    SsoConfig, SsoPolicy, SsoProtocol, Target,
};
use crate::{Error, Result};

mod settings;
mod sign_in;

pub use settings::SsoInput;

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
    pub saml: Arc<dyn SamlProvider>,
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
    /// The externally visible base URL, without a trailing slash.
    public_url: String,
    /// Where an OIDC IdP sends the user back: `{public_url}/sso/oidc/callback`.
    callback_url: String,
}

fn random_token(secrets: &dyn SecretSource) -> String {
    URL_SAFE_NO_PAD.encode(secrets.random_32())
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
            public_url: public_url.trim_end_matches('/').to_owned(),
            callback_url: format!("{}/sso/oidc/callback", public_url.trim_end_matches('/')),
        }
    }

    /// This service as a SAML service provider for `conn`: the entity id is
    /// the SP metadata's URL, as most IdPs expect.
    pub fn service_provider(&self, conn: ConnectionId) -> ServiceProvider {
        let base = format!("{}/sso/saml/{conn}", self.public_url);
        ServiceProvider {
            entity_id: format!("{base}/metadata"),
            acs_url: format!("{base}/acs"),
        }
    }

    /// The redirect URI to register at the IdP.
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
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
        let secrets = &*self.ports.secrets;
        let handle = random_token(secrets);
        let mut login = PendingLogin {
            handle: TokenHash::of(&handle),
            connection_id: config.connection_id,
            org_id: org,
            redirect_uri: request.redirect_uri.clone(),
            client_state: request.state.clone(),
            nonce: random_token(secrets),
            pkce_verifier: random_token(secrets),
            expires_at: self.now() + self.policy.login_ttl,
        };
        let location = match &config.protocol {
            SsoProtocol::Oidc { settings, .. } => {
                let endpoints = match self.ports.oidc.discover(&settings.issuer).await {
                    Ok(endpoints) => endpoints,
                    Err(error) => {
                        tracing::warn!(connection = %config.connection_id, %error, "OIDC discovery failed");
                        return Ok(back(error).location());
                    }
                };
                let mut url = url::Url::parse(&endpoints.authorization_endpoint)
                    .map_err(|e| Error::Internal(anyhow::anyhow!("authorization endpoint: {e}")))?;
                url.query_pairs_mut()
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &settings.client_id)
                    .append_pair("redirect_uri", &self.callback_url)
                    .append_pair("scope", &settings.scopes.join(" "))
                    .append_pair("state", &handle)
                    .append_pair("nonce", &login.nonce)
                    .append_pair("code_challenge", &login.pkce_challenge())
                    .append_pair("code_challenge_method", "S256");
                url.into()
            }
            SsoProtocol::Saml(idp) => {
                let sp = self.service_provider(config.connection_id);
                // The AuthnRequest's id is what the response must answer
                // (`InResponseTo`); the handle travels as RelayState.
                let (request_id, url) = self.ports.saml.authn_request(idp, &sp, &handle)?;
                login.nonce = request_id;
                url
            }
        };
        self.ports.sso.insert_login(&login).await?;
        Ok(location)
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
        let proof = self.oidc_profile(&login, config.as_ref(), &params);
        let result = self.complete(&login, proof).await;
        Ok(self.outcome(login, result))
    }

    /// Finishes a SAML sign-in at the connection's ACS: the `RelayState`
    /// names the sign-in orgsync started; without one, the response is an
    /// IdP-initiated sign-in, taken only when the connection allows it
    /// (the user then lands on the first of `sso.redirect_uris`).
    ///
    /// # Errors
    /// `Invalid` (field `RelayState`) for an unknown, used or expired
    /// sign-in or one of another connection; `Invalid` (field
    /// `SAMLResponse`) for an IdP-initiated response where none is allowed;
    /// `NotFound` for a connection without SAML. Infrastructure failures.
    pub async fn finish_saml(
        &self,
        conn: ConnectionId,
        saml_response: &str,
        relay_state: Option<&str>,
    ) -> Result<CallbackOutcome> {
        let taken = match relay_state.filter(|r| !r.is_empty()) {
            Some(relay) => self
                .ports
                .sso
                .take_login(&TokenHash::of(relay), self.now())
                .await?
                .filter(|(login, _)| login.connection_id == conn),
            None => None,
        };
        let (login, config, request_id) = match taken {
            Some((login, config)) => {
                let request_id = login.nonce.clone();
                (login, config, Some(request_id))
            }
            None if relay_state.is_some_and(|r| !r.is_empty()) => {
                return Err(Error::invalid(
                    "RelayState",
                    "this sign-in is unknown, already finished or expired; start again",
                ))
            }
            None => self.idp_initiated(conn).await?,
        };
        let proof = self.saml_profile(
            &login,
            config.as_ref(),
            saml_response,
            request_id.as_deref(),
        );
        let result = self.complete(&login, proof).await;
        Ok(self.outcome(login, result))
    }

    /// A sign-in the IdP started: into the connection's own org, back to the
    /// first allowed redirect URI.
    async fn idp_initiated(
        &self,
        conn: ConnectionId,
    ) -> Result<(PendingLogin, Option<SsoConfig>, Option<String>)> {
        let refused = || {
            Error::invalid(
                "SAMLResponse",
                "IdP-initiated sign-in is off for this connection; start at the product",
            )
        };
        let config = self
            .ports
            .sso
            .find_config(conn)
            .await?
            .ok_or(Error::NotFound {
                entity: "sso settings",
            })?;
        let allowed = matches!(&config.protocol, SsoProtocol::Saml(s) if s.allow_idp_initiated);
        let redirect_uri = self.policy.redirect_uris.first().cloned();
        let (true, Some(redirect_uri)) = (allowed, redirect_uri) else {
            return Err(refused());
        };
        let login = PendingLogin {
            handle: TokenHash([0; 32]),
            connection_id: conn,
            org_id: config.org_id,
            redirect_uri,
            client_state: None,
            nonce: String::new(),
            pkce_verifier: String::new(),
            expires_at: self.now() + self.policy.login_ttl,
        };
        Ok((login, Some(config), None))
    }

    /// The redirect back to the product, with the code or the reason.
    fn outcome(
        &self,
        login: PendingLogin,
        result: std::result::Result<String, SignInFailure>,
    ) -> CallbackOutcome {
        let result = match result {
            Ok(code) => Ok(code),
            Err(SignInFailure::Refused(error)) => Err(error),
            Err(SignInFailure::Broken(error)) => {
                tracing::error!(connection = %login.connection_id, %error, "sign-in failed");
                Err(SignInError::server_error())
            }
        };
        CallbackOutcome {
            redirect_uri: login.redirect_uri,
            state: login.client_state,
            result,
        }
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
