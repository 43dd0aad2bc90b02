//! Identifiers and amounts as types of their own, so a run id can never be passed where a key
//! id is expected, and a balance can never be negative.
//!
//! Ids are opaque text: made here for new things (`run_…`, `key_…`, `usr_…`), read back from
//! the store, or taken from a request as the thing to look up (any text is a valid "not
//! found", so a face may wrap what it was given). The store maps them to and from its columns
//! (`store::ids`); nothing else looks inside.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        id!($(#[$doc])* $name);

        impl $name {
            /// The text new ids of this kind start with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, random id (64 bits after the prefix).
            pub fn generate() -> Self {
                $name(format!("{}_{:016x}", $prefix, rand::random::<u64>()))
            }
        }
    };
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id!(
    /// An account.
    UserId,
    "usr"
);
id!(
    /// An API key (the id inside the biscuit token; the token itself is never stored).
    KeyId,
    "key"
);
id!(
    /// A run.
    RunId,
    "run"
);
id!(
    /// A sweep: many cases of one model, paid for together.
    SweepId,
    "swp"
);
id!(
    /// A purchase of credits (a row made when Stripe reports a paid Checkout Session).
    PurchaseId,
    "pur"
);
id!(
    /// An FMU: the SHA-256 of its file, in hex (so the same bytes are one FMU). Made by the
    /// registry from the file, never generated.
    FmuId
);

impl FmuId {
    /// The FMU a caller names by its hex SHA-256, in either case (ids are stored in lower
    /// case).
    pub fn from_hex(text: &str) -> FmuId {
        FmuId(text.to_ascii_lowercase())
    }
}

/// A number of credits: never negative. Balances, costs, reservations and charges are
/// `Credits`; a change to a balance (a ledger row's delta, which can be negative) is not.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Credits(i64);

/// A negative number where credits were expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a number of credits: credits cannot be negative")]
pub struct NegativeCredits(pub i64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub fn new(n: i64) -> Result<Credits, NegativeCredits> {
        if n < 0 {
            Err(NegativeCredits(n))
        } else {
            Ok(Credits(n))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// `self - other`, or `None` when that would be negative.
    pub fn checked_sub(self, other: Credits) -> Option<Credits> {
        self.0
            .checked_sub(other.0)
            .and_then(|n| Credits::new(n).ok())
    }

    pub fn saturating_add(self, other: Credits) -> Credits {
        Credits(self.0.saturating_add(other.0))
    }

    /// "1 credit", "3 credits".
    pub fn describe(self) -> String {
        format!("{} credit{}", self.0, if self.0 == 1 { "" } else { "s" })
    }
}

impl TryFrom<i64> for Credits {
    type Error = NegativeCredits;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        Credits::new(n)
    }
}

/// Any `u32` is a number of credits.
impl From<u32> for Credits {
    fn from(n: u32) -> Credits {
        Credits(i64::from(n))
    }
}

impl From<Credits> for i64 {
    fn from(c: Credits) -> i64 {
        c.0
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_cannot_be_negative_however_they_are_made() {
        assert_eq!(Credits::new(0), Ok(Credits::ZERO));
        assert_eq!(Credits::new(-1), Err(NegativeCredits(-1)));
        assert_eq!(Credits::try_from(-5i64), Err(NegativeCredits(-5)));
        assert!(serde_json::from_str::<Credits>("-3").is_err());
        assert_eq!(serde_json::from_str::<Credits>("3").unwrap().get(), 3);
        let (two, three) = (Credits::new(2).unwrap(), Credits::new(3).unwrap());
        assert_eq!(two.checked_sub(three), None);
        assert_eq!(three.checked_sub(two), Some(Credits::new(1).unwrap()));
        assert_eq!(Credits::new(1).unwrap().describe(), "1 credit");
        assert_eq!(three.describe(), "3 credits");
    }

    #[test]
    fn ids_are_made_with_their_prefix_and_compare_as_text() {
        let run = RunId::generate();
        assert!(run.as_str().starts_with("run_"), "{run}");
        assert_eq!(run.as_str().len(), "run_".len() + 16);
        assert_ne!(RunId::generate(), run);
        assert!(UserId::generate().as_str().starts_with("usr_"));
        assert!(KeyId::generate().as_str().starts_with("key_"));
        assert!(PurchaseId::generate().as_str().starts_with("pur_"));
        assert_eq!(
            FmuId::from_hex("AbC0"),
            FmuId::from("abc0"),
            "stored in lower case"
        );
        let key = KeyId::from("key_1");
        assert_eq!(key, "key_1");
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"key_1\"");
    }
}
