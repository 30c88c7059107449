//! A connection's SSO settings and the operator's policy for the URLs a
//! sign-in may touch.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use crate::directory::ConnectionId;
use crate::org::OrgId;
use crate::webhooks::is_public;
use crate::{Error, Result};

/// At most this many scopes, each at most [`MAX_SCOPE_LEN`] characters.
const MAX_SCOPES: usize = 20;
const MAX_SCOPE_LEN: usize = 128;
const MAX_URL_LEN: usize = 2048;

/// What an OIDC connection is configured with, apart from its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcSettings {
    /// Exactly the `iss` the IdP puts in its tokens; discovery lives under it.
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// The claim carrying the user's groups, if the IdP sends one.
    pub groups_claim: Option<String>,
}

/// What a SAML 2.0 connection trusts: the IdP's entity id, where to send
/// AuthnRequests (HTTP-Redirect binding), and the certificate its responses
/// or assertions must be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSettings {
    pub idp_entity_id: String,
    pub idp_sso_url: String,
    /// The IdP's signing certificate, base64 DER (as in metadata).
    pub idp_certificate: String,
    /// Whether a response that answers no AuthnRequest of orgsync's is
    /// accepted (IdP-initiated sign-in); off unless the admin turns it on.
    #[serde(default)]
    pub allow_idp_initiated: bool,
}

/// How a connection signs users in.
#[derive(Clone, PartialEq, Eq)]
pub enum SsoProtocol {
    Oidc {
        settings: OidcSettings,
        /// Sent to the IdP's token endpoint; never shown after it is set.
        client_secret: String,
    },
    Saml(SamlSettings),
}

impl SsoProtocol {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Oidc { .. } => "oidc",
            Self::Saml(_) => "saml",
        }
    }
}

impl std::fmt::Debug for SsoProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oidc { settings, .. } => f
                .debug_struct("Oidc")
                .field("settings", settings)
                .field("client_secret", &"***")
                .finish(),
            Self::Saml(settings) => f.debug_tuple("Saml").field(settings).finish(),
        }
    }
}

/// A connection's SSO configuration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConfig {
    pub connection_id: ConnectionId,
    pub org_id: OrgId,
    pub protocol: SsoProtocol,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An admin's SAML settings as sent: the IdP's metadata (as XML, or a URL to
/// read it from), or its three values by hand.
#[derive(Debug, Clone, Default)]
pub struct SamlInput {
    pub metadata_xml: Option<String>,
    pub metadata_url: Option<String>,
    pub idp_entity_id: Option<String>,
    pub idp_sso_url: Option<String>,
    pub idp_certificate: Option<String>,
    pub allow_idp_initiated: bool,
}

/// Where SAML settings come from, once the input's shape is checked.
#[derive(Debug, Clone)]
pub enum SamlSource {
    MetadataXml(String),
    MetadataUrl(url::Url),
    Values {
        entity_id: String,
        sso_url: String,
        certificate: String,
    },
}

/// The largest IdP metadata document read, in bytes.
pub const MAX_METADATA_BYTES: usize = 512 * 1024;

impl SamlInput {
    /// # Errors
    /// `Invalid` naming the field: none or several sources, an oversized
    /// document, a URL that may not be fetched, a missing or blank value.
    pub fn source(self, policy: &SsoPolicy) -> Result<SamlSource> {
        let by_hand = self.idp_entity_id.is_some()
            || self.idp_sso_url.is_some()
            || self.idp_certificate.is_some();
        match (self.metadata_xml, self.metadata_url, by_hand) {
            (Some(xml), None, false) => {
                if xml.len() > MAX_METADATA_BYTES {
                    return Err(Error::invalid(
                        "idp_metadata_xml",
                        format!("at most {MAX_METADATA_BYTES} bytes"),
                    ));
                }
                Ok(SamlSource::MetadataXml(xml))
            }
            (None, Some(url), false) => Ok(SamlSource::MetadataUrl(check_endpoint(
                url.trim(),
                "idp_metadata_url",
                policy.allow_insecure_loopback,
            )?)),
            (None, None, true) => {
                let need = |value: Option<String>, field: &str, max: usize| {
                    bounded_text(&value.unwrap_or_default(), field, max)
                };
                Ok(SamlSource::Values {
                    entity_id: need(self.idp_entity_id, "idp_entity_id", 1024)?,
                    sso_url: need(self.idp_sso_url, "idp_sso_url", MAX_URL_LEN)?,
                    // PEM has line breaks: only its size is checked here,
                    // its content where it is parsed.
                    certificate: self
                        .idp_certificate
                        .filter(|c| !c.trim().is_empty() && c.len() <= 64 * 1024)
                        .ok_or_else(|| {
                            Error::invalid("idp_certificate", "must be an X.509 certificate, PEM or base64")
                        })?,
                })
            }
            _ => Err(Error::invalid(
                "idp_metadata_xml",
                "give exactly one of idp_metadata_xml, idp_metadata_url, or idp_entity_id with idp_sso_url and idp_certificate",
            )),
        }
    }
}

/// An admin's OIDC settings as sent; `client_secret` may be left out when
/// changing settings that already have one.
#[derive(Debug, Clone, Default)]
pub struct OidcInput {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub groups_claim: Option<String>,
}

fn bounded_text(raw: &str, field: &str, max: usize) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters, without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// RFC 6749 §3.3: a scope token is printable ASCII except space, `"` and `\`.
fn check_scope(scope: &str, at: usize) -> Result<()> {
    let ok = !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("scopes[{at}]"),
            "a scope is 1 to 128 printable ASCII characters, without spaces, quotes or backslashes",
        ))
    }
}

impl OidcInput {
    /// Validates the input; `current` supplies the secret when none is sent.
    ///
    /// # Errors
    /// `Invalid` naming the field: an issuer that is not an allowed URL, a
    /// blank or overlong client id or secret, scopes without `openid`, a
    /// malformed or repeated scope, a bad groups claim, or no secret at all.
    pub fn validate(
        self,
        policy: &SsoPolicy,
        current_secret: Option<&str>,
    ) -> Result<(OidcSettings, String)> {
        check_endpoint(self.issuer.trim(), "issuer", policy.allow_insecure_loopback)?;
        let client_id = bounded_text(&self.client_id, "client_id", 256)?;
        let client_secret = match (self.client_secret, current_secret) {
            (Some(secret), _) => bounded_text(&secret, "client_secret", 1024)?,
            (None, Some(current)) => current.to_owned(),
            (None, None) => {
                return Err(Error::invalid(
                    "client_secret",
                    "required when SSO is first configured",
                ))
            }
        };
        let scopes = self
            .scopes
            .unwrap_or_else(|| ["openid", "email", "profile"].map(String::from).to_vec());
        if scopes.len() > MAX_SCOPES {
            return Err(Error::invalid(
                "scopes",
                format!("at most {MAX_SCOPES} scopes"),
            ));
        }
        for (i, scope) in scopes.iter().enumerate() {
            check_scope(scope, i)?;
            if scopes[..i].contains(scope) {
                return Err(Error::invalid(format!("scopes[{i}]"), "listed twice"));
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            return Err(Error::invalid(
                "scopes",
                "must include \"openid\" (an ID token is what proves the sign-in)",
            ));
        }
        let groups_claim = self
            .groups_claim
            .map(|claim| bounded_text(&claim, "groups_claim", 256))
            .transpose()?;
        Ok((
            OidcSettings {
                issuer: self.issuer.trim().to_owned(),
                client_id,
                scopes,
                groups_claim,
            },
            client_secret,
        ))
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Checks a URL orgsync fetches or sends a browser to on an IdP's behalf:
/// `https`, no credentials or fragment, not an address inside the service's
/// network; `http` only on a loopback address, and only when the operator
/// allows it (local development and tests). Names are checked again when
/// they are resolved, so DNS cannot smuggle a private address past this.
///
/// # Errors
/// `Invalid` (field `field`) saying what is wrong.
pub fn check_endpoint(raw: &str, field: &str, allow_insecure_loopback: bool) -> Result<Url> {
    if raw.len() > MAX_URL_LEN {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = Url::parse(raw).map_err(|e| Error::invalid(field, format!("not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(
            field,
            "must not carry credentials or a fragment",
        ));
    }
    let loopback_allowed = allow_insecure_loopback && is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback_allowed => {}
        _ => {
            return Err(Error::invalid(
                field,
                "must be an https URL (http only on a loopback address, when sso.allow_insecure_loopback is on)",
            ))
        }
    }
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(ip.into()),
        Some(url::Host::Ipv6(ip)) => Some(ip.into()),
        Some(url::Host::Domain(_)) => None,
        None => return Err(Error::invalid(field, "must name a host")),
    };
    if ip.is_some_and(|ip| !is_public(ip)) && !loopback_allowed {
        return Err(Error::invalid(
            field,
            "must not point inside the service's network",
        ));
    }
    Ok(url)
}

/// The operator's rules for sign-ins.
#[derive(Debug, Clone)]
pub struct SsoPolicy {
    /// Where the product may ask orgsync to send users back; matched exactly.
    pub redirect_uris: Vec<String>,
    /// `http` issuers, metadata and redirect URIs on 127.0.0.0/8 and ::1.
    pub allow_insecure_loopback: bool,
    /// How long a user may take at the IdP.
    pub login_ttl: Duration,
    /// How long the product has to redeem a code.
    pub code_ttl: Duration,
}

impl SsoPolicy {
    /// # Errors
    /// `Invalid` (field `sso.redirect_uris[i]`) for a URI that is not https
    /// (or loopback http when allowed), or carries a fragment.
    pub fn new(
        redirect_uris: Vec<String>,
        allow_insecure_loopback: bool,
        login_ttl: Duration,
    ) -> Result<Self> {
        for (i, uri) in redirect_uris.iter().enumerate() {
            let field = format!("sso.redirect_uris[{i}]");
            let url = Url::parse(uri).map_err(|e| Error::invalid(&field, e.to_string()))?;
            let ok = url.scheme() == "https"
                || (url.scheme() == "http" && allow_insecure_loopback && is_loopback(&url));
            if !ok || url.fragment().is_some() {
                return Err(Error::invalid(
                    field,
                    "must be https without a fragment (http only on a loopback address, when sso.allow_insecure_loopback is on)",
                ));
            }
        }
        Ok(Self {
            redirect_uris,
            allow_insecure_loopback,
            login_ttl,
            code_ttl: Duration::from_secs(60),
        })
    }

    /// # Errors
    /// `Invalid` (field `redirect_uri`) unless the URI is on the list exactly.
    pub fn check_redirect_uri(&self, raw: &str) -> Result<()> {
        if self.redirect_uris.iter().any(|allowed| allowed == raw) {
            Ok(())
        } else {
            Err(Error::invalid(
                "redirect_uri",
                "is not one of the redirect URIs this service allows (sso.redirect_uris)",
            ))
        }
    }
}

#[cfg(test)]
mod tests;
