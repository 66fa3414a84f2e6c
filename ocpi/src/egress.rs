//! Where outbound OCPI requests may go: the guard against server-side request forgery.
//!
//! Every URL the bridge requests comes from a peer (their versions URL in a credentials POST,
//! the endpoints in their version details, a command's `response_url`). A peer, or anyone
//! holding token A, could name an address that only the bridge can reach: its own admin API,
//! a cloud metadata service, another host's link-local services. So every outbound request is
//! checked, by literal address before it is sent and by resolved address when the host is a
//! name (the HTTP client's resolver drops denied addresses, so DNS cannot be used to slip
//! past; a name never resolves to this host itself, so a peer on the same host is named by IP
//! literal), and redirects are not followed. Denied:
//!
//! - the bridge's own listeners (any loopback, unspecified or local interface address with a
//!   listener's port, and the listener's own address), and the origin of `ocpi.public_url`;
//! - link-local addresses (`169.254.0.0/16`, `fe80::/10`, where cloud metadata services live)
//!   and the other well-known metadata addresses (`100.100.100.200`, `fd00:ec2::254`);
//! - unspecified, broadcast and multicast addresses; schemes other than `http` and `https`.
//!
//! Loopback and private addresses in general stay allowed: a hub on the same host or in the
//! same private network is a normal set-up (and the tests' fake peers live on 127.0.0.1).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use reqwest::Url;

/// Why an outbound URL was refused (the message names the rule, never a response body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound request refused: {0}")]
pub struct Denied(pub String);

/// The rule set; cheap to clone (shared), updated once the listeners are bound.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    inner: Arc<RwLock<Rules>>,
}

#[derive(Debug, Default)]
struct Rules {
    /// Ports of the bridge's own listeners, with the address each is bound to.
    listeners: Vec<SocketAddr>,
    /// Addresses of this host's interfaces (read when the listeners are registered).
    local: BTreeSet<IpAddr>,
    /// `scheme://host:port` of `ocpi.public_url`.
    own_origins: BTreeSet<String>,
}

/// True for addresses no peer URL may name, whatever the port (link-local, metadata,
/// unspecified, broadcast, multicast).
pub fn always_denied(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => always_denied_v4(v4),
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else {
                None
            }
        }
    }
}

fn always_denied_v4(v4: Ipv4Addr) -> Option<&'static str> {
    if v4.is_unspecified() || v4.octets()[0] == 0 {
        Some("the unspecified address")
    } else if v4.is_link_local() {
        Some("a link-local address (cloud metadata)")
    } else if v4 == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata address")
    } else if v4.is_broadcast() {
        Some("the broadcast address")
    } else if v4.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (`::ffff:127.0.0.1` is loopback).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `scheme://host:port` of a URL (default ports made explicit).
fn origin(url: &Url) -> Option<String> {
    Some(format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str()?.to_ascii_lowercase(),
        url.port_or_known_default()?
    ))
}

impl Egress {
    /// A rule set that knows no listener yet (the fixed rules apply).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the bridge's own listeners (their bound addresses) and reads this host's
    /// interface addresses.
    pub fn deny_listeners(&self, listeners: impl IntoIterator<Item = SocketAddr>) {
        let mut rules = self.inner.write().expect("egress rules");
        rules.listeners.extend(listeners);
        rules.local = local_addresses();
    }

    /// Registers a URL that reaches the bridge itself (e.g. `ocpi.public_url`).
    pub fn deny_origin_of(&self, url: &str) {
        if let Some(o) = Url::parse(url).ok().as_ref().and_then(origin) {
            self.inner
                .write()
                .expect("egress rules")
                .own_origins
                .insert(o);
        }
    }

    /// Checks one address the client is about to connect to.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), Denied> {
        let ip = addr.ip();
        if let Some(why) = always_denied(ip) {
            return Err(Denied(format!("{ip} is {why}")));
        }
        let rules = self.inner.read().expect("egress rules");
        let ip = canonical(ip);
        for l in &rules.listeners {
            if l.port() != addr.port() {
                continue;
            }
            let bound = l.ip();
            let ours = ip == bound
                || ip.is_loopback()
                || (bound.is_unspecified() && rules.local.contains(&ip));
            if ours {
                return Err(Denied(format!(
                    "{addr} is one of the bridge's own listeners"
                )));
            }
        }
        Ok(())
    }

    /// Checks a URL before it is requested: scheme, the bridge's own origins, and the address
    /// when the host is an IP literal (names are checked by the resolver, [`Egress::resolver`]).
    pub fn check_url(&self, url: &Url) -> Result<(), Denied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Denied(format!("scheme {} is not http(s)", url.scheme())));
        }
        if let Some(o) = origin(url)
            && self
                .inner
                .read()
                .expect("egress rules")
                .own_origins
                .contains(&o)
        {
            return Err(Denied(format!("{o} is the bridge's own public URL")));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Denied("no port".into()))?;
        match url.host() {
            Some(url::Host::Ipv4(v4)) => self.check_addr(SocketAddr::new(v4.into(), port)),
            Some(url::Host::Ipv6(v6)) => self.check_addr(SocketAddr::new(v6.into(), port)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                self.check_addr(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
            }
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Denied("no host".into())),
        }
    }

    /// Checks a URL given as text (a `response_url`, a versions URL).
    pub fn check_str(&self, url: &str) -> Result<(), Denied> {
        let parsed = Url::parse(url).map_err(|e| Denied(format!("not a URL: {e}")))?;
        self.check_url(&parsed)
    }

    /// A DNS resolver for the HTTP client that drops denied addresses (all denied → error).
    pub fn resolver(&self) -> Arc<dyn reqwest::dns::Resolve> {
        Arc::new(Resolver(self.clone()))
    }
}

/// This host's interface addresses (empty if they cannot be read: the loopback and
/// bound-address rules still apply).
fn local_addresses() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                out.insert(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                out.insert(IpAddr::V6(v6.ip()));
            }
        }
    }
    out
}

struct Resolver(Egress);

impl Egress {
    /// Whether a resolved name may use `ip`: the fixed rules, and never this host itself
    /// (loopback, unspecified or an interface address) — the port is not known to a resolver,
    /// and a name could be re-pointed between a check and the connect (DNS rebinding), so a
    /// peer on this host must be named by IP literal (`http://127.0.0.1:PORT`), which
    /// [`Egress::check_url`] checks with its port.
    fn resolvable(&self, ip: IpAddr) -> bool {
        if always_denied(ip).is_some() {
            return false;
        }
        let ip = canonical(ip);
        let rules = self.inner.read().expect("egress rules");
        !(ip.is_loopback() || rules.local.contains(&ip))
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // `localhost` comes from the hosts file, not from anyone's DNS; check_url has
            // checked it with the URL's port.
            let local_name = host.eq_ignore_ascii_case("localhost");
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| {
                    if local_name {
                        always_denied(a.ip()).is_none()
                    } else {
                        egress.resolvable(a.ip())
                    }
                })
                .collect();
            if found.is_empty() {
                return Err(Box::new(Denied(format!(
                    "{host} resolves to no address the bridge may reach"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress() -> Egress {
        let e = Egress::new();
        e.deny_listeners([
            "0.0.0.0:9200".parse().unwrap(),
            "127.0.0.1:9100".parse().unwrap(),
            "10.1.2.3:9000".parse().unwrap(),
        ]);
        e.deny_origin_of("https://bridge.example.com/ocpi/versions");
        e
    }

    fn denied(e: &Egress, url: &str) -> bool {
        e.check_str(url).is_err()
    }

    #[test]
    fn own_listeners_are_denied_on_every_local_address() {
        let e = egress();
        assert!(denied(&e, "http://127.0.0.1:9200/admin/peers"));
        assert!(denied(&e, "http://localhost:9200/admin/peers"));
        assert!(denied(&e, "http://127.0.0.2:9100/ocpi/versions"));
        assert!(denied(&e, "http://[::1]:9200/admin"));
        assert!(denied(&e, "http://[::ffff:127.0.0.1]:9200/admin"));
        assert!(denied(&e, "http://10.1.2.3:9000/ocpp/CS1"));
        // Other ports on loopback (a hub on the same host) and other hosts are fine.
        assert!(!denied(&e, "http://127.0.0.1:9300/ocpi/versions"));
        assert!(!denied(&e, "http://10.1.2.4:9000/"));
        assert!(!denied(&e, "https://hub.example.com/ocpi/versions"));
    }

    #[test]
    fn the_public_url_origin_is_denied() {
        let e = egress();
        assert!(denied(&e, "https://bridge.example.com/admin"));
        assert!(denied(&e, "https://BRIDGE.example.com:443/x"));
        assert!(!denied(&e, "http://bridge.example.com/x"));
    }

    #[test]
    fn metadata_link_local_and_odd_addresses_are_denied_on_any_port() {
        let e = Egress::new();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://0.0.0.0:8080/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::ffff:169.254.169.254]/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
        ] {
            assert!(denied(&e, url), "{url}");
        }
        assert!(!denied(&e, "http://192.168.1.10:8080/ocpi"));
    }

    #[tokio::test]
    async fn the_resolver_never_resolves_a_name_to_this_host() {
        let e = egress();
        let r = e.resolver();
        // `localhost` (hosts file) resolves; check_url has checked its port.
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(r.resolve(name).await.unwrap().next().is_some());
        // A name for a loopback address (as a rebinding attacker's DNS would give) does not.
        assert!(!e.resolvable("127.0.0.1".parse().unwrap()));
        assert!(!e.resolvable("::1".parse().unwrap()));
        assert!(!e.resolvable("169.254.169.254".parse().unwrap()));
        assert!(e.resolvable("192.0.2.10".parse().unwrap()));
    }
}
