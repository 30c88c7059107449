//! Static SCIM schema definitions (RFC 7643 §4, §8.7.1) and what the rest of `scim` asks of
//! them: attribute lookup by path (for case rules, types and mutability) and the `/Schemas`
//! endpoint representation (RFC 7643 §7).
//!
//! The definitions are `static` data built with `const fn` builders so that a lookup is a
//! few string comparisons and never allocates.

mod group;
mod user;

use serde_json::{json, Map, Value};

use super::AttrPath;

pub use group::GROUP;
pub use user::{ENTERPRISE_USER, ENTERPRISE_USER_URN, USER};

/// SCIM attribute data types (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute (or sub-attribute) definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: &'static str,
    pub kind: AttrType,
    pub description: &'static str,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttributeDef],
}

impl AttributeDef {
    /// A single-valued, optional, case-insensitive, readWrite attribute: RFC 7643 §2.2's
    /// defaults, which the builders below adjust.
    pub(crate) const fn new(name: &'static str, kind: AttrType, description: &'static str) -> Self {
        Self {
            name,
            kind,
            description,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        }
    }
    pub(crate) const fn multi(self) -> Self {
        Self {
            multi_valued: true,
            ..self
        }
    }
    pub(crate) const fn required(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }
    pub(crate) const fn case_exact(self) -> Self {
        Self {
            case_exact: true,
            ..self
        }
    }
    pub(crate) const fn mutability(self, mutability: Mutability) -> Self {
        Self { mutability, ..self }
    }
    pub(crate) const fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    pub(crate) const fn returned(self, returned: Returned) -> Self {
        Self { returned, ..self }
    }
    pub(crate) const fn unique(self, uniqueness: Uniqueness) -> Self {
        Self { uniqueness, ..self }
    }
    pub(crate) const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        Self {
            canonical_values,
            ..self
        }
    }
    pub(crate) const fn refs(self, reference_types: &'static [&'static str]) -> Self {
        Self {
            reference_types,
            ..self
        }
    }
    pub(crate) const fn subs(self, sub_attributes: &'static [AttributeDef]) -> Self {
        Self {
            sub_attributes,
            ..self
        }
    }

    /// The sub-attribute called `name`, case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        find_in(self.sub_attributes, name)
    }
}

/// A schema: its URN, a name and its top-level attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttributeDef],
}

impl SchemaDef {
    /// The top-level attribute called `name`, case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        find_in(self.attributes, name)
    }
}

/// The resource types orgsync serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn core_schema(self) -> &'static SchemaDef {
        match self {
            Self::User => &USER,
            Self::Group => &GROUP,
        }
    }

    pub fn extensions(self) -> &'static [&'static SchemaDef] {
        match self {
            Self::User => &USER_EXTENSIONS,
            Self::Group => &[],
        }
    }

    /// The core schema or extension whose URN is `uri`, case-insensitively (RFC 7643 §2.1
    /// makes URNs case-insensitive too).
    pub fn schema(self, uri: &str) -> Option<&'static SchemaDef> {
        std::iter::once(self.core_schema())
            .chain(self.extensions().iter().copied())
            .find(|s| s.id.eq_ignore_ascii_case(uri))
    }

    /// The known extension whose URN is `uri`.
    pub fn extension(self, uri: &str) -> Option<&'static SchemaDef> {
        self.extensions()
            .iter()
            .copied()
            .find(|s| s.id.eq_ignore_ascii_case(uri))
    }
}

static USER_EXTENSIONS: [&SchemaDef; 1] = [&ENTERPRISE_USER];

/// `id`, `externalId` and `meta` (RFC 7643 §3.1): on every resource, outside any schema.
pub static COMMON_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::new(
        "id",
        AttrType::String,
        "Unique identifier assigned by the service provider.",
    )
    .case_exact()
    .read_only()
    .returned(Returned::Always)
    .unique(Uniqueness::Server),
    AttributeDef::new(
        "externalId",
        AttrType::String,
        "Identifier assigned by the provisioning client.",
    )
    .case_exact(),
    AttributeDef::new("meta", AttrType::Complex, "Resource metadata.")
        .read_only()
        .subs(META_SUBS),
];

const META_SUBS: &[AttributeDef] = &[
    AttributeDef::new(
        "resourceType",
        AttrType::String,
        "The resource type's name.",
    )
    .case_exact()
    .read_only(),
    AttributeDef::new(
        "created",
        AttrType::DateTime,
        "When the resource was added.",
    )
    .read_only(),
    AttributeDef::new(
        "lastModified",
        AttrType::DateTime,
        "When the resource last changed.",
    )
    .read_only(),
    AttributeDef::new("location", AttrType::Reference, "The resource's URI.")
        .case_exact()
        .read_only()
        .refs(&["uri"]),
    AttributeDef::new("version", AttrType::String, "The resource's entity tag.")
        .case_exact()
        .read_only(),
];

fn find_in(defs: &'static [AttributeDef], name: &str) -> Option<&'static AttributeDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The definition `path` designates on a `kind` resource: the sub-attribute's when the path
/// has one. A path without URN refers to the core schema or the common attributes; a URN
/// selects the core schema or one of the kind's extensions.
pub fn find_attribute(kind: ResourceKind, path: &AttrPath) -> Option<&'static AttributeDef> {
    let top = match &path.uri {
        Some(uri) => kind.schema(uri)?.attribute(&path.name),
        None => kind
            .core_schema()
            .attribute(&path.name)
            .or_else(|| find_in(COMMON_ATTRIBUTES, &path.name)),
    }?;
    match &path.sub {
        Some(sub) => top.sub_attribute(sub),
        None => Some(top),
    }
}

/// The RFC 7643 §7 representation of `schema`, as served under `/Schemas/{id}`.
pub fn schema_json(schema: &SchemaDef, base_url: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base_url.trim_end_matches('/'), schema.id),
        },
    })
}

fn attribute_json(def: &AttributeDef) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), def.name.into());
    out.insert("type".into(), type_name(def.kind).into());
    out.insert("multiValued".into(), def.multi_valued.into());
    out.insert("description".into(), def.description.into());
    out.insert("required".into(), def.required.into());
    if !def.canonical_values.is_empty() {
        out.insert("canonicalValues".into(), def.canonical_values.into());
    }
    if def.kind != AttrType::Complex {
        out.insert("caseExact".into(), def.case_exact.into());
    }
    out.insert("mutability".into(), mutability_name(def.mutability).into());
    out.insert("returned".into(), returned_name(def.returned).into());
    out.insert("uniqueness".into(), uniqueness_name(def.uniqueness).into());
    if def.kind == AttrType::Reference {
        out.insert("referenceTypes".into(), def.reference_types.into());
    }
    if def.kind == AttrType::Complex {
        let subs: Vec<Value> = def.sub_attributes.iter().map(attribute_json).collect();
        out.insert("subAttributes".into(), subs.into());
    }
    Value::Object(out)
}

fn type_name(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
        AttrType::Binary => "binary",
    }
}

fn mutability_name(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned_name(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness_name(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

#[cfg(test)]
mod tests;
