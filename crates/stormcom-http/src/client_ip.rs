//! The client's address. Forwarded headers are believed only when the connection comes
//! from a configured proxy, and then only up to the first hop that is not one of ours:
//! walking `X-Forwarded-For` (or RFC 7239 `Forwarded`) from the right, the first
//! untrusted address is the client. Anything left of it was written by the client and
//! could be anything. Resolved once per request by [`middleware`], so rate limits, audit
//! entries and handlers all see the same answer.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Proxies whose forwarded headers are believed (addresses or CIDR ranges).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that arrived from `peer` with these headers.
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut chain = forwarded_for(headers);
        let mut nearest = peer;
        while let Some(hop) = chain.pop() {
            let Some(hop) = hop else {
                // Garbage in the chain: nothing left of it can be trusted either.
                return nearest;
            };
            if !self.contains(hop) {
                return hop;
            }
            nearest = hop;
        }
        nearest
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, ::1`).
    fn from_str(s: &str) -> Result<Self, String> {
        let nets = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{p}' is neither an IP address nor a CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(nets.into()))
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The forwarded-for chain, left (client side) to right (nearest proxy); `None` marks an
/// entry that is not an address. `X-Forwarded-For` wins over `Forwarded` when both came.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let xff: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("for=?").split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| node.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>())
        .ok()
        .map(canonical)
}

/// Resolves the client address once and stores it as [`ClientIp`].
pub async fn middleware(State(trusted): State<TrustedProxies>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = trusted.resolve(peer, request.headers());
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies() -> TrustedProxies {
        "10.0.0.0/8, 192.0.2.7"
            .parse()
            .unwrap_or_else(|e: String| panic!("{e}"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(proxies().resolve(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().resolve(ip("10.1.1.1"), &h), ip("10.1.1.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // The client put 6.6.6.6 there itself; 198.51.100.4 is who reached our proxies.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.2.2.2")]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &h), ip("198.51.100.4"));
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(proxies().resolve(ip("192.0.2.7"), &split), ip("198.51.100.4"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_nearest_trusted_hop() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, not-an-ip, 10.2.2.2")]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &h), ip("10.2.2.2"));
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn rfc7239_forwarded_is_understood() {
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, for=10.3.3.3",
        )]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn mapped_addresses_match_ipv4_ranges_and_bad_lists_are_refused() {
        assert!(proxies().contains(ip("::ffff:10.9.9.9")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.local".parse::<TrustedProxies>().is_err());
    }
}
