//! Splits filter text into tokens, remembering each token's byte offset for error messages.
//!
//! Words are maximal runs of anything but whitespace, brackets, parentheses and quotes; the
//! parser decides whether a word is an attribute path, an operator, a keyword or a bare value,
//! because that depends on where it stands (IdPs send unquoted values such as `eq abc123`).

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A JSON string literal, already unescaped.
    Str(String),
    Word(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

pub(super) fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        let tok = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '"' => {
                let end = string_end(input, pos)?;
                // Skip the literal's characters; `end` is the byte offset of the closing quote.
                while chars.next_if(|&(at, _)| at <= end).is_some() {}
                tokens.push(Token {
                    tok: Tok::Str(unescape(input, pos, end)?),
                    pos,
                });
                continue;
            }
            _ => {
                let mut end = input.len();
                while let Some(&(at, c)) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        end = at;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token {
                    tok: Tok::Word(input[pos..end].to_owned()),
                    pos,
                });
                continue;
            }
        };
        chars.next();
        tokens.push(Token { tok, pos });
    }
    Ok(tokens)
}

/// Byte offset of the quote closing the string opened at `start`. Scanning bytes is safe:
/// `"` and `\` never occur inside a multi-byte UTF-8 sequence.
fn string_end(input: &str, start: usize) -> Result<usize, FilterError> {
    let bytes = input.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i),
            _ => i += 1,
        }
    }
    Err(FilterError::syntax(start, "unterminated string"))
}

fn unescape(input: &str, start: usize, end: usize) -> Result<String, FilterError> {
    let literal = input.get(start..=end).unwrap_or_default();
    serde_json::from_str(literal).map_err(|_| {
        FilterError::syntax(
            start,
            "invalid string literal (JSON escapes and no raw control characters)",
        )
    })
}
