//! Recursive descent over the lexer's tokens. Each level of recursion passes through a
//! parenthesis, a bracket or `not`, all counted against [`MAX_DEPTH`], so the stack stays
//! bounded whatever the input.

use super::lexer::{self, Tok, Token};
use super::{AttrPath, CompValue, CompareOp, Filter, FilterError, MAX_DEPTH, MAX_FILTER_LEN};

/// The pieces of a PATCH path (`attr`, `attr[filter]`, `attr[filter].sub`), parsed with the
/// filter lexer so that brackets and quotes inside the value filter are handled exactly as
/// in filters.
pub(crate) fn parse_path_parts(
    input: &str,
) -> Result<(AttrPath, Option<Filter>, Option<String>), FilterError> {
    let mut parser = Parser::new(input)?;
    let (pos, word) = parser.word("expected an attribute path")?;
    let attr = AttrPath::parse(&word).map_err(|m| FilterError::syntax(pos, m))?;
    let mut filter = None;
    let mut sub = None;
    if parser.peek() == Some(&Tok::LBracket) {
        let (inner, tail) = parser.value_filter(&attr, pos)?;
        filter = Some(inner);
        sub = tail;
    }
    parser.finish()?;
    Ok((attr, filter, sub))
}

pub(super) struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
    in_brackets: bool,
    end: usize,
}

impl Parser {
    pub(super) fn new(input: &str) -> Result<Self, FilterError> {
        if input.len() > MAX_FILTER_LEN {
            return Err(FilterError::TooLong);
        }
        let tokens = lexer::tokenize(input)?;
        if tokens.is_empty() {
            return Err(FilterError::syntax(0, "empty filter"));
        }
        Ok(Self {
            tokens,
            next: 0,
            depth: 0,
            in_brackets: false,
            end: input.len(),
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |t| t.pos)
    }

    fn bump(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        let found = match self.peek() {
            None => "end of filter".to_owned(),
            Some(Tok::LParen) => "'('".to_owned(),
            Some(Tok::RParen) => "')'".to_owned(),
            Some(Tok::LBracket) => "'['".to_owned(),
            Some(Tok::RBracket) => "']'".to_owned(),
            Some(Tok::Str(_)) => "a string".to_owned(),
            Some(Tok::Word(w)) => format!("'{}'", w.chars().take(40).collect::<String>()),
        };
        Err(FilterError::syntax(
            self.pos(),
            format!("{}, found {found}", message.into()),
        ))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(&tok) {
            self.next += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    fn word(&mut self, what: &str) -> Result<(usize, String), FilterError> {
        match self.peek() {
            Some(Tok::Word(_)) => match self.bump() {
                Some(Token {
                    tok: Tok::Word(w),
                    pos,
                }) => Ok((pos, w)),
                _ => self.error(what),
            },
            _ => self.error(what),
        }
    }

    pub(super) fn finish(&self) -> Result<(), FilterError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.error("expected 'and', 'or' or the end of the filter"),
        }
    }

    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::TooDeep);
        }
        Ok(())
    }

    /// `or` level: the loop (not recursion) keeps long `a or b or c ...` chains flat.
    pub(super) fn filter(&mut self) -> Result<Filter, FilterError> {
        let mut lhs = self.conjunction()?;
        while self.peek_keyword("or") {
            self.next += 1;
            lhs = lhs.or(self.conjunction()?);
        }
        Ok(lhs)
    }

    fn conjunction(&mut self) -> Result<Filter, FilterError> {
        let mut lhs = self.unary()?;
        while self.peek_keyword("and") {
            self.next += 1;
            lhs = lhs.and(self.unary()?);
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        let not_paren = self.peek_keyword("not")
            && self.tokens.get(self.next + 1).map(|t| &t.tok) == Some(&Tok::LParen);
        if not_paren {
            self.next += 1;
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        match self.peek() {
            Some(Tok::LParen) => self.group(),
            Some(Tok::Word(_)) => self.attr_expr(),
            _ => self.error("expected an attribute path, '(' or 'not'"),
        }
    }

    fn group(&mut self) -> Result<Filter, FilterError> {
        self.expect(Tok::LParen, "'('")?;
        self.descend()?;
        let inner = self.filter()?;
        self.expect(Tok::RParen, "')'")?;
        self.depth -= 1;
        Ok(inner)
    }

    fn attr_expr(&mut self) -> Result<Filter, FilterError> {
        let (pos, word) = self.word("expected an attribute path")?;
        let path = AttrPath::parse(&word).map_err(|m| FilterError::syntax(pos, m))?;
        if self.peek() == Some(&Tok::LBracket) {
            let (inner, sub) = self.value_filter(&path, pos)?;
            let filter = match sub {
                // `emails[type eq "work"].value eq "x"`: the trailing test applies to the same
                // element, so it joins the bracketed filter.
                Some(sub) => inner.and(self.comparison(AttrPath::new(sub))?),
                None => inner,
            };
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(filter),
            });
        }
        self.comparison(path)
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let (pos, op) =
            self.word("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")?;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op).ok_or_else(|| {
            FilterError::syntax(
                pos,
                format!(
                    "unknown operator '{}'",
                    op.chars().take(40).collect::<String>()
                ),
            )
        })?;
        let value = match self.peek() {
            Some(Tok::Str(_)) | Some(Tok::Word(_)) => match self.bump().map(|t| t.tok) {
                Some(Tok::Str(s)) => CompValue::Str(s),
                Some(Tok::Word(w)) => CompValue::from_bare(&w),
                _ => return self.error("expected a comparison value"),
            },
            _ => return self.error("expected a comparison value"),
        };
        Ok(Filter::Compare { path, op, value })
    }

    /// `[valFilter]` plus an optional `.sub` after it; the caller has seen the `[`.
    fn value_filter(
        &mut self,
        attr: &AttrPath,
        attr_pos: usize,
    ) -> Result<(Filter, Option<String>), FilterError> {
        if self.in_brackets {
            return self.error("value filters cannot be nested");
        }
        if attr.sub.is_some() {
            return Err(FilterError::syntax(
                attr_pos,
                "a value filter must follow an attribute, not a sub-attribute",
            ));
        }
        self.expect(Tok::LBracket, "'['")?;
        self.descend()?;
        self.in_brackets = true;
        let inner = self.filter()?;
        self.expect(Tok::RBracket, "']'")?;
        self.in_brackets = false;
        self.depth -= 1;
        let sub = match self.peek() {
            Some(Tok::Word(w)) if w.starts_with('.') => {
                let name = w[1..].to_owned();
                if !crate::scim::attr_path::is_attr_name(&name) {
                    return self.error("expected a sub-attribute name after ']'");
                }
                self.next += 1;
                Some(name)
            }
            _ => None,
        };
        Ok((inner, sub))
    }
}
