//! What every handler can reach: the use cases, the limits and the shared
//! process-wide pieces (metrics, rate limiters, the nudge debounce).

use std::sync::Arc;

use orgsync_domain::ports::HealthCheck;
use orgsync_domain::service::{
    ConnectionService, EventService, MembersService, OrgService, ScimService, SsoService,
    SyncService,
};

use crate::auth::Verifier;
use crate::throttle::admin::AdminLimiter;
use crate::throttle::scim::{FailedAuthLimiter, ScimRateLimiter};
use crate::throttle::sign_in::SignInLimiter;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub orgs: OrgService,
    pub connections: ConnectionService,
    pub scim: ScimService,
    pub sync: SyncService,
    pub members: MembersService,
    pub events: EventService,
    pub sso: SsoService,
    /// The externally visible base URL (for SCIM base URLs and locations).
    pub public_url: String,
    pub scim_rate_limit: Arc<ScimRateLimiter>,
    pub admin_rate_limit: Arc<AdminLimiter>,
    pub scim_failed_auth: Arc<FailedAuthLimiter>,
    /// Sign-in requests per client address.
    pub sso_sign_ins: Arc<SignInLimiter>,
    pub limits: orgsync_domain::limits::Limits,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub nudger: Arc<crate::jobs::nudge::Nudger>,
    /// For the gauges read at scrape time.
    pub db: orgsync_infra::Database,
    pub queue: Arc<dyn orgsync_domain::ports::JobQueue>,
    pub verifier: Arc<Verifier>,
    pub health: Arc<Vec<Arc<dyn HealthCheck>>>,
    pub body_limit: usize,
    /// Where requests' plans and changes run (not on the HTTP worker).
    pub heavy: crate::http::detached::Heavy,
}
