//! `Filter::parse` on arbitrary UTF-8; parsed filters are also evaluated with
//! `Filter::matches` against a fixed User and Group, and printed with `Display`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orgsync_domain::scim::{Filter, ResourceKind};
use serde_json::Value;

static FIXTURES: OnceLock<(Value, Value)> = OnceLock::new();

fuzz_target!(|input: &str| {
    let Ok(filter) = Filter::parse(input) else {
        return;
    };
    let (user, group) =
        FIXTURES.get_or_init(|| (orgsync_fuzz::user(), orgsync_fuzz::group_with_members()));
    let _ = filter.matches(user, ResourceKind::User);
    let _ = filter.matches(group, ResourceKind::Group);
    let _ = filter.to_string();
});
