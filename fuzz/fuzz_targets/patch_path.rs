//! `PatchPath::parse` on arbitrary UTF-8; parsed paths are printed and queried too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orgsync_domain::scim::PatchPath;

fuzz_target!(|input: &str| {
    if let Ok(path) = PatchPath::parse(input) {
        let _ = path.sub_attribute();
        let _ = path.to_string();
    }
});
