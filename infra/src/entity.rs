//! sea-orm entities. They convert into domain types with `TryFrom`, so a
//! corrupt row fails loudly instead of leaking a half-valid value.

pub mod org_closure;
pub mod organization;
