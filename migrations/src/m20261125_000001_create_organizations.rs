//! Organizations and their ancestry (a closure table: one row per
//! ancestor/descendant pair, self included at depth 0), so "is X within Y" and
//! "the subtree of Y" are single indexed look-ups on both engines.

use sea_orm_migration::prelude::*;

use crate::ddl::{
    cascading_key, create_index, create_unique_index, drop_tables, timestamptz, uuid, uuid_key,
    varchar,
};
use crate::execute_all;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    ParentId,
    RootId,
    Kind,
    Name,
    Slug,
    ProvisioningMode,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrgClosure {
    Table,
    AncestorId,
    DescendantId,
    Depth,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(uuid_key(Organizations::Id))
                    .col(ColumnDef::new(Organizations::ParentId).uuid().null())
                    .col(uuid(Organizations::RootId))
                    .col(varchar(Organizations::Kind, 16))
                    .col(varchar(Organizations::Name, 200))
                    .col(varchar(Organizations::Slug, 63))
                    .col(varchar(Organizations::ProvisioningMode, 16).default("manual"))
                    .col(timestamptz(Organizations::CreatedAt))
                    .col(timestamptz(Organizations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Organizations::Table, Organizations::ParentId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // A slug is unique within its tenant (the root included)...
        create_unique_index(
            manager,
            "organizations_root_slug_key",
            Organizations::Table,
            [Organizations::RootId, Organizations::Slug],
        )
        .await?;
        // ...and among the roots. Partial indexes read the same on both engines.
        execute_all(
            manager,
            &[
                "CREATE UNIQUE INDEX organizations_root_slug_unique_among_roots \
               ON organizations (slug) WHERE parent_id IS NULL",
            ],
        )
        .await?;
        create_index(
            manager,
            "organizations_parent_idx",
            Organizations::Table,
            [Organizations::ParentId, Organizations::Id],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrgClosure::Table)
                    .col(uuid(OrgClosure::AncestorId))
                    .col(uuid(OrgClosure::DescendantId))
                    .col(ColumnDef::new(OrgClosure::Depth).integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(OrgClosure::AncestorId)
                            .col(OrgClosure::DescendantId),
                    )
                    .foreign_key(&mut cascading_key(
                        OrgClosure::Table,
                        OrgClosure::AncestorId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut cascading_key(
                        OrgClosure::Table,
                        OrgClosure::DescendantId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "org_closure_descendant_idx",
            OrgClosure::Table,
            [OrgClosure::DescendantId, OrgClosure::Depth],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                OrgClosure::Table.into_iden(),
                Organizations::Table.into_iden(),
            ],
        )
        .await
    }
}
