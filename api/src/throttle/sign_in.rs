//! The sign-in routes answer anyone: each start writes a pending sign-in and
//! each callback makes orgsync call an IdP, so one address gets a budget of
//! them per second, and a flood from it cannot fill the table or make
//! orgsync hammer a tenant's IdP.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Addresses whose budget cells are kept before idle ones are dropped.
const TRACKED_ADDRESSES: usize = 10_000;

pub struct SignInLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl SignInLimiter {
    /// `per_second` requests per address, with bursts of twice that; 0 turns limiting off.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// # Errors
    /// The seconds to wait, when `addr` is over its budget.
    pub fn admit(&self, addr: Option<IpAddr>) -> Result<(), u64> {
        let (Some(limiter), Some(addr)) = (&self.limiter, addr) else {
            return Ok(());
        };
        let verdict = limiter.check_key(&addr);
        if limiter.len() > TRACKED_ADDRESSES {
            limiter.retain_recent();
        }
        verdict.map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_burst_waits_and_others_do_not() {
        let limiter = SignInLimiter::new(2);
        let a: IpAddr = "203.0.113.1".parse().expect("an address");
        let b: IpAddr = "203.0.113.2".parse().expect("an address");
        for _ in 0..4 {
            assert!(limiter.admit(Some(a)).is_ok());
        }
        assert!(limiter.admit(Some(a)).is_err());
        assert!(limiter.admit(Some(b)).is_ok());
        assert!(SignInLimiter::new(0).admit(Some(a)).is_ok());
    }
}
