//! SCIM request rate limits (GCRA via `governor`): per connection, and per
//! tenant over all the connections of its org tree. An IdP that floods its
//! endpoint gets 429 with `Retry-After`, and so does a tenant whose many
//! connections (one per child org, each inside its own budget) add up to a
//! crowd; their neighbours on the same instance are unaffected. The limits
//! are per process: with N API replicas behind a balancer a connection gets
//! up to N times the rate.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use orgsync_domain::directory::{ConnectionId, RateBudget, ScimError};
use orgsync_domain::org::OrgId;

use super::budget::KeyedBudget;

pub struct ScimRateLimiter {
    connections: KeyedBudget<ConnectionId>,
    tenants: KeyedBudget<OrgId>,
}

impl ScimRateLimiter {
    /// A connection may send `per_second` requests a second with bursts of
    /// `burst`; a tenant, `tenant_multiple` times that over all its
    /// connections. `per_second == 0` turns both off; `tenant_multiple == 0`
    /// the tenant's.
    pub fn new(per_second: u32, burst: u32, tenant_multiple: u32) -> Self {
        let connections = KeyedBudget::new(per_second, burst);
        let tenants = if connections.is_limited() {
            KeyedBudget::new(
                per_second.saturating_mul(tenant_multiple),
                burst.saturating_mul(tenant_multiple),
            )
        } else {
            KeyedBudget::new(0, 0)
        };
        Self {
            connections,
            tenants,
        }
    }

    /// Spends one request of the connection's budget, then one of its
    /// tenant's: a connection refused on its own budget (a runaway
    /// integration) does not drain what its tenant's other connections share.
    ///
    /// # Errors
    /// `RateLimited` naming the budget, with the whole seconds to wait (at least 1).
    pub fn check(&self, conn: ConnectionId, tenant: OrgId) -> Result<(), ScimError> {
        let refused = |budget| {
            move |retry_after_secs| ScimError::RateLimited {
                budget,
                retry_after_secs,
            }
        };
        self.connections
            .spend(&conn)
            .map_err(refused(RateBudget::Connection))?;
        self.tenants
            .spend(&tenant)
            .map_err(refused(RateBudget::Tenant))
    }
}

/// Failed SCIM authentications, by client address and connection. A pair
/// past its budget (a token guessed, or a stale integration still pushing
/// with a revoked token) is refused (429) before any token look-up, for as
/// long as the limiter says; so is a whole address whose failures name many
/// different connections (guessing connection ids), for every connection
/// this process has not seen authenticate lately: guessing then costs the
/// database nothing. IdPs push from shared addresses (one egress for many
/// tenants, a load balancer for all), so one connection failing never
/// shuts out another connection's first request from the same address, and
/// connections that did authenticate (their tokens are cached) are always
/// served.
pub struct FailedAuthLimiter {
    /// Failures per (address, connection); `None` for a malformed id.
    pairs: Option<DefaultKeyedRateLimiter<(IpAddr, Option<ConnectionId>)>>,
    /// Different connections failing per address.
    spread: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Pairs already counted in `spread` lately.
    failing: moka::sync::Cache<(IpAddr, ConnectionId), ()>,
    /// Refused until: a pair, or (with `None`) an address for every unknown connection.
    blocked: moka::sync::Cache<(IpAddr, Option<ConnectionId>), std::time::Instant>,
    known: moka::sync::Cache<ConnectionId, ()>,
    clock: DefaultClock,
}

impl FailedAuthLimiter {
    /// `per_second == 0` turns limiting off.
    pub fn new(per_second: u32) -> Self {
        let quota =
            NonZeroU32::new(per_second).map(|rate| Quota::per_second(rate).allow_burst(rate));
        Self {
            pairs: quota.map(RateLimiter::keyed),
            spread: quota.map(RateLimiter::keyed),
            failing: bounded(60),
            blocked: bounded(60),
            known: bounded(600),
            clock: DefaultClock::default(),
        }
    }

    /// # Errors
    /// `RateLimited` while `conn` has not authenticated lately and either
    /// it failed too often from `addr` or `addr` tried too many connections.
    pub fn admit(&self, addr: Option<IpAddr>, conn: ConnectionId) -> Result<(), ScimError> {
        let Some(addr) = addr.filter(|_| self.pairs.is_some()) else {
            return Ok(());
        };
        if self.known.contains_key(&conn) {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let until = [Some(conn), None]
            .into_iter()
            .filter_map(|key| self.blocked.get(&(addr, key)))
            .filter(|until| *until > now)
            .max();
        match until {
            Some(until) => Err(ScimError::RateLimited {
                budget: RateBudget::FailedAuthentications,
                retry_after_secs: until.saturating_duration_since(now).as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    /// Remembers that `conn` authenticated: its IdP is served whatever its address does.
    pub fn succeeded(&self, conn: ConnectionId) {
        // A read on the hot path; the insert only on a connection's first success.
        if self.pairs.is_some() && !self.known.contains_key(&conn) {
            self.known.insert(conn, ());
        }
    }

    /// Counts one failed authentication from `addr` naming `conn` (`None`:
    /// an id that is not one, which counts as another connection each time).
    pub fn failed(&self, addr: Option<IpAddr>, conn: Option<ConnectionId>) {
        let (Some(pairs), Some(spread), Some(addr)) = (&self.pairs, &self.spread, addr) else {
            return;
        };
        if let Err(not_until) = pairs.check_key(&(addr, conn)) {
            self.block((addr, conn), not_until.wait_time_from(self.clock.now()));
        }
        let another = match conn {
            Some(conn) if self.failing.contains_key(&(addr, conn)) => false,
            Some(conn) => {
                self.failing.insert((addr, conn), ());
                true
            }
            None => true,
        };
        if another {
            if let Err(not_until) = spread.check_key(&addr) {
                self.block((addr, None), not_until.wait_time_from(self.clock.now()));
            }
        }
        // The keyed limiters keep a cell per key: drop the idle ones now and
        // then so their memory follows the current failures, not all past ones.
        if pairs.len() > 10_000 {
            pairs.retain_recent();
        }
        if spread.len() > 10_000 {
            spread.retain_recent();
        }
    }

    fn block(&self, key: (IpAddr, Option<ConnectionId>), wait: std::time::Duration) {
        let until = std::time::Instant::now() + wait.max(std::time::Duration::from_millis(100));
        self.blocked.insert(key, until);
    }
}

/// A cache bounded in size, so a flood from many addresses cannot grow it
/// without end, whose entries live `ttl_secs`.
fn bounded<K, V>(ttl_secs: u64) -> moka::sync::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(std::time::Duration::from_secs(ttl_secs))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_past_its_burst_is_told_when_to_retry_and_others_are_not_affected() {
        let limiter = ScimRateLimiter::new(1, 3, 0);
        let tenant = OrgId::new();
        let (busy, quiet) = (ConnectionId::new(), ConnectionId::new());
        for _ in 0..3 {
            assert!(limiter.check(busy, tenant).is_ok());
        }
        match limiter.check(busy, tenant) {
            Err(ScimError::RateLimited {
                budget: RateBudget::Connection,
                retry_after_secs,
            }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check(quiet, tenant).is_ok());
        let unlimited = ScimRateLimiter::new(0, 0, 10);
        assert!((0..1000).all(|_| unlimited.check(busy, tenant).is_ok()));
    }

    #[test]
    fn a_tenants_connections_share_its_budget_and_a_runaway_one_spends_only_its_own_burst() {
        // Each connection 1/s with bursts of 2; the tenant twice that: 4.
        let limiter = ScimRateLimiter::new(1, 2, 2);
        let (tenant, neighbour) = (OrgId::new(), OrgId::new());
        let runaway = ConnectionId::new();
        let spent = (0..100)
            .filter(|_| limiter.check(runaway, tenant).is_ok())
            .count();
        assert_eq!(spent, 2, "the runaway connection had its own burst");
        let siblings: Vec<ConnectionId> = (0..4).map(|_| ConnectionId::new()).collect();
        let served = siblings
            .iter()
            .filter(|conn| limiter.check(**conn, tenant).is_ok())
            .count();
        assert_eq!(served, 2, "the tenant's burst of 4 less the runaway's 2");
        assert!(matches!(
            limiter.check(ConnectionId::new(), tenant),
            Err(ScimError::RateLimited {
                budget: RateBudget::Tenant,
                ..
            })
        ));
        assert!(
            limiter.check(ConnectionId::new(), neighbour).is_ok(),
            "another tenant spends its own budget"
        );
    }

    #[test]
    fn a_connection_that_keeps_failing_is_refused_and_its_neighbours_are_not() {
        let limiter = FailedAuthLimiter::new(2);
        let (shared, quiet) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
        );
        let (stale, new, real) = (
            ConnectionId::new(),
            ConnectionId::new(),
            ConnectionId::new(),
        );
        limiter.succeeded(real);
        for _ in 0..3 {
            assert!(limiter.admit(shared, stale).is_ok());
            limiter.failed(shared, Some(stale));
        }
        assert!(matches!(
            limiter.admit(shared, stale),
            Err(ScimError::RateLimited { .. })
        ));
        assert!(
            limiter.admit(shared, new).is_ok(),
            "another tenant's first request from the same address"
        );
        assert!(limiter.admit(shared, real).is_ok());
        assert!(limiter.admit(quiet, stale).is_ok());
        assert!(FailedAuthLimiter::new(0).admit(shared, stale).is_ok());
    }

    #[test]
    fn an_address_guessing_connections_is_refused_for_every_unknown_one() {
        let limiter = FailedAuthLimiter::new(2);
        let guesser = Some(IpAddr::from([10, 0, 0, 3]));
        let real = ConnectionId::new();
        limiter.succeeded(real);
        for _ in 0..3 {
            let guess = ConnectionId::new();
            assert!(limiter.admit(guesser, guess).is_ok());
            limiter.failed(guesser, Some(guess));
        }
        assert!(matches!(
            limiter.admit(guesser, ConnectionId::new()),
            Err(ScimError::RateLimited { .. })
        ));
        assert!(
            limiter.admit(guesser, real).is_ok(),
            "a connection that authenticated is served from any address"
        );
        let malformed = Some(IpAddr::from([10, 0, 0, 4]));
        for _ in 0..3 {
            limiter.failed(malformed, None);
        }
        assert!(limiter.admit(malformed, ConnectionId::new()).is_err());
    }
}
