//! A request budget per key (GCRA via `governor`): the one mechanism behind
//! every limiter here, each of which only chooses its key, its rate and
//! what a refusal says.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct KeyedBudget<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    /// Keys whose cells are kept before idle ones are dropped (`None`: all,
    /// for keys that only authenticated callers create).
    tracked: Option<usize>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedBudget<K> {
    /// `per_second` requests per key with bursts of `burst` (0: `per_second`);
    /// `per_second == 0` is no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            tracked: None,
            clock: DefaultClock::default(),
        }
    }

    /// Drops idle keys' cells once more than `keys` are kept, for keys any
    /// caller can make up (addresses).
    pub fn tracking_at_most(mut self, keys: usize) -> Self {
        self.tracked = Some(keys);
        self
    }

    pub fn is_limited(&self) -> bool {
        self.limiter.is_some()
    }

    /// Spends one request of `key`'s budget.
    ///
    /// # Errors
    /// The whole seconds to wait (at least 1) when it is spent.
    pub fn spend(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let verdict = limiter.check_key(key);
        if self.tracked.is_some_and(|keys| limiter.len() > keys) {
            limiter.retain_recent();
        }
        verdict.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}
