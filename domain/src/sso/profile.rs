//! Who signed in, as the IdP's verified claims describe them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::SignInError;
use crate::membership::AttributeDefinition;

/// At most this many groups are kept from a groups claim.
const MAX_GROUPS: usize = 1000;

/// A signed-in user's profile, as `POST /sso/token` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsoProfile {
    /// The IdP's stable subject (`sub`): the identity, whatever the email.
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub groups: Vec<String>,
    /// Every claim the IdP sent, for attributes orgsync does not model.
    pub raw_attributes: Map<String, Value>,
}

/// The group names a claim or attribute holds: a list, or one name.
fn groups_in(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .take(MAX_GROUPS)
            .map(str::to_owned)
            .collect(),
        Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn text_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl SsoProfile {
    /// Builds the profile from an ID token's verified claims.
    ///
    /// # Errors
    /// `access_denied` without a subject or an email, or when the IdP says
    /// the email is not verified (an unverified email must not reach an
    /// existing member's account).
    pub fn from_oidc_claims(
        claims: Map<String, Value>,
        groups_claim: Option<&str>,
    ) -> Result<Self, SignInError> {
        let id = text_claim(&claims, "sub")
            .ok_or_else(|| SignInError::denied("the ID token has no subject"))?;
        let email = text_claim(&claims, "email")
            .or_else(|| text_claim(&claims, "preferred_username").filter(|u| u.contains('@')))
            .ok_or_else(|| {
                SignInError::denied("the identity provider sent no email for this user")
            })?;
        if claims.get("email_verified") == Some(&Value::Bool(false)) {
            return Err(SignInError::denied(
                "the identity provider says this user's email is not verified",
            ));
        }
        let groups = groups_claim
            .and_then(|name| claims.get(name))
            .map(groups_in)
            .unwrap_or_default();
        Ok(Self {
            id,
            email,
            first_name: text_claim(&claims, "given_name"),
            last_name: text_claim(&claims, "family_name"),
            groups,
            raw_attributes: claims,
        })
    }

    /// The name a member shows: the `name` claim, else given and family names.
    pub fn display_name(&self) -> Option<String> {
        if let Some(name) = text_claim(&self.raw_attributes, "name") {
            return Some(name);
        }
        match (&self.first_name, &self.last_name) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }
}

/// What a verified SAML assertion says about its subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SamlAssertion {
    /// The assertion's `ID`, remembered so it is accepted once.
    pub id: String,
    pub name_id: String,
    /// When the assertion stops being usable (its subject confirmation's
    /// or conditions' `NotOnOrAfter`).
    pub not_on_or_after: time::OffsetDateTime,
    /// Attribute statements by attribute name: a string, or a list of them.
    pub attributes: Map<String, Value>,
}

/// Attribute names IdPs use for the same thing (Okta, Entra ID, Google,
/// OneLogin, JumpCloud, and the LDAP OIDs of eduPerson/InCommon setups).
const SAML_EMAIL: &[&str] = &[
    "email",
    "mail",
    "emailaddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const SAML_FIRST_NAME: &[&str] = &[
    "firstName",
    "first_name",
    "givenName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "urn:oid:2.5.4.42",
];
const SAML_LAST_NAME: &[&str] = &[
    "lastName",
    "last_name",
    "surname",
    "sn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "urn:oid:2.5.4.4",
];
const SAML_GROUPS: &[&str] = &[
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
];

fn first_text(attributes: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let value = attributes.get(*name)?;
        let text = match value {
            Value::Array(items) => items.first()?.as_str()?,
            other => other.as_str()?,
        };
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    })
}

impl SsoProfile {
    /// Builds the profile from a verified assertion: the NameID is the
    /// subject; the email is the NameID when it is one, else an email
    /// attribute.
    ///
    /// # Errors
    /// `access_denied` without a NameID or an email.
    pub fn from_saml(assertion: SamlAssertion) -> Result<Self, SignInError> {
        let id = assertion.name_id.trim().to_owned();
        if id.is_empty() {
            return Err(SignInError::denied("the assertion has no NameID"));
        }
        let attributes = assertion.attributes;
        let email = first_text(&attributes, SAML_EMAIL)
            .or_else(|| id.contains('@').then(|| id.clone()))
            .ok_or_else(|| {
                SignInError::denied("the identity provider sent no email for this user")
            })?;
        let groups = SAML_GROUPS
            .iter()
            .find_map(|name| attributes.get(*name))
            .map(groups_in)
            .unwrap_or_default();
        Ok(Self {
            id,
            email,
            first_name: first_text(&attributes, SAML_FIRST_NAME),
            last_name: first_text(&attributes, SAML_LAST_NAME),
            groups,
            raw_attributes: attributes,
        })
    }
}

/// The values attribute definitions with an `sso_claim` read from the
/// claims: only scalars, as for the directory; a definition whose claim is
/// absent or not a scalar maps its key to `null` (removed on merge).
pub fn claim_metadata(
    definitions: &[AttributeDefinition],
    claims: &Map<String, Value>,
) -> Map<String, Value> {
    definitions
        .iter()
        .filter_map(|definition| {
            let claim = definition.sso_claim.as_deref()?;
            let value = match claims.get(claim) {
                Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.clone(),
                // A SAML attribute with one value arrives as a one-item list.
                Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
                    Value::String(s) if !s.is_empty() => Value::String(s.clone()),
                    _ => Value::Null,
                },
                _ => Value::Null,
            };
            Some((definition.key.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sso::SignInErrorKind;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_profile_takes_subject_email_names_and_groups() {
        let profile = SsoProfile::from_oidc_claims(
            claims(json!({
                "sub": "00u1", "email": "ada@example.com", "given_name": "Ada",
                "family_name": "Lovelace", "roles": ["eng", 7, "ops"]
            })),
            Some("roles"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(profile.id, "00u1");
        assert_eq!(profile.groups, ["eng", "ops"]);
        assert_eq!(profile.display_name().as_deref(), Some("Ada Lovelace"));
        assert_eq!(profile.raw_attributes["given_name"], "Ada");
    }

    #[test]
    fn no_subject_no_email_or_an_unverified_email_is_refused() {
        for bad in [
            json!({"email": "a@example.com"}),
            json!({"sub": "1"}),
            json!({"sub": "1", "email": "a@example.com", "email_verified": false}),
            json!({"sub": " ", "email": "a@example.com"}),
        ] {
            let err = SsoProfile::from_oidc_claims(claims(bad.clone()), None);
            assert!(
                matches!(&err, Err(e) if e.kind == SignInErrorKind::AccessDenied),
                "{bad}"
            );
        }
        let upn = SsoProfile::from_oidc_claims(
            claims(json!({"sub": "1", "preferred_username": "b@example.com"})),
            None,
        );
        assert_eq!(upn.map(|p| p.email).ok().as_deref(), Some("b@example.com"));
    }

    #[test]
    fn claim_metadata_keeps_scalars_and_clears_the_rest() {
        let definitions = [
            ("department", Some("dept")),
            ("level", Some("lvl")),
            ("manager", Some("mgr")),
            ("cost_center", None),
        ]
        .map(|(key, claim)| AttributeDefinition {
            key: key.into(),
            scim_path: None,
            sso_claim: claim.map(String::from),
        });
        let metadata = claim_metadata(
            &definitions,
            &claims(json!({"dept": "R&D", "lvl": 3, "mgr": {"id": 1}})),
        );
        assert_eq!(
            Value::Object(metadata),
            json!({"department": "R&D", "level": 3, "manager": null})
        );
    }
}

#[cfg(test)]
mod saml_tests {
    use super::*;
    use serde_json::json;

    fn assertion(name_id: &str, attributes: Value) -> SamlAssertion {
        SamlAssertion {
            id: "_a1".into(),
            name_id: name_id.into(),
            not_on_or_after: time::OffsetDateTime::UNIX_EPOCH,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_saml_profile_reads_the_names_idps_use() {
        let entra = SsoProfile::from_saml(assertion(
            "8f1c-object-id",
            json!({
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["ada@example.com"],
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Ada"],
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Lovelace"],
                "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["g1", "g2"]
            }),
        ));
        let entra = entra.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entra.id, "8f1c-object-id");
        assert_eq!(entra.email, "ada@example.com");
        assert_eq!(entra.display_name().as_deref(), Some("Ada Lovelace"));
        assert_eq!(entra.groups, ["g1", "g2"]);
        let okta = SsoProfile::from_saml(assertion("grace@example.com", json!({})));
        assert_eq!(
            okta.map(|p| p.email).ok().as_deref(),
            Some("grace@example.com")
        );
        assert!(SsoProfile::from_saml(assertion("opaque", json!({}))).is_err());
        assert!(SsoProfile::from_saml(assertion(" ", json!({"email": "a@b.c"}))).is_err());
    }
}
