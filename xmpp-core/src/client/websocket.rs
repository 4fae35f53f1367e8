//! WebSocket client connections of lilt's components to each other (the
//! recorder to a bridge's colibri-ws, a bridge to another's
//! colibri-relay-ws): `ws://` on plain TCP, `wss://` with the same TLS
//! client configuration as their XMPP logins ([`super::tls`]).

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// The byte stream under a WebSocket: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected WebSocket, whichever the scheme.
pub type WebSocket = WebSocketStream<Box<dyn Io>>;

/// Connects to `url` (`ws://` or `wss://`; `insecure`: any server
/// certificate, for self-signed deployments).
pub async fn connect(url: &str, insecure: bool) -> Result<WebSocket, String> {
    let (tls, host, port) = endpoint(url).ok_or_else(|| format!("bad WebSocket URL {url}"))?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let io: Box<dyn Io> = if tls {
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let connector =
            tokio_rustls::TlsConnector::from(super::tls::client_config(insecure, None)?);
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (ws, _) = tokio_tungstenite::client_async(url, io)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Whether `url` is `wss://`, its host and its port (443 or 80 when none
/// is given).
fn endpoint(url: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = match url.strip_prefix("wss://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("ws://")?),
    };
    let authority = rest.split(['/', '?']).next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if tls => 443,
        None => 80,
    };
    (!host.is_empty()).then(|| (tls, host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn urls() {
        let e = endpoint;
        assert_eq!(
            e("wss://meet.example.com/colibri-ws/jvb1/c/e?pwd=x"),
            Some((true, "meet.example.com".into(), 443))
        );
        assert_eq!(
            e("wss://127.0.0.1:8443/colibri-relay-ws/a/b/c"),
            Some((true, "127.0.0.1".into(), 8443))
        );
        assert_eq!(e("wss://[::1]:9443/x"), Some((true, "::1".into(), 9443)));
        assert_eq!(e("wss://[::1]/x"), Some((true, "::1".into(), 443)));
        assert_eq!(
            e("ws://127.0.0.1:9090/colibri-ws/a"),
            Some((false, "127.0.0.1".into(), 9090))
        );
        assert_eq!(e("ws://bridge/x"), Some((false, "bridge".into(), 80)));
        assert_eq!(e("wss://host:port/x"), None);
        assert_eq!(e("http://host/x"), None);
    }
}
