//! Where a webhook may be sent: the SSRF rule.
//!
//! A webhook URL is the user's, but the request comes from inside our network, so it must
//! not reach what only we can reach: loopback, private and shared (CGNAT) ranges, link-local
//! (and the cloud metadata service at 169.254.169.254), unique-local, multicast, broadcast,
//! documentation and reserved ranges, nor the same behind an IPv4-mapped or NAT64 IPv6 form.
//! The host is resolved once per attempt; if ANY address it resolves to is refused, the
//! target is; otherwise the request goes to exactly the address checked (no second lookup
//! a rebinding DNS server could answer differently). The operator can lift the address
//! rule (`FMU_GATEWAY_WEBHOOK_ALLOW_PRIVATE`), which also allows plain `http`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

/// How long resolving a host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an address is not a public one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restricted {
    Unspecified,
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    UniqueLocal,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
}

impl Restricted {
    fn describe(self) -> &'static str {
        match self {
            Restricted::Unspecified => "an unspecified address",
            Restricted::Loopback => "a loopback address",
            Restricted::Private => "a private address",
            Restricted::SharedCgnat => "a shared (carrier-grade NAT) address",
            Restricted::LinkLocal => "a link-local address (which includes cloud metadata)",
            Restricted::UniqueLocal => "a unique-local address",
            Restricted::Multicast => "a multicast address",
            Restricted::Broadcast => "the broadcast address",
            Restricted::Documentation => "a documentation address",
            Restricted::Reserved => "a reserved address",
        }
    }
}

/// Why a webhook cannot be sent to a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the URL is not valid: {0}")]
    Malformed(String),
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("the URL must start with https:// (or http://)")]
    Scheme,
    #[error("the URL must use https")]
    HttpsRequired,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} does not resolve: {1}")]
    Unresolved(String, String),
    #[error("{}: webhooks may only reach public addresses", restricted_reason(host, addr, *kind))]
    Restricted {
        host: String,
        addr: IpAddr,
        kind: Restricted,
    },
}

/// "127.0.0.1 is a loopback address", or for a name "localhost resolves to ::1, a …".
fn restricted_reason(host: &str, addr: &IpAddr, kind: Restricted) -> String {
    if host == addr.to_string() {
        format!("{addr} is {}", kind.describe())
    } else {
        format!("{host} resolves to {addr}, {}", kind.describe())
    }
}

/// A URL checked for one attempt: where to connect, and the host name to pin to it.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: Url,
    /// The address checked, which the request must use.
    pub addr: SocketAddr,
    /// The host name to resolve to `addr` (none for an address literal).
    pub domain: Option<String>,
}

/// Reads a URL as a webhook target, without resolving it.
pub fn parse(text: &str, allow_private: bool) -> Result<Url, TargetError> {
    if text.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(text.trim()).map_err(|e| TargetError::Malformed(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(TargetError::HttpsRequired),
        _ => return Err(TargetError::Scheme),
    }
    if url.host().is_none() {
        return Err(TargetError::NoHost);
    }
    Ok(url)
}

/// Resolves the URL's host and checks every address it has; the first is the one to use.
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Target, TargetError> {
    let port = url.port_or_known_default().ok_or(TargetError::Scheme)?;
    let (shown, domain, addrs) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), None, vec![IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), None, vec![IpAddr::V6(ip)]),
        Some(url::Host::Domain(name)) => {
            let addrs = lookup(name, port).await?;
            (name.to_string(), Some(name.to_string()), addrs)
        }
        None => return Err(TargetError::NoHost),
    };
    if !allow_private {
        for addr in &addrs {
            if let Some(kind) = restricted(*addr) {
                return Err(TargetError::Restricted {
                    host: shown,
                    addr: *addr,
                    kind,
                });
            }
        }
    }
    let first = addrs
        .first()
        .copied()
        .ok_or_else(|| TargetError::Unresolved(shown, "no address".into()))?;
    Ok(Target {
        url: url.clone(),
        addr: SocketAddr::new(first, port),
        domain,
    })
}

/// Both: the URL read and its host resolved and checked.
pub async fn check(text: &str, allow_private: bool) -> Result<Target, TargetError> {
    resolve(&parse(text, allow_private)?, allow_private).await
}

async fn lookup(name: &str, port: u16) -> Result<Vec<IpAddr>, TargetError> {
    let unresolved = |why: String| TargetError::Unresolved(name.to_string(), why);
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| unresolved("the lookup timed out".into()))?
        .map_err(|e| unresolved(e.to_string()))?;
    let addrs: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    if addrs.is_empty() {
        return Err(unresolved("no address".into()));
    }
    Ok(addrs)
}

/// Why `ip` is not a public unicast address, or `None` when it is.
pub fn restricted(ip: IpAddr) -> Option<Restricted> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn restricted_v4(ip: Ipv4Addr) -> Option<Restricted> {
    use Restricted::*;
    const RANGES: &[([u8; 4], u32, Restricted)] = &[
        ([0, 0, 0, 0], 32, Unspecified),
        ([0, 0, 0, 0], 8, Reserved), // "this network"
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved), // IETF protocol assignments
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved), // 6to4 relay anycast
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved), // benchmarking
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    RANGES
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map(|(_, _, kind)| *kind)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, bits: u32) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(u128::from(ip) as u32)
}

fn restricted_v6(ip: Ipv6Addr) -> Option<Restricted> {
    use Restricted::*;
    let net = |s: &str| s.parse::<Ipv6Addr>().expect("a valid network");
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    // Forms that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d), NAT64
    // (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return restricted_v4(v4);
    }
    if in_v6(ip, net("64:ff9b::"), 96) {
        return restricted_v4(low_v4(ip));
    }
    if in_v6(ip, net("2002::"), 16) {
        let v4 = Ipv4Addr::from((u128::from(ip) >> 80) as u32);
        return restricted_v4(v4);
    }
    let ranges: [(&str, u32, Restricted); 11] = [
        ("::", 96, Reserved),         // IPv4-compatible (deprecated)
        ("64:ff9b:1::", 48, Private), // local-use NAT64
        ("100::", 64, Reserved),      // discard-only
        ("2001::", 23, Reserved),     // IETF protocol assignments, Teredo
        ("2001:db8::", 32, Documentation),
        ("3fff::", 20, Documentation),
        ("fc00::", 7, UniqueLocal),
        ("fe80::", 10, LinkLocal),
        ("fec0::", 10, Reserved), // site-local (deprecated)
        ("ff00::", 8, Multicast),
        ("5f00::", 16, Reserved), // SRv6 segment identifiers
    ];
    if let Some((_, _, kind)) = ranges.iter().find(|(n, bits, _)| in_v6(ip, net(n), *bits)) {
        return Some(*kind);
    }
    // Global unicast is 2000::/3; everything else is unassigned.
    if !in_v6(ip, net("2000::"), 3) {
        return Some(Reserved);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<Restricted> {
        restricted(text.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges_that_only_we_can_reach_are_refused() {
        use Restricted::*;
        let cases = [
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Reserved)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("100.128.0.0", None),
            ("100.63.255.255", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.254.0.1", Some(LinkLocal)),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("192.88.99.1", Some(Reserved)),
            ("192.167.255.255", None),
            ("192.168.1.1", Some(Private)),
            ("192.169.0.0", None),
            ("198.18.0.1", Some(Reserved)),
            ("198.19.255.255", Some(Reserved)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("223.255.255.255", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges_and_ipv4_in_ipv6_forms_are_refused() {
        use Restricted::*;
        let cases = [
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Reserved)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some(Private)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("2002:808:808::1", None),
            ("100::1", Some(Reserved)),
            ("2001::1", Some(Reserved)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(Reserved)),
            ("ff02::1", Some(Multicast)),
            ("5f00::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_with_a_host_unless_private_targets_are_allowed() {
        assert_eq!(
            parse("http://example.com/", false),
            Err(TargetError::HttpsRequired)
        );
        assert!(parse("http://example.com/", true).is_ok());
        assert_eq!(parse("ftp://example.com/", true), Err(TargetError::Scheme));
        assert!(matches!(
            parse("not a url", false),
            Err(TargetError::Malformed(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse(&long, false), Err(TargetError::TooLong));
        assert!(parse("https://hooks.example.com/x?y=1", false).is_ok());
    }

    #[tokio::test]
    async fn resolution_refuses_restricted_literals_and_names() {
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost:8443/",
        ] {
            let err = check(url, false).await.unwrap_err();
            assert!(
                matches!(err, TargetError::Restricted { .. }),
                "{url}: {err}"
            );
        }
        let literal = check("https://169.254.169.254/", false).await.unwrap_err();
        assert!(
            literal
                .to_string()
                .starts_with("169.254.169.254 is a link-local address"),
            "{literal}"
        );
        let named = check("https://localhost/", false).await.unwrap_err();
        assert!(
            named.to_string().starts_with("localhost resolves to "),
            "{named}"
        );
        let allowed = check("http://localhost:9/", true).await.unwrap();
        assert!(allowed.addr.ip().is_loopback());
        assert_eq!(allowed.domain.as_deref(), Some("localhost"));
        assert_eq!(allowed.addr.port(), 9);
    }
}
