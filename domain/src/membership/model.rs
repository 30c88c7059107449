//! Members of an organization and their validated values: parse, don't validate.
//!
//! A member linked to a directory user (`directory_user_id`) is governed by the directory while
//! the org is in `scim` mode; that link, never the email, is the member's identity there.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::directory::ResourceId;
use crate::org::OrgId;
use crate::Error;

crate::id::uuid_id!(
    /// Identifies a member. UUIDv7, so ids sort by creation time.
    MemberId
);

/// A member's role: one of the three built-in roles, or a custom role defined by the org.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Role {
    Owner,
    Admin,
    User,
    /// Only built by [`Role::parse`], which never yields a built-in name here.
    Custom(String),
}

impl Role {
    pub const MAX_LEN: usize = 64;

    /// `owner`, `admin` and `user` are built in; anything else is a custom role name of 1–64
    /// characters of `a-z`, `0-9`, `_` and `-`.
    ///
    /// # Errors
    /// `Invalid` (field `role`) when the name is not a valid role name.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            _ if raw.is_empty() || raw.len() > Self::MAX_LEN => {
                Err(Error::invalid("role", "must be 1 to 64 characters"))
            }
            _ if !raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
            }) =>
            {
                Err(Error::invalid(
                    "role",
                    "may contain only lowercase letters, digits, '_' and '-'",
                ))
            }
            _ => Ok(Self::Custom(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::User => "user",
            Self::Custom(name) => name,
        }
    }

    pub fn is_builtin(&self) -> bool {
        !matches!(self, Self::Custom(_))
    }
}

impl TryFrom<String> for Role {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Role> for String {
    fn from(value: Role) -> Self {
        value.as_str().to_owned()
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A seat tier defined by the org (`standard`, `premium`, ...), spelled like a slug:
/// 1–63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeatTier(String);

impl SeatTier {
    /// # Errors
    /// `Invalid` (field `seat_tier`) when the name is not slug-shaped.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        crate::org::Slug::parse(raw)
            .map(|slug| Self(slug.into()))
            .map_err(|err| match err {
                Error::Invalid { message, .. } => Error::invalid("seat_tier", message),
                other => other,
            })
    }
}

crate::text::validated_text!(SeatTier);

/// A spend limit: an amount in minor units (cents) and its ISO 4217 currency. The currency is
/// kept so that an amount shown by the API is never ambiguous; precedence picks a limit by the
/// mapping order, so limits in different currencies never need comparing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSpendLimit")]
pub struct SpendLimit {
    amount_minor: i64,
    currency: String,
}

#[derive(Deserialize)]
struct RawSpendLimit {
    amount_minor: i64,
    currency: String,
}

impl TryFrom<RawSpendLimit> for SpendLimit {
    type Error = Error;
    fn try_from(raw: RawSpendLimit) -> Result<Self, Self::Error> {
        Self::new(raw.amount_minor, &raw.currency)
    }
}

impl SpendLimit {
    /// # Errors
    /// `Invalid` (field `amount_minor` or `currency`) for a negative amount or a currency that
    /// is not three upper-case letters.
    pub fn new(amount_minor: i64, currency: &str) -> crate::Result<Self> {
        if amount_minor < 0 {
            return Err(Error::invalid("amount_minor", "must not be negative"));
        }
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::invalid(
                "currency",
                "must be an ISO 4217 code (three upper-case letters)",
            ));
        }
        Ok(Self {
            amount_minor,
            currency: currency.to_owned(),
        })
    }

    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }
}

/// Whether a member may use the org. A suspended member keeps its record (role, history) so
/// that reactivation in the IdP restores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Suspended,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// How the member entered the org; kept as history, it does not decide who governs the member
/// (the directory link does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberSource {
    Manual,
    Jit,
    Scim,
}

impl MemberSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Jit => "jit",
            Self::Scim => "scim",
        }
    }
}

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub org_id: OrgId,
    /// The directory user this member mirrors; `None` for members added by hand or by JIT.
    pub directory_user_id: Option<ResourceId>,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub seat_tier: Option<SeatTier>,
    /// The effective limit (from the highest-precedence group that has one, or set by hand).
    pub spend_limit: Option<SpendLimit>,
    /// Keys named by attribute definitions are written by the directory; the rest are the
    /// admin's and the planner never touches them.
    pub public_metadata: Map<String, Value>,
    pub status: MemberStatus,
    pub source: MemberSource,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
impl Member {
    /// An active manual member of a new org, named Ada, as unit tests start
    /// from (`Member { field: …, ..Member::example(…) }` for the rest).
    pub(crate) fn example(email: &str) -> Self {
        let at = OffsetDateTime::UNIX_EPOCH;
        Self {
            id: MemberId::new(),
            org_id: OrgId::new(),
            directory_user_id: None,
            email: email.into(),
            name: Some("Ada".into()),
            role: Role::User,
            seat_tier: None,
            spend_limit: None,
            public_metadata: Map::new(),
            status: MemberStatus::Active,
            source: MemberSource::Manual,
            created_at: at,
            updated_at: at,
        }
    }
}

/// What happens to the member of a directory user who becomes inactive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deprovision {
    #[default]
    Remove,
    /// Keep the member with status `suspended`, so reactivation restores it as it was.
    Suspend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_parse_and_custom_names_follow_the_rules() {
        assert_eq!(Role::parse("owner").ok(), Some(Role::Owner));
        assert_eq!(Role::parse("user").ok(), Some(Role::User));
        assert_eq!(
            Role::parse("billing_ops-2").ok(),
            Some(Role::Custom("billing_ops-2".into()))
        );
        for bad in ["", "Admin", "a b", "é", &"a".repeat(65)] {
            assert!(Role::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Role::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn roles_and_tiers_serialize_as_their_names() {
        let json = serde_json::to_value((Role::Admin, SeatTier::parse("premium").ok()));
        assert_eq!(json.ok(), Some(serde_json::json!(["admin", "premium"])));
        assert!(serde_json::from_value::<Role>(serde_json::json!("Bad Role")).is_err());
    }

    #[test]
    fn seat_tiers_are_slug_shaped_and_errors_name_the_field() {
        assert!(SeatTier::parse("standard").is_ok());
        match SeatTier::parse("-bad") {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "seat_tier"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn spend_limits_need_a_non_negative_amount_and_an_iso_currency() {
        assert!(SpendLimit::new(0, "USD").is_ok());
        assert!(SpendLimit::new(-1, "USD").is_err());
        assert!(SpendLimit::new(100, "usd").is_err());
        assert!(SpendLimit::new(100, "EURO").is_err());
        let parsed: Result<SpendLimit, _> =
            serde_json::from_value(serde_json::json!({"amount_minor": -5, "currency": "USD"}));
        assert!(parsed.is_err());
    }
}
