//! The organization tree on PostgreSQL or SQLite (one implementation: the SQL
//! is portable, and sea-orm renders it for the engine at hand).

use orgsync_domain::error::ConflictCode;
use orgsync_domain::org::{OrgId, Organization, TreeNode};
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::OrgRepository;
use orgsync_domain::{Error, Result};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement, TransactionTrait,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{db_err, room_for_one_more, sql_err};
use crate::entity::{org_closure, organization};
use crate::Database;

const SLUG_TAKEN: &str = "an organization with this slug already exists";

pub struct SqlOrgRepository {
    db: Database,
}

impl SqlOrgRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn into_domain(row: organization::Model) -> Result<Organization> {
    Organization::try_from(row).map_err(Error::Internal)
}

#[derive(FromQueryResult)]
struct SubtreeRow {
    depth: i32,
    id: Uuid,
    parent_id: Option<Uuid>,
    root_id: Uuid,
    kind: String,
    name: String,
    slug: String,
    provisioning_mode: String,
    created_at: time::OffsetDateTime,
    updated_at: time::OffsetDateTime,
}

#[async_trait::async_trait]
impl OrgRepository for SqlOrgRepository {
    async fn insert(&self, org: &Organization, children_at_most: u64) -> Result<()> {
        let backend = self.db.backend();
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        if let Some(parent) = org.parent_id {
            let children = ("organizations", "parent_id");
            room_for_one_more(&self.db, &txn, parent.0, children, children_at_most).await?;
        }
        organization::ActiveModel::from(org)
            .insert(&txn)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::ForeignKeyConstraintViolation(_)) => Error::NotFound {
                    entity: "organization",
                },
                _ => sql_err(e, SLUG_TAKEN),
            })?;
        // The new org's ancestry: every ancestor of its parent, one level
        // further away, plus itself at depth 0.
        let mut ancestry = Query::insert();
        ancestry.into_table(org_closure::Entity).columns([
            org_closure::Column::AncestorId,
            org_closure::Column::DescendantId,
            org_closure::Column::Depth,
        ]);
        if let Some(parent) = org.parent_id {
            let from_parent = Query::select()
                .column(org_closure::Column::AncestorId)
                .expr(Expr::val(org.id.0))
                .expr(Expr::col(org_closure::Column::Depth).add(1))
                .from(org_closure::Entity)
                .and_where(Expr::col(org_closure::Column::DescendantId).eq(parent.0))
                .to_owned();
            ancestry
                .select_from(from_parent)
                .map_err(|e| Error::Internal(e.into()))?;
            txn.execute(backend.build(&ancestry))
                .await
                .map_err(db_err)?;
            ancestry = Query::insert();
            ancestry.into_table(org_closure::Entity).columns([
                org_closure::Column::AncestorId,
                org_closure::Column::DescendantId,
                org_closure::Column::Depth,
            ]);
        }
        ancestry.values_panic([org.id.0.into(), org.id.0.into(), 0.into()]);
        txn.execute(backend.build(&ancestry))
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn find(&self, id: OrgId) -> Result<Option<Organization>> {
        organization::Entity::find_by_id(id.0)
            .one(self.db.connection())
            .await
            .map_err(db_err)?
            .map(into_domain)
            .transpose()
    }

    async fn is_within(&self, ancestor: OrgId, descendant: OrgId) -> Result<bool> {
        let count = org_closure::Entity::find()
            .filter(org_closure::Column::AncestorId.eq(ancestor.0))
            .filter(org_closure::Column::DescendantId.eq(descendant.0))
            .count(self.db.connection())
            .await
            .map_err(db_err)?;
        Ok(count > 0)
    }

    async fn depth(&self, id: OrgId) -> Result<u32> {
        let deepest = org_closure::Entity::find()
            .filter(org_closure::Column::DescendantId.eq(id.0))
            .order_by_desc(org_closure::Column::Depth)
            .one(self.db.connection())
            .await
            .map_err(db_err)?;
        Ok(deepest.map_or(0, |row| u32::try_from(row.depth).unwrap_or(0)))
    }

    async fn count_children(&self, parent: OrgId) -> Result<u64> {
        organization::Entity::find()
            .filter(organization::Column::ParentId.eq(parent.0))
            .count(self.db.connection())
            .await
            .map_err(db_err)
    }

    async fn children(&self, parent: OrgId, page: PageRequest) -> Result<Page<Organization>> {
        let mut query = organization::Entity::find()
            .filter(organization::Column::ParentId.eq(parent.0))
            .order_by_asc(organization::Column::Id)
            .limit(page.limit + 1);
        if let Some(after) = page.after {
            query = query.filter(organization::Column::Id.gt(after));
        }
        let rows = query.all(self.db.connection()).await.map_err(db_err)?;
        let orgs = rows
            .into_iter()
            .map(into_domain)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(orgs, page.limit, |o| o.id.0))
    }

    async fn subtree(&self, top: OrgId) -> Result<Vec<TreeNode>> {
        let sql = "SELECT c.depth, o.id, o.parent_id, o.root_id, o.kind, o.name, o.slug, \
                   o.provisioning_mode, o.created_at, o.updated_at \
                   FROM org_closure c JOIN organizations o ON o.id = c.descendant_id \
                   WHERE c.ancestor_id = $1 ORDER BY c.depth, o.id";
        let rows = SubtreeRow::find_by_statement(self.db.stmt(sql, vec![top.0.into()]))
            .all(self.db.connection())
            .await
            .map_err(db_err)?;
        rows.into_iter()
            .map(|row| {
                let depth = u32::try_from(row.depth).map_err(|_| {
                    Error::Internal(anyhow::anyhow!("negative depth in org_closure"))
                })?;
                let org = into_domain(organization::Model {
                    id: row.id,
                    parent_id: row.parent_id,
                    root_id: row.root_id,
                    kind: row.kind,
                    name: row.name,
                    slug: row.slug,
                    provisioning_mode: row.provisioning_mode,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                })?;
                Ok(TreeNode { org, depth })
            })
            .collect()
    }

    async fn update(&self, org: &Organization) -> Result<()> {
        let result = organization::Entity::update_many()
            .col_expr(organization::Column::Name, Expr::value(org.name.as_str()))
            .col_expr(
                organization::Column::ProvisioningMode,
                Expr::value(org.provisioning_mode.as_str()),
            )
            .col_expr(organization::Column::UpdatedAt, Expr::value(org.updated_at))
            .filter(organization::Column::Id.eq(org.id.0))
            .exec(self.db.connection())
            .await
            .map_err(db_err)?;
        if result.rows_affected == 0 {
            return Err(Error::NotFound {
                entity: "organization",
            });
        }
        Ok(())
    }

    async fn delete_leaf(&self, id: OrgId, now: OffsetDateTime) -> Result<()> {
        let has_children = || {
            Error::conflict(
                ConflictCode::HasChildren,
                "the organization has child organizations; delete them first",
            )
        };
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        let backend = txn.get_database_backend();
        let stmt = |sql: &str| Statement::from_sql_and_values(backend, sql, [id.0.into()]);
        if backend == DbBackend::Sqlite {
            // The one writer from here on, before anything is read: a
            // transaction that read first may not write after another did.
            txn.execute(stmt(
                "UPDATE organizations SET updated_at = updated_at WHERE id = $1",
            ))
            .await
            .map_err(db_err)?;
        }
        let root: Uuid = txn
            .query_one(stmt("SELECT root_id FROM organizations WHERE id = $1"))
            .await
            .map_err(db_err)?
            .ok_or(Error::NotFound {
                entity: "organization",
            })?
            .try_get("", "root_id")
            .map_err(db_err)?;
        // The org's events stay in its tenant's log for its ancestors to
        // read: numbered while the org still names their tenant, and found
        // through the ancestry it had. The tenant's sequence is taken before
        // the org's row, in the order a sequencer takes them (creating the
        // sequence checks the root's key), or deleting a root deadlocks
        // with one.
        crate::events::number_waiting(&txn, root).await?;
        // Locked before the checks, so what they find still holds at the
        // delete: a new member's or child's key check waits for this lock.
        if backend == DbBackend::Postgres {
            txn.execute(stmt("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE"))
                .await
                .map_err(db_err)?;
        }
        let present = |sql: &'static str| {
            let query = txn.query_one(stmt(sql));
            async move { query.await.map(|row| row.is_some()).map_err(db_err) }
        };
        if present("SELECT 1 AS present FROM organizations WHERE parent_id = $1 LIMIT 1").await? {
            return Err(has_children());
        }
        // Members leave through the removal gate, each with its event; a key
        // cascade would take anyone who joined since without a trace.
        if present("SELECT 1 AS present FROM members WHERE org_id = $1 LIMIT 1").await? {
            return Err(Error::conflict(
                ConflictCode::HasMembers,
                "members joined the organization while it was being deleted; preview the \
                 deletion again",
            ));
        }
        txn.execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO retired_org_ancestors (ancestor_id, org_id, retired_at) \
             SELECT ancestor_id, descendant_id, $2 FROM org_closure \
             WHERE descendant_id = $1 AND depth > 0",
            [id.0.into(), now.into()],
        ))
        .await
        .map_err(db_err)?;
        // A child created concurrently makes the foreign key refuse the delete.
        let result = organization::Entity::delete_by_id(id.0)
            .exec(&txn)
            .await
            .map_err(|e| match e.sql_err() {
                Some(SqlErr::ForeignKeyConstraintViolation(_)) => has_children(),
                _ => db_err(e),
            })?;
        if result.rows_affected == 0 {
            return Err(Error::NotFound {
                entity: "organization",
            });
        }
        txn.commit().await.map_err(db_err)
    }
}
