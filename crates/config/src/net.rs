//! Network value checks: which IP addresses are public (our own table of the IANA
//! special-purpose ranges; std's `is_global` is unstable) and RFC 1123 hostnames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 ranges that are not public, with a name for error messages.
/// Conservative: ranges only partly global (192.0.0.0/24) are refused whole.
const V4_NOT_PUBLIC: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private-use"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private-use"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private-use"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
];

/// IPv6 ranges inside global unicast (2000::/3) that are not public. Everything
/// outside 2000::/3 (loopback, unspecified, IPv4-mapped, NAT64, discard, ULA,
/// link-local, multicast...) is refused as well.
const V6_NOT_PUBLIC: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

/// Named ranges outside 2000::/3, only to give a precise reason.
const V6_NAMED_OUTSIDE: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "IPv4-mapped",
    ),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, "NAT64"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "NAT64 local-use",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, "SRv6 SIDs"),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

fn in_v4(addr: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    u32::from(addr) & mask == u32::from(net) & mask
}

fn in_v6(addr: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    u128::from(addr) & mask == u128::from(net) & mask
}

/// Why `addr` is not a public address (e.g. `"10.0.0.0/8 is private-use"`), or
/// `None` when it is public.
#[must_use]
pub fn non_public_reason(addr: IpAddr) -> Option<String> {
    match addr {
        IpAddr::V4(a) => V4_NOT_PUBLIC
            .iter()
            .find(|(n, l, _)| in_v4(a, *n, *l))
            .map(|(n, l, why)| format!("{n}/{l} is {why}")),
        IpAddr::V6(a) => {
            if let Some((n, l, why)) = V6_NOT_PUBLIC.iter().find(|(n, l, _)| in_v6(a, *n, *l)) {
                return Some(format!("{n}/{l} is {why}"));
            }
            if in_v6(a, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
                return None;
            }
            Some(
                match V6_NAMED_OUTSIDE.iter().find(|(n, l, _)| in_v6(a, *n, *l)) {
                    Some((n, l, why)) => format!("{n}/{l} is {why}"),
                    None => "outside global unicast 2000::/3".to_string(),
                },
            )
        }
    }
}

/// True when `addr` is a public (globally reachable unicast) address.
#[must_use]
pub fn is_public(addr: IpAddr) -> bool {
    non_public_reason(addr).is_none()
}

/// Checks an RFC 1123 hostname: dot-separated labels of 1 to 63 letters, digits
/// and hyphens, not starting or ending with a hyphen; at most 253 characters; no
/// trailing dot; the last label not all-numeric (so an IPv4 address is not a
/// hostname). Returns the lowercase canonical form.
pub fn check_hostname(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty hostname".into());
    }
    if name.len() > 253 {
        return Err("hostname is longer than 253 characters".into());
    }
    if name.ends_with('.') {
        return Err("hostname must not end with a dot".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("hostname has an empty label".into());
        }
        if label.len() > 63 {
            return Err("hostname label is longer than 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("hostname may contain only letters, digits, hyphens and dots".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("hostname label must not start or end with a hyphen".into());
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("hostname's last label must not be all digits".into());
    }
    Ok(name.to_ascii_lowercase())
}

/// Checks an email address conservatively (`local@hostname`, printable ASCII, no
/// characters that could break a mail header).
pub(crate) fn check_email(addr: &str) -> Result<(), String> {
    if addr.len() > 254 {
        return Err("email address is too long".into());
    }
    let (local, domain) = addr
        .split_once('@')
        .ok_or_else(|| format!("'{addr}' is not an email address (no '@')"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(format!("'{addr}' has an empty or over-long local part"));
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_graphic() && !br#"<>,;:"()[]\@"#.contains(&b))
    {
        return Err(format!("'{addr}' has characters not allowed in an address"));
    }
    check_hostname(domain).map_err(|why| format!("'{addr}' has a bad domain: {why}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_public_boundaries() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
        ];
        for s in public {
            assert!(
                is_public(v(s)),
                "{s} should be public: {:?}",
                non_public_reason(v(s))
            );
        }
        let private = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "198.18.0.0",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.255",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ];
        for s in private {
            assert!(!is_public(v(s)), "{s} should not be public");
        }
        assert_eq!(
            non_public_reason(v("10.1.2.3")).unwrap(),
            "10.0.0.0/8 is private-use"
        );
    }

    #[test]
    fn ipv6_public_boundaries() {
        for s in [
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "2001:200::1",
            "3ffe::1",
            "2003::1",
        ] {
            assert!(
                is_public(v(s)),
                "{s} should be public: {:?}",
                non_public_reason(v(s))
            );
        }
        let private = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("64:ff9b::808:808", "NAT64"),
            ("100::1", "discard"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "IETF"),
            ("2002::1", "6to4"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("4000::1", "outside global unicast"),
            ("1fff:ffff::1", "outside global unicast"),
        ];
        for (s, why) in private {
            let r = non_public_reason(v(s));
            assert!(
                r.as_deref().is_some_and(|r| r.contains(why)),
                "{s}: expected reason containing {why:?}, got {r:?}"
            );
        }
    }

    #[test]
    fn hostnames() {
        let ok = [
            ("example.org", "example.org"),
            ("EXAMPLE.org", "example.org"),
            ("a", "a"),
            ("localhost", "localhost"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("3com.com", "3com.com"),
            ("a-b.c-d.e", "a-b.c-d.e"),
        ];
        for (s, canon) in ok {
            assert_eq!(check_hostname(s).as_deref(), Ok(canon), "{s}");
        }
        let label63 = "a".repeat(63);
        let label64 = "a".repeat(64);
        assert!(check_hostname(&format!("{label63}.com")).is_ok());
        assert!(check_hostname(&format!("{label64}.com")).is_err());
        let long = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61)); // 253
        assert_eq!(long.len(), 253);
        assert!(check_hostname(&long).is_ok());
        assert!(check_hostname(&format!("{long}a")).is_err());
        let bad = [
            "",
            "example.org.",
            ".example.org",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "exa mple.com",
            "1.2.3.4",
            "host.123",
            "bücher.de",
            "a.b\n",
            "*.example.org",
            "a/b",
        ];
        for s in bad {
            assert!(check_hostname(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "admin@example.org",
            "a.b+c@mail.example.org",
            "root@localhost",
        ] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "@example.org",
            "admin@",
            "a b@example.org",
            "a@b@example.org",
            "admin@example.org\r\nBcc: x@y.org",
            "<admin@example.org>",
            "admin@-bad.org",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
