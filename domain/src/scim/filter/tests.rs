use super::*;

fn cmp(name: &str, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare {
        path: AttrPath::parse(name).unwrap(),
        op,
        value,
    }
}

fn eq(name: &str, value: &str) -> Filter {
    cmp(name, CompareOp::Eq, CompValue::Str(value.into()))
}

fn parse(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn idp_lookup_filters_parse() {
    // Okta and Entra look users up before creating them.
    assert_eq!(
        parse(r#"userName eq "test.user@okta.local""#),
        eq("userName", "test.user@okta.local")
    );
    assert_eq!(
        parse(r#"externalId eq "ad3f5e0e-6c5b""#),
        eq("externalId", "ad3f5e0e-6c5b")
    );
    assert_eq!(
        parse(r#"displayName eq "Sales Reps""#),
        eq("displayName", "Sales Reps")
    );
}

#[test]
fn operators_and_keywords_are_case_insensitive() {
    assert_eq!(parse(r#"userName EQ "a""#), eq("userName", "a"));
    assert_eq!(parse(r#"userName Eq "a""#), eq("userName", "a"));
    assert_eq!(
        parse("active eq TRUE"),
        cmp("active", CompareOp::Eq, CompValue::Bool(true))
    );
    assert_eq!(
        parse("title Ne Null"),
        cmp("title", CompareOp::Ne, CompValue::Null)
    );
    assert_eq!(parse("title PR"), Filter::Present(AttrPath::new("title")));
    assert_eq!(
        parse(r#"a eq "1" AND b eq "2" Or c eq "3""#),
        eq("a", "1").and(eq("b", "2")).or(eq("c", "3"))
    );
}

#[test]
fn every_operator_parses() {
    for (text, op) in [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        assert_eq!(
            parse(&format!("x {text} 5")),
            cmp("x", op, CompValue::Num(5.into()))
        );
    }
}

#[test]
fn precedence_is_not_then_and_then_or() {
    let (a, b, c) = (eq("a", "1"), eq("b", "2"), eq("c", "3"));
    assert_eq!(
        parse(r#"a eq "1" or b eq "2" and c eq "3""#),
        a.clone().or(b.clone().and(c.clone()))
    );
    assert_eq!(
        parse(r#"(a eq "1" or b eq "2") and c eq "3""#),
        a.clone().or(b.clone()).and(c.clone())
    );
    assert_eq!(
        parse(r#"not (a eq "1") and b eq "2""#),
        Filter::Not(Box::new(a.clone())).and(b.clone())
    );
    assert_eq!(
        parse(r#"a eq "1" and b eq "2" and c eq "3""#),
        a.and(b).and(c)
    );
}

#[test]
fn value_paths_and_a_trailing_sub_attribute() {
    let inner = eq("type", "work").and(cmp("primary", CompareOp::Eq, CompValue::Bool(true)));
    assert_eq!(
        parse(r#"emails[type eq "work" and primary eq true]"#),
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(inner)
        }
    );
    assert_eq!(
        parse(r#"emails[type eq "work"].value eq "x@example.com""#),
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(eq("type", "work").and(eq("value", "x@example.com"))),
        }
    );
    assert!(matches!(
        parse(r#"emails[type eq "work"].value pr"#),
        Filter::ValuePath { .. }
    ));
}

#[test]
fn urn_qualified_and_dotted_paths() {
    let f = parse(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tour Operations""#,
    );
    let Filter::Compare { path, .. } = f else {
        panic!("not a comparison")
    };
    assert_eq!(
        path.uri.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.name, "department");
    let f = parse(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#);
    assert_eq!(
        f,
        cmp(
            "meta.lastModified",
            CompareOp::Gt,
            CompValue::Str("2011-05-13T04:42:34Z".into())
        )
    );
}

#[test]
fn unquoted_values_are_read_leniently() {
    assert_eq!(parse("externalId eq abc123"), eq("externalId", "abc123"));
    assert_eq!(parse("externalId eq 00123"), eq("externalId", "00123"));
    assert_eq!(
        parse("count gt -1.5e3"),
        cmp(
            "count",
            CompareOp::Gt,
            CompValue::Num(serde_json::Number::from_f64(-1500.0).unwrap())
        )
    );
    assert_eq!(parse("  userName   eq   \"a\"  "), eq("userName", "a"));
    assert_eq!(parse("(externalId eq abc)"), eq("externalId", "abc"));
}

#[test]
fn strings_use_json_escapes() {
    assert_eq!(
        parse(r#"displayName eq "a \"b\" \\ \u00e9""#),
        eq("displayName", "a \"b\" \\ é")
    );
    assert!(matches!(
        Filter::parse(r#"x eq "\q""#),
        Err(FilterError::Syntax { position: 5, .. })
    ));
}

#[test]
fn syntax_errors_say_where_and_what() {
    let err = Filter::parse(r#"userName eqq "a""#).unwrap_err();
    assert_eq!(err, FilterError::syntax(9, "unknown operator 'eqq'"));
    assert_eq!(
        err.to_string(),
        "invalid filter at position 9: unknown operator 'eqq'"
    );
    for bad in [
        "",
        "   ",
        "userName",
        "userName eq",
        r#"userName eq "a" and"#,
        r#"(userName eq "a""#,
        r#"userName eq "a")"#,
        r#"userName eq "a"#,
        "emails[type eq \"w\"",
        "emails[a[b pr]]",
        "not userName pr",
        "[x pr]",
        r#"userName eq "a" userName"#,
        "1abc pr",
        "name.givenName[x pr]",
    ] {
        assert!(
            matches!(Filter::parse(bad), Err(FilterError::Syntax { .. })),
            "{bad:?} should fail"
        );
    }
}

#[test]
fn length_and_depth_are_bounded() {
    let long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
    assert_eq!(Filter::parse(&long), Err(FilterError::TooLong));
    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert!(Filter::parse(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(
        Filter::parse(&nested(MAX_DEPTH + 1)),
        Err(FilterError::TooDeep)
    );
    let nots = format!(
        "{}a pr{}",
        "not (".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(Filter::parse(&nots), Err(FilterError::TooDeep));
}

#[test]
fn display_prints_canonical_syntax_that_parses_back() {
    for text in [
        r#"userName eq "bjensen""#,
        r#"a eq "1" or b eq "2" and c eq "3""#,
        r#"(a eq "1" or b eq "2") and c eq "3""#,
        r#"a eq "1" or (b eq "2" or c eq "3")"#,
        r#"a eq "1" and (b eq "2" and c eq "3")"#,
        r#"not (emails[type eq "work" and value co "@example.com"]) and active eq true"#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z" and x eq null and y lt 1.5"#,
        r#"title eq "tab\tquote\"""#,
    ] {
        let f = parse(text);
        let printed = f.to_string();
        assert_eq!(parse(&printed), f, "{text} printed as {printed}");
    }
    assert_eq!(
        parse(r#"USERNAME EQ "x" AND ((y PR))"#).to_string(),
        r#"USERNAME eq "x" and y pr"#
    );
}
