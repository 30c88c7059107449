//! Outbound HTTP on a tenant's behalf (webhook targets, identity
//! providers): names are judged where the connection is made, by a
//! resolver that refuses answers inside the operator's network, so a name
//! that re-points after it was checked (DNS rebinding) gets nowhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use orgsync_domain::webhooks::is_public;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses a tenant's requests may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Public,
    /// Public addresses and this machine (local development, tests).
    PublicAndLoopback,
    /// Anything (development, tests).
    Anywhere,
}

impl Reach {
    pub(crate) fn admits(self, ip: IpAddr) -> bool {
        match self {
            Self::Public => is_public(ip),
            Self::PublicAndLoopback => is_public(ip) || ip.is_loopback(),
            Self::Anywhere => true,
        }
    }
}

/// Resolves names and refuses any that lead where `reach` does not admit.
pub(crate) struct GuardedResolver {
    pub(crate) reach: Reach,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.reach;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| !reach.admits(a.ip())) {
                return Err(format!(
                    "{} resolves to an address inside the service's network",
                    name.as_str()
                )
                .into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client for requests made on a tenant's behalf: names resolved
/// through [`GuardedResolver`], no redirects followed and no proxy from the
/// environment used (either would carry a request past the resolver).
///
/// # Errors
/// When the client cannot be built (no TLS roots).
pub(crate) fn guarded_client(
    reach: Reach,
    timeout: Duration,
    user_agent: &'static str,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { reach }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(8)
        .user_agent(user_agent)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_inside_the_network_are_refused_unless_admitted() {
        let name = || "localhost".parse::<Name>().expect("a name");
        let public = GuardedResolver {
            reach: Reach::Public,
        };
        assert!(public.resolve(name()).await.is_err());
        for reach in [Reach::PublicAndLoopback, Reach::Anywhere] {
            assert!(GuardedResolver { reach }.resolve(name()).await.is_ok());
        }
        assert!(!Reach::PublicAndLoopback.admits("10.0.0.1".parse().expect("an ip")));
        assert!(Reach::Anywhere.admits("10.0.0.1".parse().expect("an ip")));
    }
}
