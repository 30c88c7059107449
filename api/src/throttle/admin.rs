//! The admin API's request budget, per token scope: every call of a tenant's
//! automation is authenticated and may read or plan over many members, and
//! all tenants share the process's HTTP workers, so the admins of one org
//! (the org their tokens name) get a budget of requests per second, and a
//! runaway script of theirs cannot crowd out another tenant's admins. The
//! platform operator's tokens are not limited.

use orgsync_domain::auth::Principal;
use orgsync_domain::org::OrgId;

use super::budget::KeyedBudget;

/// Token scopes whose budget cells are kept before idle ones are dropped.
const TRACKED_SCOPES: usize = 10_000;

pub struct AdminLimiter(KeyedBudget<OrgId>);

impl AdminLimiter {
    /// `per_second` requests per token scope, with bursts of twice that; 0
    /// turns limiting off.
    pub fn new(per_second: u32) -> Self {
        Self(
            KeyedBudget::new(per_second, per_second.saturating_mul(2))
                .tracking_at_most(TRACKED_SCOPES),
        )
    }

    /// # Errors
    /// The whole seconds to wait (at least 1), when the caller's scope is
    /// over its budget.
    pub fn admit(&self, caller: &Principal) -> Result<(), u64> {
        match caller {
            Principal::Org { org, .. } => self.0.spend(org),
            Principal::Platform { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_domain::auth::AdminRole;

    fn admin_of(org: OrgId) -> Principal {
        Principal::Org {
            subject: "script".into(),
            org,
            role: AdminRole::Admin,
        }
    }

    #[test]
    fn a_scope_past_its_burst_waits_and_other_scopes_and_the_platform_do_not() {
        let limiter = AdminLimiter::new(1);
        let (busy, quiet) = (admin_of(OrgId::new()), admin_of(OrgId::new()));
        assert!((0..2).all(|_| limiter.admit(&busy).is_ok()), "a burst of 2");
        assert!(matches!(limiter.admit(&busy), Err(wait) if wait >= 1));
        assert!(limiter.admit(&quiet).is_ok());
        let platform = Principal::Platform {
            subject: "operator".into(),
        };
        assert!((0..100).all(|_| limiter.admit(&platform).is_ok()));
        let unlimited = AdminLimiter::new(0);
        assert!((0..100).all(|_| unlimited.admit(&busy).is_ok()));
    }
}
