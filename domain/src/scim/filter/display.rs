//! Canonical printing of filters: lowercase operators, JSON string literals, and parentheses
//! only where the tree needs them, so that `Filter::parse(&f.to_string()) == Ok(f)`.

use std::fmt;

use super::{CompValue, CompareOp, Filter};

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write_json_string(f, s),
            Self::Num(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Null => f.write_str("null"),
        }
    }
}

fn write_json_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Binding strength of the context a filter is printed in: parentheses are added only where
/// leaving them out would parse into a different tree.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Ctx {
    Or,
    And,
    Operand,
}

impl Filter {
    fn write(&self, f: &mut fmt::Formatter<'_>, ctx: Ctx) -> fmt::Result {
        match self {
            Self::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Self::Present(path) => write!(f, "{path} pr"),
            Self::Not(inner) => {
                f.write_str("not (")?;
                inner.write(f, Ctx::Or)?;
                f.write_str(")")
            }
            Self::ValuePath { attr, filter } => {
                write!(f, "{attr}[")?;
                filter.write(f, Ctx::Or)?;
                f.write_str("]")
            }
            Self::And(lhs, rhs) => Self::write_binary(
                f,
                ctx > Ctx::And,
                (lhs, Ctx::And),
                "and",
                (rhs, Ctx::Operand),
            ),
            Self::Or(lhs, rhs) => {
                Self::write_binary(f, ctx > Ctx::Or, (lhs, Ctx::Or), "or", (rhs, Ctx::And))
            }
        }
    }

    fn write_binary(
        f: &mut fmt::Formatter<'_>,
        parens: bool,
        (lhs, lhs_ctx): (&Filter, Ctx),
        keyword: &str,
        (rhs, rhs_ctx): (&Filter, Ctx),
    ) -> fmt::Result {
        if parens {
            f.write_str("(")?;
        }
        lhs.write(f, lhs_ctx)?;
        write!(f, " {keyword} ")?;
        rhs.write(f, rhs_ctx)?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Ctx::Or)
    }
}
