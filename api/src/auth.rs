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

/// A key of either side of a signature: the verifier's or the minter's.
trait JwtKey: Sized {
    fn from_secret(secret: &[u8]) -> Self;
    fn from_rsa_pem(pem: &[u8]) -> jsonwebtoken::errors::Result<Self>;
    fn from_ed_pem(pem: &[u8]) -> jsonwebtoken::errors::Result<Self>;
}

/// Both key types have these constructors, but as inherent methods only.
macro_rules! jwt_key {
    ($key:ty) => {
        impl JwtKey for $key {
            fn from_secret(secret: &[u8]) -> Self {
                Self::from_secret(secret)
            }
            fn from_rsa_pem(pem: &[u8]) -> jsonwebtoken::errors::Result<Self> {
                Self::from_rsa_pem(pem)
            }
            fn from_ed_pem(pem: &[u8]) -> jsonwebtoken::errors::Result<Self> {
                Self::from_ed_pem(pem)
            }
        }
    };
}

jwt_key!(DecodingKey);
jwt_key!(EncodingKey);

/// Which of the configured PEM keys a signer or verifier reads.
#[derive(Clone, Copy)]
enum PemKey {
    Public,
    Private,
}

impl PemKey {
    /// The configuration key, the value configured, and why it is needed.
    fn configured(self, settings: &AuthSettings) -> (&'static str, Option<&str>, &'static str) {
        match self {
            Self::Public => (
                "auth.jwt_public_key",
                settings.jwt_public_key.as_deref(),
                "required for RS256 and EdDSA",
            ),
            Self::Private => (
                "auth.jwt_private_key",
                settings.jwt_private_key.as_deref(),
                "required to mint RS256 or EdDSA tokens",
            ),
        }
    }
}

/// The key the configured algorithm signs or verifies with: the HS256
/// secret, or the PEM key (text or file) for RS256 and EdDSA.
fn configured_key<K: JwtKey>(
    settings: &AuthSettings,
    hs256_secret: Option<&[u8]>,
    pem_key: PemKey,
) -> Result<K, KeyError> {
    let algorithm = settings.jwt_algorithm;
    let (key, value, needed) = pem_key.configured(settings);
    if algorithm == JwtAlgorithm::HS256 {
        let secret = hs256_secret.ok_or(KeyError {
            key: "auth.jwt_secret",
            message: "no HS256 secret available".into(),
        })?;
        return Ok(K::from_secret(secret));
    }
    let value = value.ok_or(KeyError {
        key,
        message: needed.into(),
    })?;
    let bytes = pem(value, key)?;
    let parsed = if algorithm == JwtAlgorithm::RS256 {
        K::from_rsa_pem(&bytes)
    } else {
        K::from_ed_pem(&bytes)
    };
    parsed.map_err(|e| KeyError {
        key,
        message: e.to_string(),
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
        let mut validation = Validation::new(algorithm(settings.jwt_algorithm));
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
        Ok(Self {
            key: configured_key(settings, hs256_secret, PemKey::Public)?,
            validation,
        })
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
        Ok(Self {
            key: configured_key(settings, hs256_secret, PemKey::Private)?,
            header: Header::new(algorithm(settings.jwt_algorithm)),
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

    /// A fresh key pair as PEM text: (private, public).
    fn key_pair(key: &openssl::pkey::PKey<openssl::pkey::Private>) -> (String, String) {
        let private = key.private_key_to_pem_pkcs8().unwrap();
        let public = key.public_key_to_pem().unwrap();
        (
            String::from_utf8(private).unwrap(),
            String::from_utf8(public).unwrap(),
        )
    }

    fn with_keys(algorithm: JwtAlgorithm, (private, public): &(String, String)) -> AuthSettings {
        AuthSettings {
            jwt_algorithm: algorithm,
            jwt_private_key: Some(private.clone()),
            jwt_public_key: Some(public.clone()),
            ..settings()
        }
    }

    /// RS256 and EdDSA tokens verify with their public key; a token of the
    /// other algorithm, or an HS256 token keyed with the public key itself
    /// (the algorithm-confusion forgery), is refused.
    #[test]
    fn public_key_tokens_verify_only_with_their_pinned_algorithm() {
        let rsa = key_pair(
            &openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        );
        let ed = key_pair(&openssl::pkey::PKey::generate_ed25519().unwrap());
        let rs256 = with_keys(JwtAlgorithm::RS256, &rsa);
        let eddsa = with_keys(JwtAlgorithm::EdDSA, &ed);
        let mint = |s: &AuthSettings, secret: Option<&[u8]>| {
            Minter::new(s, secret).unwrap().mint("ops", None).unwrap()
        };
        for settings in [&rs256, &eddsa] {
            let verifier = Verifier::new(settings, None).unwrap();
            let principal = verifier.verify(&mint(settings, None)).unwrap();
            assert_eq!(
                principal,
                Principal::Platform {
                    subject: "ops".into()
                }
            );
        }
        let rs256_verifier = Verifier::new(&rs256, None).unwrap();
        let eddsa_verifier = Verifier::new(&eddsa, None).unwrap();
        assert!(eddsa_verifier.verify(&mint(&rs256, None)).is_err());
        assert!(rs256_verifier.verify(&mint(&eddsa, None)).is_err());
        let confused = mint(&settings(), Some(rsa.1.as_bytes()));
        assert!(rs256_verifier.verify(&confused).is_err());
    }

    #[test]
    fn a_public_key_algorithm_names_the_missing_key() {
        let rs256 = AuthSettings {
            jwt_algorithm: JwtAlgorithm::RS256,
            ..settings()
        };
        let verifier = Verifier::new(&rs256, None).err().map(|e| e.key);
        assert_eq!(verifier, Some("auth.jwt_public_key"));
        let minter = Minter::new(&rs256, None).err().map(|e| e.key);
        assert_eq!(minter, Some("auth.jwt_private_key"));
        let hs256 = Verifier::new(&settings(), None).err().map(|e| e.key);
        assert_eq!(hs256, Some("auth.jwt_secret"));
    }
}
