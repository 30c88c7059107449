//! Admin authentication: JWT bearer tokens, verified with the configured key.
//!
//! The algorithm is pinned by configuration (a token's own `alg` header is
//! never trusted), `exp` is required, and `iss`/`aud` are checked when set.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orgsync_domain::auth::{AdminRole, Principal};
use orgsync_domain::org::OrgId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{AuthSettings, JwtAlgorithm};

/// The claims orgsync reads from (and writes into) an admin token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AdminRole>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub platform: bool,
}

impl Claims {
    /// # Errors
    /// A reason when the claims describe neither a platform operator nor an org admin.
    pub fn into_principal(self) -> Result<Principal, &'static str> {
        match (self.platform, self.org, self.role) {
            (true, None, None) => Ok(Principal::Platform { subject: self.sub }),
            (true, _, _) => Err("a platform token carries no org or role"),
            (false, Some(org), Some(role)) => Ok(Principal::Org {
                subject: self.sub,
                org: OrgId(org),
                role,
            }),
            (false, _, _) => Err("the token needs `org` and `role` claims, or `platform: true`"),
        }
    }
}

/// Why a bearer token was refused; the detail is safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Key material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct KeyError {
    pub key: &'static str,
    pub message: String,
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// Reads a PEM value that is either the PEM text itself or a file path.
fn pem(value: &str, key: &'static str) -> Result<Vec<u8>, KeyError> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(Path::new(value)).map_err(|e| KeyError {
        key,
        message: format!("cannot read {value}: {e}"),
    })
}

/// Verifies admin tokens.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// # Errors
    /// When the configured key cannot be read or parsed.
    pub fn new(settings: &AuthSettings, hs256_secret: Option<&[u8]>) -> Result<Self, KeyError> {
        let alg = algorithm(settings.jwt_algorithm);
        let key = match settings.jwt_algorithm {
            JwtAlgorithm::HS256 => DecodingKey::from_secret(hs256_secret.ok_or(KeyError {
                key: "auth.jwt_secret",
                message: "no HS256 secret available".into(),
            })?),
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
                let value = settings.jwt_public_key.as_deref().ok_or(KeyError {
                    key: "auth.jwt_public_key",
                    message: "required for RS256 and EdDSA".into(),
                })?;
                let bytes = pem(value, "auth.jwt_public_key")?;
                let parsed = if alg == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&bytes)
                } else {
                    DecodingKey::from_ed_pem(&bytes)
                };
                parsed.map_err(|e| KeyError {
                    key: "auth.jwt_public_key",
                    message: e.to_string(),
                })?
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        match &settings.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    /// # Errors
    /// `Invalid` for a bad signature, a wrong algorithm, an expired token,
    /// a wrong issuer or audience, or claims that name no principal.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        data.claims
            .into_principal()
            .map_err(|reason| AuthError::Invalid(reason.into()))
    }
}

/// Mints admin tokens (the `token` command, and tests).
pub struct Minter {
    key: EncodingKey,
    header: Header,
    settings: AuthSettings,
}

impl Minter {
    /// # Errors
    /// When no signing key is configured or it cannot be parsed.
    pub fn new(settings: &AuthSettings, hs256_secret: Option<&[u8]>) -> Result<Self, KeyError> {
        let alg = algorithm(settings.jwt_algorithm);
        let key = match settings.jwt_algorithm {
            JwtAlgorithm::HS256 => EncodingKey::from_secret(hs256_secret.ok_or(KeyError {
                key: "auth.jwt_secret",
                message: "no HS256 secret available".into(),
            })?),
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
                let value = settings.jwt_private_key.as_deref().ok_or(KeyError {
                    key: "auth.jwt_private_key",
                    message: "required to mint RS256 or EdDSA tokens".into(),
                })?;
                let bytes = pem(value, "auth.jwt_private_key")?;
                let parsed = if alg == Algorithm::RS256 {
                    EncodingKey::from_rsa_pem(&bytes)
                } else {
                    EncodingKey::from_ed_pem(&bytes)
                };
                parsed.map_err(|e| KeyError {
                    key: "auth.jwt_private_key",
                    message: e.to_string(),
                })?
            }
        };
        Ok(Self {
            key,
            header: Header::new(alg),
            settings: settings.clone(),
        })
    }

    /// # Errors
    /// Only if signing itself fails.
    pub fn mint(
        &self,
        subject: &str,
        org: Option<(OrgId, AdminRole)>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let claims = Claims {
            sub: subject.to_owned(),
            iat: Some(now),
            exp: now + self.settings.token_ttl,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            org: org.map(|(id, _)| id.0),
            role: org.map(|(_, role)| role),
            platform: org.is_none(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            jwt_secret: None,
            jwt_public_key: None,
            jwt_private_key: None,
            jwt_algorithm: JwtAlgorithm::HS256,
            issuer: Some("orgsync-test".into()),
            audience: Some("orgsync".into()),
            token_ttl: 60,
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_to_its_principal() {
        let s = settings();
        let org = OrgId::new();
        let minter = Minter::new(&s, Some(SECRET)).ok();
        let verifier = Verifier::new(&s, Some(SECRET)).ok();
        let token = minter.and_then(|m| m.mint("alice", Some((org, AdminRole::Admin))).ok());
        let principal = verifier.zip(token).and_then(|(v, t)| v.verify(&t).ok());
        assert_eq!(
            principal,
            Some(Principal::Org {
                subject: "alice".into(),
                org,
                role: AdminRole::Admin
            })
        );
    }

    #[test]
    fn tokens_with_another_key_algorithm_issuer_or_audience_are_refused() {
        let s = settings();
        let verifier = Verifier::new(&s, Some(SECRET)).ok();
        let other_secret = Minter::new(&s, Some(b"another-secret-another-secret-xx")).ok();
        let mut other_issuer = s.clone();
        other_issuer.issuer = Some("someone-else".into());
        let mut other_audience = s.clone();
        other_audience.audience = Some("another-service".into());
        let tokens = [
            other_secret.and_then(|m| m.mint("x", None).ok()),
            Minter::new(&other_issuer, Some(SECRET)).ok().and_then(|m| m.mint("x", None).ok()),
            Minter::new(&other_audience, Some(SECRET)).ok().and_then(|m| m.mint("x", None).ok()),
            // alg=none: the pinned algorithm refuses it.
            Some("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5LCJwbGF0Zm9ybSI6dHJ1ZX0.".to_owned()),
        ];
        for token in tokens {
            let token = token.unwrap_or_default();
            assert!(
                matches!(verifier.as_ref().map(|v| v.verify(&token)), Some(Err(_))),
                "{token}"
            );
        }
    }

    #[test]
    fn claims_must_name_exactly_one_kind_of_principal() {
        let base = Claims {
            sub: "x".into(),
            exp: 1,
            iat: None,
            iss: None,
            aud: None,
            org: None,
            role: None,
            platform: false,
        };
        assert!(base.clone().into_principal().is_err());
        let mut both = base.clone();
        both.platform = true;
        both.org = Some(Uuid::now_v7());
        assert!(both.into_principal().is_err());
        let mut org_without_role = base;
        org_without_role.org = Some(Uuid::now_v7());
        assert!(org_without_role.into_principal().is_err());
    }
}
