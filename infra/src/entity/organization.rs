use orgsync_domain::org::{OrgId, OrgKind, OrgName, Organization, ProvisioningMode, Slug};
use sea_orm::entity::prelude::*;
use time::OffsetDateTime;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub root_id: Uuid,
    pub kind: String,
    pub name: String,
    pub slug: String,
    pub provisioning_mode: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl TryFrom<Model> for Organization {
    type Error = anyhow::Error;

    fn try_from(row: Model) -> Result<Self, Self::Error> {
        let corrupt = |e: orgsync_domain::Error| anyhow::anyhow!("organization {}: {e}", row.id);
        Ok(Organization {
            id: OrgId(row.id),
            parent_id: row.parent_id.map(OrgId),
            root_id: OrgId(row.root_id),
            kind: OrgKind::parse(&row.kind).map_err(corrupt)?,
            name: OrgName::parse(&row.name).map_err(corrupt)?,
            slug: Slug::parse(&row.slug).map_err(corrupt)?,
            provisioning_mode: ProvisioningMode::parse(&row.provisioning_mode).map_err(corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl From<&Organization> for ActiveModel {
    fn from(org: &Organization) -> Self {
        use sea_orm::ActiveValue::Set;
        Self {
            id: Set(org.id.0),
            parent_id: Set(org.parent_id.map(|p| p.0)),
            root_id: Set(org.root_id.0),
            kind: Set(org.kind.as_str().to_owned()),
            name: Set(org.name.as_str().to_owned()),
            slug: Set(org.slug.as_str().to_owned()),
            provisioning_mode: Set(org.provisioning_mode.as_str().to_owned()),
            created_at: Set(org.created_at),
            updated_at: Set(org.updated_at),
        }
    }
}
