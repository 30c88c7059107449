//! Bounds on what one connection may store and send: resource size, values
//! per attribute, identifier length, operations per PATCH. They keep one
//! tenant's directory from costing the shared process unbounded work.

use super::*;

impl ScimService {
    /// A stored resource stays within `limits.scim_resource_bytes` and
    /// `limits.scim_attribute_values` per multi-valued attribute, however it
    /// was built up (one POST, or many PATCHes each adding a little).
    pub(super) fn check_resource(&self, resource: &Value) -> ScimResult<()> {
        let mut pending: Vec<(&str, &Value)> = vec![("", resource)];
        while let Some((name, value)) = pending.pop() {
            match value {
                // PostgreSQL text and JSON cannot hold NUL: refuse it here
                // rather than fail in the store.
                Value::String(text) if text.contains('\0') => {
                    return Err(ScimError::InvalidValue(format!(
                        "'{name}' contains a NUL character"
                    )));
                }
                Value::Array(items) => {
                    if items.len() > self.limits.scim_attribute_values {
                        return Err(ScimError::InvalidValue(format!(
                            "'{name}' would hold {} values; at most {} are allowed (limits.scim_attribute_values)",
                            items.len(),
                            self.limits.scim_attribute_values
                        )));
                    }
                    pending.extend(items.iter().map(|item| (name, item)));
                }
                Value::Object(map) => {
                    if map.keys().any(|k| k.contains('\0')) {
                        return Err(ScimError::InvalidValue(
                            "an attribute name contains a NUL character".into(),
                        ));
                    }
                    pending.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
                }
                _ => {}
            }
        }
        let size = serialized_len(resource);
        if size > self.limits.scim_resource_bytes {
            return Err(ScimError::InvalidValue(format!(
                "the resource would be {size} bytes; at most {} are kept (limits.scim_resource_bytes)",
                self.limits.scim_resource_bytes
            )));
        }
        Ok(())
    }

    /// Bounds the work a PATCH can ask for before any of it is done: each
    /// operation costs up to the size of the attribute it edits, so both the
    /// operations and the values they carry are counted.
    /// Identifiers are looked up through indexes, whose entries are bounded
    /// in size; no IdP sends a userName or displayName anywhere near this.
    pub(super) fn check_user(&self, fields: &UserFields) -> ScimResult<()> {
        self.check_resource(&fields.resource)?;
        check_identifier("userName", Some(&fields.user_name))?;
        check_identifier("externalId", fields.external_id.as_deref())?;
        check_identifier("displayName", fields.display_name.as_deref())?;
        check_identifier("emails", fields.email.as_deref())
    }

    pub(super) fn check_group(&self, fields: &GroupFields) -> ScimResult<()> {
        self.check_resource(&fields.resource)?;
        check_identifier("displayName", Some(&fields.display_name))?;
        check_identifier("externalId", fields.external_id.as_deref())
    }

    pub(super) fn check_patch_size(
        &self,
        patch: &PatchRequest,
        kind: ResourceKind,
    ) -> ScimResult<()> {
        let operations = patch.operations.len();
        if operations > self.limits.scim_patch_operations {
            return Err(ScimError::TooLarge(format!(
                "the PATCH has {operations} operations; at most {} are allowed per request (limits.scim_patch_operations)",
                self.limits.scim_patch_operations
            )));
        }
        let carried: usize = patch
            .operations
            .iter()
            .filter_map(|op| op.value.as_ref())
            .map(array_elements)
            .sum();
        // A group's members are bounded on their own (scim_members_per_request).
        let allowed = match kind {
            ResourceKind::User => self.limits.scim_attribute_values,
            ResourceKind::Group => {
                self.limits.scim_attribute_values + self.limits.scim_members_per_request
            }
        };
        if carried > allowed {
            return Err(ScimError::TooLarge(format!(
                "the PATCH carries {carried} values; at most {allowed} are allowed per request (limits.scim_attribute_values)"
            )));
        }
        Ok(())
    }

    pub(super) fn check_member_count(&self, named: usize) -> ScimResult<()> {
        if named > self.limits.scim_members_per_request {
            return Err(ScimError::TooLarge(format!(
                "the request names {named} group members; at most {} are allowed per request (limits.scim_members_per_request)",
                self.limits.scim_members_per_request
            )));
        }
        Ok(())
    }
}

/// Longest identifier (userName, externalId, displayName, email) kept, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

pub(super) fn check_identifier(name: &str, value: Option<&str>) -> ScimResult<()> {
    match value {
        Some(value) if value.len() > MAX_IDENTIFIER_BYTES => Err(ScimError::InvalidValue(format!(
            "'{name}' is {} bytes; at most {MAX_IDENTIFIER_BYTES} are allowed",
            value.len()
        ))),
        _ => Ok(()),
    }
}

/// How many array elements `value` holds at any depth.
fn array_elements(value: &Value) -> usize {
    let mut count = 0;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => {
                count += items.len();
                pending.extend(items);
            }
            Value::Object(map) => pending.extend(map.values()),
            _ => {}
        }
    }
    count
}

/// The length of `value` as compact JSON, without building the string.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a Value to an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
