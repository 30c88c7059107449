//! SCIM bearer tokens: 256 random bits, shown once, stored only as a SHA-256
//! hash and compared in constant time. A slow KDF buys nothing here: the
//! token has full entropy, so its hash cannot be brute-forced.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Marks orgsync SCIM tokens, so secret scanners and humans recognise them.
pub const TOKEN_PREFIX: &str = "osscim_";

/// A freshly issued token in clear text. It exists only until it is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct ScimToken(String);

impl ScimToken {
    /// Builds a token from 32 bytes of OS randomness.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for ScimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScimToken(***)")
    }
}

/// The stored form of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    /// Constant-time equality, so timing reveals nothing about a stored hash.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// # Errors
    /// When the stored value is not 32 bytes (a corrupt row).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, std::array::TryFromSliceError> {
        Ok(Self(bytes.try_into()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_its_own_hash_and_never_prints() {
        let token = ScimToken::from_random([7; 32]);
        assert!(token.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(token.expose().len(), TOKEN_PREFIX.len() + 43);
        assert!(token.hash().matches(&TokenHash::of(token.expose())));
        assert!(!token.hash().matches(&TokenHash::of("osscim_other")));
        assert_eq!(format!("{token:?}"), "ScimToken(***)");
    }
}
