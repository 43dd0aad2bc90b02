//! The Stripe-Signature parser (`billing::signature::verify`) on arbitrary headers, payloads
//! and clocks: a verdict, never a panic. Half of the inputs carry a valid signature for the
//! timestamp they send, so the fuzzer also reaches the checks after the signature.
#![no_main]

use fmu_gateway::domain::billing::signature;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const SECRET: &str = "whsec_fuzz";

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let sign = data[0] & 1 == 1;
    let now = i64::from_le_bytes(data[1..9].try_into().unwrap());
    let rest = &data[9..];
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let Ok(header) = std::str::from_utf8(&rest[..split]) else {
        return;
    };
    let payload = rest.get(split + 1..).unwrap_or_default();
    let mut header = header.to_string();
    if sign {
        let t = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t="))
            .unwrap_or("0")
            .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(payload);
        header.push_str(&format!(",v1={}", hex::encode(mac.finalize().into_bytes())));
    }
    let verdict = signature::verify(Some(&header), payload, &[SECRET.to_string()], now);
    if verdict.is_ok() {
        // Accepted: signed by us with a timestamp within the tolerance of `now`.
        let t: i64 = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(now.abs_diff(t) <= signature::TOLERANCE_SECS as u64, "t={t} now={now}");
    }
});
