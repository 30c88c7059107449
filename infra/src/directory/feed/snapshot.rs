//! Snapshots: a directory's users (all, or the ones a plan names) with the
//! groups that decide anything, read page by page a page ahead of the plan
//! that consumes them.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::membership::{DirectoryUser, ResourceKeys};
use orgsync_domain::ports::{SnapshotScope, UserPages};
use orgsync_domain::service::computing;
use orgsync_domain::Result;
use sea_orm::{FromQueryResult, Statement};
use tracing::Instrument;
use uuid::Uuid;

use crate::db::db_err;
use crate::directory::members::{memberships_of_users, MembershipRow};
use crate::directory::SqlDirectoryRepository;
use crate::filter_sql::Sql;

/// The pages of [`ChangeFeed::snapshot`](orgsync_domain::ports::ChangeFeed::snapshot).
pub(super) fn pages(
    repo: &SqlDirectoryRepository,
    conn: ConnectionId,
    scope: SnapshotScope,
) -> UserPages {
    // One page is built while one waits and the caller plans a third.
    let (pages, received) = tokio::sync::mpsc::channel(1);
    let reader = PageReader {
        repo: repo.clone(),
        conn,
        scope,
        read: 0,
        after: None,
        memberships: None,
        paired: 0,
        done: false,
    };
    // On the caller's runtime, the process's multi-threaded one (jobs and
    // requests' plans both run there), so reads go on beside the plan.
    tokio::spawn(reader.run(pages).in_current_span());
    futures::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|page| (page, received))
    })
    .boxed()
}

impl SqlDirectoryRepository {
    /// Up to `limit` users after `after`, in id order.
    async fn users_page(
        &self,
        conn: ConnectionId,
        after: Option<ResourceId>,
        limit: u64,
    ) -> Result<Vec<SnapshotRow>> {
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let after_id = match after {
            Some(after) => format!(" AND id > {}", sql.bind(after)),
            None => String::new(),
        };
        let limit = sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        self.snapshot_rows(self.db.stmt(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM directory_users \
                 WHERE connection_id = {conn_param}{after_id} ORDER BY id LIMIT {limit}"
            ),
            sql.values,
        ))
        .await
    }

    /// Every `(user, group)` membership of the directory in one of
    /// `groups`, sorted by user: one scan, streamed into 32 bytes a
    /// membership (member values that are not user ids are left out).
    async fn memberships_in(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<(Uuid, ResourceId)>> {
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
        let mut rows = MembershipRow::find_by_statement(self.db.stmt(
            &format!(
                "SELECT member_value, group_id FROM directory_group_members \
                 WHERE connection_id = {conn_param} AND group_id IN ({})",
                list.join(", ")
            ),
            sql.values,
        ))
        .stream(self.db.connection())
        .await
        .map_err(db_err)?;
        let mut memberships = Vec::new();
        while let Some(row) = rows.next().await {
            if let Some(membership) = row.map_err(db_err)?.of_user() {
                memberships.push(membership);
            }
        }
        computing(|| memberships.sort_unstable());
        Ok(memberships)
    }

    /// The users `ids` (those that exist, in id order), each with the groups
    /// it is a direct member of (among `deciding`, if given), its resource
    /// trimmed to `keys` (if given).
    pub(super) async fn users_by_id(
        &self,
        conn: ConnectionId,
        ids: &[ResourceId],
        deciding: Option<&[ResourceId]>,
        keys: Option<&ResourceKeys>,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        let rows = self.rows_by_id(conn, ids).await?;
        self.with_groups(conn, rows, deciding, keys).await
    }

    async fn snapshot_rows(&self, statement: Statement) -> Result<Vec<SnapshotRow>> {
        SnapshotRow::find_by_statement(statement)
            .all(self.db.connection())
            .await
            .map_err(db_err)
    }

    /// The users `ids` (those that exist), in id order.
    async fn rows_by_id(&self, conn: ConnectionId, ids: &[ResourceId]) -> Result<Vec<SnapshotRow>> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = chunk.iter().map(|u| sql.bind(*u)).collect();
            rows.extend(
                self.snapshot_rows(self.db.stmt(
                    &format!(
                        "SELECT {SNAPSHOT_COLUMNS} FROM directory_users \
                         WHERE connection_id = {conn_param} AND id IN ({}) ORDER BY id",
                        list.join(", ")
                    ),
                    sql.values,
                ))
                .await?,
            );
        }
        Ok(rows)
    }

    /// Pairs each user with the groups it is a direct member of (among
    /// `deciding`, if given), trimming each resource to `keys` (if given).
    async fn with_groups(
        &self,
        conn: ConnectionId,
        rows: Vec<SnapshotRow>,
        deciding: Option<&[ResourceId]>,
        keys: Option<&ResourceKeys>,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        if deciding.is_some_and(<[ResourceId]>::is_empty) || rows.is_empty() {
            return Ok(pair(rows, HashMap::new(), keys));
        }
        let statements = rows
            .chunks(LOOKUP_CHUNK)
            .map(|chunk| {
                let users: Vec<ResourceId> = chunk.iter().map(|row| row.id).collect();
                memberships_of_users(self.db.backend(), conn, &users, deciding)
            })
            .collect();
        let groups = self.groups_of(statements).await?;
        Ok(computing(|| pair(rows, groups, keys)))
    }

    /// Each user's groups, from `(member_value, group_id)` queries; member
    /// values that are not user ids (nested groups) are left out.
    async fn groups_of(
        &self,
        statements: Vec<Statement>,
    ) -> Result<HashMap<Uuid, BTreeSet<ResourceId>>> {
        let mut groups: HashMap<Uuid, BTreeSet<ResourceId>> = HashMap::new();
        for statement in statements {
            let memberships = MembershipRow::find_by_statement(statement)
                .all(self.db.connection())
                .await
                .map_err(db_err)?;
            for (user, group) in memberships.into_iter().filter_map(MembershipRow::of_user) {
                groups.entry(user).or_default().insert(group);
            }
        }
        Ok(groups)
    }
}

/// Users a snapshot page holds.
const SNAPSHOT_PAGE: usize = 5_000;

type Page = Vec<(DirectoryUser, BTreeSet<ResourceId>)>;

/// Ids bound in one lookup: a plan's page in one statement, well under
/// either engine's limit on parameters.
pub(super) const LOOKUP_CHUNK: usize = 5_000;

const SNAPSHOT_COLUMNS: &str = "id, user_name, email, display_name, active, resource";

#[derive(FromQueryResult)]
struct SnapshotRow {
    id: Uuid,
    user_name: String,
    email: Option<String>,
    display_name: Option<String>,
    active: bool,
    resource: serde_json::Value,
}

impl SnapshotRow {
    fn into_user(self) -> DirectoryUser {
        DirectoryUser {
            id: self.id,
            user_name: self.user_name,
            email: self.email,
            display_name: self.display_name,
            active: self.active,
            resource: self.resource,
        }
    }
}

/// Pairs each user with its groups (none when it has no entry), trimming
/// each resource to `keys` (if given).
fn pair(
    rows: Vec<SnapshotRow>,
    mut groups: HashMap<Uuid, BTreeSet<ResourceId>>,
    keys: Option<&ResourceKeys>,
) -> Vec<(DirectoryUser, BTreeSet<ResourceId>)> {
    rows.into_iter()
        .map(|row| {
            // Only a user of the page takes groups: a member value in the
            // range that names no user of it is left out.
            let user_groups = groups.remove(&row.id).unwrap_or_default();
            let mut user = row.into_user();
            if let Some(keys) = keys {
                keys.trim(&mut user.resource);
            }
            (user, user_groups)
        })
        .collect()
}

/// Reads a snapshot's pages ahead of the plan that consumes them.
struct PageReader {
    repo: SqlDirectoryRepository,
    conn: ConnectionId,
    scope: SnapshotScope,
    /// How many of `scope.users` are read.
    read: usize,
    /// The last user read, when reading every user.
    after: Option<ResourceId>,
    /// When reading every user: the deciding memberships, by user, read
    /// once (a page's own lookup cost more than the scan), and how many of
    /// them belong to users read.
    memberships: Option<Vec<(Uuid, ResourceId)>>,
    paired: usize,
    done: bool,
}

impl PageReader {
    /// Sends pages until the last, a failure (sent too), or the plan
    /// stopping (dropping its end).
    async fn run(mut self, pages: tokio::sync::mpsc::Sender<Result<Page>>) {
        loop {
            let page = match self.next().await {
                Ok(None) => return,
                Ok(Some(page)) => Ok(page),
                Err(error) => Err(error),
            };
            let failed = page.is_err();
            if pages.send(page).await.is_err() || failed {
                return;
            }
        }
    }

    /// The next page with at least one user; `None` once all are read.
    async fn next(&mut self) -> Result<Option<Page>> {
        let SnapshotScope {
            deciding,
            keys,
            users,
        } = &self.scope;
        while !self.done {
            let page = match users {
                Some(ids) => {
                    let ids = &ids[self.read..(self.read + SNAPSHOT_PAGE).min(ids.len())];
                    self.read += ids.len();
                    self.done = ids.len() < SNAPSHOT_PAGE;
                    if ids.is_empty() {
                        break;
                    }
                    // Ids whose user is gone since are left out of the page.
                    self.repo
                        .users_by_id(self.conn, ids, Some(deciding), Some(keys))
                        .await?
                }
                None => {
                    if self.memberships.is_none() {
                        self.memberships = Some(if deciding.is_empty() {
                            Vec::new()
                        } else {
                            self.repo.memberships_in(self.conn, deciding).await?
                        });
                    }
                    let rows = self
                        .repo
                        .users_page(self.conn, self.after, SNAPSHOT_PAGE as u64)
                        .await?;
                    self.done = rows.len() < SNAPSHOT_PAGE;
                    self.after = rows.last().map(|row| row.id);
                    computing(|| {
                        pair_in_order(
                            self.memberships.as_deref().unwrap_or_default(),
                            &mut self.paired,
                            keys,
                            rows,
                        )
                    })
                }
            };
            if !page.is_empty() {
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}

/// Pairs a page of users (in id order, after every page before) with
/// their memberships, walking the sorted memberships alongside.
fn pair_in_order(
    memberships: &[(Uuid, ResourceId)],
    paired: &mut usize,
    keys: &ResourceKeys,
    rows: Vec<SnapshotRow>,
) -> Page {
    rows.into_iter()
        .map(|row| {
            while memberships
                .get(*paired)
                .is_some_and(|(user, _)| *user < row.id)
            {
                *paired += 1;
            }
            let mut groups = BTreeSet::new();
            while let Some((_, group)) =
                memberships.get(*paired).filter(|(user, _)| *user == row.id)
            {
                groups.insert(*group);
                *paired += 1;
            }
            let mut user = row.into_user();
            keys.trim(&mut user.resource);
            (user, groups)
        })
        .collect()
}
