//! Members for an export, streamed in batches with their directory groups,
//! all as they were at one moment.

use std::collections::HashMap;

use super::*;
use crate::directory::ResourceId;
use crate::ports::ExportSnapshot;

mod admission;

pub use admission::ExportAdmission;
use admission::ExportSlot;

/// Pages through an org's members for an export, with each member's
/// directory groups, in batches of any size: memory stays bounded by the
/// batch, whatever the org's size. Every page is read from one snapshot,
/// so a member removed, re-added or moved meanwhile is listed once, as it
/// was when the export started.
pub struct MemberExport {
    org: OrgId,
    filter: MemberFilter,
    conn: Option<ConnectionId>,
    cursor: Cursor,
    group_names: GroupNames,
    /// Keys of the synced custom attributes (one column each).
    pub attribute_keys: Vec<String>,
}

/// One exported member and the display names of its directory groups.
pub type ExportRow = (Member, Vec<String>);

/// The names of the groups an export has met, read once each: every page
/// names mostly the same groups again, and there are far fewer groups than
/// members (the directory's groups bound it).
#[derive(Default)]
struct GroupNames {
    known: HashMap<ResourceId, GroupName>,
}

struct GroupName {
    /// Groups are listed by name regardless of case, then by id.
    sort_key: String,
    display: String,
}

impl GroupNames {
    /// Each of `users`' groups by name (case-insensitive, then id).
    async fn of(
        &mut self,
        snapshot: &dyn ExportSnapshot,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<HashMap<ResourceId, Vec<String>>> {
        let memberships = snapshot.memberships_of(conn, users).await?;
        let mut unknown: Vec<ResourceId> = memberships
            .iter()
            .map(|(_, group)| *group)
            .filter(|group| !self.known.contains_key(group))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            for (group, name) in snapshot.group_names(conn, &unknown).await? {
                let sort_key = name.to_lowercase();
                let display = name;
                self.known.insert(group, GroupName { sort_key, display });
            }
        }
        let mut by_user: HashMap<ResourceId, Vec<(&GroupName, ResourceId)>> = HashMap::new();
        for (user, group) in memberships {
            // A group deleted since its memberships were read has no name: left out.
            if let Some(name) = self.known.get(&group) {
                by_user.entry(user).or_default().push((name, group));
            }
        }
        Ok(by_user
            .into_iter()
            .map(|(user, mut groups)| {
                groups.sort_unstable_by(|(a, a_id), (b, b_id)| {
                    (&a.sort_key, a_id).cmp(&(&b.sort_key, b_id))
                });
                let names = groups
                    .into_iter()
                    .map(|(name, _)| name.display.clone())
                    .collect();
                (user, names)
            })
            .collect())
    }
}

/// Where an export stands: the following page is read while the current
/// one's groups are looked up, so the database answers both at once.
/// Reading holds the snapshot and the export's place; both are let go as
/// soon as the last page is read or a read fails.
enum Cursor {
    Start(Reading),
    Ahead(Reading, Page<Member>),
    Done,
}

struct Reading {
    snapshot: Box<dyn ExportSnapshot>,
    /// Its deadline ends a reader too slow to let the snapshot go.
    slot: ExportSlot,
}

impl Reading {
    fn within_time(&self) -> Result<()> {
        if tokio::time::Instant::now() > self.slot.deadline {
            return Err(Error::Busy(
                "the export read for longer than this server holds a snapshot open; \
                 export again, reading faster, or filter to fewer members"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl MemberExport {
    /// The next batch, `None` once every member was returned.
    ///
    /// # Errors
    /// Infrastructure failures, and `Busy` once the export has read for
    /// longer than `limits.export_seconds` (its client read too slowly).
    /// Either ends the export.
    pub async fn next_batch(&mut self, size: u64) -> Result<Option<Vec<ExportRow>>> {
        let Self {
            org,
            filter,
            conn,
            cursor,
            group_names,
            ..
        } = self;
        let (reading, ahead) = match std::mem::replace(cursor, Cursor::Done) {
            Cursor::Done => return Ok(None),
            Cursor::Start(reading) => (reading, None),
            Cursor::Ahead(reading, page) => (reading, Some(page)),
        };
        reading.within_time()?;
        let page = match ahead {
            Some(page) => page,
            None => {
                let first = PageRequest {
                    after: None,
                    limit: size,
                };
                reading.snapshot.members(*org, filter, first).await?
            }
        };
        let snapshot = &*reading.snapshot;
        let users: Vec<ResourceId> = page
            .items
            .iter()
            .filter_map(|m| m.directory_user_id)
            .collect();
        let groups = async {
            match conn {
                Some(conn) if !users.is_empty() => group_names.of(snapshot, *conn, &users).await,
                _ => Ok(HashMap::new()),
            }
        };
        let following = async {
            match page.next_after {
                Some(after) => {
                    let next = PageRequest {
                        after: Some(after),
                        limit: size,
                    };
                    snapshot.members(*org, filter, next).await.map(Some)
                }
                None => Ok(None),
            }
        };
        let (mut groups, following) = futures::try_join!(groups, following)?;
        if let Some(next) = following {
            *cursor = Cursor::Ahead(reading, next);
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
    /// Starts an export of the members matching `filter`, as they are now.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Read`; `Busy` when the tenant, or the
    /// server, already runs as many exports as it may.
    pub async fn export(
        &self,
        principal: &Principal,
        org: OrgId,
        filter: MemberFilter,
    ) -> Result<MemberExport> {
        let tenant = self
            .orgs
            .authorize(principal, org, Action::Read)
            .await?
            .root_id;
        self.check_group_filter(org, &filter).await?;
        let slot = self.exports.admit(tenant).await?;
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
        let reading = Reading {
            snapshot: ports.snapshots.open().await?,
            slot,
        };
        Ok(MemberExport {
            org,
            filter,
            conn,
            cursor: Cursor::Start(reading),
            group_names: GroupNames::default(),
            attribute_keys,
        })
    }
}
