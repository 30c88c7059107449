//! The OpenID Connect client: discovery and JWKS (cached; the key set is
//! fetched again, at most every `JWKS_REFETCH_GAP`, when a token names a
//! key it does not hold, so an IdP's key rotation needs no restart), the
//! authorization code exchange, and ID token verification.
//!
//! Verification pins what the IdP advertises: the token's algorithm must be
//! one of its `id_token_signing_alg_values_supported` and asymmetric (HMAC
//! and `none` are refused outright, so a public key can never be used as an
//! HMAC secret), the key must come from its JWKS and match the algorithm's
//! family; `iss`, `aud` (and `azp`), `exp`, `nbf` and `iat` are checked
//! with two minutes of skew, and the nonce must be the login's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use orgsync_domain::ports::OidcProvider;
use orgsync_domain::sso::{check_endpoint, OidcEndpoints, Redemption, SignInError};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::net::{guarded_client, Reach};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 120;
/// The shortest time between two JWKS fetches forced by unknown key ids,
/// so tokens naming random `kid`s cannot make orgsync hammer an IdP.
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(10);
/// Bytes read from any IdP answer (discovery, JWKS, token response).
const MAX_BODY: usize = 256 * 1024;

/// How the client reaches identity providers.
#[derive(Debug, Clone, Copy)]
pub struct OidcClientSettings {
    /// `http` and loopback addresses (local development, tests).
    pub allow_insecure_loopback: bool,
    pub timeout: Duration,
    /// How long discovery documents and key sets are trusted before refetching.
    pub cache_ttl: Duration,
}

impl Default for OidcClientSettings {
    fn default() -> Self {
        Self {
            allow_insecure_loopback: false,
            timeout: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub struct HttpOidcProvider {
    client: reqwest::Client,
    settings: OidcClientSettings,
    discovery: moka::future::Cache<String, Arc<OidcEndpoints>>,
    keys: moka::future::Cache<String, Arc<JwkSet>>,
    /// When each key set was last fetched because of an unknown `kid`.
    refetched: Mutex<HashMap<String, Instant>>,
}

fn unreachable(what: &str, error: impl std::fmt::Display) -> SignInError {
    SignInError::unavailable(format!(
        "the identity provider's {what} could not be read: {error}"
    ))
}

/// The asymmetric algorithms an ID token may be signed with.
fn asymmetric(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

impl HttpOidcProvider {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(settings: OidcClientSettings) -> anyhow::Result<Self> {
        let reach = if settings.allow_insecure_loopback {
            Reach::PublicAndLoopback
        } else {
            Reach::Public
        };
        let client = guarded_client(
            reach,
            settings.timeout,
            concat!("orgsync-sso/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Self {
            client,
            settings,
            discovery: cache(settings.cache_ttl),
            keys: cache(settings.cache_ttl),
            refetched: Mutex::new(HashMap::new()),
        })
    }

    fn check(&self, url: &str, what: &str) -> Result<(), SignInError> {
        check_endpoint(url, what, self.settings.allow_insecure_loopback)
            .map(|_| ())
            .map_err(|e| SignInError::invalid_request(format!("the identity provider's {e}")))
    }

    /// Reads at most [`MAX_BODY`] bytes of an answer.
    async fn body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, SignInError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(what, e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(SignInError::invalid_request(format!(
                    "the identity provider's {what} is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, SignInError> {
        self.check(url, what)?;
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(what, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unreachable(what, format!("HTTP {status}")));
        }
        let body = Self::body(response, what).await?;
        serde_json::from_slice(&body).map_err(|e| {
            SignInError::invalid_request(format!(
                "the identity provider's {what} is not valid: {e}"
            ))
        })
    }

    async fn fetch_discovery(&self, issuer: &str) -> Result<OidcEndpoints, SignInError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: DiscoveryDocument = self.get_json(&url, "discovery document").await?;
        // OpenID Connect Discovery §4.3: it must name exactly this issuer.
        if doc.issuer != issuer {
            return Err(SignInError::invalid_request(format!(
                "the discovery document names issuer {:?}, not {issuer:?}",
                doc.issuer
            )));
        }
        for (url, what) in [
            (&doc.authorization_endpoint, "authorization_endpoint"),
            (&doc.token_endpoint, "token_endpoint"),
            (&doc.jwks_uri, "jwks_uri"),
        ] {
            self.check(url, what)?;
        }
        let mut signing_algorithms = doc.id_token_signing_alg_values_supported;
        if signing_algorithms.is_empty() {
            // The discovery default (and the one algorithm every IdP supports).
            signing_algorithms.push("RS256".into());
        }
        let methods = &doc.token_endpoint_auth_methods_supported;
        let secret_in_body = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        Ok(OidcEndpoints {
            issuer: doc.issuer,
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            jwks_uri: doc.jwks_uri,
            signing_algorithms,
            secret_in_body,
        })
    }

    async fn endpoints(&self, issuer: &str) -> Result<Arc<OidcEndpoints>, SignInError> {
        if let Some(found) = self.discovery.get(issuer).await {
            return Ok(found);
        }
        let endpoints = Arc::new(self.fetch_discovery(issuer).await?);
        self.discovery
            .insert(issuer.to_owned(), endpoints.clone())
            .await;
        Ok(endpoints)
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<Arc<JwkSet>, SignInError> {
        let set: JwkSet = self.get_json(jwks_uri, "key set (JWKS)").await?;
        let set = Arc::new(set);
        self.keys.insert(jwks_uri.to_owned(), set.clone()).await;
        Ok(set)
    }

    /// Whether an unknown `kid` may trigger a fetch of `jwks_uri` now.
    fn may_refetch(&self, jwks_uri: &str) -> bool {
        let Ok(mut refetched) = self.refetched.lock() else {
            return false;
        };
        let now = Instant::now();
        match refetched.get(jwks_uri) {
            Some(at) if now.duration_since(*at) < JWKS_REFETCH_GAP => false,
            _ => {
                refetched.insert(jwks_uri.to_owned(), now);
                true
            }
        }
    }

    /// The key that verifies a token with this header: by `kid`, else the
    /// only signing key of the set; fetched again once when unknown.
    async fn key_for(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, SignInError> {
        let cached = self.keys.get(jwks_uri).await;
        let fresh = cached.is_none();
        let set = match cached {
            Some(set) => set,
            None => self.fetch_keys(jwks_uri).await?,
        };
        let found = select_key(&set, kid, alg);
        let jwk = match found {
            Some(jwk) => jwk.clone(),
            None if !fresh && self.may_refetch(jwks_uri) => {
                let set = self.fetch_keys(jwks_uri).await?;
                select_key(&set, kid, alg)
                    .cloned()
                    .ok_or_else(unknown_key)?
            }
            None => return Err(unknown_key()),
        };
        DecodingKey::from_jwk(&jwk).map_err(|e| {
            SignInError::denied(format!("the identity provider's key is unusable: {e}"))
        })
    }

    async fn exchange(
        &self,
        endpoints: &OidcEndpoints,
        r: &Redemption<'_>,
    ) -> Result<String, SignInError> {
        let mut request = self.client.post(&endpoints.token_endpoint);
        if !endpoints.secret_in_body {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(r.client_id), Some(encode(r.client_secret)));
        }
        let body = token_request(r, endpoints.secret_in_body);
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable("token endpoint", e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unreachable("token endpoint", format!("HTTP {status}")));
        }
        let body = Self::body(response, "token response").await?;
        let answer: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            SignInError::denied(format!(
                "the identity provider's token endpoint answered HTTP {status} without a token"
            ))
        })?;
        if let Some(error) = answer.error {
            let detail = answer.error_description.unwrap_or_default();
            return Err(SignInError::denied(format!(
                "the identity provider refused the code ({}): {}",
                clip(&error, 64),
                clip(&detail, 300)
            )));
        }
        answer
            .id_token
            .filter(|_| status.is_success())
            .ok_or_else(|| SignInError::denied("the identity provider returned no ID token"))
    }
}

fn cache<V: Clone + Send + Sync + 'static>(ttl: Duration) -> moka::future::Cache<String, V> {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(ttl)
        .build()
}

/// The code exchange's form body.
fn token_request(r: &Redemption<'_>, secret_in_body: bool) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", r.code)
        .append_pair("redirect_uri", r.redirect_uri)
        .append_pair("code_verifier", r.pkce_verifier)
        .append_pair("client_id", r.client_id);
    if secret_in_body {
        form.append_pair("client_secret", r.client_secret);
    }
    form.finish()
}

fn clip(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn unknown_key() -> SignInError {
    SignInError::denied("the ID token is signed with a key the identity provider does not publish")
}

fn select_key<'a>(set: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let usable = |jwk: &&Jwk| {
        let for_signing = !matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        let same_alg = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| format!("{declared:?}") == format!("{alg:?}"));
        for_signing && same_alg
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(usable)
            .find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = set.keys.iter().filter(usable);
            let only = candidates.next();
            candidates.next().is_none().then_some(only).flatten()
        }
    }
}

fn denied(what: &str) -> SignInError {
    SignInError::denied(format!("the ID token {what}"))
}

#[async_trait]
impl OidcProvider for HttpOidcProvider {
    async fn discover(&self, issuer: &str) -> Result<OidcEndpoints, SignInError> {
        self.endpoints(issuer).await.map(|e| (*e).clone())
    }

    async fn redeem(&self, r: &Redemption<'_>) -> Result<Map<String, Value>, SignInError> {
        let endpoints = self.endpoints(r.issuer).await?;
        let id_token = self.exchange(&endpoints, r).await?;
        // A header that names `none` or an unknown algorithm does not parse.
        let header = jsonwebtoken::decode_header(&id_token)
            .map_err(|_| denied("is malformed or unsigned"))?;
        let alg_name = format!("{:?}", header.alg);
        let alg = asymmetric(&alg_name).ok_or_else(|| {
            denied(&format!(
                "is signed with {alg_name}, which is never accepted"
            ))
        })?;
        if !endpoints.signing_algorithms.iter().any(|a| a == &alg_name) {
            return Err(denied(&format!(
                "is signed with {alg_name}, which the identity provider does not advertise"
            )));
        }
        let key = self
            .key_for(&endpoints.jwks_uri, header.kid.as_deref(), alg)
            .await?;
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[r.issuer]);
        validation.set_audience(&[r.client_id]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let token = jsonwebtoken::decode::<Map<String, Value>>(&id_token, &key, &validation)
            .map_err(|e| denied(&format!("failed verification ({e})")))?;
        let claims = token.claims;
        if claims.get("nonce").and_then(Value::as_str) != Some(r.nonce) {
            return Err(denied("does not carry this sign-in's nonce (a replay?)"));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(120);
        if claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| iat > now + leeway)
        {
            return Err(denied("was issued in the future"));
        }
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != r.client_id => {
                return Err(denied("was issued to another client (azp)"))
            }
            None if several_audiences => {
                return Err(denied("names several audiences and no authorized party"))
            }
            _ => {}
        }
        Ok(claims)
    }
}
