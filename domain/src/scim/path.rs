//! The PATCH `path` grammar (RFC 7644 §3.5.2): `attrPath` or `valuePath [subAttr]`, e.g.
//! `name.givenName`, `members[value eq "2819c223"]`, `addresses[type eq "work"].streetAddress`
//! or `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.

use std::fmt;

use super::filter::{self, FilterError};
use super::{AttrPath, Filter};

/// A parsed PATCH target.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// The value selection filter between the brackets, relative to `attr`'s values.
    pub filter: Option<Filter>,
    /// The sub-attribute after the brackets (`.value` in `emails[type eq "work"].value`).
    /// A sub-attribute without brackets stays in `attr.sub`.
    pub sub: Option<String>,
}

/// Why a PATCH path was rejected; reported to clients as scimType `invalidPath`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("invalid path: {0}")]
    Syntax(FilterError),
}

impl PatchPath {
    /// # Errors
    /// [`PathError::Empty`] for a blank path; [`PathError::Syntax`] otherwise, carrying the
    /// position of the problem (including problems inside the value filter).
    pub fn parse(input: &str) -> Result<Self, PathError> {
        if input.trim().is_empty() {
            return Err(PathError::Empty);
        }
        let (attr, filter, sub) = filter::parse_path_parts(input).map_err(PathError::Syntax)?;
        Ok(Self { attr, filter, sub })
    }

    /// The sub-attribute targeted, whether written `name.givenName` or `emails[...].value`.
    pub fn sub_attribute(&self) -> Option<&str> {
        self.sub.as_deref().or(self.attr.sub.as_deref())
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::{CompValue, CompareOp};

    use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;

    fn eq(name: &str, value: &str) -> Filter {
        Filter::Compare {
            path: AttrPath::new(name),
            op: CompareOp::Eq,
            value: CompValue::Str(value.into()),
        }
    }

    #[test]
    fn simple_and_dotted_paths() {
        let p = PatchPath::parse("displayName").unwrap();
        assert_eq!(
            (p.attr, p.filter, p.sub),
            (AttrPath::new("displayName"), None, None)
        );
        let p = PatchPath::parse("name.givenName").unwrap();
        assert_eq!(p.sub_attribute(), Some("givenName"));
        assert_eq!(p.to_string(), "name.givenName");
    }

    #[test]
    fn filtered_paths_with_and_without_sub_attribute() {
        let p = PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, AttrPath::new("emails"));
        assert_eq!(p.filter, Some(eq("type", "work")));
        assert_eq!(p.sub.as_deref(), Some("value"));

        let p = PatchPath::parse(r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!((p.filter, p.sub), (Some(eq("value", "2819c223")), None));

        let p = PatchPath::parse(r#"addresses[type eq "work"].streetAddress"#).unwrap();
        assert_eq!(p.sub_attribute(), Some("streetAddress"));
    }

    #[test]
    fn brackets_and_quotes_inside_the_filter_do_not_end_it() {
        let p = PatchPath::parse(r#"emails[value eq "a]b\"c"].display"#).unwrap();
        assert_eq!(p.filter, Some(eq("value", "a]b\"c")));
        assert_eq!(p.sub.as_deref(), Some("display"));
    }

    #[test]
    fn enterprise_paths_keep_their_urn() {
        let p = PatchPath::parse(&format!("{ENTERPRISE}:department")).unwrap();
        assert_eq!(p.attr.uri.as_deref(), Some(ENTERPRISE));
        assert_eq!(p.attr.name, "department");
        let p = PatchPath::parse(&format!("{ENTERPRISE}:manager.value")).unwrap();
        assert_eq!(
            (p.attr.name.as_str(), p.sub_attribute()),
            ("manager", Some("value"))
        );
    }

    #[test]
    fn round_trips_through_display() {
        for text in [
            r#"emails[type eq "work" and primary eq true].value"#,
            "members",
            "name.familyName",
        ] {
            let p = PatchPath::parse(text).unwrap();
            assert_eq!(PatchPath::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for bad in [
            "",
            "  ",
            "emails[",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"]x",
            "a b",
            "name.givenName[type eq \"x\"]",
            "emails[type eq \"w\"].",
            "emails]",
            "emails[a[b pr]]",
            "emails[type eq \"w\"].value eq \"x\"",
        ] {
            assert!(PatchPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
