//! Endpoint secrets and Standard Webhooks signatures.
//!
//! A secret is `whsec_` + base64 of 32 random bytes; the HMAC key is those bytes. A message
//! is signed as `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
//! and during a rotation's overlap with both secrets, space-separated, as the specification
//! allows, so a receiver holding either verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix the Standard Webhooks libraries strip before decoding a secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret. Never logged: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> WebhookSecret {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        WebhookSecret(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// A secret as stored.
    pub fn from_stored(text: String) -> WebhookSecret {
        WebhookSecret(text)
    }

    /// The text to store, and to show the user once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the bytes the text after `whsec_` encodes. `None` for a stored secret
    /// that does not decode (which nothing here writes).
    fn key(&self) -> Option<Vec<u8>> {
        let encoded = self.0.strip_prefix(SECRET_PREFIX).unwrap_or(&self.0);
        STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())
    }

    /// This secret's signature of one attempt: `v1,<base64>`.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &str) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key()?).ok()?;
        mac.update(format!("{message_id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        Some(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    }
}

/// The `webhook-signature` header: one signature per secret in use, space-separated.
pub fn signature_header(
    secrets: &[WebhookSecret],
    message_id: &str,
    timestamp: i64,
    body: &str,
) -> Option<String> {
    let signatures: Option<Vec<String>> = secrets
        .iter()
        .map(|s| s.sign(message_id, timestamp, body))
        .collect();
    let signatures = signatures?;
    (!signatures.is_empty()).then(|| signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks specification (and its libraries' tests).
    #[test]
    fn signs_the_specifications_example() {
        let secret = WebhookSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret
                .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
                .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_32_bytes() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.key().unwrap().len(), 32);
        assert_eq!(format!("{a:?}"), "WebhookSecret(redacted)");
    }

    #[test]
    fn during_an_overlap_both_secrets_sign() {
        let (new, old) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 5, "{}").unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                new.sign("msg_1", 5, "{}").unwrap(),
                old.sign("msg_1", 5, "{}").unwrap()
            ]
        );
    }
}
