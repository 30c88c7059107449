//! What sync reads: the change feed (the log itself is read in `events`) and
//! pages of users with the groups that decide anything.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use orgsync_domain::directory::{ChangeEvent, ConnectionId, ResourceId};
use orgsync_domain::membership::{DirectoryUser, ResourceKeys};
use orgsync_domain::ports::{ChangeFeed, SnapshotScope, UserPages};
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};
use tracing::Instrument;
use uuid::Uuid;

use super::events::sequence_events;
use super::members::MembershipRow;
use super::SqlDirectoryRepository;
use crate::db::db_err;
use crate::filter_sql::Sql;

#[async_trait::async_trait]
impl ChangeFeed for SqlDirectoryRepository {
    async fn latest_seq(&self, conn: ConnectionId) -> Result<i64> {
        sequence_events(self.db.connection(), conn).await?;
        #[derive(FromQueryResult)]
        struct Row {
            event_seq: i64,
        }
        let row = Row::find_by_statement(self.stmt(
            "SELECT event_seq FROM enterprise_connections WHERE id = $1",
            vec![conn.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map_or(0, |r| r.event_seq))
    }

    async fn events(&self, conn: ConnectionId, after: i64, limit: u64) -> Result<Vec<ChangeEvent>> {
        self.read_events(conn, "seq > $2 ORDER BY seq", after, limit)
            .await
    }

    async fn events_before(
        &self,
        conn: ConnectionId,
        before: i64,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>> {
        self.read_events(conn, "seq < $2 ORDER BY seq DESC", before, limit)
            .await
    }

    async fn changed_members(
        &self,
        conn: ConnectionId,
        events: &[i64],
        after: Option<&(i64, String)>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let seqs: Vec<String> = events.iter().map(|seq| sql.bind(*seq)).collect();
        let (after_seq, after_value) = after.cloned().unwrap_or((i64::MIN, String::new()));
        let (after_seq, after_value) = (sql.bind(after_seq), sql.bind(after_value));
        let limit = sql.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self
            .db
            .connection()
            .query_all(self.stmt(
                &format!(
                    "SELECT e.seq, m.member_value FROM directory_events e \
                     JOIN directory_event_members m ON m.event_id = e.id \
                     WHERE e.connection_id = {conn_param} AND e.seq IN ({}) \
                     AND (e.seq, m.member_value) > ({after_seq}, {after_value}) \
                     ORDER BY e.seq, m.member_value LIMIT {limit}",
                    seqs.join(", ")
                ),
                sql.values,
            ))
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64>("", "seq").map_err(db_err)?,
                    row.try_get::<String>("", "member_value").map_err(db_err)?,
                ))
            })
            .collect()
    }

    fn snapshot(&self, conn: ConnectionId, scope: SnapshotScope) -> UserPages {
        // One page is built while one waits and the caller plans a third.
        let (pages, received) = tokio::sync::mpsc::channel(1);
        let reader = PageReader {
            repo: self.clone(),
            conn,
            scope,
            read: 0,
            after: None,
            memberships: None,
            paired: 0,
            done: false,
        };
        // On the caller's runtime: a job's (all cores) reads beside its plan;
        // an HTTP worker's (one thread) interleaves the two. Sending an HTTP
        // request's pages over from the server's runtime measured slower
        // (mode switches in the cascade benchmark: 28.4 s against 33.6 s).
        tokio::spawn(reader.run(pages).in_current_span());
        futures::stream::unfold(received, |mut received| async move {
            received.recv().await.map(|page| (page, received))
        })
        .boxed()
    }

    async fn plan_candidates(
        &self,
        conn: ConnectionId,
        org: orgsync_domain::org::OrgId,
        role_groups: &[ResourceId],
    ) -> Result<Option<Vec<ResourceId>>> {
        if self.backend() != DbBackend::Postgres || !self.selective(conn, role_groups).await? {
            // The embedded engine stores ids as bytes and member values as
            // text (and works at embedded scale); and when the mapped groups
            // hold most of the directory, filtering costs more than it saves.
            return Ok(None);
        }
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let org_param = sql.bind(org.0);
        let group_list: Vec<String> = role_groups.iter().map(|g| sql.bind(*g)).collect();
        let in_groups = if group_list.is_empty() {
            String::new()
        } else {
            format!(
                "SELECT member_value AS v FROM directory_group_members WHERE connection_id = {conn_param} \
                 AND group_id IN ({}) UNION ",
                group_list.join(", ")
            )
        };
        // Member values that are not user ids (nested groups) are no candidates.
        let rows = Row::find_by_statement(self.stmt(
            &format!(
                "WITH candidates AS ({in_groups}SELECT directory_user_id::text AS v FROM members \
                 WHERE org_id = {org_param} AND directory_user_id IS NOT NULL) \
                 SELECT id FROM directory_users WHERE connection_id = {conn_param} \
                 AND id IN (SELECT v::uuid FROM candidates \
                   WHERE v ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$') \
                 ORDER BY id"
            ),
            sql.values,
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(Some(rows.into_iter().map(|r| r.id).collect()))
    }

    async fn snapshot_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        let rows = self.rows_by_id(conn, users).await?;
        self.with_groups(conn, rows, None, None).await
    }

    async fn existing_groups(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        self.existing("directory_groups", conn, groups).await
    }

    async fn existing_users(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        self.existing("directory_users", conn, users).await
    }
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
        self.snapshot_rows(self.stmt(
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
        let mut rows = MembershipRow::find_by_statement(self.stmt(
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
        memberships.sort_unstable();
        Ok(memberships)
    }

    /// The users `ids` (in id order) that exist.
    async fn users_by_id(
        &self,
        conn: ConnectionId,
        ids: &[ResourceId],
        deciding: &[ResourceId],
        keys: &ResourceKeys,
    ) -> Result<Vec<(DirectoryUser, BTreeSet<ResourceId>)>> {
        let rows = self.rows_by_id(conn, ids).await?;
        self.with_groups(conn, rows, Some(deciding), Some(keys))
            .await
    }

    /// Whether `groups` hold well under half the directory's users.
    async fn selective(&self, conn: ConnectionId, groups: &[ResourceId]) -> Result<bool> {
        #[derive(FromQueryResult)]
        struct Sizes {
            in_groups: i64,
            users: i64,
        }
        let mut sql = Sql::default();
        let conn_param = sql.bind(conn.0);
        let list: Vec<String> = groups.iter().map(|g| sql.bind(*g)).collect();
        let in_groups = if list.is_empty() {
            "0".to_owned()
        } else {
            format!(
                "(SELECT COALESCE(SUM(member_count), 0) FROM directory_groups WHERE connection_id = {conn_param} AND id IN ({}))",
                list.join(", ")
            )
        };
        let sizes = Sizes::find_by_statement(self.stmt(
            &format!(
                "SELECT CAST({in_groups} AS BIGINT) AS in_groups, \
                 (SELECT COUNT(*) FROM directory_users WHERE connection_id = {conn_param}) AS users"
            ),
            sql.values,
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(sizes.is_some_and(|s| s.in_groups * 2 < s.users))
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
                self.snapshot_rows(self.stmt(
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
        let in_groups = |sql: &mut Sql| match deciding {
            Some(deciding) => {
                let list: Vec<String> = deciding.iter().map(|g| sql.bind(*g)).collect();
                format!(" AND group_id IN ({})", list.join(", "))
            }
            None => String::new(),
        };
        let mut statements = Vec::new();
        {
            for chunk in rows.chunks(LOOKUP_CHUNK) {
                let mut sql = Sql::default();
                let conn_param = sql.bind(conn.0);
                let values: Vec<String> =
                    chunk.iter().map(|u| sql.bind(u.id.to_string())).collect();
                let in_groups = in_groups(&mut sql);
                statements.push(self.stmt(
                    &format!(
                        "SELECT member_value, group_id FROM directory_group_members \
                         WHERE connection_id = {conn_param} AND member_value IN ({}){in_groups}",
                        values.join(", ")
                    ),
                    sql.values,
                ));
            }
        }
        let groups = self.groups_of(statements).await?;
        Ok(pair(rows, groups, keys))
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

    /// Which of `ids` are rows of `table` (a fixed table name) in the directory.
    async fn existing(
        &self,
        table: &'static str,
        conn: ConnectionId,
        ids: &[ResourceId],
    ) -> Result<Vec<ResourceId>> {
        #[derive(FromQueryResult)]
        struct Row {
            id: Uuid,
        }
        let mut out = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::default();
            let conn_param = sql.bind(conn.0);
            let list: Vec<String> = chunk.iter().map(|g| sql.bind(*g)).collect();
            let rows = Row::find_by_statement(self.stmt(
                &format!(
                    "SELECT id FROM {table} WHERE connection_id = {conn_param} AND id IN ({})",
                    list.join(", ")
                ),
                sql.values,
            ))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
            out.extend(rows.into_iter().map(|r| r.id));
        }
        Ok(out)
    }
}

/// Users a snapshot page holds.
const SNAPSHOT_PAGE: usize = 5_000;

type Page = Vec<(DirectoryUser, BTreeSet<ResourceId>)>;

/// Ids bound in one lookup: a plan's page in one statement, well under
/// either engine's limit on parameters.
const LOOKUP_CHUNK: usize = 5_000;

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
                        .users_by_id(self.conn, ids, deciding, keys)
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
                    pair_in_order(
                        self.memberships.as_deref().unwrap_or_default(),
                        &mut self.paired,
                        keys,
                        rows,
                    )
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
