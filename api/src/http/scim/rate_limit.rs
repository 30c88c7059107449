//! Per-connection request rate limit for SCIM (GCRA via `governor`). An IdP
//! that floods its endpoint gets 429 with `Retry-After`, and its neighbours
//! on the same instance are unaffected. The limit is per process: with N API
//! replicas behind a balancer a connection gets up to N times the rate.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use orgsync_domain::directory::{ConnectionId, ScimError};

pub struct ScimRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<ConnectionId>>,
    clock: DefaultClock,
}

impl ScimRateLimiter {
    /// `per_second == 0` turns limiting off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// # Errors
    /// `RateLimited` with the whole seconds to wait (at least 1).
    pub fn check(&self, conn: ConnectionId) -> Result<(), ScimError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&conn).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let whole_seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ScimError::RateLimited {
                retry_after_secs: whole_seconds.max(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_past_its_burst_is_told_when_to_retry_and_others_are_not_affected() {
        let limiter = ScimRateLimiter::new(1, 3);
        let (busy, quiet) = (ConnectionId::new(), ConnectionId::new());
        for _ in 0..3 {
            assert!(limiter.check(busy).is_ok());
        }
        match limiter.check(busy) {
            Err(ScimError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check(quiet).is_ok());
        let unlimited = ScimRateLimiter::new(0, 0);
        assert!((0..1000).all(|_| unlimited.check(busy).is_ok()));
    }
}
