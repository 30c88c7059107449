//! `attrPath` (RFC 7644 §3.10): an optional schema URN, an attribute name and an optional
//! sub-attribute, shared by filters, PATCH paths and schema lookup.
//!
//! Names keep the spelling the client sent; comparisons elsewhere are case-insensitive
//! (RFC 7643 §2.1), so canonicalising here would only lose information.

use std::fmt;

/// A parsed attribute path such as `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Schema URN prefix, without the trailing `:`.
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A bare attribute name, without URN or sub-attribute.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            uri: None,
            name: name.into(),
            sub: None,
        }
    }

    /// Parses one attribute path; the error says what is wrong, for the caller to place.
    ///
    /// # Errors
    /// When the text is not `[URN ":"] ATTRNAME ["." ATTRNAME]`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (uri, rest) = split_urn(text)?;
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(name) {
            return Err("expected an attribute name");
        }
        if let Some(sub) = sub {
            if !is_attr_name(sub) {
                return Err("expected a sub-attribute name after '.'");
            }
        }
        Ok(Self {
            uri: uri.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// Whether the attribute (ignoring URN and sub-attribute) is `name`, case-insensitively.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Splits a leading schema URN off. The URN may itself contain dots (`2.0`), so it ends at
/// the last `:`, and only then is the remainder split on `.`.
fn split_urn(text: &str) -> Result<(Option<&str>, &str), &'static str> {
    let is_urn =
        text.len() >= 4 && text.is_char_boundary(4) && text[..4].eq_ignore_ascii_case("urn:");
    if !is_urn {
        return Ok((None, text));
    }
    match text.rfind(':') {
        Some(at) if at > 4 => {
            let uri = &text[..at];
            if uri
                .chars()
                .any(|c| c.is_whitespace() || "()[]\"".contains(c))
            {
                return Err("invalid schema URN");
            }
            Ok((Some(uri), &text[at + 1..]))
        }
        _ => Err("expected an attribute name after the schema URN"),
    }
}

/// `ATTRNAME = ALPHA *(nameChar)`, plus `$ref`, which RFC 7643 uses as a sub-attribute name.
pub(crate) fn is_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;

    #[test]
    fn plain_and_dotted_names_parse() {
        assert_eq!(AttrPath::parse("userName"), Ok(AttrPath::new("userName")));
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        assert_eq!(
            AttrPath::parse("members.$ref").unwrap().sub.as_deref(),
            Some("$ref")
        );
    }

    #[test]
    fn urn_prefix_is_split_at_the_last_colon_despite_dots_in_the_version() {
        let p = AttrPath::parse(&format!("{ENTERPRISE}:manager.value")).unwrap();
        assert_eq!(p.uri.as_deref(), Some(ENTERPRISE));
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        assert_eq!(p.to_string(), format!("{ENTERPRISE}:manager.value"));
    }

    #[test]
    fn malformed_names_are_rejected() {
        for bad in [
            "", "1abc", "a.b.c", "a b", "urn:", "urn:x:", ".x", "a.", "ü",
        ] {
            assert!(AttrPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
