//! Sync runs and the org settings that drive membership: what an admin asks
//! for ("sync members, groups or both"), what a run records, and the
//! preview-then-confirm contract for anything that removes people.

mod job;
mod preview;
mod protection;
mod relink;
mod run;
mod settings;
mod source;

pub use job::{retry_delay, run_status, JobId, SyncJob};
pub use preview::{restrict, Preview, PreviewPage};
pub use protection::{
    hold, DeletionThreshold, HeldRemovals, HeldSource, HELD_SHARE_PERCENT, PROTECTION_WINDOW,
};
pub use relink::{RelinkPolicy, RelinkRule};
pub use run::{RunId, RunStatus, SyncKind, SyncRun, SyncScope};
pub use settings::{CustomRole, MemberFilter, MembershipSettings};
pub use source::{
    ConfirmationNeeded, MovedOrg, OrgEffect, SourceChange, SourcePlan, SourceShift, LISTED_REMOVALS,
};
