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

    check(user, &request, ResourceKind::User, |patched| {
        let _ = UserFields::from_scim(patched);
    });
    check(group, &request, ResourceKind::Group, |patched| {
        let _ = GroupFields::from_resource(patched);
    });
});

/// Applies `request` to a copy of `resource` as a `kind`: a patched copy is
/// read back with `read_back`, and a failure must leave the copy untouched.
fn check(
    resource: &Value,
    request: &PatchRequest,
    kind: ResourceKind,
    read_back: impl FnOnce(Value),
) {
    let mut patched = resource.clone();
    match apply_patch(&mut patched, &request.operations, kind) {
        Ok(_) => read_back(patched),
        Err(_) => assert_eq!(
            &patched, resource,
            "apply_patch({kind:?}) failed but modified the resource"
        ),
    }
}
