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
            .map(|value| match value {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .take(MAX_GROUPS)
                    .map(str::to_owned)
                    .collect(),
                Value::String(one) => vec![one.clone()],
                _ => Vec::new(),
            })
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
