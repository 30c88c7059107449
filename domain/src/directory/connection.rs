use time::OffsetDateTime;

use crate::org::OrgId;

crate::id::uuid_id!(
    /// Identifies an enterprise connection; it is also the SCIM base URL's last segment.
    ConnectionId
);

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
