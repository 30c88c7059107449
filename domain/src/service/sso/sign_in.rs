//! The callback's work: verify the IdP's answer, find who the identity
//! already is in the org, admit (and provision) them by the org's mode,
//! issue the one-time code, and audit the outcome either way.

use serde_json::json;
use time::OffsetDateTime;

use super::{random_token, SsoPorts, SsoService, MAX_IDP_DESCRIPTION};
use crate::audit::{Actor, AuditEntry};
use crate::directory::TokenHash;
use crate::error::ConflictCode;
use crate::membership::{Member, Role};
use crate::org::OrgId;
use crate::org::ProvisioningMode;
use crate::sso::{
    claim_metadata, decide, CallbackParams, IssuedCode, PendingLogin, Redemption, SignIn,
    SignInError, SignInErrorKind, SsoConfig, SsoProfile, SsoProtocol,
};
use crate::{Error, Result};

/// The member this identity is, in order of trust: the member its subject
/// signed in as before; the member of the directory user it is (by
/// `externalId`, then userName or email); a member with its email that no
/// other subject of this connection has claimed.
///
/// The three look-ups are independent and run side by side; the order of
/// trust is applied to their answers.
async fn find_member(
    ports: &SsoPorts,
    login: &PendingLogin,
    profile: &SsoProfile,
) -> Result<Option<Member>> {
    let (org, conn) = (login.org_id, login.connection_id);
    let (linked, of_directory, by_email) = futures::try_join!(
        ports.sso.linked_member(conn, &profile.id, org),
        ports.sso.directory_member(org, &profile.id, &profile.email),
        ports
            .sso
            .member_by_email(org, conn, &profile.id, &profile.email),
    )?;
    Ok(linked.or(of_directory).or(by_email))
}

/// What an IdP's answer proved: who signed in, and for SAML the assertion
/// (id, expiry) that may be accepted only once.
pub(super) struct Proven {
    pub(super) profile: SsoProfile,
    pub(super) assertion: Option<(String, OffsetDateTime)>,
}

/// Why a sign-in did not produce a code.
pub(super) enum SignInFailure {
    /// The user is not let in, for a reason the product may be told.
    Refused(SignInError),
    /// orgsync failed; the reason is for the operator's log.
    Broken(Error),
}

impl From<Error> for SignInFailure {
    fn from(error: Error) -> Self {
        match error {
            Error::Unavailable(_) | Error::Busy(_) => Self::Refused(SignInError::unavailable(
                "the service is briefly unavailable; try again",
            )),
            // A sync held the org longer than a sign-in waits for it.
            Error::Conflict {
                code: ConflictCode::SyncInProgress,
                ..
            } => Self::Refused(SignInError::unavailable(
                "this organization is being synced; try again in a few seconds",
            )),
            other => Self::Broken(other),
        }
    }
}

impl From<SignInError> for SignInFailure {
    fn from(error: SignInError) -> Self {
        Self::Refused(error)
    }
}

/// An IdP's own error text, bounded and without control characters.
fn idp_description(params: &CallbackParams) -> String {
    let error: String = params
        .error
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let description: String = params
        .error_description
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_IDP_DESCRIPTION)
        .collect();
    if description.is_empty() {
        format!("the identity provider refused the sign-in ({error})")
    } else {
        format!("the identity provider refused the sign-in ({error}): {description}")
    }
}

/// A member's email may already be another member's, and the org may have
/// stopped adding members on sign-in: refusals, not failures.
fn taken(error: Error) -> SignInFailure {
    match error {
        Error::Conflict {
            code: ConflictCode::AlreadyExists,
            ..
        } => SignInFailure::Refused(SignInError::denied(
            "another member of this organization already has this email",
        )),
        Error::Forbidden(why) => SignInFailure::Refused(SignInError::denied(why)),
        other => other.into(),
    }
}

impl SsoService {
    fn audit_sign_in(
        &self,
        login: &PendingLogin,
        profile: Option<&SsoProfile>,
        outcome: std::result::Result<&Member, &SignInError>,
    ) -> AuditEntry {
        let subject = profile.map_or_else(String::new, |p| p.id.clone());
        let (action, target, after) = match outcome {
            Ok(member) => (
                "sso.sign_in.succeeded",
                ("member", member.id.to_string()),
                json!({
                    "subject": subject,
                    "email": member.email,
                    "connection_id": login.connection_id,
                }),
            ),
            Err(error) => (
                "sso.sign_in.refused",
                ("connection", login.connection_id.to_string()),
                json!({
                    "subject": profile.map(|p| &p.id),
                    "email": profile.map(|p| &p.email),
                    "error": error.kind.as_str(),
                    "reason": error.description,
                }),
            ),
        };
        AuditEntry::new(
            login.org_id,
            Actor::SignIn {
                connection_id: login.connection_id.0,
                subject,
            },
            action,
            target,
            None,
            Some(after),
            self.now(),
        )
    }

    /// Takes the IdP's proof of who signed in, admits them and issues the
    /// code; audits the outcome either way (a success with the code's own
    /// writes).
    pub(super) async fn complete(
        &self,
        login: &PendingLogin,
        proof: impl std::future::Future<Output = std::result::Result<Proven, SignInFailure>>,
    ) -> std::result::Result<String, SignInFailure> {
        let (result, profile) = match proof.await {
            Ok(proven) => (
                self.admit_and_issue(login, &proven.profile, proven.assertion.as_ref())
                    .await,
                Some(proven.profile),
            ),
            Err(failure) => (Err(failure), None),
        };
        let refusal = match &result {
            Ok(code) => return Ok(code.clone()),
            Err(SignInFailure::Refused(error)) => error.clone(),
            Err(SignInFailure::Broken(_)) => SignInError {
                kind: SignInErrorKind::ServerError,
                description: "internal error".into(),
            },
        };
        let audit = self.audit_sign_in(login, profile.as_ref(), Err(&refusal));
        self.ports.audit.append(&audit).await?;
        result
    }

    /// Who the OIDC IdP says signed in: the code exchanged, the ID token verified.
    pub(super) async fn oidc_profile(
        &self,
        login: &PendingLogin,
        config: Option<&SsoConfig>,
        params: &CallbackParams,
    ) -> std::result::Result<Proven, SignInFailure> {
        if params.error.is_some() {
            return Err(SignInError::denied(idp_description(params)).into());
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| SignInError::invalid_request("the identity provider sent no code"))?;
        let Some(SsoProtocol::Oidc {
            settings,
            client_secret,
        }) = config.map(|c| &c.protocol)
        else {
            return Err(SignInError::denied("OIDC single sign-on is no longer configured").into());
        };
        let claims = self
            .ports
            .oidc
            .redeem(&Redemption {
                issuer: &settings.issuer,
                client_id: &settings.client_id,
                client_secret,
                code,
                redirect_uri: &self.callback_url,
                pkce_verifier: &login.pkce_verifier,
                nonce: &login.nonce,
            })
            .await?;
        Ok(Proven {
            profile: SsoProfile::from_oidc_claims(claims, settings.groups_claim.as_deref())?,
            assertion: None,
        })
    }

    /// Who the SAML IdP says signed in: the response verified; its
    /// assertion is recorded (accepted once) with the admission's reads.
    pub(super) async fn saml_profile(
        &self,
        login: &PendingLogin,
        config: Option<&SsoConfig>,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> std::result::Result<Proven, SignInFailure> {
        let Some(SsoProtocol::Saml(idp)) = config.map(|c| &c.protocol) else {
            return Err(SignInError::denied("SAML single sign-on is no longer configured").into());
        };
        let sp = self.service_provider(login.connection_id);
        let assertion = self
            .ports
            .saml
            .verify(idp, &sp, saml_response, request_id)
            .await?;
        let once = (assertion.id.clone(), assertion.not_on_or_after);
        Ok(Proven {
            profile: SsoProfile::from_saml(assertion)?,
            assertion: Some(once),
        })
    }

    async fn admit_and_issue(
        &self,
        login: &PendingLogin,
        profile: &SsoProfile,
        assertion: Option<&(String, OffsetDateTime)>,
    ) -> std::result::Result<String, SignInFailure> {
        let member = self.admit(login, profile, assertion).await?;
        let code = random_token(&*self.ports.secrets);
        let issued = IssuedCode {
            org_id: login.org_id,
            connection_id: login.connection_id,
            profile: profile.clone(),
            member: member.clone(),
            expires_at: self.now() + self.policy.code_ttl,
        };
        let (sso, hash) = (&self.ports.sso, TokenHash::of(&code));
        let audit = self.audit_sign_in(login, Some(profile), Ok(&member));
        futures::try_join!(
            sso.insert_code(&hash, &issued),
            sso.link(login.connection_id, &profile.id, &member, self.now()),
            self.ports.audit.append(&audit),
        )?;
        Ok(code)
    }

    /// The role a JIT member gets: the org's default, or `user` when there is
    /// none or its custom role was deleted since.
    async fn jit_role(&self, org: OrgId, default: Option<Role>) -> Result<Role> {
        match default {
            None => Ok(Role::User),
            Some(role) if role.is_builtin() => Ok(role),
            Some(role) => {
                let defined = self.ports.members.roles(org).await?;
                if defined.iter().any(|r| r.name == role) {
                    Ok(role)
                } else {
                    tracing::warn!(%org, role = role.as_str(), "JIT default role no longer exists; using user");
                    Ok(Role::User)
                }
            }
        }
    }

    /// Finds who this identity is in the org, applies the mode's rule, and
    /// writes what the sign-in changes (an update as the org's writer).
    async fn admit(
        &self,
        login: &PendingLogin,
        profile: &SsoProfile,
        assertion: Option<&(String, OffsetDateTime)>,
    ) -> std::result::Result<Member, SignInFailure> {
        let ports = &self.ports;
        let first_use = async {
            match assertion {
                Some((id, until)) => {
                    ports
                        .sso
                        .remember_assertion(login.connection_id, id, *until)
                        .await
                }
                None => Ok(true),
            }
        };
        // Independent reads (and the assertion's one-time record), side by
        // side: a sign-in waits on the sum of its round trips, so it pays for
        // the slowest of these, not for all. Nothing is written before the
        // record says the assertion is new.
        let (org, found, definitions, default_role, fresh) = futures::try_join!(
            ports.orgs.find(login.org_id),
            find_member(ports, login, profile),
            ports.members.attributes(login.connection_id),
            ports.members.jit_default_role(login.org_id),
            first_use,
        )?;
        if !fresh {
            return Err(SignInError::denied("this assertion was already used (a replay?)").into());
        }
        let org = org.ok_or_else(|| SignInError::denied("this organization no longer exists"))?;
        let claimed = claim_metadata(&definitions, &profile.raw_attributes);
        let role = self.jit_role(org.id, default_role).await?;
        let decide_for = |found| {
            decide(
                org.id,
                org.provisioning_mode,
                found,
                profile,
                &claimed,
                &role,
                self.now(),
            )
        };
        let actor = Actor::SignIn {
            connection_id: login.connection_id.0,
            subject: profile.id.clone(),
        };
        let decided = decide_for(found)?;
        let creates = matches!(decided, SignIn::Create(_));
        match self.write_admission(org.id, &actor, decided).await {
            // Another sign-in of this identity (a second tab, a double
            // click) made the member between the read and the insert: this
            // sign-in is that member now. Once: a second conflict is an
            // email another identity holds.
            Err(Error::Conflict {
                code: ConflictCode::AlreadyExists,
                ..
            }) if creates => {
                let found = find_member(ports, login, profile).await?;
                let decided = decide_for(found)?;
                Ok(self
                    .write_admission(org.id, &actor, decided)
                    .await
                    .map_err(taken)?)
            }
            written => Ok(written.map_err(taken)?),
        }
    }

    /// Writes what a sign-in decided: the member it creates or updates.
    async fn write_admission(&self, org: OrgId, actor: &Actor, decided: SignIn) -> Result<Member> {
        let ports = &self.ports;
        match decided {
            SignIn::Unchanged(member) => Ok(member),
            SignIn::Create(member) => {
                let audit = AuditEntry::new(
                    org,
                    actor.clone(),
                    "member.created",
                    ("member", member.id.to_string()),
                    None,
                    serde_json::to_value(&member).ok(),
                    self.now(),
                );
                // As the org's writer, as an admin's add is: a switch away
                // from JIT that went first is seen here, and one that comes
                // after plans with this member. Two sign-ins of one identity
                // are settled by the unique keys (see `admit`).
                let insert = async {
                    let org = ports.orgs.find(org).await?;
                    if org.map(|o| o.provisioning_mode) != Some(ProvisioningMode::Jit) {
                        return Err(Error::Forbidden(
                            "this organization no longer adds members when they sign in".into(),
                        ));
                    }
                    ports.members.insert_member(&member, &audit).await
                };
                self.sync.as_writer(org, insert).await?;
                Ok(member)
            }
            SignIn::Update { before, after } => {
                let audit = AuditEntry::new(
                    org,
                    actor.clone(),
                    "member.updated",
                    ("member", after.id.to_string()),
                    serde_json::to_value(&before).ok(),
                    serde_json::to_value(&after).ok(),
                    self.now(),
                );
                let write = async { ports.members.update_member(&before, &after, &audit).await };
                self.sync.as_writer(org, write).await?;
                Ok(after)
            }
        }
    }
}
