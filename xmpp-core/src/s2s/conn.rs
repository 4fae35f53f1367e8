//! A server-to-server connection that may become TLS (STARTTLS), for the
//! runtime.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection that may become TLS.
pub(super) enum Conn {
    Plain(TcpStream),
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Taken out for a TLS handshake that failed.
    Gone,
}

impl Conn {
    pub(super) async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Client(s) => s.read(buf).await,
            Conn::Server(s) => s.read(buf).await,
            Conn::Gone => Ok(0),
        }
    }
    pub(super) async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => write_flush(s, data).await,
            Conn::Client(s) => write_flush(s.as_mut(), data).await,
            Conn::Server(s) => write_flush(s.as_mut(), data).await,
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    pub(super) async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Client(s) => s.shutdown().await,
            Conn::Server(s) => s.shutdown().await,
            Conn::Gone => Ok(()),
        };
    }
}

async fn write_flush<S: AsyncWrite + AsyncRead + Unpin>(
    s: &mut S,
    data: &[u8],
) -> std::io::Result<()> {
    s.write_all(data).await?;
    s.flush().await
}
