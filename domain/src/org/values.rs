//! Validated values of an organization: parse, don't validate.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A URL-safe handle: 1–63 characters of `a-z`, `0-9` and `-`, not starting or
/// ending with `-`. Unique among the roots, and within a tenant's tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 63;

    /// # Errors
    /// `Invalid` (field `slug`) when the text is not a valid slug.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        let invalid = |message: &str| Error::invalid("slug", message);
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(invalid("must be 1 to 63 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "may contain only lowercase letters, digits and hyphens",
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(invalid("must not start or end with a hyphen"));
        }
        Ok(Self(raw.to_owned()))
    }
}

crate::text::validated_text!(Slug);

/// A display name: trimmed, 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgName(String);

impl OrgName {
    pub const MAX_CHARS: usize = 200;

    /// # Errors
    /// `Invalid` (field `name`) when the name is blank, too long or has control characters.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid("name", "must not be blank"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid("name", "must be at most 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

crate::text::validated_text!(OrgName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs_follow_the_url_safe_rules() {
        for ok in ["acme", "a", "acme-eu-2", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_must_not_be_blank() {
        assert_eq!(
            OrgName::parse("  Acme EU ")
                .map(|n| n.as_str().to_owned())
                .ok(),
            Some("Acme EU".to_owned())
        );
        assert!(OrgName::parse("   ").is_err());
        assert!(OrgName::parse("a\u{0}b").is_err());
        assert!(OrgName::parse(&"é".repeat(201)).is_err());
        assert!(OrgName::parse(&"é".repeat(200)).is_ok());
    }

    proptest! {
        #[test]
        fn slug_parsing_never_panics_and_accepted_slugs_roundtrip(raw in "\\PC{0,80}") {
            if let Ok(slug) = Slug::parse(&raw) {
                prop_assert_eq!(slug.as_str(), raw.as_str());
            }
        }

        #[test]
        fn name_parsing_never_panics(raw in "\\PC{0,300}") {
            let _ = OrgName::parse(&raw);
        }
    }
}
