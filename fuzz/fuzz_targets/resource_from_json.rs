//! Arbitrary JSON through `UserFields::from_scim`, `GroupFields::from_scim` and
//! `GroupFields::from_resource` (POST/PUT bodies and post-PATCH resources).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orgsync_domain::directory::{GroupFields, UserFields};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = UserFields::from_scim(body.clone());
    let _ = GroupFields::from_scim(body.clone());
    let _ = GroupFields::from_resource(body);
});
