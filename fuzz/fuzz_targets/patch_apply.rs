//! A PATCH body (`serde_json::from_slice::<PatchRequest>`) applied with `apply_patch` to a
//! fixed User and a fixed Group, as the SCIM PATCH handler does: `validate` is checked but its
//! result does not gate the apply (the ops must be total either way). A patched resource is
//! then read back like the handler does (`UserFields::from_scim` / `GroupFields::from_resource`).
//!
//! Besides "never panics", this checks the documented atomicity of `apply_patch`: on `Err`
//! the resource is untouched.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orgsync_domain::directory::{GroupFields, UserFields};
use orgsync_domain::scim::{apply_patch, PatchRequest, ResourceKind};
use serde_json::Value;

static FIXTURES: OnceLock<(Value, Value)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<PatchRequest>(data) else {
        return;
    };
    let _ = request.validate();
    let (user, group) = FIXTURES.get_or_init(|| (orgsync_fuzz::user(), orgsync_fuzz::group()));

    let mut u = user.clone();
    match apply_patch(&mut u, &request.operations, ResourceKind::User) {
        Ok(_) => {
            let _ = UserFields::from_scim(u);
        }
        Err(_) => assert_eq!(
            &u, user,
            "apply_patch(User) failed but modified the resource"
        ),
    }

    let mut g = group.clone();
    match apply_patch(&mut g, &request.operations, ResourceKind::Group) {
        Ok(_) => {
            let _ = GroupFields::from_resource(g);
        }
        Err(_) => assert_eq!(
            &g, group,
            "apply_patch(Group) failed but modified the resource"
        ),
    }
});
