//! Use cases: each takes the caller ([`Principal`](crate::auth::Principal))
//! first, authorizes, then works through the ports.

mod connections;
mod cpu;
mod events;
mod members;
mod orgs;
mod protection;
mod scim;
mod sso;
mod status;
mod sync;

pub use connections::{ConnectionService, DirectorySyncChanged};
pub use cpu::computing;
pub use events::{EndpointChanges, EventPorts, EventService, NewEndpoint, WebhookPolicy};
pub use members::{
    ExportAdmission, ExportRow, MemberChanges, MemberExport, MemberPorts, MembersService, NewMember,
};
pub use orgs::{OrgChanges, OrgService};
pub use scim::ScimService;
pub use sso::{SsoInput, SsoPorts, SsoService};
pub use status::{RunSummary, SyncStatus};
pub use sync::{
    Applied, JobOutcome, JobPolicy, PlanBudget, SourceApplied, SyncPorts, SyncRequest, SyncService,
    Waiter,
};
