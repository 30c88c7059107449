//! Enterprise connections, their SCIM tokens, and the directory they own:
//! users, groups, group members (one row each, so a member change costs one
//! row whatever the group's size) and the change-event log.

use sea_orm_migration::prelude::*;

use crate::ddl::{
    bigint, cascading_key, create_index, create_unique_index, drop_tables, jsonb, text,
    timestamptz, uuid, uuid_key, varchar,
};
use crate::execute_all;

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

fn cascade_to_connection(
    table: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    cascading_key(
        table,
        col,
        EnterpriseConnections::Table,
        EnterpriseConnections::Id,
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EnterpriseConnections::Table)
                    .col(uuid_key(EnterpriseConnections::Id))
                    .col(uuid(EnterpriseConnections::OrgId))
                    .col(varchar(EnterpriseConnections::Name, 200))
                    .col(
                        ColumnDef::new(EnterpriseConnections::DirectorySyncEnabled)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(bigint(EnterpriseConnections::EventSeq).default(0))
                    .col(timestamptz(EnterpriseConnections::CreatedAt))
                    .col(timestamptz(EnterpriseConnections::UpdatedAt))
                    .foreign_key(&mut cascading_key(
                        EnterpriseConnections::Table,
                        EnterpriseConnections::OrgId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        create_index(
            manager,
            "enterprise_connections_org_idx",
            EnterpriseConnections::Table,
            [EnterpriseConnections::OrgId, EnterpriseConnections::Id],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScimTokens::Table)
                    .col(uuid_key(ScimTokens::Id))
                    .col(uuid(ScimTokens::ConnectionId))
                    .col(ColumnDef::new(ScimTokens::TokenHash).binary().not_null())
                    .col(timestamptz(ScimTokens::CreatedAt))
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
        create_index(
            manager,
            "scim_tokens_connection_idx",
            ScimTokens::Table,
            [ScimTokens::ConnectionId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DirectoryUsers::Table)
                    .col(uuid_key(DirectoryUsers::Id))
                    .col(uuid(DirectoryUsers::ConnectionId))
                    .col(text(DirectoryUsers::UserName))
                    .col(text(DirectoryUsers::UserNameLower))
                    .col(ColumnDef::new(DirectoryUsers::ExternalId).text().null())
                    .col(ColumnDef::new(DirectoryUsers::DisplayName).text().null())
                    .col(ColumnDef::new(DirectoryUsers::Active).boolean().not_null())
                    .col(ColumnDef::new(DirectoryUsers::Email).text().null())
                    .col(jsonb(DirectoryUsers::Resource))
                    .col(bigint(DirectoryUsers::Version))
                    .col(timestamptz(DirectoryUsers::CreatedAt))
                    .col(timestamptz(DirectoryUsers::UpdatedAt))
                    .foreign_key(&mut cascade_to_connection(
                        DirectoryUsers::Table,
                        DirectoryUsers::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        // userName is unique per directory, case-insensitively (RFC 7643: caseExact false).
        create_unique_index(
            manager,
            "directory_users_user_name_key",
            DirectoryUsers::Table,
            [DirectoryUsers::ConnectionId, DirectoryUsers::UserNameLower],
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
            create_index(
                manager,
                name,
                DirectoryUsers::Table,
                [DirectoryUsers::ConnectionId, col],
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DirectoryGroups::Table)
                    .col(uuid_key(DirectoryGroups::Id))
                    .col(uuid(DirectoryGroups::ConnectionId))
                    .col(text(DirectoryGroups::DisplayName))
                    .col(text(DirectoryGroups::DisplayNameLower))
                    .col(ColumnDef::new(DirectoryGroups::ExternalId).text().null())
                    .col(jsonb(DirectoryGroups::Resource))
                    .col(bigint(DirectoryGroups::MemberCount).default(0))
                    .col(bigint(DirectoryGroups::Version))
                    .col(timestamptz(DirectoryGroups::CreatedAt))
                    .col(timestamptz(DirectoryGroups::UpdatedAt))
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
            create_index(
                manager,
                name,
                DirectoryGroups::Table,
                [DirectoryGroups::ConnectionId, col],
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(DirectoryGroupMembers::Table)
                    .col(uuid(DirectoryGroupMembers::ConnectionId))
                    .col(uuid(DirectoryGroupMembers::GroupId))
                    .col(text(DirectoryGroupMembers::MemberValue))
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
                    .foreign_key(&mut cascading_key(
                        DirectoryGroupMembers::Table,
                        DirectoryGroupMembers::GroupId,
                        DirectoryGroups::Table,
                        DirectoryGroups::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // "Which groups is this user in" (User.groups, user deletion).
        create_index(
            manager,
            "directory_group_members_member_idx",
            DirectoryGroupMembers::Table,
            [
                DirectoryGroupMembers::ConnectionId,
                DirectoryGroupMembers::MemberValue,
            ],
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
                    .col(uuid(DirectoryEvents::ConnectionId))
                    // Assigned after commit by the sequencer, in the order events become visible.
                    .col(ColumnDef::new(DirectoryEvents::Seq).big_integer().null())
                    .col(varchar(DirectoryEvents::EntityKind, 16))
                    .col(uuid(DirectoryEvents::EntityId))
                    .col(bigint(DirectoryEvents::EntityVersion))
                    .col(varchar(DirectoryEvents::Op, 32))
                    .col(timestamptz(DirectoryEvents::OccurredAt))
                    .foreign_key(&mut cascade_to_connection(
                        DirectoryEvents::Table,
                        DirectoryEvents::ConnectionId,
                    ))
                    .to_owned(),
            )
            .await?;
        create_unique_index(
            manager,
            "directory_events_seq_key",
            DirectoryEvents::Table,
            [DirectoryEvents::ConnectionId, DirectoryEvents::Seq],
        )
        .await?;
        // The sequencer's work list: events of a connection not yet numbered.
        execute_all(
            manager,
            &["CREATE INDEX directory_events_unsequenced_idx ON directory_events (connection_id, id) WHERE seq IS NULL"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            [
                DirectoryEvents::Table.into_iden(),
                DirectoryGroupMembers::Table.into_iden(),
                DirectoryGroups::Table.into_iden(),
                DirectoryUsers::Table.into_iden(),
                ScimTokens::Table.into_iden(),
                EnterpriseConnections::Table.into_iden(),
            ],
        )
        .await
    }
}
