/// Cryptographically secure randomness for secrets (SCIM tokens).
pub trait SecretSource: Send + Sync {
    fn random_32(&self) -> [u8; 32];
}
