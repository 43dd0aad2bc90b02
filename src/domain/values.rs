//! Values that can only be built valid ("parse, don't validate"): once a handler holds an
//! [`Email`] or a [`NewPassword`], nothing further down checks them again.

use std::fmt;

/// Why a value from a user was refused; the message is shown to them as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// An email address, trimmed, with its case-folded form used for uniqueness and login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    /// Accepts the shape every mail system accepts (`local@domain.tld`), not the full RFC
    /// 5322 grammar: the point is to catch typos and junk, not to prove deliverability.
    pub fn parse(raw: &str) -> Result<Email, Invalid> {
        let email = raw.trim();
        let bad = || Invalid(format!("'{email}' is not a valid email address"));
        if email.is_empty() {
            return Err(Invalid("an email address is required".into()));
        }
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(bad());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(bad());
        }
        Ok(Email {
            display: email.to_string(),
            normalized: email.to_lowercase(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A password good enough to set. Length is the rule (NIST SP 800-63B): at least 8
/// characters; at most 256 so hashing cost stays bounded.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str) -> Result<NewPassword, Invalid> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(Invalid(format!(
                "the password is too short: use at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if n > Self::MAX_CHARS {
            return Err(Invalid(format!(
                "the password is too long: use at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(NewPassword(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(…)")
    }
}

/// A display name: trimmed, at most 100 characters; empty means none.
pub fn parse_name(raw: Option<&str>) -> Result<Option<String>, Invalid> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Invalid(
            "the name must be at most 100 printable characters".into(),
        ));
    }
    Ok(Some(name.to_string()))
}

/// An API key label: trimmed, at most 64 characters; empty gets a default.
pub fn parse_key_label(raw: Option<&str>) -> Result<String, Invalid> {
    let label = raw.map(str::trim).unwrap_or("");
    if label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(Invalid(
            "a key label must be at most 64 printable characters".into(),
        ));
    }
    Ok(if label.is_empty() {
        "API key".to_string()
    } else {
        label.to_string()
    })
}

/// A random id with a type prefix, e.g. `usr_3f9a…` (64 random bits, hex).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// A time column (ms since the epoch) as RFC 3339 UTC with seconds, e.g.
/// `2026-11-24T21:48:28Z`: what the CSV export and the JSON API show.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_case_folded_for_uniqueness() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(e.normalized(), "ada.lovelace@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("longenough").is_ok());
        assert!(NewPassword::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn key_labels_default_and_are_bounded() {
        assert_eq!(parse_key_label(None).unwrap(), "API key");
        assert_eq!(parse_key_label(Some("  ci ")).unwrap(), "ci");
        assert!(parse_key_label(Some(&"x".repeat(65))).is_err());
    }
}
