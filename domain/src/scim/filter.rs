//! The `filter` query grammar of RFC 7644 §3.4.2.2: parsing into [`Filter`] and printing it
//! back in canonical syntax (`parse(f.to_string()) == f`).
//!
//! Precedence is `not` > `and` > `or`, and `and`/`or` associate to the left. The parser is
//! lenient where identity providers are known to stray from the grammar: operators and
//! keywords in any case, unquoted string values (`externalId eq abc123`), and a sub-attribute
//! after a value filter (`emails[type eq "work"].value eq "x"`), which is read as the
//! equivalent `emails[type eq "work" and value eq "x"]`.
//!
//! Hostile input is bounded: at most [`MAX_FILTER_LEN`] bytes and [`MAX_DEPTH`] levels of
//! parentheses, brackets and `not`, so the recursive descent cannot exhaust the stack.

mod display;
mod lexer;
mod parser;

pub(crate) use parser::parse_path_parts;

pub use super::AttrPath;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `( )`, `[ ]` and `not` accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`, whose paths are
    /// relative to that value.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// Comparison operators (`pr` is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

/// Why a filter was rejected. The messages are written for SCIM clients: they are returned
/// as the `detail` of an `invalidFilter` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter is longer than {MAX_FILTER_LEN} bytes")]
    TooLong,
    #[error("filter nests parentheses, brackets or 'not' deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// `position` is a byte offset into the filter text.
    #[error("invalid filter at position {position}: {message}")]
    Syntax { position: usize, message: String },
}

impl FilterError {
    pub(crate) fn syntax(position: usize, message: impl Into<String>) -> Self {
        Self::Syntax {
            position,
            message: message.into(),
        }
    }
}

impl CompareOp {
    const ALL: [Self; 9] = [
        Self::Eq,
        Self::Ne,
        Self::Co,
        Self::Sw,
        Self::Ew,
        Self::Gt,
        Self::Ge,
        Self::Lt,
        Self::Le,
    ];

    fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }
}

impl CompValue {
    /// A bare (unquoted) value: a keyword, a JSON number, or else the text itself.
    fn from_bare(word: &str) -> Self {
        if word.eq_ignore_ascii_case("true") {
            Self::Bool(true)
        } else if word.eq_ignore_ascii_case("false") {
            Self::Bool(false)
        } else if word.eq_ignore_ascii_case("null") {
            Self::Null
        } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(word) {
            Self::Num(n)
        } else {
            Self::Str(word.to_owned())
        }
    }
}

impl Filter {
    /// Parses a `filter` query parameter (already URL-decoded).
    ///
    /// # Errors
    /// [`FilterError::TooLong`], [`FilterError::TooDeep`], or [`FilterError::Syntax`] with the
    /// byte offset of the offending token.
    pub fn parse(input: &str) -> Result<Self, FilterError> {
        let mut parser = parser::Parser::new(input)?;
        let filter = parser.filter()?;
        parser.finish()?;
        Ok(filter)
    }

    pub fn and(self, other: Filter) -> Self {
        Self::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: Filter) -> Self {
        Self::Or(Box::new(self), Box::new(other))
    }
}

#[cfg(test)]
mod tests;
