//! Cross-site request forgery defences for cookie-authenticated requests.
//!
//! Two layers: the browser's own `Sec-Fetch-Site` / `Origin` headers reject cross-site posts
//! outright (this also covers the login and register forms, which have no session yet), and
//! every state-changing request of a session must carry that session's token, in the
//! `X-CSRF-Token` header (htmx sends it from `hx-headers` on `<body>`) or a `csrf_token`
//! form field (plain forms without JavaScript).

use poem::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The form field and header that carry the token.
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// Compares a presented token with the session's in constant time.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether the browser says the request came from another site. Requests without these
/// headers (API clients, old browsers) pass this layer; the token layer still applies.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site.eq_ignore_ascii_case("cross-site");
    }
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            !origin_host.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

/// The token in an urlencoded form body, if any.
pub fn token_in_form(body: &[u8]) -> Option<String> {
    form_pairs(body).find(|(k, _)| k == FIELD).map(|(_, v)| v)
}

/// The `key=value` pairs of an urlencoded body, decoded, in order (repeated keys kept).
/// Decoded as poem's `Form` decodes them (`form_urlencoded`, the WHATWG rules), so the token
/// checked here is the one a form handler would see.
pub fn form_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_cross_site(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(is_cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "fmu.example")
        ])));
        assert!(!is_cross_site(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!is_cross_site(&headers(&[])));
    }

    #[test]
    fn the_form_token_is_found_and_decoded() {
        assert_eq!(
            token_in_form(b"label=a+b&csrf_token=ab%43d").as_deref(),
            Some("abCd")
        );
        assert_eq!(token_in_form(b"label=x"), None);
    }

    #[test]
    fn form_pairs_are_decoded_in_order_with_repeats() {
        let pairs: Vec<(String, String)> =
            form_pairs(b"a=1&b=x+y%2Bz&a=2&flag&c=%C3%BC&d=%41%3d").collect();
        let expected = [
            ("a", "1"),
            ("b", "x y+z"),
            ("a", "2"),
            ("flag", ""),
            ("c", "\u{fc}"),
            ("d", "A="),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(pairs, expected);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("", ""));
    }
}
