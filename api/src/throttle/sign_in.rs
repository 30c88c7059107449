//! The sign-in routes answer anyone: each start writes a pending sign-in and
//! each callback makes orgsync call an IdP, so one address gets a budget of
//! them per second, and a flood from it cannot fill the table or make
//! orgsync hammer a tenant's IdP.

use std::net::IpAddr;

use super::budget::KeyedBudget;

/// Addresses whose budget cells are kept before idle ones are dropped.
const TRACKED_ADDRESSES: usize = 10_000;

pub struct SignInLimiter(KeyedBudget<IpAddr>);

impl SignInLimiter {
    /// `per_second` requests per address, with bursts of twice that; 0 turns limiting off.
    pub fn new(per_second: u32) -> Self {
        Self(
            KeyedBudget::new(per_second, per_second.saturating_mul(2))
                .tracking_at_most(TRACKED_ADDRESSES),
        )
    }

    /// # Errors
    /// The seconds to wait, when `addr` is over its budget.
    pub fn admit(&self, addr: Option<IpAddr>) -> Result<(), u64> {
        addr.map_or(Ok(()), |addr| self.0.spend(&addr))
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
