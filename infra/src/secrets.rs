//! Secrets from the operating system's CSPRNG.

use orgsync_domain::ports::SecretSource;
use rand::RngCore;

#[derive(Debug, Default, Clone, Copy)]
pub struct OsSecretSource;

impl SecretSource for OsSecretSource {
    fn random_32(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes
    }
}
