//! Organizations and their ancestry (a closure table: one row per
//! ancestor/descendant pair, self included at depth 0), so "is X within Y" and
//! "the subtree of Y" are single indexed look-ups on both engines.

use sea_orm_migration::prelude::*;

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
                    .col(
                        ColumnDef::new(Organizations::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Organizations::ParentId).uuid().null())
                    .col(ColumnDef::new(Organizations::RootId).uuid().not_null())
                    .col(
                        ColumnDef::new(Organizations::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::Name)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::Slug)
                            .string_len(63)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::ProvisioningMode)
                            .string_len(16)
                            .not_null()
                            .default("manual"),
                    )
                    .col(
                        ColumnDef::new(Organizations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Organizations::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
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
        manager
            .create_index(
                Index::create()
                    .name("organizations_root_slug_key")
                    .table(Organizations::Table)
                    .col(Organizations::RootId)
                    .col(Organizations::Slug)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // ...and among the roots. Partial indexes read the same on both engines.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX organizations_root_slug_unique_among_roots \
                 ON organizations (slug) WHERE parent_id IS NULL",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("organizations_parent_idx")
                    .table(Organizations::Table)
                    .col(Organizations::ParentId)
                    .col(Organizations::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrgClosure::Table)
                    .col(ColumnDef::new(OrgClosure::AncestorId).uuid().not_null())
                    .col(ColumnDef::new(OrgClosure::DescendantId).uuid().not_null())
                    .col(ColumnDef::new(OrgClosure::Depth).integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(OrgClosure::AncestorId)
                            .col(OrgClosure::DescendantId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrgClosure::Table, OrgClosure::AncestorId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrgClosure::Table, OrgClosure::DescendantId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("org_closure_descendant_idx")
                    .table(OrgClosure::Table)
                    .col(OrgClosure::DescendantId)
                    .col(OrgClosure::Depth)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrgClosure::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Organizations::Table).to_owned())
            .await
    }
}
