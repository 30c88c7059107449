//! The core Group schema (RFC 7643 §4.2, §8.7.1).
//!
//! `members` is defined here for lookups and `/Schemas`, but orgsync stores memberships as
//! rows, never inside the group's JSON; see [`crate::scim::patch`].

use super::AttrType::{Complex, Reference, String};
use super::{AttributeDef as A, Mutability, SchemaDef};

pub static GROUP: SchemaDef = SchemaDef {
    id: "urn:ietf:params:scim:schemas:core:2.0:Group",
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRS,
};

const GROUP_ATTRS: &[A] = &[
    A::new(
        "displayName",
        String,
        "A human-readable name for the Group.",
    )
    .required(),
    A::new("members", Complex, "A list of members of the Group.")
        .multi()
        .subs(MEMBER_SUBS),
];

const MEMBER_SUBS: &[A] = &[
    A::new("value", String, "Identifier of the member of this Group.")
        .case_exact()
        .mutability(Mutability::Immutable),
    A::new("$ref", Reference, "The URI of the member resource.")
        .case_exact()
        .mutability(Mutability::Immutable)
        .refs(&["User", "Group"]),
    A::new("type", String, "The type of the member.")
        .mutability(Mutability::Immutable)
        .canonical(&["User", "Group"]),
    A::new("display", String, "A human-readable name for the member.")
        .mutability(Mutability::Immutable),
];
