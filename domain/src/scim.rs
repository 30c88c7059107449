//! SCIM 2.0 grammar that is pure logic (RFC 7643/7644): no I/O, no storage.
//!
//! - [`schema`]: the static User, Enterprise User and Group schemas, attribute lookup and the
//!   `/Schemas` representation.
//! - [`filter`]: the `filter=` query grammar (RFC 7644 §3.4.2.2) and its canonical printing.
//! - [`eval`]: evaluating a parsed filter against a resource held as JSON.
//! - [`path`]: the PATCH `path` grammar (RFC 7644 §3.5.2).
//! - [`patch`]: applying PATCH operations to a resource, with the leniency real IdPs need.
//!
//! Everything here is total: any input, however hostile, yields a value or an error, never a
//! panic, because all of it sits directly behind unauthenticated-shaped client input.

mod attr_path;
pub mod eval;
pub mod filter;
pub mod patch;
pub mod path;
pub mod schema;

#[cfg(test)]
mod proptests;

pub use attr_path::AttrPath;
pub use filter::{CompValue, CompareOp, Filter, FilterError};
pub use patch::{
    apply_patch, normalize_booleans, MemberChange, PatchError, PatchOp, PatchOperation,
    PatchOutcome, PatchRequest,
};
pub use path::{PatchPath, PathError};
pub use schema::{find_attribute, schema_json, AttrType, AttributeDef, ResourceKind, SchemaDef};
