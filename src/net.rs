//! Outbound connections for the live sources (Bluesky Jetstream, X): plain TCP for `ws://` and
//! `http://` (local test servers), TLS for `wss://` and `https://` with rustls (ring) and the
//! system's root certificates. The AWS SDK has its own client; this is for everything else.

use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connected byte stream, TLS or not.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// TLS (wss, https) or not (ws, http).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Splits a `ws`, `wss`, `http` or `https` URL.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url} has no scheme"))?;
    let (tls, default_port) = match scheme {
        "ws" | "http" => (false, 80),
        "wss" | "https" => (true, 443),
        other => return Err(format!("{url}: scheme {other} is not ws, wss, http or https")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.trim_matches(['[', ']']).to_string(), p.parse().map_err(|_| format!("{url}: bad port {p}"))?)
        }
        _ => (authority.to_string(), default_port),
    };
    if host.is_empty() {
        return Err(format!("{url} has no host"));
    }
    Ok(Endpoint { tls, host, port, path })
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

/// Connects to `ep`, with TLS when its scheme asks for it.
pub async fn connect(ep: &Endpoint) -> std::io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
    tcp.set_nodelay(true)?;
    if !ep.tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()).connect(name, tcp).await?;
    Ok(Box::new(tls))
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
}
