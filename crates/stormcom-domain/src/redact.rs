//! Wrappers for values that must never reach a log line or an error body: secrets
//! (passwords, codes) and personal data (emails, names, addresses). `Debug`, `Display`
//! and `Serialize` all print `[redacted]`, so a `?request` in a log macro or a DTO
//! serialised by mistake shows nothing. The value itself is read with `expose()`, which
//! is easy to grep for. Deserialisation is transparent, so request bodies can use them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every redacting wrapper prints instead of its value.
pub const REDACTED: &str = "[redacted]";

macro_rules! redacting {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name<T>(T);

        impl<T> $name<T> {
            pub const fn new(value: T) -> Self {
                Self(value)
            }

            /// The value itself; every use is a place where it could leak.
            pub const fn expose(&self) -> &T {
                &self.0
            }

            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> From<T> for $name<T> {
            fn from(value: T) -> Self {
                Self(value)
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        impl<T> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(REDACTED)
            }
        }

        impl<'de, T: Deserialize<'de>> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                T::deserialize(deserializer).map(Self)
            }
        }
    };
}

redacting!(
    /// A credential: password, one-time code, recovery code.
    Secret
);

redacting!(
    /// Personal data of a person: email, name, postal address.
    Pii
);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Form {
        email: Pii<String>,
        password: Secret<String>,
        name: Option<Pii<String>>,
    }

    #[test]
    fn debug_display_and_serialize_never_show_the_value() {
        let form: Form =
            serde_json::from_str(r#"{"email":"canary@example.com","password":"hunter2-canary","name":"Ann Canary"}"#)
                .unwrap_or_else(|_| unreachable!());
        assert_eq!(form.email.expose(), "canary@example.com");
        assert_eq!(form.password.expose(), "hunter2-canary");
        let printed = [
            format!("{form:?}"),
            format!("{form:#?}"),
            format!("{} {}", form.email, form.password),
            serde_json::to_string(&form).unwrap_or_default(),
        ];
        for text in printed {
            assert!(!text.contains("canary"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
        assert_eq!(form.name.map(Pii::into_inner).as_deref(), Some("Ann Canary"));
    }
}
