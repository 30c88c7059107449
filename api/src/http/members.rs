//! `/api/v1/orgs/{org}/members`, `/roles`, `/seat-tiers` and a connection's `/attributes`.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use orgsync_domain::membership::{AttributeDefinition, MemberStatus, Role, SeatTier, SpendLimit};
use orgsync_domain::service::{MemberChanges, NewMember};
use orgsync_domain::sync::{CustomRole, MemberFilter};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub(super) mod export;

use super::extract::{ConnPath, MemberPath, OrgCall};
use super::problem::{Answer, ApiError};
use super::routes::Routes;
use super::views::{nullable, ListQuery, ListView};

pub fn table() -> Routes {
    Routes::new("/api/v1", "members")
        .add(
            Method::GET,
            "/orgs/{org}/members",
            "List members (JSON, or CSV with Accept: text/csv)",
            list,
        )
        .add(
            Method::POST,
            "/orgs/{org}/members",
            "Add a member by hand (manual and JIT modes)",
            create,
        )
        .add(
            Method::GET,
            "/orgs/{org}/members/{member}",
            "Get a member",
            get,
        )
        .add(
            Method::PATCH,
            "/orgs/{org}/members/{member}",
            "Change a member by hand",
            update,
        )
        .add(
            Method::DELETE,
            "/orgs/{org}/members/{member}",
            "Remove a member",
            delete,
        )
        .add(Method::GET, "/orgs/{org}/roles", "List custom roles", roles)
        .add(
            Method::PUT,
            "/orgs/{org}/roles",
            "Replace the custom roles",
            save_roles,
        )
        .add(
            Method::GET,
            "/orgs/{org}/seat-tiers",
            "List seat tiers",
            seat_tiers,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/seat-tiers",
            "Replace the seat tiers",
            save_seat_tiers,
        )
        .add(
            Method::GET,
            "/orgs/{org}/connections/{conn}/attributes",
            "List custom attribute definitions",
            attributes,
        )
        .add(
            Method::PUT,
            "/orgs/{org}/connections/{conn}/attributes",
            "Replace the custom attribute definitions",
            save_attributes,
        )
}

#[derive(Debug, Deserialize)]
pub struct MembersQuery {
    // Not a flattened ListQuery: flattening makes the query parser see every value as a string.
    limit: Option<u64>,
    cursor: Option<String>,
    role: Option<String>,
    seat_tier: Option<String>,
    status: Option<String>,
    group: Option<Uuid>,
}

impl MembersQuery {
    fn page(&self) -> Result<orgsync_domain::page::PageRequest, ApiError> {
        Ok(ListQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()?)
    }

    pub fn filter(&self) -> Result<MemberFilter, ApiError> {
        Ok(MemberFilter {
            role: self.role.as_deref().map(Role::parse).transpose()?,
            seat_tier: self.seat_tier.as_deref().map(SeatTier::parse).transpose()?,
            status: match self.status.as_deref() {
                None => None,
                Some("active") => Some(MemberStatus::Active),
                Some("suspended") => Some(MemberStatus::Suspended),
                Some(_) => {
                    return Err(orgsync_domain::Error::invalid(
                        "status",
                        "must be \"active\" or \"suspended\"",
                    )
                    .into())
                }
            },
            group: self.group,
        })
    }
}

async fn list(
    req: actix_web::HttpRequest,
    call: OrgCall,
    query: web::Query<MembersQuery>,
) -> Answer {
    if export::wants_csv(&req) {
        return export::export(call, query).await;
    }
    let OrgCall { state, caller, org } = call;
    let page = state
        .members
        .list(&caller, org, &query.filter()?, query.page()?)
        .await?;
    Ok(HttpResponse::Ok().json(ListView::from_page(page, |m| m.clone())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMember {
    email: String,
    name: Option<String>,
    #[serde(default = "default_role")]
    role: Role,
    seat_tier: Option<SeatTier>,
    #[serde(default)]
    public_metadata: Map<String, Value>,
}

fn default_role() -> Role {
    Role::User
}

async fn create(OrgCall { state, caller, org }: OrgCall, body: web::Json<CreateMember>) -> Answer {
    let body = body.into_inner();
    let member = state
        .members
        .create(
            &caller,
            org,
            NewMember {
                email: body.email,
                name: body.name,
                role: body.role,
                seat_tier: body.seat_tier,
                public_metadata: body.public_metadata,
            },
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/api/v1/orgs/{}/members/{}", member.org_id, member.id.0),
        ))
        .json(member))
}

async fn get(OrgCall { state, caller, org }: OrgCall, path: web::Path<MemberPath>) -> Answer {
    let member = path.member;
    let member = state.members.get(&caller, org, member).await?;
    Ok(HttpResponse::Ok().json(member))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMember {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    role: Option<Role>,
    #[serde(default, deserialize_with = "nullable")]
    seat_tier: Option<Option<SeatTier>>,
    #[serde(default, deserialize_with = "nullable")]
    spend_limit: Option<Option<SpendLimit>>,
    public_metadata: Option<Map<String, Value>>,
    status: Option<MemberStatus>,
}

async fn update(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<MemberPath>,
    body: web::Json<UpdateMember>,
) -> Answer {
    let member = path.member;
    let body = body.into_inner();
    let member = state
        .members
        .update(
            &caller,
            org,
            member,
            MemberChanges {
                name: body.name,
                role: body.role,
                seat_tier: body.seat_tier,
                spend_limit: body.spend_limit,
                public_metadata: body.public_metadata,
                status: body.status,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(member))
}

async fn delete(OrgCall { state, caller, org }: OrgCall, path: web::Path<MemberPath>) -> Answer {
    let member = path.member;
    state.members.delete(&caller, org, member).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<CustomRole>,
}

async fn roles(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let roles = state.members.roles(&caller, org).await?;
    Ok(HttpResponse::Ok().json(json!({ "builtin": ["owner", "admin", "user"], "roles": roles })))
}

async fn save_roles(OrgCall { state, caller, org }: OrgCall, body: web::Json<Roles>) -> Answer {
    let roles = state
        .members
        .save_roles(&caller, org, body.into_inner().roles)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "builtin": ["owner", "admin", "user"], "roles": roles })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatTiers {
    seat_tiers: Vec<SeatTier>,
}

async fn seat_tiers(OrgCall { state, caller, org }: OrgCall) -> Answer {
    let tiers = state.members.seat_tiers(&caller, org).await?;
    Ok(HttpResponse::Ok().json(json!({ "seat_tiers": tiers })))
}

async fn save_seat_tiers(
    OrgCall { state, caller, org }: OrgCall,
    body: web::Json<SeatTiers>,
) -> Answer {
    let tiers = state
        .members
        .save_seat_tiers(&caller, org, body.into_inner().seat_tiers)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "seat_tiers": tiers })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attributes {
    attributes: Vec<AttributeDefinition>,
}

async fn attributes(OrgCall { state, caller, org }: OrgCall, path: web::Path<ConnPath>) -> Answer {
    let conn = path.conn;
    let definitions = state.members.attributes(&caller, org, conn).await?;
    Ok(HttpResponse::Ok().json(json!({ "attributes": definitions })))
}

async fn save_attributes(
    OrgCall { state, caller, org }: OrgCall,
    path: web::Path<ConnPath>,
    body: web::Json<Attributes>,
) -> Answer {
    let conn = path.conn;
    let definitions = state
        .members
        .save_attributes(&caller, org, conn, body.into_inner().attributes)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "attributes": definitions })))
}
