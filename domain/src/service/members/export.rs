//! Members for an export, streamed in batches with their directory groups.

use super::*;

/// Pages through an org's members for an export, with each member's
/// directory groups, in batches of any size: memory stays bounded by the
/// batch, whatever the org's size.
pub struct MemberExport {
    ports: MemberPorts,
    org: OrgId,
    filter: MemberFilter,
    conn: Option<ConnectionId>,
    after: Option<uuid::Uuid>,
    done: bool,
    /// Keys of the synced custom attributes (one column each).
    pub attribute_keys: Vec<String>,
}

/// One exported member and the display names of its directory groups.
pub type ExportRow = (Member, Vec<String>);

impl MemberExport {
    /// The next batch, `None` once every member was returned.
    ///
    /// # Errors
    /// Infrastructure failures.
    pub async fn next_batch(&mut self, size: u64) -> Result<Option<Vec<ExportRow>>> {
        if self.done {
            return Ok(None);
        }
        let ports = &self.ports;
        let page = ports
            .members
            .list_members(
                self.org,
                &self.filter,
                PageRequest {
                    after: self.after,
                    limit: size,
                },
            )
            .await?;
        self.after = page.next_after;
        self.done = page.next_after.is_none();
        let users: Vec<crate::directory::ResourceId> = page
            .items
            .iter()
            .filter_map(|m| m.directory_user_id)
            .collect();
        let mut groups: std::collections::HashMap<crate::directory::ResourceId, Vec<String>> =
            std::collections::HashMap::new();
        if let (Some(conn), false) = (self.conn, users.is_empty()) {
            for (user, _, name) in ports.directory.groups_of(conn, &users).await? {
                groups.entry(user).or_default().push(name);
            }
        }
        let rows = page
            .items
            .into_iter()
            .map(|m| {
                let names = m
                    .directory_user_id
                    .and_then(|u| groups.remove(&u))
                    .unwrap_or_default();
                (m, names)
            })
            .collect();
        Ok(Some(rows))
    }
}

impl MembersService {
    /// Starts an export of the members matching `filter`.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn export(
        &self,
        principal: &Principal,
        org: OrgId,
        filter: MemberFilter,
    ) -> Result<MemberExport> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.check_group_filter(org, &filter).await?;
        let ports = &self.ports;
        let conn = ports.connections.drawing_connection(org).await?;
        let attribute_keys = match conn {
            Some(conn) => ports
                .members
                .attributes(conn)
                .await?
                .into_iter()
                .map(|d| d.key)
                .collect(),
            None => Vec::new(),
        };
        Ok(MemberExport {
            ports: self.ports.clone(),
            org,
            filter,
            conn,
            after: None,
            done: false,
            attribute_keys,
        })
    }
}
