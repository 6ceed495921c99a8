//! Requests this machine makes on a stranger's behalf: an attachment link or an async task's
//! callback URL, both written by whoever sent the brief. This module owns which of those
//! addresses may be contacted, for every outbound client of the service.
//!
//! The guard against server-side request forgery is strict: only `https`, and never an address
//! that is not publicly routable — checked on the literal in the URL, on every address a name
//! resolves to (in the resolver the connection then uses, so a name cannot resolve to a public
//! address for the check and a private one for the connection), and again before every redirect
//! a caller chooses to follow. Clients built by [`client_builder`] use no proxy (a proxy would
//! resolve names where the guard cannot see them) and follow no redirect by themselves.
//!
//! An operator exempts an origin — scheme, host and port, never a whole host — with an
//! [`AllowList`] entry such as `files.lan:9000` (HTTPS) or `http://127.0.0.1:8099` (plain
//! HTTP): a storage service on the local network, the harness's receiver, a test's server.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{ClientBuilder, Url};

/// Why the guard will not contact a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the URL has no host")]
    NoHost,
    #[error("only https is allowed")]
    Scheme,
    /// `kind` says which range or name rule it fell in (`loopback`, `private`, `internal`, …).
    #[error("the address is {kind}, not public")]
    PrivateAddress { kind: &'static str },
}

/// One exempted origin. Entries compare scheme, host and port exactly; paths are not part of
/// an origin (signed links differ in every query string).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedOrigin {
    scheme: &'static str,
    host: String,
    port: u16,
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{}://{host}:{}", self.scheme, self.port)
    }
}

/// Origins exempt from the private-address guard, written `[scheme://]host[:port]`: without a
/// scheme an entry allows HTTPS only, and without a port only the scheme's default port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowedOrigin>);

impl AllowList {
    /// Parse operator entries (empty ones are skipped). The error names the entry and says why.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut origins = Vec::new();
        for raw in entries.iter().map(AsRef::as_ref) {
            let entry = raw.trim();
            if entry.is_empty() {
                continue;
            }
            origins.push(parse_origin(entry).map_err(|why| format!("{raw:?} is not an allowed origin: {why}"))?);
        }
        Ok(Self(origins))
    }

    /// Whether `url`'s scheme, host and port are those of an entry.
    pub fn allows(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        let host = normalise_host(host);
        self.0.iter().any(|o| o.scheme == url.scheme() && o.host == host && o.port == port)
    }

    /// Whether any entry names `host`. The resolver sees only the name being resolved; the
    /// scheme and port were held to the entry by [`Guard::check_url`] before the request.
    fn names_host(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.0.iter().any(|o| o.host == host)
    }

    /// The entries, as `scheme://host:port`, for logs and messages.
    pub fn describe(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

fn parse_origin(entry: &str) -> Result<AllowedOrigin, &'static str> {
    let with_scheme = if entry.contains("://") {
        entry.to_string()
    } else if entry.parse::<Ipv6Addr>().is_ok() {
        // A bare IPv6 literal: its colons are not a port.
        format!("https://[{entry}]")
    } else {
        format!("https://{entry}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| "not a host, host:port or scheme://host:port")?;
    let scheme = match url.scheme() {
        "https" => "https",
        "http" => "http",
        _ => return Err("the scheme must be http or https"),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it must not carry credentials");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("an origin has no path or query");
    }
    let host = url.host_str().map(normalise_host).filter(|h| !h.is_empty()).ok_or("it names no host")?;
    let port = url.port_or_known_default().ok_or("it names no port")?;
    Ok(AllowedOrigin { scheme, host, port })
}

/// Host names compare in lower case, without a trailing dot or IPv6 brackets.
pub fn normalise_host(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// The address rules of one kind of outbound request: checks URLs before any connection, and
/// is the resolver of the connections themselves.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<AllowList>,
}

impl Guard {
    pub fn new(allow: AllowList) -> Self {
        Self { allow: Arc::new(allow) }
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Whether `url` may be requested: an allowed origin, or an `https` URL to a public
    /// address. IP literals are judged here because connections to them never ask the
    /// resolver; names are judged by name here and by address in [`Guard::resolve`].
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let host = url.host_str().ok_or(Refusal::NoHost)?;
        if self.allow.allows(url) {
            return Ok(());
        }
        // The URL parser has already turned every spelling of an IPv4 address (`2130706433`,
        // `0x7f.1`) into dotted form, so a literal is exactly what parses as one.
        let kind = match normalise_host(host).parse::<IpAddr>() {
            Ok(ip) => non_public(ip),
            Err(_) => internal_name(host),
        };
        if let Some(kind) = kind {
            return Err(Refusal::PrivateAddress { kind });
        }
        if url.scheme() != "https" {
            return Err(Refusal::Scheme);
        }
        Ok(())
    }
}

/// A client for strangers' URLs: no proxy, no redirects followed by itself, every name
/// resolved through `guard`. Callers add their timeouts, and check each URL with
/// [`Guard::check_url`] before requesting it.
pub fn client_builder(guard: &Guard) -> ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("bidder/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(guard.clone()))
}

/// The kind of address the guard's resolver refused, if that is why `err` happened.
pub fn resolver_refusal(err: &reqwest::Error) -> Option<&'static str> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.kind);
        }
        source = cause.source();
    }
    None
}

/// The resolver's refusal, found again in the send error by [`resolver_refusal`].
#[derive(Debug, thiserror::Error)]
#[error("refused to connect: the name resolves to a {kind} address")]
struct Refused {
    kind: &'static str,
}

impl Resolve for Guard {
    /// Resolve once and refuse the name if any of its addresses is not public: the addresses
    /// returned here are the ones the connection uses, so what was checked is what is reached.
    fn resolve(&self, name: Name) -> Resolving {
        let host = normalise_host(name.as_str());
        let allowed = self.allow.names_host(&host);
        Box::pin(async move {
            if !allowed && let Some(kind) = internal_name(&host) {
                return Err(Box::new(Refused { kind }) as Box<dyn StdError + Send + Sync>);
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allowed && let Some(kind) = addrs.iter().find_map(|addr| non_public(addr.ip())) {
                return Err(Box::new(Refused { kind }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Names that lead inside a network whatever they resolve to: `localhost`, cloud metadata
/// services (`metadata.google.internal`), mDNS and home-network suffixes, and single labels,
/// which resolve through the machine's search domains.
fn internal_name(name: &str) -> Option<&'static str> {
    let name = normalise_host(name);
    const SUFFIXES: &[&str] = &[".localhost", ".internal", ".local", ".localdomain", ".home.arpa", ".lan", ".intranet"];
    if name == "localhost" || SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Some("internal");
    }
    if !name.contains('.') {
        return Some("single-label");
    }
    None
}

/// Why `ip` is not a public unicast address, or `None` when it is one.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => non_public_v6(ip),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "shared (CGNAT)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link-local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "reserved"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 88, 99, 0], 24, "reserved"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([255, 255, 255, 255], 32, "broadcast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    RANGES.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, kind)| *kind)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // Addresses that carry an IPv4 address are as public as that address: mapped (::ffff:0:0/96,
    // which the OS connects to over IPv4), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let bits = u128::from(ip);
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return non_public_v4(Ipv4Addr::from(bits as u32));
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return non_public_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    const RANGES: &[([u16; 8], u32, &str)] = &[
        ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified"),
        ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique-local"),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local"),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local"),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast"),
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
        // Teredo hides an IPv4 address, obfuscated; nothing we contact needs it.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo"),
    ];
    if let Some((_, _, kind)) = RANGES.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)) {
        return Some(kind);
    }
    // Everything else outside 2000::/3 (IPv4-compatible ::/96, discard-only 100::/64, the
    // unassigned space) is not global unicast.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some("reserved");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_non_public_range_is_refused() {
        for addr in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.10",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "::127.0.0.1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::",
        ] {
            assert!(non_public(ip(addr)).is_some(), "{addr} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700::1",
            "2a00:1450:4001::1",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert_eq!(non_public(ip(addr)), None, "{addr} is public");
        }
        assert_eq!(non_public(ip("::ffff:127.0.0.1")), Some("loopback"));
        assert_eq!(non_public(ip("169.254.169.254")), Some("link-local"));
        assert_eq!(non_public(ip("100.100.100.200")), Some("shared (CGNAT)"));
    }

    fn check(url: &str, allow: &[&str]) -> Result<(), Refusal> {
        Guard::new(AllowList::parse(allow).unwrap()).check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn urls_must_be_https_to_public_hosts_unless_their_origin_is_allowed() {
        assert!(check("https://files.example.com/a.csv?sig=x", &[]).is_ok());
        assert!(check("https://93.184.216.34/a.csv", &[]).is_ok());
        assert!(check("https://[2606:4700::1]/a.csv", &[]).is_ok());
        assert_eq!(check("http://files.example.com/a.csv", &[]), Err(Refusal::Scheme));
        assert_eq!(check("ftp://files.example.com/a.csv", &[]), Err(Refusal::Scheme));
        assert_eq!(check("file:///etc/passwd", &[]), Err(Refusal::NoHost));
        for private in [
            "https://192.168.1.10/x.csv",
            "https://169.254.169.254/latest",
            "http://10.0.0.1/",
            "https://0.0.0.0/cb",
            "https://127.0.0.1:8443/a.csv",
            "https://[::1]/a.csv",
            "https://[::ffff:127.0.0.1]/a.csv",
            "https://[fd00::1]/a.csv",
            // WHATWG parsing turns these spellings into 127.0.0.1 before we look.
            "https://2130706433/a.csv",
            "https://0x7f.1/a.csv",
            "https://localhost/a.csv",
            "https://api.localhost/a.csv",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://METADATA.google.internal./computeMetadata/v1/",
            "https://metadata/computeMetadata/v1/",
            "https://printer.local/a.csv",
            "https://platform.internal/callback",
        ] {
            let err = check(private, &[]).unwrap_err();
            assert!(matches!(err, Refusal::PrivateAddress { .. }), "{private}: {err:?}");
        }
    }

    #[test]
    fn an_allowed_origin_is_its_scheme_host_and_port_only() {
        // Plain http only where the entry says so, and only on the entry's port.
        assert!(check("http://127.0.0.1:8080/a.csv", &["http://127.0.0.1:8080"]).is_ok());
        assert!(check("http://127.0.0.1:8080/any/path?q=1", &["http://127.0.0.1:8080/"]).is_ok());
        assert!(check("http://127.0.0.1:9999/a.csv", &["http://127.0.0.1:8080"]).is_err());
        assert!(check("https://127.0.0.1:8080/a.csv", &["http://127.0.0.1:8080"]).is_err());
        // No scheme: HTTPS only; no port: the scheme's default port.
        assert!(check("https://storage.lan/a.csv", &["storage.lan"]).is_ok());
        assert!(check("https://Storage.LAN:443/a.csv", &["storage.lan."]).is_ok());
        assert!(check("http://storage.lan/a.csv", &["storage.lan"]).is_err());
        assert!(check("https://storage.lan:8443/a.csv", &["storage.lan"]).is_err());
        assert!(check("https://storage.lan:8443/a.csv", &["storage.lan:8443"]).is_ok());
        assert!(check("http://storage.lan/a.csv", &["http://storage.lan"]).is_ok());
        assert!(check("http://storage.lan:8080/a.csv", &["http://storage.lan"]).is_err());
        // IPv6, bracketed or bare.
        assert!(check("https://[::1]/a.csv", &["::1"]).is_ok());
        assert!(check("http://[::1]:8080/a.csv", &["http://[::1]:8080"]).is_ok());
        assert!(check("http://[::1]:8081/a.csv", &["http://[::1]:8080"]).is_err());
        // Another private host is still refused; so is any other scheme.
        assert!(check("http://10.0.0.1/a.csv", &["http://127.0.0.1"]).is_err());
        assert!(check("ftp://127.0.0.1/a.csv", &["http://127.0.0.1"]).is_err());
    }

    #[test]
    fn allow_list_entries_that_are_not_origins_are_named() {
        for bad in
            ["ftp://files.lan", "http://files.lan/path", "https://user:pw@files.lan", "files.lan:notaport", "http://"]
        {
            let err = AllowList::parse(&[bad]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        let list = AllowList::parse(&["", " files.lan ", "http://127.0.0.1:8099", "[::1]:8443"]).unwrap();
        assert_eq!(list.describe(), ["https://files.lan:443", "http://127.0.0.1:8099", "https://[::1]:8443"]);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses() {
        // `localhost` resolves from the hosts file: no DNS traffic, and a loopback answer.
        let guard = Guard::default();
        let refused = guard.resolve("localhost".parse().unwrap()).await.err().expect("refused");
        assert!(refused.downcast_ref::<Refused>().is_some(), "{refused}");
        let allowed = Guard::new(AllowList::parse(&["http://localhost:8080"]).unwrap());
        let addrs: Vec<SocketAddr> = allowed.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "{addrs:?}");

        // Through a real client the refusal is found in the error, before any connection (port
        // 9 has no listener; a connection attempt would fail differently).
        let client = client_builder(&guard).build().unwrap();
        let err = client.get("http://localhost:9/a.csv").send().await.unwrap_err();
        assert_eq!(resolver_refusal(&err), Some("internal"), "{err:?}");
    }
}
