//! Enterprise connections, their SCIM tokens, and the directory they own:
//! users, groups, group members (one row each, so a member change costs one
//! row whatever the group's size) and the change-event log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum EnterpriseConnections {
    Table,
    Id,
    OrgId,
    Name,
    DirectorySyncEnabled,
    EventSeq,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScimTokens {
    Table,
    Id,
    ConnectionId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DirectoryUsers {
    Table,
    Id,
    ConnectionId,
    UserName,
    UserNameLower,
    ExternalId,
    DisplayName,
    Active,
    Email,
    Resource,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DirectoryGroups {
    Table,
    Id,
    ConnectionId,
    DisplayName,
    DisplayNameLower,
    ExternalId,
    Resource,
    MemberCount,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DirectoryGroupMembers {
    Table,
    ConnectionId,
    GroupId,
    MemberValue,
    MemberType,
    MemberDisplay,
}

#[derive(DeriveIden, Clone, Copy)]
enum DirectoryEvents {
    Table,
    Id,
    ConnectionId,
    Seq,
    EntityKind,
    EntityId,
    EntityVersion,
    Op,
    OccurredAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn cascade_to_connection(
    table: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, col)
        .to(EnterpriseConnections::Table, EnterpriseConnections::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: Vec<DynIden>,
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create().name(name).table(table).to_owned();
    for col in cols {
        stmt.col(col);
    }
    if unique {
        stmt.unique();
    }
    manager.create_index(stmt).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EnterpriseConnections::Table)
                    .col(
                        ColumnDef::new(EnterpriseConnections::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EnterpriseConnections::OrgId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EnterpriseConnections::Name)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EnterpriseConnections::DirectorySyncEnabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(EnterpriseConnections::EventSeq)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(EnterpriseConnections::CreatedAt))
                    .col(ts(EnterpriseConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(EnterpriseConnections::Table, EnterpriseConnections::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "enterprise_connections_org_idx",
            EnterpriseConnections::Table,
            vec![
                EnterpriseConnections::OrgId.into_iden(),
                EnterpriseConnections::Id.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScimTokens::Table)
                    .col(
                        ColumnDef::new(ScimTokens::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ScimTokens::ConnectionId).uuid().not_null())
                    .col(ColumnDef::new(ScimTokens::TokenHash).binary().not_null())
                    .col(ts(ScimTokens::CreatedAt))
                    .col(
                        ColumnDef::new(ScimTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut cascade_to_connection(
                        ScimTokens::Table,
                        ScimTokens::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "scim_tokens_connection_idx",
            ScimTokens::Table,
            vec![ScimTokens::ConnectionId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DirectoryUsers::Table)
                    .col(
                        ColumnDef::new(DirectoryUsers::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DirectoryUsers::ConnectionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DirectoryUsers::UserName).text().not_null())
                    .col(
                        ColumnDef::new(DirectoryUsers::UserNameLower)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DirectoryUsers::ExternalId).text().null())
                    .col(ColumnDef::new(DirectoryUsers::DisplayName).text().null())
                    .col(ColumnDef::new(DirectoryUsers::Active).boolean().not_null())
                    .col(ColumnDef::new(DirectoryUsers::Email).text().null())
                    .col(
                        ColumnDef::new(DirectoryUsers::Resource)
                            .json_binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryUsers::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ts(DirectoryUsers::CreatedAt))
                    .col(ts(DirectoryUsers::UpdatedAt))
                    .foreign_key(&mut cascade_to_connection(
                        DirectoryUsers::Table,
                        DirectoryUsers::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        // userName is unique per directory, case-insensitively (RFC 7643: caseExact false).
        index(
            manager,
            "directory_users_user_name_key",
            DirectoryUsers::Table,
            vec![
                DirectoryUsers::ConnectionId.into_iden(),
                DirectoryUsers::UserNameLower.into_iden(),
            ],
            true,
        )
        .await?;
        for (name, col) in [
            (
                "directory_users_external_id_idx",
                DirectoryUsers::ExternalId,
            ),
            ("directory_users_email_idx", DirectoryUsers::Email),
            ("directory_users_id_order_idx", DirectoryUsers::Id),
        ] {
            index(
                manager,
                name,
                DirectoryUsers::Table,
                vec![DirectoryUsers::ConnectionId.into_iden(), col.into_iden()],
                false,
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DirectoryGroups::Table)
                    .col(
                        ColumnDef::new(DirectoryGroups::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroups::ConnectionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroups::DisplayName)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroups::DisplayNameLower)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DirectoryGroups::ExternalId).text().null())
                    .col(
                        ColumnDef::new(DirectoryGroups::Resource)
                            .json_binary()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroups::MemberCount)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroups::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ts(DirectoryGroups::CreatedAt))
                    .col(ts(DirectoryGroups::UpdatedAt))
                    .foreign_key(&mut cascade_to_connection(
                        DirectoryGroups::Table,
                        DirectoryGroups::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            (
                "directory_groups_display_name_idx",
                DirectoryGroups::DisplayNameLower,
            ),
            (
                "directory_groups_external_id_idx",
                DirectoryGroups::ExternalId,
            ),
        ] {
            index(
                manager,
                name,
                DirectoryGroups::Table,
                vec![DirectoryGroups::ConnectionId.into_iden(), col.into_iden()],
                false,
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DirectoryGroupMembers::Table)
                    .col(
                        ColumnDef::new(DirectoryGroupMembers::ConnectionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroupMembers::GroupId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroupMembers::MemberValue)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroupMembers::MemberType)
                            .string_len(16)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryGroupMembers::MemberDisplay)
                            .text()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(DirectoryGroupMembers::GroupId)
                            .col(DirectoryGroupMembers::MemberValue),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DirectoryGroupMembers::Table, DirectoryGroupMembers::GroupId)
                            .to(DirectoryGroups::Table, DirectoryGroups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "Which groups is this user in" (User.groups, user deletion).
        index(
            manager,
            "directory_group_members_member_idx",
            DirectoryGroupMembers::Table,
            vec![
                DirectoryGroupMembers::ConnectionId.into_iden(),
                DirectoryGroupMembers::MemberValue.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DirectoryEvents::Table)
                    .col(
                        ColumnDef::new(DirectoryEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DirectoryEvents::ConnectionId)
                            .uuid()
                            .not_null(),
                    )
                    // Assigned after commit by the sequencer, in the order events become visible.
                    .col(ColumnDef::new(DirectoryEvents::Seq).big_integer().null())
                    .col(
                        ColumnDef::new(DirectoryEvents::EntityKind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(DirectoryEvents::EntityId).uuid().not_null())
                    .col(
                        ColumnDef::new(DirectoryEvents::EntityVersion)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DirectoryEvents::Op)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ts(DirectoryEvents::OccurredAt))
                    .foreign_key(&mut cascade_to_connection(
                        DirectoryEvents::Table,
                        DirectoryEvents::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "directory_events_seq_key",
            DirectoryEvents::Table,
            vec![
                DirectoryEvents::ConnectionId.into_iden(),
                DirectoryEvents::Seq.into_iden(),
            ],
            true,
        )
        .await?;
        // The sequencer's work list: events of a connection not yet numbered.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX directory_events_unsequenced_idx ON directory_events (connection_id, id) WHERE seq IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DirectoryEvents::Table.into_iden(),
            DirectoryGroupMembers::Table.into_iden(),
            DirectoryGroups::Table.into_iden(),
            DirectoryUsers::Table.into_iden(),
            ScimTokens::Table.into_iden(),
            EnterpriseConnections::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
