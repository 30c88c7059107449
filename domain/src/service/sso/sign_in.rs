//! Who a signing-in identity already is in the org.

use super::SsoPorts;
use crate::membership::Member;
use crate::sso::{PendingLogin, SsoProfile};
use crate::Result;

/// The member this identity is, in order of trust: the member its subject
/// signed in as before; the member of the directory user it is (by
/// `externalId`, then userName or email); a member with its email that no
/// other subject of this connection has claimed.
pub(super) async fn find_member(
    ports: &SsoPorts,
    login: &PendingLogin,
    profile: &SsoProfile,
) -> Result<Option<Member>> {
    let (org, conn) = (login.org_id, login.connection_id);
    if let Some(id) = ports.sso.linked_member(conn, &profile.id, org).await? {
        if let Some(member) = ports.members.find_member(org, id).await? {
            return Ok(Some(member));
        }
    }
    if let Some(directory) = ports.connections.drawing_connection(org).await? {
        if let Some(user) = ports
            .sso
            .directory_user(directory, &profile.id, &profile.email)
            .await?
        {
            let linked = ports.members.find_by_directory_users(org, &[user]).await?;
            if let Some(member) = linked.into_iter().next() {
                return Ok(Some(member));
            }
        }
    }
    ports
        .sso
        .member_by_email(org, conn, &profile.id, &profile.email)
        .await
}
