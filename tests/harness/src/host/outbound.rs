//! Spin's `allowed_outbound_hosts` rules, as `spin-outbound-networking-config` applies them
//! to outbound HTTP: `scheme://host[:port]`, where each part may be `*`, the host may be
//! `*.domain` or an IP address / CIDR, and a missing port means the scheme's well-known port.

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::pool::ConnectionPool;

use anyhow::{Context, bail, ensure};

/// A parsed `allowed_outbound_hosts` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<AllowedHost>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    AnySubdomain(String),
    Exact(String),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Port(u16),
    Range(u16, u16),
}

impl AllowedHosts {
    /// Parses resolved entries (no `{{ }}` templates left); an invalid entry is an error, as
    /// when Spin loads the application.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        if entries.len() == 1 && entries[0].as_ref() == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead");
        }
        entries.iter().map(|e| AllowedHost::parse(e.as_ref())).collect::<anyhow::Result<_>>().map(Self)
    }

    /// What Spin does with the resolved entries of a component: it starts whatever they are,
    /// parses them when the component first sends a request, and denies every request when
    /// one entry is invalid (`spin-factor-outbound-networking`, "invalid_allowed_hosts").
    pub fn resolve<S: AsRef<str>>(entries: &[S]) -> Self {
        Self::parse(entries).unwrap_or_else(|error| {
            eprintln!(
                "spin host: error parsing allowed outbound hosts: {error:#}; every outbound request is denied"
            );
            Self(Vec::new())
        })
    }

    /// Whether an absolute request URI may be sent.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let Some(port) = uri.port_u16().or_else(|| well_known_port(&scheme)) else {
            return false;
        };
        self.0.iter().any(|rule| rule.allows(&scheme, &host, port))
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> anyhow::Result<Self> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal without a port: the last colon is inside the brackets.
            Some((h, p)) if !p.contains(']') => (h, p),
            _ => (rest, ""),
        };
        let port = match port.split_once('/') {
            Some((_, path)) if !path.is_empty() => bail!("{url:?} has a path but is not allowed to"),
            Some((port, _)) => port,
            None => port,
        };
        let scheme_rule = match scheme {
            "*" => None,
            s if s.chars().all(|c| c.is_ascii_alphabetic()) && !s.is_empty() => Some(s.to_ascii_lowercase()),
            s => bail!("scheme {s:?} contains non alphabetic character"),
        };
        let port = match port {
            "" => PortRule::Port(well_known_port(scheme).with_context(|| {
                format!(
                    "no port was provided and the scheme {scheme:?} does not have a known default port number"
                )
            })?),
            "*" => PortRule::Any,
            p => match p.split_once("..") {
                Some((a, b)) => PortRule::Range(
                    a.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                    b.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                ),
                None => PortRule::Port(p.parse().with_context(|| format!("port {p:?} is not a number"))?),
            },
        };
        Ok(Self { scheme: scheme_rule, host: HostRule::parse(host)?, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.allows(host)
            && match self.port {
                PortRule::Any => true,
                PortRule::Port(p) => p == port,
                PortRule::Range(a, b) => (a..b).contains(&port),
            }
    }
}

impl HostRule {
    fn parse(host: &str) -> anyhow::Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        ensure!(
            host != "self" && host != "self.alt",
            "service chaining ('self') is not supported by the test host"
        );
        ensure!(!host.starts_with('{'), "host lists are not yet supported");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Self::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        if let Some((ip, bits)) = bare.split_once('/')
            && let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
        {
            ensure!(bits <= if ip.is_ipv4() { 32 } else { 128 }, "invalid CIDR prefix in {host:?}");
            return Ok(Self::Cidr(ip, bits));
        }
        if matches!(host.split('/').nth(1), Some(path) if !path.is_empty()) {
            bail!("hosts must not contain paths");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "Invalid allowed host {host}: wildcards are allowed only as prefixes"
            );
            return Ok(Self::AnySubdomain(format!(".{}", domain.to_ascii_lowercase())));
        }
        ensure!(!host.contains('*'), "Invalid allowed host {host}: wildcards are allowed only as subdomains");
        Ok(Self::Exact(host.trim_end_matches('/').to_ascii_lowercase()))
    }

    fn allows(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            Self::Exact(h) => h == host,
            Self::Cidr(net, bits) => host.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, *net, *bits)),
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= 128 || ip >> shift == net >> shift
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The `wasi:http` hooks of one request: Spin's allow-list check, then the host's pool of
/// kept-alive connections for `http://` (wasmtime's default sender, one connection per
/// request, for `https://`, which the tests do not use).
pub(super) struct OutboundPolicy {
    allowed: Arc<AllowedHosts>,
    pool: Arc<ConnectionPool>,
}

impl OutboundPolicy {
    pub(super) fn new(allowed: Arc<AllowedHosts>, pool: Arc<ConnectionPool>) -> Self {
        Self { allowed, pool }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: IoFuture,
    ) -> Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send>
    {
        if !self.allowed.allows(request.uri()) {
            eprintln!(
                "spin host: outbound request to {} denied: not in allowed_outbound_hosts",
                request.uri()
            );
            return Box::new(std::future::ready(Err(wasmtime_wasi_http::Error::HttpRequestDenied)));
        }
        if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            let pool = self.pool.clone();
            return Box::new(async move {
                let response = pool.send(request, options).await?;
                // The pooled connection's I/O runs in a task of its own; its errors reach the
                // guest through the response and its body.
                Ok((response, Box::new(std::future::ready(Ok(()))) as IoFuture))
            });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AllowedHosts;

    fn allows(entries: &[&str], url: &str) -> bool {
        AllowedHosts::parse(entries).unwrap().allows(&url.parse().unwrap())
    }

    #[test]
    fn scheme_and_host_mean_the_default_port() {
        let k8s = ["https://kubernetes.default.svc"];
        assert!(allows(&k8s, "https://kubernetes.default.svc/api/v1/namespaces"));
        assert!(allows(&k8s, "https://kubernetes.default.svc:443/api"));
        assert!(!allows(&k8s, "https://kubernetes.default.svc:6443/api"));
        assert!(!allows(&k8s, "http://kubernetes.default.svc/api"));
        assert!(!allows(&k8s, "https://evil.example/api"));
    }

    #[test]
    fn explicit_port_must_match() {
        let local = ["http://127.0.0.1:8001"];
        assert!(allows(&local, "http://127.0.0.1:8001/api"));
        assert!(!allows(&local, "http://127.0.0.1:8002/api"));
        assert!(!allows(&local, "http://localhost:8001/api"));
    }

    #[test]
    fn wildcards_and_cidrs() {
        assert!(allows(&["*://*:*"], "http://anything:1234/"));
        assert!(allows(&["https://*.svc"], "https://kubernetes.default.svc/"));
        assert!(allows(&["http://127.0.0.0/8:*"], "http://127.1.2.3:9/"));
        assert!(allows(&["http://localhost:8000..8010"], "http://localhost:8005/"));
        assert!(!allows(&["http://localhost:8000..8010"], "http://localhost:8010/"));
    }

    #[test]
    fn an_invalid_entry_denies_every_request() {
        let hosts = AllowedHosts::resolve(&["http://127.0.0.1:8001", "kubernetes.default.svc"]);
        assert!(!hosts.allows(&"http://127.0.0.1:8001/api".parse().unwrap()));
    }

    #[test]
    fn invalid_entries_are_rejected() {
        for bad in
            ["kubernetes.default.svc", "https://host/path", "ht+tp://x", "insecure:allow-all", "foo://x"]
        {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
