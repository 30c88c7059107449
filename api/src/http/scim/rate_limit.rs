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

/// Failed SCIM authentications per client address. An address past its
/// budget is refused (429) before any token look-up, for as long as the
/// limiter says, when it asks for a connection this process has not seen
/// authenticate lately: guessing connection ids then costs the database
/// nothing. Connections that did authenticate (their tokens are cached) are
/// always served, so an IdP behind the same address as an attacker (a load
/// balancer, a shared egress) is never locked out, and a valid token is never
/// slowed by this.
pub struct FailedAuthLimiter {
    limiter: Option<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    blocked: moka::sync::Cache<std::net::IpAddr, std::time::Instant>,
    known: moka::sync::Cache<ConnectionId, ()>,
    clock: DefaultClock,
}

impl FailedAuthLimiter {
    /// `per_second == 0` turns limiting off.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second)
            .map(|rate| RateLimiter::keyed(Quota::per_second(rate).allow_burst(rate)));
        // Bounded, so a flood from many addresses cannot grow them without end.
        Self {
            limiter,
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            known: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(600))
                .build(),
            clock: DefaultClock::default(),
        }
    }

    /// # Errors
    /// `RateLimited` while `addr` is over its budget of failures and `conn`
    /// has not authenticated lately.
    pub fn admit(
        &self,
        addr: Option<std::net::IpAddr>,
        conn: ConnectionId,
    ) -> Result<(), ScimError> {
        let Some(addr) = addr.filter(|_| self.limiter.is_some()) else {
            return Ok(());
        };
        if self.known.contains_key(&conn) {
            return Ok(());
        }
        match self.blocked.get(&addr) {
            Some(until) if until > std::time::Instant::now() => {
                let wait = until.saturating_duration_since(std::time::Instant::now());
                Err(ScimError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                })
            }
            _ => Ok(()),
        }
    }

    /// Remembers that `conn` authenticated: its IdP is served whatever its address does.
    pub fn succeeded(&self, conn: ConnectionId) {
        // A read on the hot path; the insert only on a connection's first success.
        if self.limiter.is_some() && !self.known.contains_key(&conn) {
            self.known.insert(conn, ());
        }
    }

    /// Counts one failed authentication from `addr`.
    pub fn failed(&self, addr: Option<std::net::IpAddr>) {
        let (Some(limiter), Some(addr)) = (&self.limiter, addr) else {
            return;
        };
        if let Err(not_until) = limiter.check_key(&addr) {
            let wait = not_until.wait_time_from(self.clock.now());
            self.blocked.insert(
                addr,
                std::time::Instant::now() + wait.max(std::time::Duration::from_millis(100)),
            );
        }
        // The keyed limiter keeps a cell per address: drop the idle ones now
        // and then so its memory follows the current attackers, not all past ones.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
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

    #[test]
    fn an_address_that_keeps_failing_is_refused_and_others_are_not() {
        let limiter = FailedAuthLimiter::new(2);
        let (noisy, quiet) = (
            Some(std::net::IpAddr::from([10, 0, 0, 1])),
            Some(std::net::IpAddr::from([10, 0, 0, 2])),
        );
        let (guessed, real) = (ConnectionId::new(), ConnectionId::new());
        limiter.succeeded(real);
        for _ in 0..3 {
            assert!(limiter.admit(noisy, guessed).is_ok());
            limiter.failed(noisy);
        }
        assert!(matches!(
            limiter.admit(noisy, ConnectionId::new()),
            Err(ScimError::RateLimited { .. })
        ));
        assert!(
            limiter.admit(noisy, real).is_ok(),
            "a connection that authenticated is served from any address"
        );
        assert!(limiter.admit(quiet, guessed).is_ok());
        assert!(FailedAuthLimiter::new(0).admit(noisy, guessed).is_ok());
    }
}
