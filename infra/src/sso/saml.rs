//! SAML 2.0 through `samael` (xmlsec underneath): reading IdP metadata,
//! AuthnRequests for the HTTP-Redirect binding, SP metadata, and response
//! verification.
//!
//! Verification keeps only what the signature covers (samael reduces the
//! document to its verified references before reading it, which defeats
//! XML signature wrapping), pins the signature algorithms to the RSA and
//! ECDSA SHA-2 family, and checks issuer, destination, recipient,
//! audience, `InResponseTo` and the validity window with two minutes of
//! skew. libxml is not thread-safe across threads for one document, so each
//! verification runs whole on one blocking thread.

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use orgsync_domain::ports::{SamlProvider, ServiceProvider};
use orgsync_domain::sso::{
    SamlAssertion, SamlSettings, SamlSource, SignInError, MAX_METADATA_BYTES,
};
use orgsync_domain::{Error, Result};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::{ServiceProvider as SamaelSp, ServiceProviderBuilder};
use serde_json::{Map, Value};

use crate::net::{guarded_client, Reach};

/// Clock skew tolerated on the validity window.
const SKEW_SECS: i64 = 120;
/// How long after the IdP issued a response it may still arrive.
const MAX_ISSUE_DELAY_SECS: i64 = 180;

pub struct SamaelSamlProvider {
    client: reqwest::Client,
}

impl SamaelSamlProvider {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(allow_insecure_loopback: bool, timeout: Duration) -> anyhow::Result<Self> {
        let reach = if allow_insecure_loopback {
            Reach::PublicAndLoopback
        } else {
            Reach::Public
        };
        let client = guarded_client(
            reach,
            timeout,
            concat!("orgsync-sso/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Self { client })
    }

    async fn fetch_metadata(&self, url: &url::Url) -> Result<String> {
        let unreadable = |e: String| {
            Error::invalid(
                "idp_metadata_url",
                format!("the metadata could not be read: {e}"),
            )
        };
        let mut response = self
            .client
            .get(url.as_str())
            .send()
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unreadable(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreadable(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_METADATA_BYTES {
                return Err(unreadable(format!(
                    "larger than {MAX_METADATA_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| unreadable("not UTF-8 text".into()))
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The IdP's metadata as samael reads it, rebuilt from the stored values.
fn idp_metadata(idp: &SamlSettings) -> Result<EntityDescriptor> {
    let xml = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="{binding}" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        entity = escape(&idp.idp_entity_id),
        cert = escape(&idp.idp_certificate),
        binding = HTTP_REDIRECT_BINDING,
        sso = escape(&idp.idp_sso_url),
    );
    xml.parse::<EntityDescriptor>()
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored SAML settings: {e}")))
}

/// The certificate as base64 DER, from PEM or base64; it must parse as X.509.
fn normalize_certificate(raw: &str) -> Result<String> {
    let body: String = raw
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let der = STANDARD.decode(&body).map_err(|_| {
        Error::invalid(
            "idp_certificate",
            "must be an X.509 certificate, PEM or base64",
        )
    })?;
    openssl::x509::X509::from_der(&der)
        .map_err(|_| Error::invalid("idp_certificate", "does not parse as an X.509 certificate"))?;
    Ok(body)
}

/// Refuses XML with a document type declaration. SAML forbids them (core
/// §1.3), no IdP sends one, and a DTD is how entity expansion ("billion
/// laughs") and external entities reach an XML parser: libxml2 parses what
/// is left, and it runs in the shared process, reached before anyone signs in.
fn without_dtd(xml: &str) -> std::result::Result<(), &'static str> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err("it declares a DTD, which SAML does not allow");
    }
    Ok(())
}

/// The settings an IdP's metadata document gives.
fn settings_from_metadata(xml: &str) -> Result<SamlSettings> {
    let invalid = |reason: &str| Error::invalid("idp_metadata_xml", reason.to_owned());
    without_dtd(xml).map_err(invalid)?;
    let descriptor: EntityDescriptor = xml
        .parse()
        .map_err(|e| Error::invalid("idp_metadata_xml", format!("not SAML metadata: {e}")))?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .ok_or_else(|| invalid("has no entityID"))?;
    let idp = descriptor
        .idp_sso_descriptors
        .as_ref()
        .and_then(|d| d.first())
        .ok_or_else(|| invalid("describes no identity provider (IDPSSODescriptor)"))?;
    let sso_url = idp
        .single_sign_on_services
        .iter()
        .find(|s| s.binding == HTTP_REDIRECT_BINDING)
        .map(|s| s.location.clone())
        .ok_or_else(|| invalid("has no SingleSignOnService with the HTTP-Redirect binding"))?;
    let certificate = idp
        .key_descriptors
        .iter()
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "signing"))
        .find_map(|k| k.key_info.x509_data.as_ref()?.certificates.first().cloned())
        .ok_or_else(|| invalid("has no signing certificate"))?;
    Ok(SamlSettings {
        idp_entity_id: entity_id,
        idp_sso_url: sso_url,
        idp_certificate: normalize_certificate(&certificate)
            .map_err(|_| invalid("its signing certificate does not parse"))?,
        allow_idp_initiated: false,
    })
}

fn service_provider(
    idp: &SamlSettings,
    sp: &ServiceProvider,
    idp_initiated: bool,
) -> Result<SamaelSp> {
    ServiceProviderBuilder::default()
        .entity_id(sp.entity_id.clone())
        .metadata_url(sp.entity_id.clone())
        .acs_url(sp.acs_url.clone())
        .slo_url(None::<String>)
        .idp_metadata(idp_metadata(idp)?)
        .allow_idp_initiated(idp_initiated)
        .max_clock_skew(chrono::Duration::seconds(SKEW_SECS))
        .max_issue_delay(chrono::Duration::seconds(MAX_ISSUE_DELAY_SECS))
        .allowed_signature_algorithms(vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
            AllowedSignatureAlgorithm::EcdsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha384,
            AllowedSignatureAlgorithm::EcdsaSha512,
        ])
        .build()
        .map_err(|e| Error::Internal(anyhow::anyhow!("SAML service provider: {e}")))
}

fn to_time(at: chrono::DateTime<chrono::Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn denied(reason: impl std::fmt::Display) -> SignInError {
    SignInError::denied(format!("the SAML response failed verification: {reason}"))
}

/// Verifies on the calling thread; errors become text here, since samael's
/// are not `Send`.
fn verify_now(
    idp: &SamlSettings,
    sp: &ServiceProvider,
    saml_response: &str,
    request_id: Option<&str>,
) -> std::result::Result<SamlAssertion, SignInError> {
    let sp =
        service_provider(idp, sp, request_id.is_none()).map_err(|_| SignInError::server_error())?;
    let encoded: String = saml_response
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let ids: Vec<&str> = request_id.into_iter().collect();
    let possible = (!ids.is_empty()).then_some(ids.as_slice());
    let xml = STANDARD
        .decode(&encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| denied("it is not base64-encoded UTF-8 XML"))?;
    without_dtd(&xml).map_err(denied)?;
    let assertion = sp
        .parse_xml_response(&xml, possible)
        .map_err(|e| denied(e.to_string()))?;
    let subject = assertion.subject.as_ref();
    let name_id = subject
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone())
        .ok_or_else(|| denied("the assertion has no NameID"))?;
    let confirmed_until = subject
        .and_then(|s| s.subject_confirmations.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.subject_confirmation_data.as_ref())
        .and_then(|d| d.not_on_or_after);
    let conditions_until = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after);
    let until = confirmed_until
        .or(conditions_until)
        .map(to_time)
        .unwrap_or_else(|| time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let mut attributes: Map<String, Value> = Map::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for attribute in &statement.attributes {
            let Some(name) = attribute.name.clone() else {
                continue;
            };
            let values = attributes
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = values {
                list.extend(
                    attribute
                        .values
                        .iter()
                        .filter_map(|v| v.value.clone())
                        .map(Value::String),
                );
            }
        }
    }
    Ok(SamlAssertion {
        id: assertion.id.clone(),
        name_id,
        not_on_or_after: until + time::Duration::seconds(SKEW_SECS),
        attributes,
    })
}

#[async_trait]
impl SamlProvider for SamaelSamlProvider {
    async fn idp_settings(&self, source: SamlSource) -> Result<SamlSettings> {
        match source {
            SamlSource::MetadataXml(xml) => settings_from_metadata(&xml),
            SamlSource::MetadataUrl(url) => {
                let xml = self.fetch_metadata(&url).await?;
                settings_from_metadata(&xml).map_err(|e| match e {
                    Error::Invalid { message, .. } => Error::invalid("idp_metadata_url", message),
                    other => other,
                })
            }
            SamlSource::Values {
                entity_id,
                sso_url,
                certificate,
            } => Ok(SamlSettings {
                idp_entity_id: entity_id,
                idp_sso_url: sso_url,
                idp_certificate: normalize_certificate(&certificate)?,
                allow_idp_initiated: false,
            }),
        }
    }

    fn authn_request(
        &self,
        idp: &SamlSettings,
        sp: &ServiceProvider,
        relay_state: &str,
    ) -> Result<(String, String)> {
        let failed = |e: String| Error::Internal(anyhow::anyhow!("AuthnRequest: {e}"));
        let provider = service_provider(idp, sp, false)?;
        let mut request = provider
            .make_authentication_request(&idp.idp_sso_url)
            .map_err(|e| failed(e.to_string()))?;
        // samael draws 32 random bits for the id; 122 make it unguessable
        // (an NCName: it starts with a letter).
        request.id = format!("id-{}", uuid::Uuid::new_v4().simple());
        let url = request
            .redirect(relay_state)
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed("no destination".into()))?;
        Ok((request.id, url.into()))
    }

    fn sp_metadata(&self, _idp: &SamlSettings, sp: &ServiceProvider) -> Result<String> {
        // By hand rather than samael's: its document advertises a single
        // logout service, which orgsync does not offer.
        Ok(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
            entity = escape(&sp.entity_id),
            acs = escape(&sp.acs_url),
        ))
    }

    async fn verify(
        &self,
        idp: &SamlSettings,
        sp: &ServiceProvider,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> std::result::Result<SamlAssertion, SignInError> {
        let (idp, sp) = (idp.clone(), sp.clone());
        let (response, request_id) = (saml_response.to_owned(), request_id.map(str::to_owned));
        tokio::task::spawn_blocking(move || verify_now(&idp, &sp, &response, request_id.as_deref()))
            .await
            .map_err(|_| SignInError::server_error())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use samael::crypto::{Crypto, CryptoProvider};
    use samael::idp::response_builder::build_response_template;
    use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};

    fn signed(key: &IdentityProvider, xml: &str) -> String {
        let der = key.export_private_key_der().expect("der");
        STANDARD.encode(Crypto::sign_xml(xml, &der).expect("signed"))
    }

    /// A signing key and its IdP, our SP, and a response to `id-1` signed
    /// as samael's template does (SHA-1 digests).
    fn fixture() -> (IdentityProvider, SamlSettings, ServiceProvider, String) {
        let key = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048)).expect("key");
        let cert = key
            .create_certificate(&CertificateParams {
                common_name: "idp",
                issuer_name: "idp",
                days_until_expiration: 3,
            })
            .expect("cert");
        let idp = SamlSettings {
            idp_entity_id: "https://idp.example.com/md".into(),
            idp_sso_url: "https://idp.example.com/sso".into(),
            idp_certificate: STANDARD.encode(cert.der_data()),
            allow_idp_initiated: false,
        };
        let sp = ServiceProvider {
            entity_id: "http://127.0.0.1:8080/sso/saml/x/metadata".into(),
            acs_url: "http://127.0.0.1:8080/sso/saml/x/acs".into(),
        };
        let mut response = build_response_template(
            &cert,
            "ada@example.com",
            &sp.entity_id,
            &idp.idp_entity_id,
            &sp.acs_url,
            "id-1",
            &[],
        );
        let until = chrono::Utc::now() + chrono::Duration::minutes(5);
        for c in response
            .assertion
            .as_mut()
            .and_then(|a| a.subject.as_mut())
            .and_then(|s| s.subject_confirmations.as_mut())
            .into_iter()
            .flatten()
        {
            if let Some(d) = c.subject_confirmation_data.as_mut() {
                d.not_on_or_after = Some(until);
            }
        }
        let xml = samael::traits::ToXml::to_string(&response).expect("xml");
        (key, idp, sp, xml)
    }

    fn with_sha256(sha1: &str) -> String {
        sha1.replace(
            "http://www.w3.org/2000/09/xmldsig#sha1",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        )
    }

    /// samael's response template digests with SHA-1: such a response is
    /// refused, the same one with SHA-256 digests is accepted.
    #[test]
    fn a_signed_response_verifies_unless_it_digests_with_sha1() {
        let (key, idp, sp, sha1) = fixture();
        let sha256 = with_sha256(&sha1);
        let refused = verify_now(&idp, &sp, &signed(&key, &sha1), Some("id-1"));
        assert!(refused.is_err());
        let verified = verify_now(&idp, &sp, &signed(&key, &sha256), Some("id-1"));
        let verified = verified.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verified.name_id, "ada@example.com");
        let other_request = verify_now(&idp, &sp, &signed(&key, &sha256), Some("id-2"));
        assert!(other_request.is_err(), "InResponseTo is checked");
    }

    /// A signed, valid response with an entity-expanding DTD in front: refused
    /// before any XML parser sees it (it would verify without the check: the
    /// DTD is outside what is signed).
    #[test]
    fn a_response_declaring_a_dtd_is_refused_unparsed() {
        let (key, idp, sp, sha1) = fixture();
        let signed_xml = String::from_utf8(
            STANDARD
                .decode(signed(&key, &with_sha256(&sha1)))
                .expect("b64"),
        )
        .expect("utf-8");
        let bomb = "<!DOCTYPE samlp:Response [<!ENTITY a \"aaaaaaaaaa\">\
                    <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>";
        let with_dtd = match signed_xml.find("?>") {
            Some(end) => format!("{}{bomb}{}", &signed_xml[..end + 2], &signed_xml[end + 2..]),
            None => format!("{bomb}{signed_xml}"),
        };
        let refused = verify_now(&idp, &sp, &STANDARD.encode(&with_dtd), Some("id-1"));
        let error = refused.expect_err("refused").to_string();
        assert!(error.contains("DTD"), "{error}");
        assert!(settings_from_metadata(&format!("{bomb}<md:EntityDescriptor/>")).is_err());
    }
}
