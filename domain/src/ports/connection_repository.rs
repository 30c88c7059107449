use time::OffsetDateTime;

use crate::directory::{ConnectionId, EnterpriseConnection, TokenHash};
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::sync::SourceShift;
use crate::Result;

/// Who may call a connection's SCIM API, and whose budget the calls spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimAccess {
    /// The root of the connection's org tree: its requests count against
    /// that tenant's rate as well as the connection's own, so a tenant's many
    /// connections cannot add up to a crowd.
    pub tenant: OrgId,
    /// Hashes of the tokens that may call.
    pub token_hashes: Vec<TokenHash>,
}

/// Stores enterprise connections and their SCIM token hashes. Every look-up
/// from the admin side is scoped by the owning org.
#[async_trait::async_trait]
pub trait ConnectionRepository: Send + Sync {
    /// Stores a new connection while its org has fewer than `at_most`
    /// (decided in the insert's transaction, so requests sent at once cannot
    /// overshoot).
    ///
    /// # Errors
    /// `Conflict(LimitReached)` when the org has its share of connections.
    async fn insert(&self, connection: &EnterpriseConnection, at_most: u64) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures; a connection of another org is `Ok(None)`.
    async fn find(&self, org: OrgId, id: ConnectionId) -> Result<Option<EnterpriseConnection>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<EnterpriseConnection>>;

    /// Deletes the connection and, with it, its tokens and directory.
    ///
    /// # Errors
    /// MUST return `NotFound` when the org has no such connection.
    async fn delete(&self, org: OrgId, id: ConnectionId) -> Result<()>;

    /// Turns directory sync on or off. Turning it off revokes every token.
    ///
    /// # Errors
    /// MUST return `NotFound` when the org has no such connection.
    async fn set_directory_sync(
        &self,
        org: OrgId,
        id: ConnectionId,
        enabled: bool,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// Stores a new token; tokens already live expire at `others_expire_at`
    /// (now, or later for a rotation grace period).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn issue_token(
        &self,
        id: ConnectionId,
        hash: TokenHash,
        now: OffsetDateTime,
        others_expire_at: OffsetDateTime,
    ) -> Result<()>;

    /// Expires every token of the connection at `now`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn revoke_tokens(&self, id: ConnectionId, now: OffsetDateTime) -> Result<()>;

    /// What a SCIM request to the connection is checked against at `now`:
    /// `None` when directory sync is off or the connection does not exist.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn scim_access(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
    ) -> Result<Option<ScimAccess>>;

    /// The connection whose directory `org` draws on when in SCIM mode: its
    /// own or its nearest ancestor's with directory sync on.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn drawing_connection(&self, org: OrgId) -> Result<Option<ConnectionId>>;

    /// Every org in SCIM mode that draws on `id` (the owner, its children and
    /// sandboxes, unless a nearer connection takes over).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn orgs_drawing_on(&self, id: ConnectionId) -> Result<Vec<OrgId>>;

    /// The orgs in SCIM mode whose directory would change if `id` provided
    /// one (`enabled_after`) or not (turned off or deleted): each with the
    /// connection it draws on now and the one it would draw on then.
    ///
    /// # Errors
    /// Only infrastructure failures; an unknown connection moves no one.
    async fn source_shifts(
        &self,
        id: ConnectionId,
        enabled_after: bool,
    ) -> Result<Vec<SourceShift>>;

    /// Connections whose change log has events some drawing org has not applied
    /// (or events not yet numbered): the ones a lost nudge left behind.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn lagging(&self) -> Result<Vec<ConnectionId>>;
}
