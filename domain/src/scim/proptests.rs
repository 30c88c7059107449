//! Property tests: the parsers and PATCH never panic on arbitrary input, and printing a filter
//! then parsing it gives the same filter back.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

/// Text built from the grammar's own pieces, so that inputs get deep into the parser instead of
/// failing at the first character, mixed with arbitrary unicode.
fn filterish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(" ".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(".".to_owned()),
        Just("not".to_owned()),
        Just("and".to_owned()),
        Just("or".to_owned()),
        Just("eq".to_owned()),
        Just("pr".to_owned()),
        Just("emails".to_owned()),
        Just("urn:a:b:".to_owned()),
        Just("1e5".to_owned()),
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn attr_path(allow_sub: bool) -> impl Strategy<Value = AttrPath> {
    let name = prop_oneof![
        Just("userName"),
        Just("emails"),
        Just("type"),
        Just("value"),
        Just("x-1"),
        Just("$ref")
    ];
    let uri = prop_oneof![
        Just(None),
        Just(Some(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ))
    ];
    let sub = if allow_sub {
        prop_oneof![Just(None), Just(Some("givenName")), Just(Some("value"))].boxed()
    } else {
        Just(None).boxed()
    };
    (uri, name, sub).prop_map(|(uri, name, sub)| AttrPath {
        uri: uri.map(str::to_owned),
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        any::<String>().prop_map(CompValue::Str),
        any::<i64>().prop_map(|n| CompValue::Num(n.into())),
        any::<u64>().prop_map(|n| CompValue::Num(n.into())),
        // Short decimals: serde_json parses those exactly. Long ones can be off by one ulp
        // without its `float_roundtrip` feature, which is serde_json's limit, not the grammar's.
        (any::<i32>(), -20i32..20).prop_filter_map("a float", |(m, e)| {
            serde_json::from_str::<serde_json::Number>(&format!("{m}.5e{e}"))
                .ok()
                .map(CompValue::Num)
        }),
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ])
}

/// Filters as the grammar allows them: value filters only at the top, never nested.
fn filter(in_brackets: bool) -> BoxedStrategy<Filter> {
    let leaf = prop_oneof![
        (attr_path(true), op(), comp_value()).prop_map(|(path, op, value)| Filter::Compare {
            path,
            op,
            value
        }),
        attr_path(true).prop_map(Filter::Present),
    ];
    let leaf = if in_brackets {
        leaf.boxed()
    } else {
        prop_oneof![
            3 => leaf,
            1 => (attr_path(false), filter(true)).prop_map(|(attr, f)| Filter::ValuePath { attr, filter: Box::new(f) }),
        ]
        .boxed()
    };
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("True".to_owned()),
            Just("work".to_owned()),
            any::<String>()
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("value".to_owned()),
                        Just("type".to_owned()),
                        Just("primary".to_owned()),
                        any::<String>()
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn patch_path() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "members",
            "emails",
            "emails[type eq \"work\"].value",
            "emails[type eq \"work\"]",
            "name.givenName",
            "name",
            "active",
            "id",
            "userName",
            "displayName",
            "members[value eq \"a\"]",
            "phoneNumbers.value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "groups",
            "custom",
            "urn:x:y:z",
        ])
        .prop_map(|p| Some(p.to_owned())),
        filterish().prop_map(Some),
    ]
}

fn operation() -> impl Strategy<Value = PatchOperation> {
    let op = prop::sample::select(vec![PatchOp::Add, PatchOp::Remove, PatchOp::Replace]);
    (op, patch_path(), prop::option::of(json_value()))
        .prop_map(|(op, path, value)| PatchOperation { op, path, value })
}

proptest! {
    // No regression files: a failure prints its minimal input, to be pinned as a unit test.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn filter_parse_never_panics(text in filterish()) {
        let _ = Filter::parse(&text);
    }

    #[test]
    fn filter_parse_never_panics_on_arbitrary_strings(text in any::<String>()) {
        let _ = Filter::parse(&text);
        let _ = PatchPath::parse(&text);
    }

    #[test]
    fn patch_path_parse_never_panics(text in filterish()) {
        let _ = PatchPath::parse(&text);
    }

    #[test]
    fn nested_brackets_are_bounded(depth in 0usize..200, open in "[\\[(]") {
        let text = format!("{}a pr{}", open.repeat(depth), if open == "(" { ")" } else { "]" }.repeat(depth));
        let _ = Filter::parse(&text);
        let _ = PatchPath::parse(&text);
    }

    #[test]
    fn display_then_parse_round_trips(f in filter(false)) {
        let printed = f.to_string();
        prop_assert_eq!(Filter::parse(&printed), Ok(f), "printed as {}", printed);
    }

    #[test]
    fn evaluation_never_panics(f in filter(false), resource in json_value()) {
        let _ = f.matches(&resource, ResourceKind::User);
        let _ = f.matches(&resource, ResourceKind::Group);
    }

    #[test]
    fn apply_patch_never_panics(ops in prop::collection::vec(operation(), 0..6), resource in json_value(), group in any::<bool>()) {
        let kind = if group { ResourceKind::Group } else { ResourceKind::User };
        let mut resource = resource;
        let before = resource.clone();
        if apply_patch(&mut resource, &ops, kind).is_err() {
            prop_assert_eq!(resource, before);
        }
    }

    #[test]
    fn normalize_booleans_never_panics(resource in json_value()) {
        let mut resource = resource;
        normalize_booleans(&mut resource, ResourceKind::User);
    }
}
