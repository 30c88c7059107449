use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::org::OrgId;

/// Identifies an enterprise connection; it is also the SCIM base URL's last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An organization's link to a customer's IdP (SSO and directory sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseConnection {
    pub id: ConnectionId,
    pub org_id: OrgId,
    pub name: String,
    pub directory_sync_enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl EnterpriseConnection {
    /// The SCIM base URL an IdP is configured with.
    pub fn scim_base_url(&self, public_url: &str) -> String {
        format!("{}/scim/v2/{}", public_url.trim_end_matches('/'), self.id)
    }

    /// # Errors
    /// `Invalid` (field `name`) for a blank or overlong name.
    pub fn parse_name(raw: &str) -> crate::Result<String> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(crate::Error::invalid(
                "name",
                "must be 1 to 200 characters, without control characters",
            ));
        }
        Ok(name.to_owned())
    }
}
