//! Small keyed rows that steer sync, each read and replaced whole: an org's
//! membership settings, custom roles and seat tiers, a connection's
//! attribute definitions, and how far an org has applied its directory's
//! change log (its cursor).

use orgsync_domain::directory::ConnectionId;
use orgsync_domain::membership::{AttributeDefinition, Role, SeatTier};
use orgsync_domain::org::OrgId;
use orgsync_domain::sync::{CustomRole, MembershipSettings};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait, Value};
use time::OffsetDateTime;

use super::SqlMembershipRepository;
use crate::db::db_err;

pub(super) async fn settings(
    repo: &SqlMembershipRepository,
    org: OrgId,
) -> Result<MembershipSettings> {
    #[derive(FromQueryResult)]
    struct Row {
        group_mappings: String,
        deprovision: String,
    }
    let row = repo
        .fetch_one::<Row>(
            "SELECT group_mappings, deprovision FROM org_membership_settings WHERE org_id = $1",
            vec![org.0.into()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(MembershipSettings::default());
    };
    Ok(MembershipSettings {
        mappings: serde_json::from_str(&row.group_mappings).map_err(|e| {
            Error::Internal(anyhow::anyhow!("org {org}: corrupt group mappings: {e}"))
        })?,
        deprovision: serde_json::from_value(serde_json::Value::String(row.deprovision))
            .map_err(|e| Error::Internal(anyhow::anyhow!("org {org}: corrupt deprovision: {e}")))?,
    })
}

pub(super) async fn save_settings(
    repo: &SqlMembershipRepository,
    org: OrgId,
    settings: &MembershipSettings,
    now: OffsetDateTime,
) -> Result<()> {
    let mappings =
        serde_json::to_string(&settings.mappings).map_err(|e| Error::Internal(e.into()))?;
    let deprovision = serde_json::to_value(settings.deprovision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "remove".into());
    repo.execute(
        "INSERT INTO org_membership_settings (org_id, group_mappings, deprovision, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id) DO UPDATE SET group_mappings = excluded.group_mappings, \
         deprovision = excluded.deprovision, updated_at = excluded.updated_at",
        vec![org.0.into(), mappings.into(), deprovision.into(), now.into()],
    )
    .await
}

pub(super) async fn roles(repo: &SqlMembershipRepository, org: OrgId) -> Result<Vec<CustomRole>> {
    #[derive(FromQueryResult)]
    struct Row {
        name: String,
        capabilities: String,
    }
    let rows = repo
        .fetch_all::<Row>(
            "SELECT name, capabilities FROM org_roles WHERE org_id = $1 ORDER BY name",
            vec![org.0.into()],
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CustomRole {
                name: Role::parse(&r.name)
                    .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt role {}", r.name)))?,
                capabilities: serde_json::from_str(&r.capabilities)
                    .map_err(|e| Error::Internal(anyhow::anyhow!("corrupt capabilities: {e}")))?,
            })
        })
        .collect()
}

pub(super) async fn save_roles(
    repo: &SqlMembershipRepository,
    org: OrgId,
    roles: &[CustomRole],
) -> Result<()> {
    let mut rows = Vec::with_capacity(roles.len());
    for role in roles {
        let capabilities =
            serde_json::to_string(&role.capabilities).map_err(|e| Error::Internal(e.into()))?;
        rows.push([role.name.as_str().to_owned().into(), capabilities.into()]);
    }
    replace_org_rows(repo, org, "org_roles", "name, capabilities", rows).await
}

pub(super) async fn seat_tiers(
    repo: &SqlMembershipRepository,
    org: OrgId,
) -> Result<Vec<SeatTier>> {
    let sql = "SELECT name FROM org_seat_tiers WHERE org_id = $1 ORDER BY position";
    let names: Vec<String> = repo.db.column(sql, vec![org.0.into()]).await?;
    names
        .into_iter()
        .map(|name| {
            SeatTier::parse(&name)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt seat tier {name}")))
        })
        .collect()
}

pub(super) async fn save_seat_tiers(
    repo: &SqlMembershipRepository,
    org: OrgId,
    tiers: &[SeatTier],
) -> Result<()> {
    let rows = tiers
        .iter()
        .enumerate()
        .map(|(position, tier)| {
            [
                tier.as_str().to_owned().into(),
                i32::try_from(position).unwrap_or(i32::MAX).into(),
            ]
        })
        .collect();
    replace_org_rows(repo, org, "org_seat_tiers", "name, position", rows).await
}

pub(super) async fn attributes(
    repo: &SqlMembershipRepository,
    conn: ConnectionId,
) -> Result<Vec<AttributeDefinition>> {
    let sql = "SELECT definitions FROM connection_attributes WHERE connection_id = $1";
    let definitions: Option<String> = repo.db.value(sql, vec![conn.0.into()]).await?;
    match definitions {
        None => Ok(Vec::new()),
        Some(definitions) => serde_json::from_str(&definitions).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "connection {conn}: corrupt attribute definitions: {e}"
            ))
        }),
    }
}

pub(super) async fn save_attributes(
    repo: &SqlMembershipRepository,
    conn: ConnectionId,
    definitions: &[AttributeDefinition],
    now: OffsetDateTime,
) -> Result<()> {
    let text = serde_json::to_string(definitions).map_err(|e| Error::Internal(e.into()))?;
    repo.execute(
        "INSERT INTO connection_attributes (connection_id, definitions, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_id) DO UPDATE SET definitions = excluded.definitions, updated_at = excluded.updated_at",
        vec![conn.0.into(), text.into(), now.into()],
    )
    .await
}

pub(super) async fn cursor(
    repo: &SqlMembershipRepository,
    org: OrgId,
    conn: ConnectionId,
) -> Result<Option<i64>> {
    let sql =
        "SELECT applied_seq FROM org_directory_cursors WHERE org_id = $1 AND connection_id = $2";
    repo.db.value(sql, vec![org.0.into(), conn.0.into()]).await
}

pub(super) async fn set_cursor(
    repo: &SqlMembershipRepository,
    org: OrgId,
    conn: ConnectionId,
    applied_seq: i64,
    now: OffsetDateTime,
) -> Result<()> {
    // Never moves backwards: a slow worker finishing late cannot undo a faster one's progress.
    repo.execute(
        "INSERT INTO org_directory_cursors (org_id, connection_id, applied_seq, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id) DO UPDATE SET \
         applied_seq = CASE WHEN org_directory_cursors.connection_id = excluded.connection_id \
           AND org_directory_cursors.applied_seq > excluded.applied_seq \
           THEN org_directory_cursors.applied_seq ELSE excluded.applied_seq END, \
         connection_id = excluded.connection_id, updated_at = excluded.updated_at",
        vec![org.0.into(), conn.0.into(), applied_seq.into(), now.into()],
    )
    .await
}

/// Replaces all of an org's rows in `table` (a fixed name) with `rows`, each
/// holding the values of `columns` after `org_id`, in one transaction: a
/// reader sees the old list or the new one, never a mix.
async fn replace_org_rows(
    repo: &SqlMembershipRepository,
    org: OrgId,
    table: &'static str,
    columns: &str,
    rows: Vec<[Value; 2]>,
) -> Result<()> {
    let txn = repo.db.connection().begin().await.map_err(db_err)?;
    // One replacement of an org's rows at a time: two that each deleted
    // before the other inserted would both insert, and the second would fail
    // on the first's rows. (SQLite has one writer; the delete takes it.)
    if repo.db.backend() == sea_orm::DbBackend::Postgres {
        txn.execute(repo.db.stmt(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            vec![org.0.into()],
        ))
        .await
        .map_err(db_err)?;
    }
    txn.execute(repo.db.stmt(
        &format!("DELETE FROM {table} WHERE org_id = $1"),
        vec![org.0.into()],
    ))
    .await
    .map_err(db_err)?;
    for [first, second] in rows {
        txn.execute(repo.db.stmt(
            &format!("INSERT INTO {table} (org_id, {columns}) VALUES ($1, $2, $3)"),
            vec![org.0.into(), first, second],
        ))
        .await
        .map_err(db_err)?;
    }
    txn.commit().await.map_err(db_err)
}

pub(super) async fn jit_default_role(
    repo: &SqlMembershipRepository,
    org: OrgId,
) -> Result<Option<Role>> {
    let sql = "SELECT jit_default_role FROM organizations WHERE id = $1";
    let role: Option<Option<String>> = repo.db.value(sql, vec![org.0.into()]).await?;
    role.flatten()
        .map(|name| {
            Role::parse(&name)
                .map_err(|_| Error::Internal(anyhow::anyhow!("corrupt JIT default role {name}")))
        })
        .transpose()
}

pub(super) async fn set_jit_default_role(
    repo: &SqlMembershipRepository,
    org: OrgId,
    role: Option<&Role>,
) -> Result<()> {
    repo.db
        .connection()
        .execute(repo.db.stmt(
            "UPDATE organizations SET jit_default_role = $1 WHERE id = $2",
            vec![role.map(|r| r.as_str().to_owned()).into(), org.0.into()],
        ))
        .await
        .map_err(db_err)?;
    Ok(())
}
