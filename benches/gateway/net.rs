//! Where the load client connects and what it holds: a [`Target`] (the
//! daemon's Unix socket or the fake provider's loopback port) and the
//! [`Stream`] either gives, one type so every client path is the same code.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Where a client connects: the daemon's socket or the fake provider's port.
#[derive(Debug, Clone)]
pub enum Target {
    /// The daemon, over its Unix socket.
    Unix(PathBuf),
    /// The fake provider, over loopback TCP.
    Tcp(SocketAddr),
}

/// An open stream of either kind.
pub enum Stream {
    /// A Unix socket stream.
    Unix(UnixStream),
    /// A TCP stream (with `TCP_NODELAY`).
    Tcp(TcpStream),
}

impl Target {
    /// Opens one connection.
    pub async fn connect(&self) -> io::Result<Stream> {
        match self {
            Target::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            Target::Tcp(addr) => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                Ok(Stream::Tcp(tcp))
            }
        }
    }

    /// Opens one connection, retrying while the listener's backlog is full
    /// (a non-blocking Unix-socket connect then fails with `EAGAIN` instead
    /// of queueing) until `deadline`. Returns the stream and the retries.
    pub async fn connect_patiently(&self, deadline: Instant) -> (io::Result<Stream>, u32) {
        let mut retries = 0;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.connect().await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    retries += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                other => return (other, retries),
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, b),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
