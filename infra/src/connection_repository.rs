//! Enterprise connections and SCIM token hashes.

use orgsync_domain::directory::{ConnectionId, EnterpriseConnection, TokenHash};
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{ConnectionRepository, ScimAccess};
use orgsync_domain::sync::SourceShift;
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, TransactionTrait};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

use uuid::Uuid;

use crate::db::{db_err, room_for_one_more};
use crate::Database;

/// A token hash and when it stops working (`None`: until revoked).
type LiveToken = (TokenHash, Option<OffsetDateTime>);

/// A connection's tenant and tokens (with each one's expiry), as cached;
/// `None`: no such connection, or directory sync off.
type CachedAccess = Option<(OrgId, Vec<LiveToken>)>;

pub struct SqlConnectionRepository {
    db: Database,
    /// Each connection's tenant and live token hashes, read at most
    /// once per TTL: every SCIM request authenticates, and this saves it a
    /// round trip. Changes made through this repository invalidate the entry
    /// at once; other processes' revocations apply within the TTL. Unknown
    /// connection ids are cached too (as no access), so guessing ids costs the
    /// database one look-up per id and TTL; the cache is bounded in entries,
    /// and concurrent misses of one id share a single look-up.
    token_cache: Option<moka::future::Cache<ConnectionId, Arc<CachedAccess>>>,
}

impl SqlConnectionRepository {
    pub fn new(db: Database) -> Self {
        Self::with_token_cache(db, Duration::ZERO)
    }

    /// A repository that reuses token look-ups for `ttl` (zero: never), for
    /// at most 100,000 connections.
    pub fn with_token_cache(db: Database, ttl: Duration) -> Self {
        Self::with_bounded_token_cache(db, ttl, 100_000)
    }

    /// A repository that reuses token look-ups for `ttl` (zero: never), for
    /// at most `entries` connections (the least used go first).
    pub fn with_bounded_token_cache(db: Database, ttl: Duration, entries: u64) -> Self {
        let token_cache = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(entries)
                .time_to_live(ttl)
                .build()
        });
        Self { db, token_cache }
    }

    async fn forget_tokens(&self, id: ConnectionId) {
        if let Some(cache) = &self.token_cache {
            cache.invalidate(&id).await;
        }
    }

    /// Runs a write that names one org's connection: no row written means
    /// the org has no such connection.
    async fn write_connection(&self, statement: Statement) -> Result<()> {
        let result = self
            .db
            .connection()
            .execute(statement)
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound {
                entity: "connection",
            });
        }
        Ok(())
    }
}

#[derive(FromQueryResult)]
struct ConnectionRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    directory_sync_enabled: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<ConnectionRow> for EnterpriseConnection {
    fn from(row: ConnectionRow) -> Self {
        Self {
            id: ConnectionId(row.id),
            org_id: OrgId(row.org_id),
            name: row.name,
            directory_sync_enabled: row.directory_sync_enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, org_id, name, directory_sync_enabled, created_at, updated_at";

#[async_trait::async_trait]
impl ConnectionRepository for SqlConnectionRepository {
    async fn insert(&self, c: &EnterpriseConnection, at_most: u64) -> Result<()> {
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        let connections = ("enterprise_connections", "org_id");
        room_for_one_more(&self.db, &txn, c.org_id.0, connections, at_most).await?;
        txn.execute(self.db.stmt(
                "INSERT INTO enterprise_connections (id, org_id, name, directory_sync_enabled, event_seq, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6)",
                vec![
                    c.id.0.into(),
                    c.org_id.0.into(),
                    c.name.clone().into(),
                    c.directory_sync_enabled.into(),
                    c.created_at.into(),
                    c.updated_at.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn find(&self, org: OrgId, id: ConnectionId) -> Result<Option<EnterpriseConnection>> {
        let row = ConnectionRow::find_by_statement(self.db.stmt(
            &format!("SELECT {COLUMNS} FROM enterprise_connections WHERE org_id = $1 AND id = $2"),
            vec![org.0.into(), id.0.into()],
        ))
        .one(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(row.map(Into::into))
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> Result<Page<EnterpriseConnection>> {
        let after = page.after.unwrap_or(Uuid::nil());
        let limit = i64::try_from(page.limit + 1).unwrap_or(i64::MAX);
        let rows = ConnectionRow::find_by_statement(self.db.stmt(
            &format!(
                "SELECT {COLUMNS} FROM enterprise_connections WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            vec![org.0.into(), after.into(), limit.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        let items: Vec<EnterpriseConnection> = rows.into_iter().map(Into::into).collect();
        Ok(Page::from_overfetch(items, page.limit, |c| c.id.0))
    }

    async fn delete(&self, org: OrgId, id: ConnectionId) -> Result<()> {
        self.write_connection(self.db.stmt(
            "DELETE FROM enterprise_connections WHERE org_id = $1 AND id = $2",
            vec![org.0.into(), id.0.into()],
        ))
        .await?;
        self.forget_tokens(id).await;
        Ok(())
    }

    async fn set_directory_sync(
        &self,
        org: OrgId,
        id: ConnectionId,
        enabled: bool,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.write_connection(self.db.stmt(
            "UPDATE enterprise_connections SET directory_sync_enabled = $1, updated_at = $2 \
             WHERE org_id = $3 AND id = $4",
            vec![enabled.into(), now.into(), org.0.into(), id.0.into()],
        ))
        .await?;
        self.forget_tokens(id).await;
        if !enabled {
            self.revoke_tokens(id, now).await?;
        }
        Ok(())
    }

    async fn issue_token(
        &self,
        id: ConnectionId,
        hash: TokenHash,
        now: OffsetDateTime,
        others_expire_at: OffsetDateTime,
    ) -> Result<()> {
        use sea_orm::TransactionTrait;
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.db.stmt(
            "UPDATE scim_tokens SET expires_at = $1 \
             WHERE connection_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
            vec![others_expire_at.into(), id.0.into()],
        ))
        .await
        .map_err(db_err)?;
        txn.execute(self.db.stmt(
            "INSERT INTO scim_tokens (id, connection_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL)",
            vec![Uuid::now_v7().into(), id.0.into(), hash.0.to_vec().into(), now.into()],
        ))
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        self.forget_tokens(id).await;
        Ok(())
    }

    async fn revoke_tokens(&self, id: ConnectionId, now: OffsetDateTime) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt(
                "UPDATE scim_tokens SET expires_at = $1 \
                 WHERE connection_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                vec![now.into(), id.0.into()],
            ))
            .await
            .map_err(db_err)?;
        self.forget_tokens(id).await;
        Ok(())
    }

    async fn scim_access(
        &self,
        id: ConnectionId,
        now: OffsetDateTime,
    ) -> Result<Option<ScimAccess>> {
        let access = match &self.token_cache {
            Some(cache) => cache
                .try_get_with(id, async { self.fetch_access(id, now).await.map(Arc::new) })
                .await
                .map_err(|shared: Arc<Error>| match Arc::try_unwrap(shared) {
                    Ok(err) => err,
                    // Another request's look-up failed the same way; its cause is logged there.
                    Err(_) => Error::Unavailable("the database did not answer".into()),
                })?,
            None => Arc::new(self.fetch_access(id, now).await?),
        };
        Ok(access.as_ref().as_ref().map(|(tenant, tokens)| ScimAccess {
            tenant: *tenant,
            // Expiry is checked on every call, so a cached grace period still ends on time.
            token_hashes: tokens
                .iter()
                .filter(|(_, expires)| expires.is_none_or(|at| at > now))
                .map(|(hash, _)| *hash)
                .collect(),
        }))
    }

    async fn drawing_connection(&self, org: OrgId) -> Result<Option<ConnectionId>> {
        let id = self.db.value(
            "SELECT c.id FROM org_closure oc JOIN enterprise_connections c ON c.org_id = oc.ancestor_id \
             WHERE oc.descendant_id = $1 AND c.directory_sync_enabled ORDER BY oc.depth, c.id LIMIT 1",
            vec![org.0.into()],
        )
        .await?;
        Ok(id.map(ConnectionId))
    }

    async fn lagging(&self) -> Result<Vec<ConnectionId>> {
        let ids: Vec<Uuid> = self.db.column(
            "SELECT c.id FROM enterprise_connections c WHERE c.directory_sync_enabled AND ( \
               EXISTS (SELECT 1 FROM directory_events e WHERE e.connection_id = c.id AND e.seq IS NULL) \
               OR EXISTS (SELECT 1 FROM org_directory_cursors oc WHERE oc.connection_id = c.id AND oc.applied_seq < c.event_seq))",
            vec![],
        )
        .await?;
        Ok(ids.into_iter().map(ConnectionId).collect())
    }

    async fn orgs_drawing_on(&self, id: ConnectionId) -> Result<Vec<OrgId>> {
        // Orgs in SCIM mode under the connection's org for which no nearer
        // (or, at equal depth, earlier) connection with directory sync on exists.
        let ids: Vec<Uuid> = self.db.column(
            "SELECT o.id FROM enterprise_connections c \
             JOIN org_closure oc ON oc.ancestor_id = c.org_id \
             JOIN organizations o ON o.id = oc.descendant_id \
             WHERE c.id = $1 AND c.directory_sync_enabled AND o.provisioning_mode = 'scim' \
             AND NOT EXISTS (SELECT 1 FROM org_closure oc2 \
               JOIN enterprise_connections c2 ON c2.org_id = oc2.ancestor_id AND c2.directory_sync_enabled \
               WHERE oc2.descendant_id = o.id AND (oc2.depth < oc.depth OR (oc2.depth = oc.depth AND c2.id < c.id))) \
             ORDER BY o.id",
            vec![id.0.into()],
        )
        .await?;
        Ok(ids.into_iter().map(OrgId).collect())
    }

    async fn source_shifts(
        &self,
        id: ConnectionId,
        enabled_after: bool,
    ) -> Result<Vec<SourceShift>> {
        #[derive(FromQueryResult)]
        struct Row {
            org_id: Uuid,
            before_id: Option<Uuid>,
            after_id: Option<Uuid>,
        }
        // The same rule as `drawing_connection` (nearest, then lowest id),
        // evaluated twice over the connection's subtree: as things are, and
        // with `id` counted as on or off.
        let nearest = |enabled: &str| {
            format!(
                "(SELECT c.id FROM org_closure a JOIN enterprise_connections c ON c.org_id = a.ancestor_id \
                 WHERE a.descendant_id = o.id AND {enabled} ORDER BY a.depth, c.id LIMIT 1)"
            )
        };
        let rows = Row::find_by_statement(self.db.stmt(
            &format!(
                "SELECT o.id AS org_id, {} AS before_id, {} AS after_id \
                 FROM enterprise_connections t \
                 JOIN org_closure sub ON sub.ancestor_id = t.org_id \
                 JOIN organizations o ON o.id = sub.descendant_id \
                 WHERE t.id = $1 AND o.provisioning_mode = 'scim' ORDER BY o.id",
                nearest("c.directory_sync_enabled"),
                nearest("CASE WHEN c.id = $1 THEN $2 ELSE c.directory_sync_enabled END"),
            ),
            vec![id.0.into(), enabled_after.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .filter(|r| r.before_id != r.after_id)
            .map(|r| SourceShift {
                org_id: OrgId(r.org_id),
                from: r.before_id.map(ConnectionId),
                to: r.after_id.map(ConnectionId),
            })
            .collect())
    }
}

impl SqlConnectionRepository {
    async fn fetch_access(&self, id: ConnectionId, now: OffsetDateTime) -> Result<CachedAccess> {
        #[derive(FromQueryResult)]
        struct Row {
            root_id: Uuid,
            token_hash: Option<Vec<u8>>,
            expires_at: Option<OffsetDateTime>,
        }
        let rows = Row::find_by_statement(self.db.stmt(
            "SELECT o.root_id, t.token_hash, t.expires_at FROM enterprise_connections c \
             JOIN organizations o ON o.id = c.org_id \
             LEFT JOIN scim_tokens t ON t.connection_id = c.id \
               AND (t.expires_at IS NULL OR t.expires_at > $2) \
             WHERE c.id = $1 AND c.directory_sync_enabled",
            vec![id.0.into(), now.into()],
        ))
        .all(self.db.connection())
        .await
        .map_err(db_err)?;
        let Some(tenant) = rows.first().map(|row| OrgId(row.root_id)) else {
            return Ok(None);
        };
        let tokens = rows
            .into_iter()
            .filter_map(|row| Some((row.token_hash?, row.expires_at)))
            .map(|(hash, expires_at)| {
                let hash = TokenHash::from_slice(&hash).map_err(|_| {
                    Error::Internal(anyhow::anyhow!("corrupt token hash for connection {id}"))
                })?;
                Ok((hash, expires_at))
            })
            .collect::<Result<_>>()?;
        Ok(Some((tenant, tokens)))
    }
}
