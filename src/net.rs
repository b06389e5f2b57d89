//! Outbound connections for the live sources (Bluesky Jetstream, X): URLs parsed by `url`; the
//! proxy the environment names, reached through an HTTP CONNECT tunnel, as the AWS SDK reaches it;
//! TLS for `wss://` and `https://` with rustls (ring) and the system's root certificates; and one
//! pooled HTTP/1.1 client (hyper-util's) for request/response APIs. The AWS SDK has its own client;
//! this is for everything else.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tower_service::Service;
use url::{Host, Url};

/// A connected byte stream, TLS or not.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// TLS (wss, https) or not (ws, http).
    pub tls: bool,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The URL, parsed.
    pub url: Url,
}

/// Parses a `ws`, `wss`, `http` or `https` URL.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let tls = match parsed.scheme() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        other => return Err(format!("{url}: scheme {other} is not ws, wss, http or https")),
    };
    let host = match parsed.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(format!("{url} has no host")),
    };
    // `url` knows the default ports of these four schemes.
    let port = parsed.port_or_known_default().ok_or_else(|| format!("{url} has no port"))?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    Ok(Endpoint { tls, host, port, path, url: parsed })
}

impl Endpoint {
    /// `host:port`, with an IPv6 address in brackets.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URI the proxy rules are matched against: https for TLS (HTTPS_PROXY), http otherwise.
    fn proxy_target(&self) -> Result<Uri, String> {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.authority()).parse().map_err(|e| format!("{}: {e}", self.url))
    }
}

/// How the live sources reach the outside: which proxy, if any, for which host. Cheap to clone.
#[derive(Clone)]
pub struct Net {
    proxies: Arc<Matcher>,
}

impl Net {
    /// The proxies the environment names, read as the AWS SDK's `ProxyConfig::from_env` reads
    /// them (hyper-util's matcher): HTTPS_PROXY/https_proxy for TLS, HTTP_PROXY/http_proxy for
    /// plain connections, ALL_PROXY for both, and NO_PROXY's hosts, domains and networks bypass.
    pub fn from_env() -> Net {
        Net { proxies: Arc::new(Matcher::from_env()) }
    }

    /// Given proxies, as the environment variables would name them (tests).
    pub fn with_proxies(http: Option<&str>, https: Option<&str>, no_proxy: Option<&str>) -> Net {
        let mut b = Matcher::builder();
        if let Some(p) = http {
            b = b.http(p.to_string());
        }
        if let Some(p) = https {
            b = b.https(p.to_string());
        }
        if let Some(n) = no_proxy {
            b = b.no(n.to_string());
        }
        Net { proxies: Arc::new(b.build()) }
    }

    /// The proxy for `ep`, if one applies.
    fn proxy_for(&self, ep: &Endpoint) -> Option<Intercept> {
        self.proxies.intercept(&ep.proxy_target().ok()?)
    }

    /// Connects to `ep` (through a CONNECT tunnel when a proxy applies), with TLS when its scheme
    /// asks for it.
    pub async fn connect(&self, ep: &Endpoint) -> std::io::Result<Box<dyn Io>> {
        let stream = match self.proxy_for(ep) {
            Some(proxy) => tunnel(&proxy, ep).await?,
            None => tcp(ep).await?,
        };
        if ep.tls { tls(stream, &ep.host).await } else { Ok(stream) }
    }

    /// An HTTP/1.1 client that keeps connections open and reuses them, connecting through
    /// `connect`. Requests take absolute URIs (`https://host/path`).
    pub fn http_client(&self) -> HttpClient {
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(Connector { net: self.clone() })
    }
}

/// The pooled client of `Net::http_client`.
pub type HttpClient = hyper_util::client::legacy::Client<Connector, BoxBody<Bytes, std::convert::Infallible>>;

/// A plain TCP connection to `ep` (every address its name resolves to, in turn).
async fn tcp(ep: &Endpoint) -> std::io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
    tcp.set_nodelay(true)?;
    Ok(Box::new(tcp))
}

/// TLS over `stream` to `host`.
async fn tls(stream: Box<dyn Io>, host: &str) -> std::io::Result<Box<dyn Io>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream).await?;
    Ok(Box::new(tls))
}

/// A tunnel to `ep` through `proxy`: TCP (TLS for an https:// proxy) to the proxy, then
/// `CONNECT host:port` with the proxy's credentials, if its URL has them (hyper-util's Tunnel, as
/// the AWS SDK does it).
async fn tunnel(proxy: &Intercept, ep: &Endpoint) -> std::io::Result<Box<dyn Io>> {
    let mut tunnel = Tunnel::new(proxy.uri().clone(), ToProxy);
    if let Some(auth) = proxy.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    let target = ep.proxy_target().map_err(std::io::Error::other)?;
    let host = proxy.uri().host().unwrap_or_default().to_string();
    let io =
        tunnel.call(target).await.map_err(|e| std::io::Error::other(format!("through the proxy at {host}: {e}")))?;
    Ok(io.into_inner())
}

/// Opens the connection to a proxy, for `Tunnel`.
#[derive(Clone, Copy)]
struct ToProxy;

impl Service<Uri> for ToProxy {
    type Response = TokioIo<Box<dyn Io>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, proxy: Uri) -> Self::Future {
        Box::pin(async move {
            let ep = endpoint(&proxy.to_string()).map_err(std::io::Error::other)?;
            let stream = tcp(&ep).await?;
            let stream = if ep.tls { tls(stream, &ep.host).await? } else { stream };
            Ok(TokioIo::new(stream))
        })
    }
}

/// The connector of the pooled client: `Net::connect` for each new connection it needs.
#[derive(Clone)]
pub struct Connector {
    net: Net,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let net = self.net.clone();
        Box::pin(async move {
            let ep = endpoint(&uri.to_string()).map_err(std::io::Error::other)?;
            Ok(Conn(TokioIo::new(net.connect(&ep).await?)))
        })
    }
}

/// A connection of the pooled client.
pub struct Conn(TokioIo<Box<dyn Io>>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        // Through a tunnel too, requests go to the origin in origin form: not a forward proxy.
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                // The ring provider supports the default protocol versions; this cannot fail.
                .expect("ring supports TLS 1.2 and 1.3");
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split() {
        let e = endpoint("wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post")
            .expect("url");
        assert_eq!((e.tls, e.host.as_str(), e.port), (true, "jetstream2.us-east.bsky.network", 443));
        assert_eq!(e.path, "/subscribe?wantedCollections=app.bsky.feed.post");
        let e = endpoint("http://127.0.0.1:8080").expect("url");
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (false, "127.0.0.1", 8080, "/"));
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("https://:1/").is_err());
    }

    /// IPv6 literals keep their port; a query straight after the host is the path's, not the host's.
    #[test]
    fn ipv6_hosts_and_queries_without_a_path_are_split() {
        let e = endpoint("ws://[::1]/").expect("ws://[::1]/");
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("::1", 80, "/"));
        let e = endpoint("wss://[2001:db8::1]:8443/subscribe?x=1").expect("ipv6 with a port");
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("2001:db8::1", 8443, "/subscribe?x=1"));
        let e = endpoint("wss://jetstream.example?wantedCollections=app.bsky.feed.post").expect("a query, no path");
        assert_eq!((e.host.as_str(), e.port), ("jetstream.example", 443));
        assert_eq!(e.path, "/?wantedCollections=app.bsky.feed.post");
    }
}
