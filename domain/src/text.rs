//! Validated text newtypes: each is made by its own `parse` (which names
//! the field at fault), read back with `as_str`, and crosses serde as its
//! text (`#[serde(try_from = "String", into = "String")]`).

/// Declares the conversions of `$name(String)`, whose `parse` validates.
macro_rules! validated_text {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::Error;
            fn try_from(value: String) -> crate::Result<Self> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use validated_text;
