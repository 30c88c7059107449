//! The pieces of one sign-in: the request that starts it, the login waiting
//! at the IdP, the one-time code the product redeems, and how it can fail.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::SsoProfile;
use crate::directory::{ConnectionId, TokenHash};
use crate::membership::Member;
use crate::org::OrgId;

/// Which connection a sign-in goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The org's own SSO connection, else the one its directory comes from.
    Organization(OrgId),
    Connection(ConnectionId),
}

/// The product's request to sign a user in.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub target: Target,
    /// Where the user comes back with a code; must be allow-listed.
    pub redirect_uri: String,
    /// The product's own CSRF value, handed back untouched.
    pub state: Option<String>,
}

/// A sign-in waiting for the IdP's answer, found again by the hash of the
/// `state` orgsync sent to the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub handle: TokenHash,
    pub connection_id: ConnectionId,
    /// The org the user signs in to.
    pub org_id: OrgId,
    pub redirect_uri: String,
    pub client_state: Option<String>,
    pub nonce: String,
    pub pkce_verifier: String,
    pub expires_at: OffsetDateTime,
}

impl PendingLogin {
    /// The PKCE `S256` challenge of the verifier (RFC 7636 §4.2).
    pub fn pkce_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.pkce_verifier.as_bytes()))
    }
}

/// A finished sign-in, waiting for the product to redeem its code once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedCode {
    pub org_id: OrgId,
    pub connection_id: ConnectionId,
    pub profile: SsoProfile,
    pub member: Member,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What a redeemed code tells the product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignInResult {
    pub profile: SsoProfile,
    pub organization_id: OrgId,
    pub connection_id: ConnectionId,
    pub member: Member,
}

/// The endpoints an IdP's discovery document names, and what it signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcEndpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// `id_token_signing_alg_values_supported`, as the IdP lists it.
    pub signing_algorithms: Vec<String>,
    /// Whether the token endpoint takes the secret in the body
    /// (`client_secret_post`) rather than HTTP Basic.
    pub secret_in_body: bool,
}

/// Everything needed to turn the IdP's code into verified claims.
#[derive(Debug, Clone)]
pub struct Redemption<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub pkce_verifier: &'a str,
    pub nonce: &'a str,
}

/// The IdP's answer at the callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where the callback sends the user: back to the product with a code, or
/// with an error (OAuth 2.0 §4.1.2 shapes both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackOutcome {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub result: Result<String, SignInError>,
}

impl CallbackOutcome {
    /// The URL to redirect to, with `code` or `error` and the product's `state`.
    pub fn location(&self) -> String {
        let mut url = match url::Url::parse(&self.redirect_uri) {
            Ok(url) => url,
            // Allow-listed when the login started, so it parses.
            Err(_) => return self.redirect_uri.clone(),
        };
        {
            let mut query = url.query_pairs_mut();
            match &self.result {
                Ok(code) => {
                    query.append_pair("code", code);
                }
                Err(e) => {
                    query.append_pair("error", e.kind.as_str());
                    query.append_pair("error_description", &e.description);
                }
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
        }
        url.into()
    }
}

/// The OAuth 2.0 error a failed sign-in reports to the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInErrorKind {
    /// The request named no connection with SSO, or the IdP's answer was malformed.
    InvalidRequest,
    /// The user may not come in, or the IdP refused or could not prove who they are.
    AccessDenied,
    /// The IdP could not be reached or answered nonsense; trying later may work.
    TemporarilyUnavailable,
    ServerError,
}

impl SignInErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::AccessDenied => "access_denied",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// A failed sign-in, with a description safe to show the product.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", .kind.as_str())]
pub struct SignInError {
    pub kind: SignInErrorKind,
    pub description: String,
}

impl SignInError {
    pub fn denied(description: impl Into<String>) -> Self {
        Self {
            kind: SignInErrorKind::AccessDenied,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            kind: SignInErrorKind::InvalidRequest,
            description: description.into(),
        }
    }

    pub fn server_error() -> Self {
        Self {
            kind: SignInErrorKind::ServerError,
            description: "the sign-in could not be completed; it has been logged".into(),
        }
    }

    pub fn unavailable(description: impl Into<String>) -> Self {
        Self {
            kind: SignInErrorKind::TemporarilyUnavailable,
            description: description.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_s256() {
        // RFC 7636 appendix B.
        let login = PendingLogin {
            handle: TokenHash([0; 32]),
            connection_id: ConnectionId::new(),
            org_id: OrgId::new(),
            redirect_uri: String::new(),
            client_state: None,
            nonce: String::new(),
            pkce_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            login.pkce_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_product_gets_its_state_back_with_the_code_or_the_error() {
        let mut outcome = CallbackOutcome {
            redirect_uri: "https://app.example.com/cb?tenant=a".into(),
            state: Some("s t&x".into()),
            result: Ok("c0de".into()),
        };
        assert_eq!(
            outcome.location(),
            "https://app.example.com/cb?tenant=a&code=c0de&state=s+t%26x"
        );
        outcome.result = Err(SignInError::denied("no member"));
        outcome.state = None;
        assert_eq!(
            outcome.location(),
            "https://app.example.com/cb?tenant=a&error=access_denied&error_description=no+member"
        );
    }
}
