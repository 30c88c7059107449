//! Webhook endpoints: where an org's events are pushed, the rules a target
//! URL must meet (no way into the operator's network), and the retry
//! schedule of a failing delivery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::EventType;
use crate::id::uuid_id;
use crate::org::OrgId;
use crate::{Error, Result};

uuid_id!(
    /// A webhook endpoint.
    WebhookId
);
uuid_id!(
    /// One event's delivery to one endpoint (all its attempts).
    DeliveryId
);

/// Longest target URL and description accepted.
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_DESCRIPTION_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: String,
    /// The event types sent; empty means every type.
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the endpoint was disabled, when orgsync disabled it.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpoint {
    pub fn wants(&self, event: EventType) -> bool {
        wanted(&self.events, event)
    }
}

/// Whether an endpoint subscribed to `events` (empty: every type) is sent `event`.
pub fn wanted(events: &[EventType], event: EventType) -> bool {
    event == EventType::WebhookTest || events.is_empty() || events.contains(&event)
}

/// An endpoint's signing secrets: the current one, and the one it replaced
/// while that still signs alongside (so receivers can switch without a gap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecrets {
    pub current: String,
    pub previous: Option<(String, OffsetDateTime)>,
}

impl SigningSecrets {
    /// The secrets that sign at `now`, current first.
    pub fn in_force(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut secrets = vec![self.current.as_str()];
        if let Some((previous, until)) = &self.previous {
            if now < *until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    /// Given up on after the retry window (the endpoint was disabled).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status_code: Option<i32>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// Checks a target URL as given by an admin: `https` with a host, no
/// credentials, and not an address inside the operator's network. Names are
/// checked again when resolved at delivery time (DNS can change).
///
/// `allow_private` (development and tests only) admits `http` and private
/// or loopback addresses.
///
/// # Errors
/// `Invalid` naming `url` and saying what is wrong.
pub fn check_target(raw: &str, allow_private: bool) -> Result<url::Url> {
    let bad = |why: &str| Error::invalid("url", why.to_owned());
    if raw.len() > MAX_URL_LEN {
        return Err(bad(&format!("longer than {MAX_URL_LEN} characters")));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(bad("must be an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    let literal = match url.host() {
        None => return Err(bad("must name a host")),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private
                && (name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".internal")
                    || name.ends_with(".local"))
            {
                return Err(bad("must not point inside the service's network"));
            }
            None
        }
    };
    if let Some(ip) = literal {
        if !allow_private && !is_public(ip) {
            return Err(bad("must not point inside the service's network"));
        }
    }
    Ok(url)
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local (cloud metadata lives there), shared (CGNAT), documentation,
/// multicast, unspecified or reserved, in either family (IPv4-mapped IPv6
/// addresses are judged as the IPv4 address they carry).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// When a delivery that failed `attempts` times is tried again: exponential
/// from `base`, capped at `cap`, with full jitter (`jitter` in `[0, 1)`) so
/// that a recovering receiver is not hit by every endpoint's retries at once.
pub fn retry_delay(attempts: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exponent).min(cap);
    let floor = ceiling / 2;
    floor + (ceiling - floor).mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn public_https_targets_pass_and_the_operators_network_does_not() {
        assert!(check_target("https://hooks.example.com/orgsync?x=1", false).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:192.168.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://localhost/",
            "https://metadata.google.internal/",
            "not a url",
            "",
        ] {
            assert!(check_target(bad, false).is_err(), "{bad}");
        }
        assert!(check_target("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_target(&format!("https://a.example/{}", "a".repeat(3000)), true).is_err());
    }

    #[test]
    fn addresses_are_judged_by_range() {
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().expect("an address")), "{public}");
        }
        for private in [
            "192.168.1.1",
            "172.16.0.1",
            "fe80::1",
            "::",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
        ] {
            assert!(
                !is_public(private.parse().expect("an address")),
                "{private}"
            );
        }
    }

    proptest! {
        #[test]
        fn retries_back_off_within_their_bounds(attempts in 1u32..200, jitter in 0.0f64..1.0) {
            let (base, cap) = (Duration::from_secs(2), Duration::from_secs(3600));
            let delay = retry_delay(attempts, base, cap, jitter);
            prop_assert!(delay <= cap);
            prop_assert!(delay >= base / 2);
            let next = retry_delay(attempts + 1, base, cap, 0.0);
            prop_assert!(next >= retry_delay(attempts, base, cap, 0.0));
        }
    }
}
