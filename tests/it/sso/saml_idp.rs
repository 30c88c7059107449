//! A small SAML 2.0 IdP for the tests: an RSA key and a self-signed
//! certificate generated at test time, metadata, and signed responses to
//! the AuthnRequests orgsync sends (read from the HTTP-Redirect URL as a
//! browser would carry them). It can also produce every response an
//! attacker or a broken IdP might ([`SamlForge`]).

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
use samael::idp::response_builder::{build_response_template, ResponseAttribute};
use samael::idp::sp_extractor::RequiredAttribute;
use samael::idp::{CertificateParams, IdentityProvider, KeyType, Rsa};
use samael::schema::AuthnRequest;
use samael::traits::ToXml;

pub const SSO_URL: &str = "https://idp.example.com/saml/sso";

/// How a response is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlForge {
    Honest,
    /// No signature at all.
    Unsigned,
    /// Signed by a key that is not the IdP's.
    ForeignKey,
    WrongAudience,
    /// Destination and Recipient name another ACS.
    WrongRecipient,
    WrongIssuer,
    /// Answers another AuthnRequest.
    WrongInResponseTo,
    Expired,
    /// XML signature wrapping: an unsigned assertion for another user put
    /// in front of the signed one.
    Wrapped,
    /// Signed with SHA-1 digests (samael's own template), which are refused.
    Sha1Digest,
}

pub struct SamlIdp {
    pub entity_id: String,
    key: IdentityProvider,
    certificate: CertificateDer,
    foreign: IdentityProvider,
}

/// The value of query parameter `name` of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl SamlIdp {
    pub fn new() -> Self {
        let key = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048)).unwrap();
        let certificate = key
            .create_certificate(&CertificateParams {
                common_name: "test-idp",
                issuer_name: "test-idp",
                days_until_expiration: 30,
            })
            .unwrap();
        Self {
            entity_id: "https://idp.example.com/saml/metadata".into(),
            key,
            certificate,
            foreign: IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048)).unwrap(),
        }
    }

    pub fn certificate_base64(&self) -> String {
        STANDARD.encode(self.certificate.der_data())
    }

    pub fn certificate_pem(&self) -> String {
        let body = self.certificate_base64();
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    pub fn metadata_xml(&self) -> String {
        format!(
            r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso}/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            entity = self.entity_id,
            cert = self.certificate_base64(),
            sso = SSO_URL,
        )
    }

    /// The AuthnRequest a redirect URL carries (DEFLATE, base64).
    pub fn request_in(url: &str) -> AuthnRequest {
        let encoded = param(url, "SAMLRequest").expect("a SAMLRequest");
        let deflated = STANDARD.decode(encoded).unwrap();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .read_to_string(&mut xml)
            .unwrap();
        xml.parse().unwrap()
    }

    /// Answers the AuthnRequest in `url` for `name_id` with `attributes`:
    /// the base64 `SAMLResponse` and the `RelayState` to post to the ACS.
    pub fn answer(
        &self,
        url: &str,
        sp_entity_id: &str,
        name_id: &str,
        attributes: &[(&str, &str)],
        forge: SamlForge,
    ) -> (String, Option<String>) {
        let request = Self::request_in(url);
        let acs = request.assertion_consumer_service_url.clone().unwrap();
        let relay_state = param(url, "RelayState");
        (
            self.respond(
                &acs,
                sp_entity_id,
                Some(&request.id),
                name_id,
                attributes,
                forge,
            ),
            relay_state,
        )
    }

    /// A response to `acs` (answering `request_id`, or IdP-initiated).
    pub fn respond(
        &self,
        acs: &str,
        sp_entity_id: &str,
        request_id: Option<&str>,
        name_id: &str,
        attributes: &[(&str, &str)],
        forge: SamlForge,
    ) -> String {
        let attributes: Vec<ResponseAttribute> = attributes
            .iter()
            .map(|(name, value)| ResponseAttribute {
                required_attribute: RequiredAttribute {
                    name: (*name).to_owned(),
                    format: Some("urn:oasis:names:tc:SAML:2.0:attrname-format:basic".into()),
                },
                value,
            })
            .collect();
        let audience = match forge {
            SamlForge::WrongAudience => "https://evil.example.com/sp",
            _ => sp_entity_id,
        };
        let acs = match forge {
            SamlForge::WrongRecipient => "https://evil.example.com/acs",
            _ => acs,
        };
        let issuer = match forge {
            SamlForge::WrongIssuer => "https://evil.example.com/idp",
            _ => &self.entity_id,
        };
        let request_id = match forge {
            SamlForge::WrongInResponseTo => "id-of-another-request",
            _ => request_id.unwrap_or(""),
        };
        let mut response = build_response_template(
            &self.certificate,
            name_id,
            audience,
            issuer,
            acs,
            request_id,
            &attributes,
        );
        let now = chrono::Utc::now();
        let until = match forge {
            SamlForge::Expired => now - chrono::Duration::minutes(10),
            _ => now + chrono::Duration::minutes(5),
        };
        if let Some(assertion) = response.assertion.as_mut() {
            if request_id.is_empty() {
                response.in_response_to = None;
            }
            if let Some(conditions) = assertion.conditions.as_mut() {
                conditions.not_on_or_after = Some(until);
            }
            let confirmations = assertion
                .subject
                .as_mut()
                .and_then(|s| s.subject_confirmations.as_mut())
                .into_iter()
                .flatten();
            for confirmation in confirmations {
                if let Some(data) = confirmation.subject_confirmation_data.as_mut() {
                    data.not_on_or_after = Some(until);
                    if request_id.is_empty() {
                        data.in_response_to = None;
                    }
                }
            }
        }
        if forge == SamlForge::Unsigned {
            response.signature = None;
            return STANDARD.encode(response.to_string().unwrap());
        }
        let signer = match forge {
            SamlForge::ForeignKey => &self.foreign,
            _ => &self.key,
        };
        let unsigned = response.to_string().unwrap();
        let unsigned = if forge == SamlForge::Sha1Digest {
            unsigned
        } else {
            unsigned.replace(
                "http://www.w3.org/2000/09/xmldsig#sha1",
                "http://www.w3.org/2001/04/xmlenc#sha256",
            )
        };
        let xml = Crypto::sign_xml(unsigned, &signer.export_private_key_der().unwrap()).unwrap();
        let xml = if forge == SamlForge::Wrapped {
            wrap(&xml, name_id)
        } else {
            xml
        };
        STANDARD.encode(xml)
    }
}

/// Puts a copy of the signed assertion, for another user and with another
/// id, in front of the original: the classic signature-wrapping attack.
fn wrap(xml: &str, name_id: &str) -> String {
    let start = xml.find("<saml2:Assertion").expect("an assertion");
    let end = xml.find("</saml2:Assertion>").expect("its end") + "</saml2:Assertion>".len();
    let original = &xml[start..end];
    let evil = original
        .replace(name_id, "admin@example.com")
        .replacen("ID=\"", "ID=\"evil", 1);
    format!("{}{evil}{}", &xml[..start], &xml[start..])
}
