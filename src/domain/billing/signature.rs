//! Verifies the `Stripe-Signature` header of a webhook request, as Stripe documents it
//! (<https://docs.stripe.com/webhooks#verify-manually>): the header holds a timestamp `t=` and
//! one or more `v1=` signatures; each is the hex HMAC-SHA256 of `"{t}.{raw body}"` keyed with
//! the endpoint's signing secret. One match with any configured secret (several during a
//! rotation) is enough; the timestamp must be within the tolerance of our clock so a captured
//! request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from our clock (Stripe's libraries use 5 minutes).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook request was refused. The messages are safe to send back: they say nothing
/// about the secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp (t=) or no v1 signature")]
    Malformed,
    #[error("the Stripe-Signature timestamp is more than {TOLERANCE_SECS} s from our clock")]
    Stale,
    #[error("no v1 signature in Stripe-Signature matches the payload")]
    Mismatch,
}

/// Checks `header` against the raw `payload` with any of `secrets`, at time `now` (seconds).
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = Some(value),
            // Other schemes (v0 is Stripe's test scheme) are ignored, as Stripe advises.
            "v1" => {
                if let Ok(sig) = hex::decode(value) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    // The signature covers the timestamp's digits as sent.
    let signed_t = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = signed_t.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // The signature is checked first, so an unsigned request learns nothing about our clock.
    let signed_by_us = secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(signed_t.as_bytes());
        mac.update(b".");
        mac.update(payload);
        let expected = mac.finalize().into_bytes();
        // Constant-time comparison, and every candidate is compared (no early exit).
        signatures.iter().fold(false, |found, sig| {
            found | bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &sig[..]))
        })
    });
    if !signed_by_us {
        return Err(SignatureError::Mismatch);
    }
    // `abs_diff`: a signed timestamp near i64::MIN or MAX must be stale, never an overflow
    // (found by fuzz/fuzz_targets/stripe_signature.rs).
    if now.abs_diff(t) > TOLERANCE_SECS as u64 {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently: `python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test",
    /// b"1700000000.{\"id\":\"evt_1\"}", hashlib.sha256).hexdigest())'`.
    const KNOWN: &str = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_documented_signature_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let header = format!("t=1700000000,v1={KNOWN}");
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["whsec_test"]),
                1_700_000_100
            ),
            Ok(())
        );
        // Any one of several secrets (rotation), and any one of several v1 signatures.
        let header = format!("t=1700000000,v1={},v1={KNOWN},v0=abc", "00".repeat(32));
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["whsec_old", "whsec_test"]),
                1_700_000_000
            ),
            Ok(())
        );
    }

    /// Regression (fuzzing): a validly signed timestamp at the ends of i64, or a clock there,
    /// was an arithmetic overflow (a panic in debug builds, a wrapped "fresh" in release).
    #[test]
    fn extreme_timestamps_are_stale_not_an_overflow() {
        let sign = |t: &str, body: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
            mac.update(t.as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
        };
        let s = secrets(&["whsec_test"]);
        for (t, now) in [
            (i64::MIN, 1_700_000_000),
            (i64::MAX, -1_700_000_000),
            (71, i64::MIN),
            (-71, i64::MAX),
        ] {
            let header = sign(&t.to_string(), b"{}");
            assert_eq!(
                verify(Some(&header), b"{}", &s, now),
                Err(SignatureError::Stale),
                "t={t} now={now}"
            );
        }
        let header = sign(&i64::MAX.to_string(), b"{}");
        assert_eq!(verify(Some(&header), b"{}", &s, i64::MAX - 1), Ok(()));
    }

    #[test]
    fn wrong_secret_body_time_or_shape_is_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let header = format!("t=1700000000,v1={KNOWN}");
        let s = secrets(&["whsec_test"]);
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["whsec_other"]),
                1_700_000_000
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, &s, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), body, &s, 1_700_000_000 + TOLERANCE_SECS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(None, body, &s, 0), Err(SignatureError::Missing));
        for bad in ["", "t=1700000000", &format!("v1={KNOWN}"), "t=x,v1=00"] {
            assert_eq!(
                verify(Some(bad), body, &s, 1_700_000_000),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(Some(&header), body, &[], 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
    }
}
